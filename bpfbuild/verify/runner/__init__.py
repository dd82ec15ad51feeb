"""The C source of bpfverify, the static verifier runner, shipped as package data.

`bpfverify.c` is compiled by bpfbuild itself (see bpfbuild.verify.report.build_runner_command)
and linked statically against libbpf, so that it also runs in a minimal VM or
initramfs with no Python, for other kernels and arches.
"""

from __future__ import annotations

from pathlib import Path

RUNNER_SOURCE = Path(__file__).with_name("bpfverify.c")
"""Path of the runner's single C source file."""
