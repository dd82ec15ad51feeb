"""Digests of file contents, computed once per process for each stat of a file that
proves it unchanged (see timestamps.py)."""

from __future__ import annotations

import hashlib
import os
import time

from .timestamps import is_racy, newest_time

CONTENT_DIGEST = "sha256"
"""The digest of every file content bpfbuild records (inputs, targets, the PCH's key):
SHA-256 hashes about 2.5 times as fast as MD5 here (SHA extensions), and a clean build
hashes every output it makes (~50 MB on the benchmark). Changing it, or the shape of
the state an input's record holds, needs a new name for state.InputContentChecker:
doit records the checker's name and runs again every task recorded under another one,
which rewrites the PCH's key with the new digest too."""

_digests: dict[tuple[str, int, int, int, int], str] = {}
"""(path, mtime, size, ctime, inode) -> digest."""


def content_digest(path: str, st: os.stat_result | None = None, *, own_output: bool = False) -> str:
    """CONTENT_DIGEST of a file's content, computed once per process for each stat of it
    (mtime, size, ctime, inode): doit's up-to-date checks and pch_ready both hash
    vmlinux.h (~3 MB). st: the os.stat of path its caller just made (one stat less a
    dependency). A file changed within the clock's granularity of now could change
    again under the same stat: its digest is not kept, unless own_output says that
    this process just wrote it as a step's output (nothing else writes those)."""
    if st is None:
        st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)
    digest = _digests.get(key)
    if digest is None:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, CONTENT_DIGEST).hexdigest()
        if own_output or not is_racy(newest_time(st), time.time_ns()):
            _digests[key] = digest
    return digest


def remember(path: str, algorithm: str, digest: str) -> None:
    """Take the digest of path's content from where it was computed already: a file
    copied from a verified cache entry (header_cache) is not read again to be recorded.
    Ignored when the algorithm is not CONTENT_DIGEST."""
    if algorithm == CONTENT_DIGEST:
        st = os.stat(path)
        _digests[(path, st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)] = digest
