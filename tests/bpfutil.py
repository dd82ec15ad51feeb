"""Test helpers for BPF: vmlinux.h, compiling .bpf.c fixtures, the verifier runner,
privilege checks and the kernel's list of loaded programs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bpfbuild.verify.runner.build import build_runner as build_verify_runner

TRIPLET = "x86_64-linux-gnu"


def bpf_unavailable_reason() -> str | None:
    """Why tests that load BPF programs cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    for tool in ("clang", "bpftool", "gcc", "pkg-config"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def run(command: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    result = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))}\n{result.stdout}\n{result.stderr}"
    )
    return result


def generate_vmlinux_header(include_dir: Path) -> Path:
    include_dir.mkdir(parents=True, exist_ok=True)
    header = include_dir / "vmlinux.h"
    dump = run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"])
    header.write_text(dump.stdout)
    return header


def compile_bpf(
    source: Path, out_dir: Path, include_dir: Path, defines: Sequence[str] = ()
) -> Path:
    """clang + `bpftool gen object`, as bpfbuild builds objects: out_dir/<name>.bpf.o."""
    name = source.name.removesuffix(".bpf.c")
    out_dir.mkdir(parents=True, exist_ok=True)
    compiled = out_dir / f"{name}.tmp.bpf.o"
    linked = out_dir / f"{name}.bpf.o"
    run(
        [
            "clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
            *(f"-D{d}" for d in defines),
            f"-I{include_dir}",
            "-idirafter", f"/usr/include/{TRIPLET}", "-idirafter", "/usr/include",
            "-c", source, "-o", compiled,
        ],
        cwd=source.parent,
    )  # fmt: skip
    run(["bpftool", "gen", "object", linked, compiled])
    return linked


def build_runner(out_dir: Path, cc: str = "gcc", arch: str = "x86_64") -> Path:
    """bpfverify, built as `bpfbuild verify` builds it (the pinned libbpf, static)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = out_dir / "bpfverify"
    version = run([cc, "-dumpfullversion"]).stdout.strip()
    failed = build_verify_runner(cc, version, arch, str(runner))
    assert failed is None, failed
    return runner


def loaded_programs() -> dict[int, str]:
    """Every BPF program loaded in the kernel: id -> name (at most 15 characters)."""
    shown = json.loads(run(["bpftool", "prog", "show", "-j"]).stdout)
    return {p["id"]: p.get("name", "") for p in shown}


def ours(programs: dict[int, str], names: Sequence[str]) -> dict[int, str]:
    """The programs among `programs` whose (truncated) name is one of `names`."""
    truncated = {n[:15] for n in names}
    return {i: n for i, n in programs.items() if n in truncated}
