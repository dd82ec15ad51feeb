"""Whole builds with the real toolchain: outputs, static binaries, `bpfbuild list` and
`doctor`, a project made by `bpfbuild init` that reports an execve, reproducibility."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    needs_root,
    output_hashes,
    require_tracefs,
    steps_of,
)
from click.testing import CliRunner
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from bpfbuild.cli import main


def test_first_build_runs_every_step_once(multi_built) -> None:
    root, run = multi_built
    assert steps_of(run, "GEN") == {f"output/{ARCH}/include/vmlinux.h", "compile_commands.json"}
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}
    assert steps_of(run, "GENOBJ") == {
        f"output/{ARCH}/bpf/{n}.bpf.o" for n in ("alpha", "beta", "gamma")
    }
    assert steps_of(run, "SKEL") == {
        f"output/{ARCH}/include/{n}.skel.h" for n in ("alpha", "beta", "gamma")
    }
    assert steps_of(run, "CC") == {"src/alpha.c", "src/gamma.c", "src/util.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert len(run.steps) == len(set(run.steps)), run.describe()
    assert f"  BIN     output/{ARCH}/alpha: " in run.stdout


def test_outputs(multi_built) -> None:
    root, _ = multi_built
    out = root / "output" / ARCH
    for name in ("alpha", "beta", "gamma"):
        assert (out / "bpf" / f"{name}.bpf.o").read_bytes()[:4] == b"\x7fELF"
        assert f"struct {name}_bpf {{" in (out / "include" / f"{name}.skel.h").read_text()
    assert (out / "include" / "vmlinux.h").stat().st_size > 100_000
    assert not (out / "beta").exists()  # an object without a loader is no app
    assert (out / "alpha").stat().st_mode & 0o111
    assert not list((root / "output").rglob("*.partial"))


def test_second_build_is_noop(multi_built) -> None:
    assert_build_is_noop(multi_built[0])


def test_touch_of_every_source_is_noop(multi_built) -> None:
    root, _ = multi_built
    later = time.time() + 5
    for path in [root / "bpfbuild.toml", *(root / "src").iterdir(), *(root / "include").iterdir()]:
        os.utime(path, (later, later))
    assert_build_is_noop(root)


def needed_entries(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [
            tag.needed
            for section in ELFFile(f).iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]


def test_static_binaries_have_no_needed_entry_and_run(multi_built) -> None:
    root, run = multi_built
    for app in ("alpha", "gamma"):
        assert needed_entries(root / "output" / ARCH / app) == []
        assert f"output/{ARCH}/{app}: " in run.stdout and "static, no NEEDED entry" in run.stdout
    done = subprocess.run(
        [root / "output" / ARCH / "alpha", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env={},
    )  # no environment, no library path
    assert done.returncode == 0, done.stderr
    # version.h comes from include/, util_greeting() from the shared src/util.c
    assert done.stdout == "alpha 1.2.3, util ok\n"


def test_static_false_links_dynamically(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    (root / "bpfbuild.toml").write_text("[build]\nstatic = false\n")
    run = build(root, "gamma")
    assert steps_of(run, "LD") == {f"output/{ARCH}/gamma"}
    assert "libbpf.so.1" in needed_entries(root / "output" / ARCH / "gamma")
    assert f"  BIN     output/{ARCH}/gamma: " in run.stdout and "dynamic: " in run.stdout


@needs_root
def test_programs_load(multi_built) -> None:
    """alpha (vmlinux.h, tracepoint) and gamma (uapi headers only, socket filter) load."""
    root, _ = multi_built
    for app, expected in (("alpha", "alpha: loaded\n"), ("gamma", "gamma: loaded, util ok\n")):
        done = subprocess.run(
            [root / "output" / ARCH / app], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, expected), done.stderr


def test_list_shows_apps_objects_sources_outputs_and_vmlinux(multi_built) -> None:
    root, _ = multi_built
    result = CliRunner().invoke(main, ["list", "-C", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"project multi ({root})" in lines
    assert f"arch {ARCH}: vmlinux.h from BTF /sys/kernel/btf/vmlinux" in lines
    text = result.output
    assert (
        "app alpha\n  bpf objects: alpha\n  sources:     src/alpha.c, src/util.c\n"
        f"  output:      output/{ARCH}/alpha\n" in text
    )
    assert "app gamma\n  bpf objects: gamma\n  sources:     src/gamma.c, src/util.c\n" in text
    assert "app beta" not in text
    assert (
        "bpf object beta: src/beta.bpf.c -> skeleton beta.skel.h (beta_bpf)\n"
        f"  output:      output/{ARCH}/bpf/beta.bpf.o\n" in text
    )


def test_clean_builds_are_byte_identical(tmp_path: Path) -> None:
    """Two clean builds in one folder give the same bytes: objects, skeletons, static
    executables. The kill test compares a rebuild with a clean build on this basis."""
    root = copy_project("multi", tmp_path)
    build(root, "-j1")
    first = output_hashes(root)
    clean = bpfbuild(root, "clean")
    assert clean.returncode == 0 and "  CLEAN   output/" in clean.stdout, clean.describe()
    assert not (root / "output" / ARCH).exists()
    build(root)
    assert output_hashes(root) == first


def test_doctor_reports_versions(tmp_path: Path) -> None:
    run = bpfbuild(tmp_path, "doctor")
    assert run.returncode == 0, run.describe()
    clang = next(line for line in run.stdout.splitlines() if line.startswith("clang:"))
    bpftool = next(line for line in run.stdout.splitlines() if line.startswith("bpftool:"))
    assert "/clang" in clang and "(1" in clang  # path, then "(14.0.6)"
    assert "/bpftool" in bpftool and "(7." in bpftool
    assert "doctor: builds can work" in run.stdout


def test_doctor_without_bpftool_fails(tmp_path: Path) -> None:
    run = bpfbuild(tmp_path, "doctor", env={**os.environ, "BPFTOOL": "/nonexistent"})
    assert run.returncode != 0, run.describe()
    assert "bpftool:    MISSING: $BPFTOOL is set to '/nonexistent'" in run.stdout
    assert "hint: fix or unset $BPFTOOL" in run.stdout
    assert "Traceback" not in run.output


@pytest.fixture(scope="module")
def snoop(tmp_path_factory: pytest.TempPathFactory):
    """A project made by `bpfbuild init`, built."""
    folder = tmp_path_factory.mktemp("init")
    created = bpfbuild(folder, "init", "--name", "snoop", "snoop")
    assert created.returncode == 0, created.describe()
    assert f"sudo ./output/{ARCH}/snoop" in created.stdout
    root = folder / "snoop"
    return root, build(root)


def test_init_project_builds(snoop) -> None:
    root, run = snoop
    assert steps_of(run, "BPF") == {"src/snoop.bpf.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/snoop"}
    assert needed_entries(root / "output" / ARCH / "snoop") == []
    assert {"/output/", "/.bpfbuild/"} <= set((root / ".gitignore").read_text().splitlines())
    assert_build_is_noop(root)


@needs_root
def test_init_binary_reports_an_execve(snoop) -> None:
    root, _ = snoop
    require_tracefs()
    tool = subprocess.Popen(
        [root / "output" / ARCH / "snoop", "-p", str(os.getpid()), "-d", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        header = tool.stdout.readline()  # printed once the program is attached
        assert header.split() == ["PID", "PPID", "UID", "COMM", "FILENAME"], tool.stderr.read()
        child = subprocess.run(["/bin/true"], check=True)
        event = tool.stdout.readline().split()
    finally:
        tool.kill()
        tool.wait()
    assert child.returncode == 0
    assert len(event) == 5, f"no event for the execve of /bin/true: {event}"
    assert event[1] == str(os.getpid()) and event[-1] == "/bin/true", event


def test_compiler_warnings_of_a_successful_build_are_shown(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    source = root / "src" / "util.c"
    source.write_text(source.read_text() + "\nstatic int unused_helper(void) { return 1; }\n")
    run = build(root)
    assert "warning:" in run.stderr and "unused_helper" in run.stderr, run.describe()


def test_strip_true_gives_a_smaller_static_binary(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    build(root, "gamma")
    unstripped = (root / "output" / ARCH / "gamma").stat().st_size
    (root / "bpfbuild.toml").write_text("[build]\nstrip = true\n")
    run = build(root, "gamma")
    assert steps_of(run, "LD") == {f"output/{ARCH}/gamma"}, run.describe()
    assert (root / "output" / ARCH / "gamma").stat().st_size < unstripped
    assert needed_entries(root / "output" / ARCH / "gamma") == []
