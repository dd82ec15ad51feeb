"""Helpers of the VM tests: skip with the reason when qemu or a Debian kernel cannot be
had, and find qemu processes a test started (by a path only they have on their command line)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bpfbuild.arch import get_arch
from bpfbuild.errors import BpfBuildError
from bpfbuild.vm.qemu import MACHINES


def require_vm(spec: str, arch: str = "x86_64"):
    """The kernel spec names for arch, or skip saying why it cannot be booted here."""
    machine = MACHINES[arch]
    if not shutil.which(machine.qemu):
        pytest.skip(f"{machine.qemu} is not installed (apt-get install {machine.package})")
    try:
        from bpfbuild.kernels import get_kernel
    except ImportError:
        pytest.skip("bpfbuild.kernels.get_kernel (Debian kernel cache, issue 10) is not available")
    try:
        return get_kernel(spec, get_arch(arch))
    except BpfBuildError as err:
        pytest.skip(f"cannot fetch {spec} for {arch}: {err.message}")


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
