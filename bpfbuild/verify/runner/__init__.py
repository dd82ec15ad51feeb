"""The C source of bpfverify, the static verifier runner (shipped as package data), and
its two command lines: the link that builds it and the run on one BPF object.

`bpfverify.c` is linked statically against a pinned libbpf (see .build), so that it also
runs in a minimal VM or initramfs with no Python, for other kernels and arches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import VerifyError

RUNNER_SOURCE = Path(__file__).with_name("bpfverify.c")
"""Path of the runner's single C source file."""


def build_runner_command(
    cc: str,
    output: Path,
    source: Path = RUNNER_SOURCE,
    cflags: Sequence[str] = (),
    ldflags: Sequence[str] = (),
) -> list[str]:
    """The command that compiles bpfverify.c into a static executable.

    cflags: `-I` for libbpf's headers; ldflags: libbpf's objects and the static
    libraries they need (after the source, as static linking resolves symbols left
    to right).
    """
    return [
        cc,
        "-O2",  # small and fast; the runner spends its time in the kernel anyway
        "-Wall",
        "-static",  # no shared libraries: runs in a minimal VM or initramfs
        *cflags,
        "-o",
        str(output),
        str(source),
        *ldflags,
    ]


def runner_command(
    runner: Path,
    bpf_object: Path,
    log_dir: Path,
    rodata: Mapping[str, int] | None = None,
    rejected_log_level: int | None = None,
    max_entries: Mapping[str, int] | None = None,
) -> list[str]:
    """The bpfverify invocation for one object; `rodata` sets `.rodata` globals;
    `rejected_log_level` replaces the default 1|2 for the log of a rejection (1 is
    much faster on programs near the instruction limit: only the failing path);
    `max_entries` sizes maps as their loader would."""
    command = [str(runner), "--log-dir", str(log_dir)]
    if rejected_log_level is not None:
        command += ["--log-level", str(rejected_log_level)]
    for name, value in (rodata or {}).items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise VerifyError(
                f"cannot set .rodata variable '{name}' to {value!r}: only integers can be set",
                hint="give an integer (decimal or 0x hex)",
            )
        command += ["--set", f"{name}={value}"]
    for name, size in (max_entries or {}).items():
        command += ["--max-entries", f"{name}={size}"]
    return [*command, str(bpf_object)]
