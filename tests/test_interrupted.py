"""Builds killed with SIGKILL, and two builds at once: outputs are never truncated files
that look up to date, and a rebuild gives the bytes of a clean build."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from buildutil import (ARCH, assert_build_is_noop, bpfbuild, bpfbuild_command, build,
                       copy_project, output_hashes, partial_files, steps_of)

pytestmark = pytest.mark.slow


def start_build(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`bpfbuild build ARGS` in its own process group, so that a kill takes its tools too."""
    return subprocess.Popen([*bpfbuild_command(), "build", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_build(build_process: subprocess.Popen) -> None:
    os.killpg(build_process.pid, signal.SIGKILL)
    build_process.wait(timeout=30)
    build_process.stdout.close()
    build_process.stderr.close()


def clean_build_hashes(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The outputs of a clean build of root (state and outputs deleted first)."""
    clean = bpfbuild(root, "clean", env=env)
    assert clean.returncode == 0, clean.describe()
    build(root, env=env)
    return output_hashes(root)


@pytest.mark.parametrize("kill_at", ["  BPF ", "  CC "])
def test_sigkill_then_rebuild_equals_clean_build(tmp_path: Path, kill_at: str) -> None:
    root = copy_project("multi", tmp_path)
    process = start_build(root, "-j1")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(kill_at):
            break
    kill_build(process)
    assert seen and seen[-1].startswith(kill_at), seen
    after_kill = output_hashes(root)

    rebuild = build(root, "-j1")
    assert steps_of(rebuild, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert partial_files(root) == []
    rebuilt = output_hashes(root)
    assert_build_is_noop(root)

    reference = clean_build_hashes(root)
    assert rebuilt == reference
    # Whatever the killed build left under its final name is complete: no truncated file.
    for path, digest in after_kill.items():
        assert digest == reference[path], f"{path} was left truncated or stale by the kill"


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
    clang = subprocess.run(["sh", "-c", "command -v clang"], capture_output=True, text=True).stdout.strip()
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
    assert partial_files(root) == []
    rebuilt = output_hashes(root)
    assert rebuilt == clean_build_hashes(root, env=env)


def test_two_builds_at_once_do_not_corrupt_each_other(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    first, second = start_build(root, "-j1"), start_build(root, "-j1")
    results = [process.communicate(timeout=120) + (process.returncode,)
               for process in (first, second)]
    for stdout, stderr, returncode in results:
        assert returncode == 0, (stdout, stderr)
        assert "Traceback" not in stdout + stderr
    waited = [stderr for _, stderr, _ in results if "waiting" in stderr]
    assert len(waited) == 1, results
    # the build that waited found everything up to date: no step ran twice
    steps = [line for stdout, _, _ in results for line in stdout.splitlines() if line.startswith("  ")]
    assert len(steps) == len(set(steps)), steps
    assert sum(line.startswith("  BPF ") for line in steps) == 3
    assert partial_files(root) == []
    built = output_hashes(root)
    assert_build_is_noop(root)
    assert built == clean_build_hashes(root)


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
        assert process.poll() is None           # still waiting, nothing built
        assert not (root / "output").exists()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, (stdout, stderr)
    assert "  LD      output/" in stdout
