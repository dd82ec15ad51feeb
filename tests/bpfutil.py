"""Test helpers for BPF: vmlinux.h, compiling .bpf.c fixtures (with bpfbuild's own
per-arch BPF flags), the verifier runner and the kernel's list of loaded programs.
Whether BPF can be loaded here at all is buildutil's (BPF_SKIP_REASON, require_bpf)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bpfbuild.arch import host_arch
from bpfbuild.kernels.host import KERNEL_BTF
from bpfbuild.verify.runner.build import build_runner as build_verify_runner


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
    dump = run(["bpftool", "btf", "dump", "file", KERNEL_BTF, "format", "c"])
    header.write_text(dump.stdout)
    return header


def compile_bpf(
    source: Path, out_dir: Path, include_dir: Path, defines: Sequence[str] = ()
) -> Path:
    """clang + `bpftool gen object` with the argv bpfbuild itself builds for the host's
    arch (StepBuilder.bpf_flags of a one-file project beside out_dir, so a flag added to
    bpfbuild's compiles reaches the tests' objects too): out_dir/<name>.bpf.o (clang's own
    output stays beside it as <name>.tmp.bpf.o). include_dir holds the vmlinux.h."""
    from bpfbuild.pipeline.project import load_project
    from bpfbuild.pipeline.tasks import StepBuilder
    from bpfbuild.pipeline.toolchain import find_toolchain

    name = source.name.removesuffix(".bpf.c")
    out_dir.mkdir(parents=True, exist_ok=True)
    project_root = out_dir / f".{name}.project"
    (project_root / "src").mkdir(parents=True, exist_ok=True)
    (project_root / "src" / "stub.bpf.c").write_text("")  # a project has an object
    (project_root / "bpfbuild.toml").write_text(
        "[build]\nbpf_cflags = [" + ", ".join(f'"-D{d}"' for d in defines) + "]\n"
    )
    project = load_project(project_root)
    toolchain = find_toolchain(host_arch(), None, project)
    flags = StepBuilder(project, toolchain).bpf_flags()
    compiled = out_dir / f"{name}.tmp.bpf.o"
    linked = out_dir / f"{name}.bpf.o"
    run(
        [*flags, f"-I{include_dir}", "-c", source, "-o", compiled],
        cwd=project_root,
    )
    run([toolchain.bpftool.path, "gen", "object", linked, compiled])
    return linked


def build_runner(out_dir: Path, cc: str = "gcc", arch: str | None = None) -> Path:
    """bpfverify, built as `bpfbuild verify` builds it (the pinned libbpf, static)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = out_dir / "bpfverify"
    version = run([cc, "-dumpfullversion"]).stdout.strip()
    failed = build_verify_runner(cc, version, arch or host_arch().name, str(runner))
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
