"""A project's own dodo.py extends bpfbuild's graph: `bpfbuild build` runs its tasks,
and plain `python -m doit` builds the project with the same state."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from buildutil import ARCH, assert_build_is_noop, build, copy_project, parse_steps, steps_of


def checksum_of(root: Path) -> str:
    app = root / "output" / ARCH / "tiny"
    return f"{hashlib.sha256(app.read_bytes()).hexdigest()}  tiny\n"


def doit(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_bpfbuild_build_runs_the_projects_own_tasks(tmp_path: Path) -> None:
    root = copy_project("withdodo", tmp_path)
    run = build(root)
    assert steps_of(run, "LD") == {f"output/{ARCH}/tiny"}
    assert (root / "tiny.sha256").read_text() == checksum_of(root)
    assert_build_is_noop(root)

    source = root / "src/tiny.c"
    source.write_text(source.read_text().replace("tiny: opened", "tiny: opened!"))
    old = (root / "tiny.sha256").read_text()
    run = build(root)
    assert steps_of(run, "CC") == {"src/tiny.c"}
    assert (root / "tiny.sha256").read_text() == checksum_of(root) != old
    done = subprocess.run([root / "output" / ARCH / "tiny"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "tiny: opened!\n")


def test_plain_doit_builds_the_project(tmp_path: Path) -> None:
    root = copy_project("withdodo", tmp_path)
    listed = doit(root, "list").stdout.split()
    assert {"checksum", "bpf", "link", "app"} <= set(listed)
    first = doit(root)
    assert ("BPF", "src/tiny.bpf.c") in parse_steps(first.stdout)
    assert (root / "tiny.sha256").read_text() == checksum_of(root)
    assert doit(root).stdout == ""
    assert_build_is_noop(root)  # bpfbuild and doit share one state


def test_plain_doit_reports_a_config_error_without_traceback(tmp_path: Path) -> None:
    root = copy_project("withdodo", tmp_path)
    (root / "bpfbuild.toml").write_text(
        (root / "bpfbuild.toml").read_text() + "\n[build]\nbogus = 1\n"
    )
    done = subprocess.run([sys.executable, "-m", "doit"], cwd=root, capture_output=True, text=True)
    assert done.returncode != 0
    assert "unknown key 'build.bogus'" in done.stderr and "hint: valid keys" in done.stderr
    assert "Traceback" not in done.stderr
