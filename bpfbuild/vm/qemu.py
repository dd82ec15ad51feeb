"""qemu per guest arch: the machine table, the KVM probe, and running one VM with a
timeout such that no qemu outlives bpfbuild (Ctrl-C, errors and SIGKILL included)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import safefs
from ..arch import VM, VmFacts, get_arch, host_arch
from ..cache import cache_root, own_folder
from ..errors import BpfBuildError

ACCEL_ENV = "BPFBUILD_VM_ACCEL"
"""`tcg` or `kvm` forces the accelerator; unset: KVM only when the probe shows it works."""
MEMORY_MB = 512
KVM_PROBE_SECONDS = 3.0


class VmError(BpfBuildError):
    """A VM could not be started (no qemu, unknown arch)."""


@dataclass(frozen=True)
class Machine:
    """An arch whose Debian kernels qemu boots, with its VM facts (arch.VM)."""

    arch: str
    """bpfbuild's arch name."""
    facts: VmFacts
    """Its console, board and CPU, and the qemu package (arch.VM)."""

    @property
    def qemu(self) -> str:
        """The qemu system emulator (from the arch table)."""
        return get_arch(self.arch).qemu_system

    @property
    def debian_arch(self) -> str:
        """Debian's name of the arch: busybox-static and kernel packages."""
        return get_arch(self.arch).debian_arch


MACHINES: dict[str, Machine] = {
    name: Machine(name, facts) for name, facts in VM.items() if facts is not None
}
"""The arches bpfbuild boots VMs of."""


def machine_for(arch: str) -> Machine:
    if arch not in MACHINES:
        raise VmError(
            f"bpfbuild cannot boot {arch} kernels in a VM", hint="VM arches: " + ", ".join(MACHINES)
        )
    return MACHINES[arch]


def qemu_binary(machine: Machine) -> str:
    found = shutil.which(machine.qemu)
    if not found:
        raise VmError(
            f"{machine.qemu} not found: needed to verify {machine.arch} kernels in a VM",
            hint=f"apt-get install {machine.facts.qemu_package}",
        )
    return found


def qemu_command(machine: Machine, image: Path, initramfs: Path, kvm: bool) -> list[str]:
    """The qemu command that boots image with initramfs, console on stdout."""
    return [
        qemu_binary(machine),
        *(machine.facts.kvm_args if kvm else machine.facts.tcg_args),
        "-m",
        str(MEMORY_MB),
        "-smp",
        "1",
        "-nodefaults",  # no disks, network, VGA: nothing to probe at boot
        "-no-reboot",  # a panic (panic=-1) ends qemu instead of rebooting
        "-display",
        "none",
        "-serial",
        "stdio",  # the console is the result channel
        "-kernel",
        str(image),
        "-initrd",
        str(initramfs),
        "-append",
        f"console={machine.facts.console} panic=-1 quiet rdinit=/init",
    ]


# --------------------------------------------------------------------------
# Processes: every qemu is tracked and killed with bpfbuild
# --------------------------------------------------------------------------

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def start(command: Sequence[str]) -> subprocess.Popen:
    """Start qemu in its own session (a terminal's Ctrl-C reaches bpfbuild, which
    kills it) with the parent-death signal set (SIGKILL of bpfbuild kills it too)."""
    argv = list(command)
    setpriv = shutil.which("setpriv")
    if setpriv:
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _live_lock:
        _live.add(process)
    return process


def stop(process: subprocess.Popen) -> None:
    """Kill a VM's process group and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    with _live_lock:
        _live.discard(process)


def stop_all() -> None:
    """Kill every VM still running (on interrupt or error, before bpfbuild exits)."""
    with _live_lock:
        running = list(_live)
    for process in running:
        stop(process)


@dataclass
class VmRun:
    """How a VM ended."""

    returncode: int | None
    seconds: float
    timed_out: bool
    stderr: str


def run(command: Sequence[str], timeout: float, on_line: Callable[[str], object]) -> VmRun:
    """Run one VM, passing each console line to on_line; kill it after timeout s."""
    started = time.monotonic()
    process = start(command)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    console, errors = process.stdout, process.stderr
    assert console is not None and errors is not None  # start() pipes both
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(errors.read()), daemon=True)
    reader.start()
    try:
        for raw in console:
            on_line(raw.decode(errors="replace"))
        process.wait()
    finally:
        timer.cancel()
        stop(process)
        reader.join(timeout=5)
    return VmRun(
        process.returncode,
        time.monotonic() - started,
        timed_out.is_set(),
        b"".join(stderr).decode(errors="replace"),
    )


# --------------------------------------------------------------------------
# KVM: only when a real boot shows it works
# --------------------------------------------------------------------------

_kvm_verdicts: dict[str, bool] = {}
_kvm_lock = threading.Lock()


def use_kvm(machine: Machine, image: Path) -> bool:
    """KVM for a guest of the host's arch when /dev/kvm opens and a kernel boots under
    it: it must print its first line within KVM_PROBE_SECONDS (a KVM that hangs, as in
    some nested VMs, fails that). The verdict is kept per host boot in the cache."""
    forced = os.environ.get(ACCEL_ENV, "").lower()
    if forced in ("tcg", "kvm"):
        return forced == "kvm"
    if machine.arch != host_arch().name or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with _kvm_lock:  # VMs start in parallel: probe once
        return _kvm_verdict(machine, image)


def _kvm_verdict(machine: Machine, image: Path) -> bool:
    if machine.arch in _kvm_verdicts:
        return _kvm_verdicts[machine.arch]
    record = cache_root() / "vm" / f"kvm-{machine.arch}.json"
    key = {"boot_id": _boot_id(), "qemu": qemu_binary(machine)}
    try:
        saved = json.loads(safefs.read_regular(record) or b"")
        if saved.get("key") == key:
            _kvm_verdicts[machine.arch] = bool(saved["works"])
            return _kvm_verdicts[machine.arch]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    works = _probe_kvm(machine, image)
    _kvm_verdicts[machine.arch] = works
    try:  # under the cache's marked root, never through a link
        folder = own_folder(record.parent.name)
        safefs.write_file(folder, record, json.dumps({"key": key, "works": works}).encode())
    except BpfBuildError:
        pass  # only a record: the next VM probes again
    return works


def _probe_kvm(machine: Machine, image: Path) -> bool:
    command = [
        qemu_binary(machine),
        *machine.facts.kvm_args,
        "-m",
        str(MEMORY_MB),
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        str(image),
        "-append",
        f"console={machine.facts.console} earlyprintk={machine.facts.console} panic=-1",
    ]
    seen = threading.Event()

    def watch(line: str) -> None:
        if "Linux version" in line:
            seen.set()
            raise _Seen

    try:
        run(command, KVM_PROBE_SECONDS, watch)
    except _Seen:
        pass
    return seen.is_set()


class _Seen(Exception):
    """Ends the probe as soon as the kernel spoke."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
