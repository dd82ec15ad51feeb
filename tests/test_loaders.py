"""Generated loaders answer -h/--help with their usage and exit 0, without root or BPF;
the README's first command shows execsnoop reporting an exec."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from buildutil import ARCH, REPO, build, needs_root, require_template_kernels, require_tracefs

from bpfbuild.scaffold import available_templates, create_project

pytestmark = pytest.mark.slow

TEMPLATES = sorted(t.name for t in available_templates())
NOBODY = 65534
EVENT_LINE = re.compile(r"^\d+\s+\d+\s+\d+\s+\S+\s+/\S*/ls$", re.M)
"""An execsnoop line for `ls`: PID, PPID, UID, COMM, FILENAME."""


def as_nobody(executable: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a copy of executable as user nobody, with no capability: a loader that
    tried to load BPF would fail."""
    folder = Path(tempfile.mkdtemp(prefix="bpfbuild-help."))
    try:
        folder.chmod(0o755)
        copy = folder / executable.name
        shutil.copy(executable, copy)
        copy.chmod(0o755)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            argv = [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--inh-caps=-all",
                str(copy),
                *args,
            ]
        else:
            argv = [str(copy), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=folder)
    finally:
        shutil.rmtree(folder)


def check_help(executable: Path) -> None:
    for flag in ("--help", "-h"):
        done = as_nobody(executable, flag)
        assert done.returncode == 0, (flag, done)
        assert done.stdout.startswith("usage: "), (flag, done.stdout)
        assert "-h, --help" in done.stdout
        assert "failed to" not in done.stderr, done.stderr  # nothing was loaded
    wrong = as_nobody(executable, "--no-such-option")
    assert wrong.returncode == 2 and "usage: " in wrong.stderr, wrong


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_loader_answers_help(tmp_path: Path, template: str) -> None:
    name = f"my_{template}"
    root = tmp_path / name
    create_project(root, name, template, force=False)
    require_template_kernels(template)
    build(root)
    check_help(root / "output" / ARCH / name)


def test_netwatch_loaders_answer_help(tmp_path: Path) -> None:
    root = tmp_path / "netwatch"
    shutil.copytree(
        REPO / "examples" / "netwatch", root, ignore=shutil.ignore_patterns("output", ".bpfbuild")
    )
    build(root)
    for app in ("pktcount", "syscount"):
        check_help(root / "output" / ARCH / app)


def quick_start_command() -> str:
    """The first command of the README's quick start."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1]
    return block.splitlines()[0]


def test_quick_start_runs_execsnoop_on_a_command() -> None:
    command = quick_start_command()
    assert command.startswith(
        "./scripts/setup && .venv/bin/bpfbuild build -C examples/execsnoop && "
    )
    assert command.endswith("examples/execsnoop/output/*/execsnoop -- ls /")


@needs_root
def test_quick_start_prints_an_event_line(tmp_path: Path) -> None:
    """The quick start's execsnoop invocation, on a copy of the example, as root."""
    require_tracefs()
    root = tmp_path / "execsnoop"
    shutil.copytree(
        REPO / "examples" / "execsnoop", root, ignore=shutil.ignore_patterns("output", ".bpfbuild")
    )
    build(root)
    invocation = quick_start_command().split(" && ")[-1].replace("examples/execsnoop/", "")
    done = subprocess.run(
        invocation, shell=True, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done
    assert done.stdout.startswith("PID     PPID    UID    COMM             FILENAME\n"), done.stdout
    assert EVENT_LINE.search(done.stdout), done.stdout
    assert "bin" in done.stdout.split("\n")  # ls / ran, and its output came through
