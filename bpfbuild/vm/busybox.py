"""busybox-static for a guest arch, fetched from Debian with bpfbuild's own apt into the
user's cache (never installed on the host); the only userland of the guest."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "busybox-static"
SUITE = "bookworm"
CACHE_KIND = "busybox"


def busybox_for(debian_arch: str) -> Path:
    """The static busybox binary for a Debian arch (`amd64`, `arm64`...), from the
    cache; fetched and extracted from Debian's package on first use."""
    from ..kernels.apt import Apt, AptError, extract_deb
    from ..kernels.fetch import Made, cached_fetch, download_deb

    def make(scratch: Path) -> Made:
        apt = Apt([SUITE], debian_arch)
        version = apt.candidate(PACKAGE)
        if version is None:
            raise AptError(
                f"Debian {SUITE} has no {PACKAGE} for {debian_arch}", hint=apt.network_hint()
            )
        deb = download_deb(apt, PACKAGE, version, scratch)
        extract_deb(deb.path, scratch / "data", members=["./bin/busybox"])
        binary = scratch / "data" / "bin" / "busybox"
        if not binary.is_file():
            raise AptError(f"{deb.path.name} has no bin/busybox", hint="delete it and fetch again")
        meta = {
            "package": PACKAGE,
            "version": version,
            "arch": debian_arch,
            "deb_sha256": deb.sha256,
        }
        return {"busybox": binary}, meta

    return cached_fetch(CACHE_KIND, f"{PACKAGE}-{debian_arch}", make).file("busybox")
