"""Builds killed (SIGKILL or SIGINT of the process group) at many points, after a clean,
an edit, or an edit then undone, a kill in the middle of a mold link, and two builds at
once: a normal build afterwards gives the files of a clean build, every one of them (a
tool's temporary counts, not only the outputs bpfbuild knows), with their bytes; and no
output is a truncated file that looks up to date."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    bpfbuild_command,
    build,
    copy_project,
    steps_of,
)
from killutil import Kill, KillLab, edit_sources, project_tree, tree_differences

pytestmark = pytest.mark.slow


def start_build(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`bpfbuild build ARGS` in its own process group, so that a kill takes its tools too."""
    return subprocess.Popen(
        [*bpfbuild_command(), "build", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_build(build_process: subprocess.Popen) -> None:
    os.killpg(build_process.pid, signal.SIGKILL)
    build_process.wait(timeout=30)
    build_process.stdout.close()
    build_process.stderr.close()


def clean_build_tree(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Every file of root after a clean build (state and outputs deleted first)."""
    clean = bpfbuild(root, "clean", env=env)
    assert clean.returncode == 0, clean.describe()
    build(root, env=env)
    return project_tree(root)


def assert_same_tree(found: dict[str, str], clean: dict[str, str]) -> None:
    assert tree_differences(clean, found) == []


@pytest.fixture(scope="module")
def kill_lab(tmp_path_factory: pytest.TempPathFactory) -> KillLab:
    """tests/projects/multi with clean-build references of its original sources and of
    the `bpf` edit (src/alpha.bpf.c changed), and a snapshot of a complete build."""
    return KillLab(tmp_path_factory.mktemp("kills"), edits=("bpf",))


KILLS = [
    # from nothing
    Kill("clean", "bpf", "SIGKILL", "  BPF ", 0.02),
    Kill("clean", "bpf", "SIGINT", "  CC ", 0.02),
    Kill("clean", "bpf", "SIGKILL", "  LD ", 0.0),
    # after an edit of a BPF source
    Kill("edit", "bpf", "SIGKILL", "  BPF ", 0.05),
    Kill("edit", "bpf", "SIGINT", "  GENOBJ ", 0.0),
    # after an edit, then the edit undone: what was built from the edit must go
    Kill("revert", "bpf", "SIGKILL", "  BPF ", 0.1),
    Kill("revert", "bpf", "SIGKILL", "  GENOBJ ", 0.0),
    Kill("revert", "bpf", "SIGINT", "  SKEL ", 0.0),
    Kill("revert", "bpf", "SIGINT", "  LD ", 0.0),
]


@pytest.mark.parametrize("kill", KILLS, ids=[kill.describe() for kill in KILLS])
def test_killed_build_then_a_build_equals_a_clean_build(kill_lab: KillLab, kill: Kill) -> None:
    """The process group of a real build killed at a step; a normal build then gives
    every file byte for byte as a clean build of the same sources (no .partial, no tool's
    temporary), and the build after it runs nothing. (bench/killtest.py: the same at random times.)"""
    assert kill_lab.run(kill) == []
    assert kill_lab.last_interrupted, "the build finished before the kill reached it"


def test_outputs_newer_than_the_recorded_state_are_rebuilt(tmp_path: Path) -> None:
    """The kill that fooled doit alone: outputs made from an edit are in place, but the
    build state is the one from before the edit (killed before it was saved), and the
    edit is undone. The state's sources match, the targets do not: rebuild them."""
    root = copy_project("multi", tmp_path)
    build(root)
    reference = project_tree(root)
    saved_state = tmp_path / "state"
    shutil.copytree(root / ".bpfbuild", saved_state)
    edit_sources(root, "bpf")
    assert steps_of(build(root), "BPF") == {"src/alpha.bpf.c"}
    shutil.rmtree(root / ".bpfbuild")
    shutil.copytree(saved_state, root / ".bpfbuild")
    edit_sources(root, "bpf", undo=True)

    run = build(root)
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha"}
    assert_same_tree(project_tree(root), reference)
    assert_build_is_noop(root)


LEFTOVERS = (
    # what a killed build can leave, beside the output being written (OUTPUT.partial)
    f"output/{ARCH}/bpf/alpha.bpf.o.partial",  # bpfbuild's own
    f"output/{ARCH}/bpf/beta.tmp.bpf.o-50bb4837.partial.tmp",  # clang's
    f"output/{ARCH}/.mold-Ab12Cd",  # mold's
    f"output/{ARCH}/alpha.partial.tmp1a2b3c4",  # lld's
    f"output/{ARCH}/alpha.partial.temp-stream-0a1b2c",  # llvm-strip's
    f"output/{ARCH}/stAb12Cd",  # GNU strip's or ar's
    ".bpfbuild/fastpath.stamp.4242.partial",  # the no-op stamp's
    ".bpfbuild/toolchain.json.4242.partial",  # the toolchain probes'
    ".bpfbuild/ld-probe.x1y2z3.partial/probe.c",  # the linker probe's folder
    "compile_commands.json.partial",  # the compile database's
)


def test_leftovers_of_a_kill_are_removed_and_links_not_followed(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path / "project")
    with (root / "bpfbuild.toml").open("a") as config:
        # an app's alias named as GNU strip names its temporary: an output, kept
        config.write('\n[app.alpha]\naliases = ["stats123"]\n')
    clean = clean_build_tree(root)
    assert (root / "output" / ARCH / "stats123").is_symlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.partial").write_text("not bpfbuild's")
    for leftover in LEFTOVERS:
        (root / leftover).parent.mkdir(exist_ok=True)
        (root / leftover).write_text("half-written")
    (root / "output" / ARCH / "elsewhere").symlink_to(outside)
    (root / "output" / ARCH / "link.partial").symlink_to(outside / "keep.partial")
    # A killed build has deleted the no-op stamp (it does so before any step runs),
    # so the next build goes through the graph, which removes the leftovers.
    (root / ".bpfbuild" / "fastpath.stamp").unlink()
    assert_build_is_noop(root)
    (root / "output" / ARCH / "elsewhere").unlink()
    assert_same_tree(project_tree(root), clean)
    assert (outside / "keep.partial").read_text() == "not bpfbuild's"


CLANG_THAT_HOLDS = """#!/bin/sh
# clang, but after compiling alpha.bpf.c it waits while the file HOLD exists, so that a
# test can kill the build when the output is written (as .partial) and not yet renamed.
"{clang}" "$@" || exit $?
case "$*" in
*src/alpha.bpf.c*)
    if [ -e "{hold}" ]; then
        touch "{compiled}"
        while [ -e "{hold}" ]; do sleep 0.05; done
    fi;;
esac
"""


def test_partial_output_of_a_killed_compile_is_not_an_output(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path / "project")
    hold, compiled = tmp_path / "hold", tmp_path / "compiled"
    wrapper = tmp_path / "clang-that-holds"
    clang = subprocess.run(
        ["sh", "-c", "command -v clang"], capture_output=True, text=True
    ).stdout.strip()
    wrapper.write_text(CLANG_THAT_HOLDS.format(clang=clang, hold=hold, compiled=compiled))
    wrapper.chmod(0o755)
    env = {**os.environ, "CLANG": str(wrapper)}

    hold.touch()
    process = start_build(root, "-j1", env=env)
    deadline = time.monotonic() + 60
    while not compiled.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the compile of alpha.bpf.c never finished"
        time.sleep(0.05)
    kill_build(process)
    hold.unlink()

    bpf_dir = root / "output" / ARCH / "bpf"
    assert (bpf_dir / "alpha.tmp.bpf.o.partial").stat().st_size > 0
    assert (bpf_dir / "alpha.bpf.d.partial").exists()
    assert not (bpf_dir / "alpha.tmp.bpf.o").exists()
    assert not (bpf_dir / "alpha.bpf.d").exists()

    rebuild = build(root, env=env)
    assert "src/alpha.bpf.c" in steps_of(rebuild, "BPF")
    rebuilt = project_tree(root)
    assert_same_tree(rebuilt, clean_build_tree(root, env=env))


MOLD_HELD_AT_RENAME = r"""
/* Preloaded in a build: mold stops before it renames its temporary (.mold-XXXXXX, its
   whole output) over the app it links (APP.partial; not the linker probe's program),
   after creating the file $HELD_MARKER, so that a test kills the build in the middle of
   a link. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rename(const char *from, const char *to)
{
	static int (*real_rename)(const char *, const char *);
	const char *base = strrchr(from, '/');
	const char *marker = getenv("HELD_MARKER");
	size_t length = strlen(to);

	int app = length > 8 && strcmp(to + length - 8, ".partial") == 0;

	if (marker && app && strncmp(base ? base + 1 : from, ".mold-", 6) == 0) {
		close(open(marker, O_CREAT | O_WRONLY, 0644));
		for (;;)
			pause();
	}
	if (!real_rename)
		real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
	return real_rename(from, to);
}
"""


def test_a_kill_in_a_mold_link_leaves_no_mold_temporary(tmp_path: Path) -> None:
    """mold writes the executable as output/<arch>/.mold-XXXXXX and renames it over
    APP.partial at the end; a SIGKILL in between leaves that file (1.4 MB, executable).
    The next build deletes it: the project's files are a clean build's."""
    if shutil.which("mold") is None:
        pytest.skip("mold is not installed (apt-get install mold)")
    root = copy_project("multi", tmp_path / "project")
    with (root / "bpfbuild.toml").open("a") as config:
        config.write('linker = "mold"\n')  # in [build], the file's last table
    shim = tmp_path / "mold-held-at-rename.so"
    source = tmp_path / "mold-held-at-rename.c"
    source.write_text(MOLD_HELD_AT_RENAME)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", shim, source, "-ldl"], check=True)
    held = tmp_path / "held"
    env = {**os.environ, "LD_PRELOAD": str(shim), "HELD_MARKER": str(held)}

    process = start_build(root, "-j1", env=env)
    deadline = time.monotonic() + 120
    while not held.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no mold link reached its rename"
        time.sleep(0.02)
    kill_build(process)
    arch_dir = root / "output" / ARCH
    [temporary] = arch_dir.glob(".mold-*")
    assert temporary.stat().st_size > 0

    rebuild = build(root)
    assert steps_of(rebuild, "LD"), rebuild.describe()
    assert list(arch_dir.glob(".mold-*")) == []
    assert_same_tree(project_tree(root), clean_build_tree(root))


def test_two_builds_at_once_do_not_corrupt_each_other(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    first, second = start_build(root, "-j1"), start_build(root, "-j1")
    results = [
        process.communicate(timeout=120) + (process.returncode,) for process in (first, second)
    ]
    for stdout, stderr, returncode in results:
        assert returncode == 0, (stdout, stderr)
        assert "Traceback" not in stdout + stderr
    waited = [stderr for _, stderr, _ in results if "waiting" in stderr]
    assert len(waited) == 1, results
    # the build that waited found everything up to date: no step ran twice
    steps = [
        line for stdout, _, _ in results for line in stdout.splitlines() if line.startswith("  ")
    ]
    assert len(steps) == len(set(steps)), steps
    assert sum(line.startswith("  BPF ") for line in steps) == 3
    built = project_tree(root)
    assert_build_is_noop(root)
    assert_same_tree(built, clean_build_tree(root))


def test_a_build_waits_for_the_lock_and_says_so(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    lock = root / ".bpfbuild" / "lock"
    lock.parent.mkdir()
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("12345")
        held.flush()
        process = start_build(root)
        message = process.stderr.readline()
        assert "waiting for another build" in message and "(pid 12345)" in message, message
        time.sleep(0.3)
        assert process.poll() is None  # still waiting, nothing built
        assert not (root / "output").exists()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, (stdout, stderr)
    assert "  LD      output/" in stdout
