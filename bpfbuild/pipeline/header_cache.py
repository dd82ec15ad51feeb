"""The machine-wide cache of generated headers: vmlinux.h and its PCH, shared by every
project of a user (through bpfbuild.cache: atomic, verified entries).

A vmlinux.h entry is keyed by the BTF's content, bpftool (path and version) and the
command; a PCH entry by clang (path and version), the BPF flags without the project's
folder, and vmlinux.h's content. A hit is copied into output/<arch>/include/ (never
linked: an edit there must not reach the cache). A miss runs the tool under the key's
lock, so two builds needing the same entry run it once, and stores the result.
`BPFBUILD_CACHE_SIZE=0` turns the cache off for these headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .. import cache, safefs
from . import content

VMLINUX_KIND = "vmlinux"
PCH_KIND = "pch"
F = TypeVar("F")


def key_of(*parts: object) -> str:
    """A cache key: the SHA-256 (32 hex digits) of the parts, as JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def enabled() -> bool:
    """False when $BPFBUILD_CACHE_SIZE is 0 (an invalid value is an error)."""
    return cache.size_limit() > 0


def fetch_or_make(
    kind: str,
    key: str,
    name: str,
    output: str,
    make: Callable[[], F | None],
    meta: dict,
    root: str | None = None,
) -> F | None:
    """Copy the cached file `name` of (kind, key) to output; on a miss call make(),
    which writes OUTPUT.partial and returns a failure or None, then store the file.
    Returns make's failure, or None when output is in place (renamed from
    OUTPUT.partial, as every action's). root: the project, below which output's
    folders are checked (safefs): no link planted there is written through."""
    partial = output + ".partial"
    owner = root or str(Path(output).parent)
    try:
        safefs.prepare_file(owner, output)
        safefs.prepare_file(owner, partial)
        Path(partial).unlink(missing_ok=True)
    except OSError as err:
        raise safefs.refusal(owner, partial, err) from None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(cache.locked(kind, key))
        except cache.CacheError as err:
            # An unwritable cache: the build goes on without it (its output is the same).
            sys.stderr.write(f"warning: {err.message} ({err.hint})\n")
            failed = make()
            if failed:
                Path(partial).unlink(missing_ok=True)
                return failed
            Path(partial).replace(output)
            return None
        entry = cache.read_entry(kind, key, required=(name,))
        if entry and _copy_verified(entry, name, partial):
            Path(partial).replace(output)
            content.remember(output, "sha256", entry.files[name])
            return None
        failed = make()
        if failed:
            Path(partial).unlink(missing_ok=True)
            return failed
        try:
            cache.write_entry(kind, key, {name: Path(partial)}, meta)
            cache.evict(cache.size_limit(), keep=(kind, key))
        except cache.CacheError as err:
            # The build goes on without the cache: its output is right either way.
            sys.stderr.write(f"warning: {err.message} ({err.hint})\n")
    Path(partial).replace(output)
    return None


def _copy_verified(entry: cache.Entry, name: str, partial: str) -> bool:
    """Copy an entry's file to partial and check the copy against the manifest: what
    reaches output/ is what the entry recorded, even if the entry changed after it was
    verified (another process evicting it, a user's edit). False: a miss."""
    try:
        shutil.copyfile(entry.file(name), partial)
        if cache.sha256_file(Path(partial)) == entry.files[name]:
            return True
    except OSError:
        pass
    Path(partial).unlink(missing_ok=True)
    return False


def content_sha256(path: str) -> str:
    """SHA-256 of a file: the one the build state computes (BTF and vmlinux.h are task
    inputs, hashed once a build), as long as that is SHA-256."""
    if content.CONTENT_DIGEST == "sha256":
        return content.content_digest(path)
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stamp(**meta: object) -> dict:
    """Provenance recorded in an entry's manifest."""
    return {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
