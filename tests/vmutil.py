"""Helpers of the VM tests: find qemu processes a test started (by a path only they have
on their command line) and kill them. Skips (no qemu, no kernel) are buildutil.require_vm."""

from __future__ import annotations

import os
from pathlib import Path


def qemu_processes(marker: Path) -> list[int]:
    """Pids of live qemu processes whose command line names marker (a test's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and argv
            and b"qemu-system" in argv[0]
            and str(marker).encode() in b" ".join(argv)
        ):
            found.append(int(entry.name))
    return found


def kill_leftovers(marker: Path) -> None:
    """A failed test must not leave a VM behind for the next one."""
    for pid in qemu_processes(marker):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
