"""One verification VM: build its initramfs, boot it, read the console, and turn what
the guest printed into the usual per-object reports (bpfbuild.verify does the verdicts)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import safefs
from ..errors import VerifyError
from ..verify.results import ObjectReport, save_object_report
from ..verify.run import object_report
from . import qemu
from .busybox import busybox_for
from .console import ConsoleReader, GuestObjectOutput, Markers
from .initramfs import GuestObject, write_initramfs
from .progress import VmProgress
from .progress import progress as default_progress

KERNEL_STATE_RECORD = "kernel-state.json"
"""In a VM's log folder: the state files /init printed after boot and each object."""


@dataclass(frozen=True)
class VmJob:
    """Everything one VM run needs; the doit action's only argument."""

    spec: str
    """The kernel as the user named it."""
    arch: str
    """bpfbuild's arch name of the guest."""
    image: str
    """The kernel image to boot."""
    runner: str
    """bpfverify built for the guest's arch (static)."""
    objects: tuple[GuestObject, ...]
    """The BPF objects of that arch, with their .rodata settings."""
    log_root: str
    """Where logs go: <log_root>/<object>/<program>.log."""
    reports: dict[str, str] = field(default_factory=dict)
    """Object name -> the report file to write."""
    timeout: float = 300.0
    """Seconds before the VM is killed."""
    config: str | None = None
    """The kernel's build configuration, put at /boot/config-<release> in the guest (libbpf
    reads it for a program's `__kconfig` externs); None when it is not known."""
    release: str = ""
    """`uname -r` of the kernel (names the configuration's file in the guest)."""

    @property
    def label(self) -> str:
        return f"{self.spec} {self.arch}"


