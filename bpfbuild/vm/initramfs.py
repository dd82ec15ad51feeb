"""The guest's initramfs: a cpio (newc) archive written in Python, no root needed.

It holds busybox-static for the guest arch, the static bpfverify runner, the BPF
objects and /init, a busybox shell script that mounts what the verifier needs, runs
the runner on each object and prints its output on the console framed by markers
(see console.py), then powers the VM off. There is no Python in the guest.

/init also prints, after boot and after each object, the kernel state that loading for
a verdict must never change (KERNEL_STATE_FILES): the host checks that no scheduler
was switched on.
"""

from __future__ import annotations

import re
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .console import Markers

GUEST_RUNNER = "/bpfverify"
GUEST_OBJECTS = "/objects"
GUEST_LOGS = "/tmp/verify"
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
KERNEL_STATE_FILES = ("/sys/kernel/sched_ext/state", "/sys/kernel/sched_ext/enable_seq")
"""sched_ext's state (`disabled` unless a BPF scheduler runs) and how many times one was
enabled since boot; absent on kernels without sched_ext."""


@dataclass(frozen=True)
class GuestObject:
    """One BPF object to verify in the guest."""

    name: str
    """The object's name (`xdp` for xdp.bpf.o): the guest file name and the marker's."""
    path: Path
    """The object on the host."""
    rodata: dict[str, int] = field(default_factory=dict)
    """.rodata globals to set before loading ([verify.rodata] of bpfbuild.toml)."""
    max_entries: dict[str, int] = field(default_factory=dict)
    """Map sizes to load with ([verify.maps] of bpfbuild.toml)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"object name {self.name!r} cannot go into the guest's /init")


class CpioWriter:
    """Writes a cpio archive in the "newc" format the kernel unpacks as initramfs."""

    def __init__(self, out) -> None:
        self.out = out
        self.inode = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{value:08X}"
            for value in (
                self.inode,
                mode,
                0,
                0,
                1,
                0,
                len(data),
                0,
                0,
                rdev[0],
                rdev[1],
                len(encoded),
                0,
            )
        )
        self.inode += 1
        self.out.write(header.encode() + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self._entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)


def init_script(objects: Sequence[GuestObject], markers: Markers) -> str:
    """/init: mount proc, sysfs, bpffs, tracefs; for each object run the runner and
    print its stdout, exit status, stderr and logs (gzip + base64) between markers."""

    def say(*words: str) -> str:
        # Double quotes: the words may hold $status or ${log##*/}; the rest is
        # hex, fixed words and object names (checked by GuestObject).
        return f'echo "{markers.line(*words)}"'

    lines = [
        "#!/bin/sh",
        "export PATH=/bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t bpf bpf /sys/fs/bpf",
        "mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null",
        "mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null",
        "mount -t tmpfs tmpfs /tmp",
        f"mkdir -p {GUEST_LOGS}",
        # Keep kernel messages off the console while the runner talks on it.
        "echo 1 > /proc/sys/kernel/printk",
        say("boot", "$(uname -r)"),
    ]
    # The kernel state verifying must leave alone, as `state <when> <file> <value>`.
    state = [
        f"[ -r {path} ] && " + say("state", "$1", path, f"$(cat {path})")
        for path in KERNEL_STATE_FILES
    ]
    lines += ["state() {", *(f"  {line}" for line in state), "  return 0", "}", "state boot"]
    for obj in objects:
        logs = f"{GUEST_LOGS}/{obj.name}"
        options = [f"--set={k}={v}" for k, v in obj.rodata.items()]
        options += [f"--max-entries={k}={v}" for k, v in obj.max_entries.items()]
        lines += [
            say("object", obj.name),
            f"{GUEST_RUNNER} --log-dir {logs} {' '.join(map(shlex.quote, options))}"
            f" {GUEST_OBJECTS}/{obj.name}.bpf.o 2>{logs}.stderr",
            "status=$?",
            say("exit", obj.name, "$status"),
            f"state {obj.name}",
            f"for log in {logs}/*.log {logs}.stderr; do",
            '  [ -s "$log" ] || continue',
            "  " + say("log", obj.name, "${log##*/}"),
            '  gzip -c "$log" | base64',
            "  " + say("end"),
            "done",
        ]
    lines += [say("done"), "poweroff -f"]
    return "\n".join(lines) + "\n"


def write_initramfs(
    path: Path,
    busybox: Path,
    runner: Path,
    objects: Sequence[GuestObject],
    markers: Markers,
    kernel_config: tuple[str, Path] | None = None,
) -> None:
    """Write the guest's initramfs to path (a plain, uncompressed cpio archive).
    kernel_config: (release, file) put at /boot/config-<release>, where libbpf looks
    for the CONFIG_* values of `__kconfig` externs."""
    with open(path, "wb") as out:
        cpio = CpioWriter(out)
        for folder in ("bin", "dev", "proc", "sys", "tmp", GUEST_OBJECTS.lstrip("/")):
            cpio.directory(folder)
        if kernel_config:
            release, config = kernel_config
            cpio.directory("boot")
            cpio.file(f"boot/config-{release}", config.read_bytes())
        # Without /dev/console the kernel starts /init with no stdout.
        cpio.char_device("dev/console", 5, 1)
        cpio.file("bin/busybox", busybox.read_bytes(), executable=True)
        for applet in (
            "sh",
            "mount",
            "mkdir",
            "echo",
            "cat",
            "gzip",
            "base64",
            "poweroff",
            "uname",
        ):
            cpio.symlink(f"bin/{applet}", "busybox")
        cpio.file(GUEST_RUNNER.lstrip("/"), runner.read_bytes(), executable=True)
        for obj in objects:
            cpio.file(f"{GUEST_OBJECTS.lstrip('/')}/{obj.name}.bpf.o", obj.path.read_bytes())
        cpio.file("init", init_script(objects, markers).encode(), executable=True)
        cpio.close()
