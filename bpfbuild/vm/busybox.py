"""busybox-static for a guest arch, fetched from Debian with bpfbuild's own apt into the
user's cache (never installed on the host); the only userland of the guest."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..cache import cache_root, locked, read_entry, sha256_file, write_entry

PACKAGE = "busybox-static"
SUITE = "bookworm"
CACHE_KIND = "busybox"


def busybox_for(debian_arch: str) -> Path:
    """The static busybox binary for a Debian arch (`amd64`, `arm64`...), from the
    cache; fetched and extracted from Debian's package on first use."""
    key = f"{PACKAGE}-{debian_arch}"
    entry = read_entry(CACHE_KIND, key)
    if entry is None:
        with locked(CACHE_KIND, key):
            entry = read_entry(CACHE_KIND, key) or _fetch(debian_arch, key)
    return entry.file("busybox")


def _fetch(debian_arch: str, key: str):
    from ..kernels.apt import Apt, AptError, extract_deb

    apt = Apt([SUITE], debian_arch)
    version = apt.candidate(PACKAGE)
    if version is None:
        raise AptError(
            f"Debian {SUITE} has no {PACKAGE} for {debian_arch}", hint=apt.network_hint()
        )
    with tempfile.TemporaryDirectory(dir=cache_root()) as scratch:
        folder = Path(scratch)
        deb = apt.download(PACKAGE, version, folder)
        extract_deb(deb, folder / "data", members=["./bin/busybox"])
        binary = folder / "data" / "bin" / "busybox"
        if not binary.is_file():
            raise AptError(f"{deb.name} has no bin/busybox", hint="delete it and fetch again")
        meta = {
            "package": PACKAGE,
            "version": version,
            "arch": debian_arch,
            "deb_sha256": sha256_file(deb),
        }
        return write_entry(CACHE_KIND, key, {"busybox": binary}, meta, move=True)
