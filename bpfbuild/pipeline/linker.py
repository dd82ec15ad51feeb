"""Which linker links the apps: `[build] linker`, probed once per C compiler and cached.

"auto" takes mold, then lld, when the compiler can link this arch with them, else the
compiler's own default (GNU ld). A choice is kept only after a real link of a tiny
program with it succeeded: gcc finds `ld.mold`/`ld.lld` for the host, but a Debian
cross gcc looks only in its own folders, where mold is reached through its
`/usr/libexec/mold/ld` (`-B`), and lld not at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolchainError

LINKERS = ("auto", "mold", "lld", "bfd", "gold", "default")
"""Values of `[build] linker`."""
AUTO_ORDER = ("mold", "lld")
"""What "auto" tries, fastest first (a static link: mold 0.028 s, lld 0.034 s, bfd 0.054 s)."""
MOLD_LIBEXEC = "/usr/libexec/mold"
"""Debian's mold ships `ld` here, for compilers that take `-B` but know no `-fuse-ld=mold`."""
DEBIAN_PACKAGE = {"mold": "mold", "lld": "lld", "bfd": "binutils", "gold": "binutils"}
_PROBE_SOURCE = "void _start(void) {}\n"


@dataclass(frozen=True)
class Linker:
    """The linker of one arch's links: what the compiler is told, and what it runs."""

    name: str
    """mold, lld, bfd, gold, or default (the compiler's own choice)."""
    flags: tuple[str, ...]
    """Added to every link command, right after the compiler."""
    path: str
    """The linker binary the compiler runs (for the up-to-date key)."""
    version: str
    """Its `-v` line, e.g. "mold 1.10.1 (compatible with GNU ld)"."""


def candidate_flags(name: str) -> list[tuple[str, ...]]:
    """The ways to ask a gcc-like compiler for a linker, in order."""
    if name == "default":
        return [()]
    ways: list[tuple[str, ...]] = [(f"-fuse-ld={name}",)]
    if name == "mold" and Path(MOLD_LIBEXEC, "ld").exists():
        ways.append(("-B", MOLD_LIBEXEC))
    return ways


def probe(cc: str, name: str, flags: tuple[str, ...], workdir: Path | None = None) -> Linker | None:
    """Link a program with no libc for cc's target with these flags (in a temporary
    folder under workdir, the project's state folder); the linker that did it, or None
    when the compiler cannot use it."""
    if workdir:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ld-probe.", dir=workdir) as folder:
        source, output = Path(folder, "probe.c"), Path(folder, "probe")
        source.write_text(_PROBE_SOURCE)
        try:
            done = subprocess.run(
                [cc, *flags, "-nostdlib", "-static", str(source), "-o", str(output), "-Wl,-v"],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0 or not output.is_file():
                return None
            program = "ld" if name == "default" or flags[:1] == ("-B",) else f"ld.{name}"
            asked = subprocess.run(
                [cc, *flags, f"-print-prog-name={program}"], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return None
    path = asked if os.path.isabs(asked) else shutil.which(asked) or asked
    version = next((line.strip() for line in done.stdout.splitlines() if line.strip()), "unknown")
    return Linker(name, flags, os.path.realpath(path) if os.path.isabs(path) else path, version)


def choose(choice: str, cc: str, workdir: Path | None = None) -> Linker:
    """The linker for `[build] linker = choice` with compiler cc; an explicit choice the
    compiler cannot use is an error naming the package to install."""
    names = [*AUTO_ORDER, "default"] if choice == "auto" else [choice]
    for name in names:
        for flags in candidate_flags(name):
            found = probe(cc, name, flags, workdir)
            if found:
                return found
    if choice == "default":
        raise ToolchainError(
            f"{cc} cannot link a program for its target",
            hint="check the compiler's installation (binutils for its arch)",
        )
    raise ToolchainError(
        f"linker '{choice}' (from [build] linker) does not link for {Path(cc).name}",
        hint=f'apt-get install {DEBIAN_PACKAGE[choice]}, or set linker = "auto" in [build] '
        "of bpfbuild.toml",
    )


def stamp_paths(cc: str) -> list[str]:
    """Files whose change (an install, an upgrade) must re-probe the linker."""
    names = ["ld", "ld.bfd", "ld.gold", "ld.lld", "ld.mold", "mold"]
    return [cc, *[shutil.which(n) or f"/usr/bin/{n}" for n in names], f"{MOLD_LIBEXEC}/ld"]


def to_dict(linker: Linker) -> dict:
    return {
        "name": linker.name,
        "flags": list(linker.flags),
        "path": linker.path,
        "version": linker.version,
    }


def from_dict(data: dict) -> Linker:
    return Linker(data["name"], tuple(data["flags"]), data["path"], data["version"])
