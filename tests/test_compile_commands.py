"""compile_commands.json: an entry for every BPF and user source with the build's own
flags; each command compiles (-fsyntax-only) in its directory once the project is
built; it follows flag changes and the arch built; clangd resolves every header."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import Run, build, copy_project, require_tool, steps_of

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.layout import state_dir
from bpfbuild.pipeline.project import load_project
from bpfbuild.pipeline.tasks import StepBuilder
from bpfbuild.pipeline.toolchain import find_toolchain

pytestmark = pytest.mark.slow


def syntax_only(arguments: list[str]) -> list[str]:
    """The entry's command checking syntax only: no depfile, no output."""
    argv, skip = [], 0
    for arg in arguments:
        if skip:
            skip -= 1
        elif arg in ("-MF", "-o"):
            skip = 1
        elif arg in ("-MD", "-MP"):
            continue
        else:
            argv.append("-fsyntax-only" if arg == "-c" else arg)
    return argv


def database(root: Path) -> list[dict]:
    return json.loads((root / "compile_commands.json").read_text())


@pytest.fixture(scope="module")
def project(multi_built: tuple[Path, Run]) -> Path:
    return multi_built[0]


def test_an_entry_per_source_with_the_builds_commands(project: Path) -> None:
    entries = database(project)
    loaded = load_project(project)
    builder = StepBuilder(loaded, find_toolchain(host_arch(), state_dir(project)))
    expected = {
        str(project / o.source): builder.bpf_compile_argv(o, pch=False)
        for o in loaded.bpf_objects.values()
    }
    expected |= {
        str(project / s): builder.user_compile_argv(s)
        for s in ("src/alpha.c", "src/gamma.c", "src/util.c")
    }
    assert {e["file"]: e["arguments"] for e in entries} == expected
    assert all(e["directory"] == str(project) for e in entries)


def test_every_command_compiles_in_its_directory(project: Path) -> None:
    for entry in database(project):
        done = subprocess.run(
            syntax_only(entry["arguments"]), cwd=entry["directory"], capture_output=True, text=True
        )
        assert done.returncode == 0, (entry["file"], done.stderr)


def test_follows_the_commands(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    first = build(root)
    assert "compile_commands.json" in steps_of(first, "GEN")
    assert build(root).steps == []
    config = root / "bpfbuild.toml"
    config.write_text(config.read_text() + 'bpf_cflags = ["-DEDITED"]\n')
    again = build(root)
    assert "compile_commands.json" in steps_of(again, "GEN")
    bpf = [e for e in database(root) if e["file"].endswith(".bpf.c")]
    assert bpf and all("-DEDITED" in e["arguments"] for e in bpf)


def test_clangd_resolves_every_header(project: Path) -> None:
    clangd = shutil.which("clangd-14") or require_tool("clangd")
    for entry in database(project):
        done = subprocess.run(
            [clangd, f"--check={entry['file']}"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (entry["file"], done.stderr[-3000:])
        assert "file not found" not in done.stderr, done.stderr[-3000:]


def test_host_arch_first_else_the_arch_built(tmp_path: Path) -> None:
    """One compile database per project: the host's commands when the host arch is
    built, else those of the (first) arch built, e.g. `bpfbuild build --arch arm64`."""
    from bpfbuild.arch import ARCHES
    from bpfbuild.pipeline.actions import JsonArgs
    from bpfbuild.pipeline.tasks import project_steps
    from bpfbuild.pipeline.toolchain import Libbpf, Tool, Toolchain

    def toolchain(arch) -> Toolchain:
        return Toolchain(
            arch=arch,
            clang=Tool("clang", "/usr/bin/clang", "14.0.6"),
            bpftool=Tool("bpftool", "/usr/sbin/bpftool", "7.1.0"),
            cc=Tool("cc", f"/usr/bin/{arch.gnu_triplet}-gcc", "12.2"),
            libbpf=Libbpf("1.1.0", [], ["-lbpf"], ["-lbpf", "-lelf", "-lz"]),
            strip=None,
        )

    root = copy_project("multi", tmp_path)
    (root / "btf").mkdir()
    (root / "btf/vmlinux").write_bytes(b"\x9f\xeb\x01")  # must exist, non-empty; never read
    (root / "bpfbuild.toml").write_text(
        '[build]\narches = ["x86_64", "arm64"]\n[vmlinux]\narm64 = "btf/vmlinux"\n'
    )
    project = load_project(root)
    other = ARCHES["arm64"] if host_arch().name == "x86_64" else ARCHES["x86_64"]

    def compdb(arches) -> list[dict]:
        (step,) = [
            s for s in project_steps(project, [toolchain(a) for a in arches]) if s.kind == "compdb"
        ]
        assert isinstance(step.args, JsonArgs) and isinstance(step.args.data, list)
        return step.args.data

    both = compdb([other, host_arch()])
    assert f"-D__TARGET_ARCH_{host_arch().target_arch}" in both[0]["arguments"]
    only_other = compdb([other])
    assert f"-D__TARGET_ARCH_{other.target_arch}" in only_other[0]["arguments"]
    assert any(e["arguments"][0].endswith(f"{other.gnu_triplet}-gcc") for e in only_other)
