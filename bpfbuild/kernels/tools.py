"""Debian tools fetched into the user's cache: bookworm-backports' bpftool, for skeletons
of objects with sections Debian 12's bpftool 7.1 drops (its libbpf 1.1 skips
.struct_ops.link)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..cache import Entry
from .apt import Apt, AptError, extract_deb
from .fetch import Made, cached_fetch, download_deb

TOOLS_KIND = "tools"
"""The cache kind of fetched tools: <cache>/tools/<key>/."""
BPFTOOL_SUITE = "bookworm-backports"
"""Debian 12's backports: bpftool 7.5 (libbpf 1.5), built for Debian 12's libraries."""
BPFTOOL_MEMBER = "./usr/sbin/bpftool"
"""Where bpftool is in its .deb."""


def backports_bpftool(debian_arch: str, root: Path | None = None) -> Entry:
    """The cache entry holding bookworm-backports' bpftool for this host (fetched once,
    its .deb checked against the signed package list, its shared libraries all found
    with ldd). Raises AptError when it cannot be fetched or would not run here."""
    return cached_fetch(
        TOOLS_KIND, bpftool_key(debian_arch), lambda scratch: _fetch(debian_arch, scratch), root
    )


def bpftool_key(debian_arch: str) -> str:
    return f"bpftool-{BPFTOOL_SUITE}-{debian_arch}"


def _fetch(debian_arch: str, scratch: Path) -> Made:
    apt = Apt([BPFTOOL_SUITE], debian_arch)
    version = apt.candidate("bpftool")
    if version is None:
        raise AptError(f"{BPFTOOL_SUITE} has no bpftool package", hint=apt.network_hint())
    deb = download_deb(apt, "bpftool", version, scratch / "deb")
    extract_deb(deb.path, scratch / "root", [BPFTOOL_MEMBER])
    binary = scratch / "root" / BPFTOOL_MEMBER
    if not binary.is_file():
        raise AptError(
            f"{deb.path.name} holds no {BPFTOOL_MEMBER[1:]}",
            hint="install bpftool 7.2 or later yourself and name it in [toolchain] bpftool "
            "(or $BPFTOOL)",
        )
    missing = missing_libraries(binary)
    if missing:
        raise AptError(
            f"{BPFTOOL_SUITE}' bpftool {version} needs {', '.join(missing)}, which this "
            "system does not have",
            hint="it is built for Debian 12: install bpftool 7.2 or later yourself and name "
            "it in [toolchain] bpftool (or $BPFTOOL)",
        )
    os.chmod(binary, 0o755)
    meta = {
        "package": "bpftool",
        "version": version,
        "suite": BPFTOOL_SUITE,
        "arch": debian_arch,
        "deb_sha256": deb.sha256,
    }
    return {"bpftool": binary}, meta


def missing_libraries(binary: Path) -> list[str]:
    """The shared libraries of binary that the dynamic loader cannot find (`ldd`'s
    "not found" lines); a binary ldd cannot read at all is missing everything."""
    try:
        done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [f"ldd ({err})"]
    if done.returncode != 0:
        return [done.stderr.strip() or "a loader ldd knows"]
    return [line.split("=>")[0].strip() for line in done.stdout.splitlines() if "not found" in line]
