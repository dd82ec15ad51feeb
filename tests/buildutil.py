"""Helpers for the build-pipeline tests: copy a test project, run `bpfbuild` as a
subprocess, read the kbuild lines it prints, hash outputs, and skip what needs root."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfbuild.arch import host_arch
from bpfbuild.kernels.host import can_load_bpf, tracefs_mount

PROJECTS = Path(__file__).resolve().parent / "projects"
"""Test projects, each copied into a temporary folder before use."""
REPO = Path(__file__).resolve().parent.parent
ARCH = host_arch().name


def bpfbuild_command() -> list[str]:
    """The installed console script of the interpreter running the tests (a venv's
    own `bpfbuild`), so that a subprocess uses the same bpfbuild and doit."""
    script = Path(sys.executable).parent / "bpfbuild"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "bpfbuild.cli"]


def copy_project(name: str, destination: Path) -> Path:
    """Copy tests/projects/<name> to destination/<name>; return the copy's root."""
    root = destination / name
    shutil.copytree(PROJECTS / name, root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    return root


@dataclass
class Run:
    """One finished `bpfbuild` invocation."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def steps(self) -> list[tuple[str, str]]:
        return parse_steps(self.stdout)

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def bpfbuild(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Run:
    """Run `bpfbuild ARGS` in root and capture everything."""
    done = subprocess.run(
        [*bpfbuild_command(), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def build(root: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`bpfbuild build ARGS` that must succeed."""
    run = bpfbuild(root, "build", *args, env=env)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output, run.describe()
    return run


_STEP = re.compile(r"^  (?P<kind>[A-Z]+) +(?P<what>\S+)$")


def parse_steps(stdout: str) -> list[tuple[str, str]]:
    """The steps a build ran, from its kbuild lines: [("BPF", "src/x.bpf.c"), ...].
    `BIN` lines report on a linked binary; they are not steps."""
    steps = []
    for line in stdout.splitlines():
        match = _STEP.match(line)
        if match and match["kind"] != "BIN":
            steps.append((match["kind"], match["what"]))
    return steps


def steps_of(run: Run, kind: str) -> set[str]:
    """What the build ran for one kind of step, e.g. {"src/a.bpf.c"} for "BPF"."""
    return {what for step_kind, what in run.steps if step_kind == kind}


def assert_build_is_noop(root: Path, *args: str) -> None:
    """As meson's assertBuildIsNoop: a build that runs no command at all. The no-op
    stamp is removed first, so that the build graph and its recorded state answer, not
    the fast path (which tests/test_fastpath.py covers)."""
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    run = build(root, *args, env=dict(os.environ, BPFBUILD_TRACE="1"))
    assert "fastpath: miss" in run.stderr, run.describe()
    assert run.steps == [], run.describe()
    assert run.stdout == "", run.describe()


NOT_REPRODUCIBLE = (".pch", ".bpf.d")
"""Outputs whose bytes differ between two clean builds: clang's precompiled vmlinux.h
records the header's mtime; a BPF depfile names vmlinux.h once more (by its absolute
path) when the compile took the PCH, which depends on how the jobs raced it. Both are
intermediates; the objects built with them do not differ."""


def output_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under output/ (but NOT_REPRODUCIBLE ones), by relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((root / "output").rglob("*"))
        if path.is_file() and not path.name.endswith(NOT_REPRODUCIBLE)
    }


def partial_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "output").rglob("*.partial"))


def _bpf_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    loadable, how = can_load_bpf()
    if not loadable:
        return f"this process cannot load BPF programs: {how}"
    return None


BPF_SKIP_REASON = _bpf_skip_reason()


def needs_root(test):
    """Mark a test `root`, and skip it with the reason where BPF cannot be loaded."""
    test = pytest.mark.root(test)
    return pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON))(test)


def require_tracefs() -> None:
    """Mount tracefs if it is not mounted (tracepoints attach through it), or skip."""
    if tracefs_mount() or Path("/sys/kernel/tracing/events").is_dir():
        return
    done = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"tracefs is not mounted and mounting it failed: {done.stderr.strip()}")
