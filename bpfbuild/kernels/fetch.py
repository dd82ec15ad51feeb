"""Debian packages fetched into the user's cache: one cache entry per package, made
once under the entry's lock in a scratch folder beside it, from a .deb checked against
Debian's signed package list (or a source package apt-get checked)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..cache import (
    Entry,
    cache_root,
    discard_entry,
    locked,
    read_entry,
    sha256_file,
    write_entry,
)
from .apt import Apt, AptError

Made = tuple[Mapping[str, Path], dict]
"""What a fetch stores: the entry's files (name -> path in the scratch folder), its meta."""


def cached_fetch(
    kind: str,
    key: str,
    make: Callable[[Path], Made],
    root: Path | None = None,
    usable: Callable[[Entry], bool] = lambda entry: True,
    derived: tuple[str, ...] = (),
) -> Entry:
    """The cache entry kind/key. When it is absent or corrupt, make(scratch) downloads
    and unpacks what it needs into scratch, a folder beside the entry (same file
    system: the files are moved in; a killed run leaves a `.partial` folder that
    `bpfbuild cache clean` removes), and names the files to store. One process makes
    it; the others wait for the entry's lock and read what it stored. An intact entry
    that usable() refuses (made by an older bpfbuild, without a file now stored) is made
    again. derived: folders the caller makes in the entry later (cache.write_entry)."""
    entry = read_entry(kind, key, root)
    if entry is not None and usable(entry):
        return entry
    with locked(kind, key, root):
        entry = read_entry(kind, key, root)
        if entry is not None:
            if usable(entry):
                return entry
            discard_entry(kind, key, root)
        parent = (root or cache_root()) / kind
        with tempfile.TemporaryDirectory(prefix=".fetch-", suffix=".partial", dir=parent) as tmp:
            files, meta = make(Path(tmp))
            return write_entry(kind, key, files, meta, root, move=True, derived=derived)


@dataclass(frozen=True)
class Deb:
    """A downloaded binary package."""

    path: Path
    sha256: str
    """Its SHA-256, checked against the one in the signed package list."""


def download_deb(apt: Apt, package: str, version: str, folder: Path) -> Deb:
    """Download package=version into folder and check its SHA-256 against the signed
    package list's (apt-get download checks it too; this names the file when not)."""
    deb = apt.download(package, version, folder)
    digest = sha256_file(deb)
    record = apt.show(package, version)
    expected = record.fields.get("SHA256") if record else None
    if expected and expected != digest:
        raise AptError(
            f"{deb.name}: SHA-256 {digest} differs from the signed package list's {expected}",
            hint=apt.network_hint(),
        )
    return Deb(deb, digest)