def run_vm_job(job: VmJob, progress: VmProgress = default_progress) -> dict[str, float]:
    """Boot one VM with every object of job, write each object's report and logs.
    Returns where the time went (seconds). Raises VerifyError when the VM fails."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    for stale in job.reports.values():  # a VM that fails leaves no report behind
        Path(stale).unlink(missing_ok=True)
    machine = qemu.machine_for(job.arch)
    progress.update(job.label, "preparing")
    busybox = busybox_for(machine.debian_arch)
    timings["fetch"] = time.monotonic() - started
    markers = Markers()
    reader = ConsoleReader(markers)
    total = len(job.objects)
    log_root = Path(job.log_root)
    log_root.parent.mkdir(parents=True, exist_ok=True)
    safefs.make_folders(log_root.parent, log_root)  # a link there is refused, never followed
    with tempfile.TemporaryDirectory(prefix="vm-", dir=log_root) as scratch:
        mark = time.monotonic()
        initramfs = Path(scratch) / "initramfs.cpio"
        write_initramfs(
            initramfs,
            busybox,
            Path(job.runner),
            job.objects,
            markers,
            kernel_config=(job.release, Path(job.config)) if job.config else None,
        )
        timings["initramfs"] = time.monotonic() - mark
        kvm = qemu.use_kvm(machine, Path(job.image))
        command = qemu.qemu_command(machine, Path(job.image), initramfs, kvm)
        accel = "kvm" if kvm else "tcg"
        boot_started = time.monotonic()
        seen: dict[str, float] = {}
        state = ["booting"]

        def show() -> None:
            progress.update(
                job.label, f"{state[0]} ({accel}, {time.monotonic() - boot_started:.0f} s)"
            )

        def on_line(line: str) -> None:
            event = reader.feed(line)
            if event == "boot":
                seen["boot"] = time.monotonic()
            if event == "object":
                state[0] = f"verifying {len(reader.objects)}/{total}"
                show()
            elif event == "done":
                seen["done"] = time.monotonic()

        stop_ticking = threading.Event()

        def tick() -> None:  # the seconds count on a terminal
            while not stop_ticking.wait(1):
                show()

        show()
        ticker = threading.Thread(target=tick, daemon=True)
        if progress.live:
            ticker.start()
        try:
            run = qemu.run(command, job.timeout, on_line)
        finally:
            stop_ticking.set()
            if ticker.is_alive():
                ticker.join()
    boot_end = seen.get("boot", boot_started)
    timings["boot"] = boot_end - boot_started
    timings["verify"] = seen.get("done", time.monotonic()) - boot_end
    if run.timed_out or not reader.done:
        why = (
            f"did not finish within {job.timeout:g} s and was killed"
            if run.timed_out
            else f"stopped before the end (qemu exit status {run.returncode})"
        )
        progress.finish(job.label, "timed out" if run.timed_out else "failed")
        tail = reader.tail_text() or "(nothing on the console)"
        stderr = run.stderr.strip()
        raise VerifyError(
            f"VM {job.label} ({job.image}) {why}; last console lines:\n{tail}"
            + (f"\nqemu: {stderr}" if stderr else ""),
            hint="raise `timeout` in [verify] of bpfbuild.toml if the VM is only slow"
            if run.timed_out
            else "check that the image is a bootable kernel of that arch",
        )
    if reader.bad_logs:
        # A log missing would change verdicts (a rejection without its log reads as
        # "no verifier log"): never report from a garbled console.
        progress.finish(job.label, "failed")
        raise VerifyError(
            f"VM {job.label}: the console garbled the logs of " + ", ".join(reader.bad_logs),
            hint="run the verification again; report it if it recurs",
        )
    states = [{"after": w, "file": f, "value": v} for w, f, v in reader.states]
    safefs.write_file(
        log_root, log_root / KERNEL_STATE_RECORD, json.dumps(states, indent=1).encode()
    )
    changed = kernel_state_changes(reader.states)
    if changed:
        progress.finish(job.label, "failed")
        raise VerifyError(
            f"VM {job.label}: verifying changed the kernel's state: {changed}",
            hint="this is a bug in bpfbuild: loading for a verdict must never register a "
            f"struct_ops map; the states are in {log_root / KERNEL_STATE_RECORD}",
        )
    reports = [
        _object_report(job, obj, reader.objects.get(obj.name), log_root) for obj in job.objects
    ]
    for report in reports:
        path = Path(job.reports[report.object])
        partial = path.with_name(path.name + ".partial")
        safefs.prepare_file(path.parent, partial)  # a link there is removed as a link
        save_object_report(report, partial)
        os.replace(partial, path)
    programs = sum(len(r.results) for r in reports)
    timings["total"] = time.monotonic() - started
    progress.finish(
        job.label,
        f"done, {total} objects, {programs} programs in "
        f"{timings['total']:.1f} s ("
        + ", ".join(
            f"{step} {timings[step]:.1f} s" for step in ("fetch", "initramfs", "boot", "verify")
        )
        + f", {'kvm' if kvm else 'tcg'})",
    )
    return timings


def kernel_state_changes(states: list[tuple[str, str, str]]) -> str | None:
    """What the guest's state files say verifying switched on, or None: sched_ext must
    stay `disabled` and its enable count (enable_seq) must not move."""
    values: dict[str, list[str]] = {}
    for when, path, value in states:
        values.setdefault(path, []).append(value)
        if path.endswith("sched_ext/state") and value != "disabled":
            return f"{path} was {value!r} after {when}"
    seqs = values.get("/sys/kernel/sched_ext/enable_seq", [])
    if len(set(seqs)) > 1:
        return f"a sched_ext scheduler was enabled (enable_seq went {' -> '.join(seqs)})"
    return None


def _object_report(
    job: VmJob, obj: GuestObject, output: GuestObjectOutput | None, log_root: Path
) -> ObjectReport:
    """Write an object's logs where the host keeps them, then make its report."""
    log_dir = log_root / obj.name
    safefs.make_folders(log_root, log_dir)  # a link there is refused, never followed
    for stale in log_dir.glob("*.log"):
        stale.unlink()
    if output is None or output.status is None:
        raise VerifyError(
            f"VM {job.label}: the runner did not report on {obj.name}",
            hint="this is a bug in bpfbuild; rerun with -v",
        )
    stderr = output.logs.pop(f"{obj.name}.stderr", b"").decode(errors="replace").strip()
    for name, data in output.logs.items():
        if name.endswith(".log") and "/" not in name:
            safefs.write_file(log_dir, log_dir / name, data)
    if output.status not in (0, 2):
        raise VerifyError(
            f"VM {job.label}: bpfverify failed on {obj.name} with exit status {output.status}"
            + (f":\n{stderr}" if stderr else ""),
            hint="this is a bug in bpfbuild or libbpf; the runner's output was:\n"
            + output.stdout[-2000:],
        )
    return object_report(
        output.stdout,
        obj.path,
        log_dir,
        name=obj.name,
        arch=job.arch,
        rerun=f"(in the VM {job.label})",
        kernel_spec=job.spec,
    )
