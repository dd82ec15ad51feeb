"""One door for every error: whatever fails while the configuration is read, the toolchain
is found, the tasks are generated, a step runs or the reporter prints, `bpfbuild build`
ends with exactly one `error:` line and one `hint:` line on stderr. A BpfBuildError (an
error the user can act on) exits 1; anything else is a bug, said in one line as an
"internal error" that exits 2, with its traceback only with -v or BPFBUILD_DEBUG=1.

Failures happen for real where they can (a bad bpfbuild.toml, no clang in PATH, a
project's dodo.py that raises); a bug is injected into the real `bpfbuild` process by a
sitecustomize.py on PYTHONPATH that replaces one function of bpfbuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from buildutil import bpfbuild, copy_project

INJECT = '''
"""Replace one function of bpfbuild with one that raises, as $INJECT says."""
import os

from bpfbuild.errors import BpfBuildError
from bpfbuild.pipeline import actions, engine, layout

STAGE, KIND = os.environ["INJECT"].split(":")


def fail(*args, **kwargs):
    if KIND == "bug":
        raise RuntimeError(f"injected in {STAGE}")
    raise BpfBuildError(f"injected in {STAGE}", hint=f"the hint of {STAGE}")


if STAGE == "generation":  # while doit loads the tasks bpfbuild generates
    layout.Layout.bpf_object = fail
elif STAGE == "action":  # a step's action, in a job's thread
    def link_executable(args):
        fail()
    actions.link_executable = link_executable
elif STAGE == "reporter":  # the reporter, in doit's main thread
    engine.KbuildReporter.add_success = fail
elif STAGE == "reporter-thread":  # the reporter, called from a job's thread
    engine.step_line = fail
'''

BUG_HINT = (
    "hint: this is a bug in bpfbuild; run again with -v (or BPFBUILD_DEBUG=1) to see "
    "the traceback, and report it"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """One BPF object and one app (withdodo without its dodo.py)."""
    root = copy_project("withdodo", tmp_path)
    (root / "dodo.py").unlink()
    return root


def build_with(root: Path, *args: str, inject: str | None = None, **env: str):
    environment = {k: v for k, v in os.environ.items() if k != "BPFBUILD_DEBUG"} | env
    if inject:
        shim = root.parent / "inject"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(INJECT)
        environment.update(PYTHONPATH=str(shim), INJECT=inject)
    return bpfbuild(root, "build", *args, env=environment)


def assert_one_error(run, message: str, hint: str, code: int) -> None:
    """stderr is exactly the error line and the hint line."""
    assert run.stderr == f"error: {message}\n{hint}\n", run.describe()
    assert run.returncode == code, run.describe()


def test_config(project: Path) -> None:
    with (project / "bpfbuild.toml").open("a") as config:
        config.write("\n[build]\nopt = 2\n")
    run = build_with(project)
    assert run.returncode == 1, run.describe()
    error, hint = run.stderr.splitlines()
    assert error.startswith(f"error: {project / 'bpfbuild.toml'}:"), run.describe()
    assert "opt" in error and hint.startswith("hint: "), run.describe()


def test_toolchain(project: Path, tmp_path: Path) -> None:
    nothing = tmp_path / "empty"  # a PATH where no tool is found
    nothing.mkdir()
    run = build_with(project, PATH=str(nothing))
    assert run.returncode == 1, run.describe()
    error, hint = run.stderr.splitlines()
    assert error.startswith("error: clang not found (looked for: $CLANG, clang"), run.describe()
    assert hint == "hint: apt-get install clang, or set $CLANG to its path", run.describe()


def test_task_creator_of_the_projects_dodo(project: Path) -> None:
    (project / "dodo.py").write_text(
        "from bpfbuild import task_bpfbuild  # noqa: F401\n\n\n"
        "def task_mine():\n"
        "    raise ValueError('no such thing')\n"
    )
    run = build_with(project)
    assert_one_error(
        run,
        f"{project / 'dodo.py'}:5: ValueError: no such thing",
        "hint: the project's dodo.py raised it (a task creator or one of its actions); "
        "fix it there",
        1,
    )


def test_task_the_projects_dodo_gets_wrong(project: Path) -> None:
    (project / "dodo.py").write_text("def task_mine():\n    return {'action': ['true']}\n")
    run = build_with(project)
    assert run.returncode == 1, run.describe()
    error, hint = run.stderr.splitlines()
    assert error.startswith(f"error: {project / 'dodo.py'}: Task mine must contain 'actions'")
    assert hint == "hint: fix that task in the project's dodo.py (doit's task dictionary)"


STAGES = ("generation", "action", "reporter", "reporter-thread")


@pytest.mark.parametrize("stage", STAGES)
def test_a_bug_is_one_line_and_its_traceback_only_with_v(project: Path, stage: str) -> None:
    run = build_with(project, inject=f"{stage}:bug")
    assert_one_error(run, f"internal error: RuntimeError: injected in {stage}", BUG_HINT, 2)

    verbose = build_with(project, "-v", inject=f"{stage}:bug")
    assert verbose.returncode == 2, verbose.describe()
    *traceback, error, hint = verbose.stderr.splitlines()
    assert (error, hint) == (f"error: internal error: RuntimeError: injected in {stage}", BUG_HINT)
    assert traceback[0] == "Traceback (most recent call last):", verbose.describe()
    assert traceback[-1] == f"RuntimeError: injected in {stage}", verbose.describe()
    assert 'sitecustomize.py", line' in verbose.stderr, verbose.describe()


def test_bpfbuild_debug_shows_the_traceback_too(project: Path) -> None:
    run = build_with(project, inject="generation:bug", BPFBUILD_DEBUG="1")
    assert run.returncode == 2, run.describe()
    assert run.stderr.startswith("Traceback (most recent call last):\n"), run.describe()
    assert run.stderr.endswith(f"RuntimeError: injected in generation\n{BUG_HINT}\n")


@pytest.mark.parametrize("stage", STAGES)
def test_an_error_with_a_hint_is_two_lines(project: Path, stage: str) -> None:
    run = build_with(project, inject=f"{stage}:error")
    assert_one_error(run, f"injected in {stage}", f"hint: the hint of {stage}", 1)
