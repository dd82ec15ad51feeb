"""The engine around doit: the reporter's lines (one per step, the BIN line, errors, -v
commands that paste into a shell), -k/--keep-going, and a project's own dodo.py."""

from __future__ import annotations

import functools
import io
import re
import subprocess
from dataclasses import replace
from pathlib import Path

from buildutil import ARCH, bpfbuild, build, copy_project
from doit.exceptions import TaskFailed, UnmetDependency
from doit.task import Stream, Task

from bpfbuild.pipeline.actions import ToolArgs
from bpfbuild.pipeline.engine import KbuildReporter, RunOptions
from bpfbuild.pipeline.steps import Command, Fallback, Step, step_line, task_id
from bpfbuild.pipeline.tasks import to_doit


def fake_step(
    kind: str,
    label: str,
    shown: str,
    arch: str,
    several_arches: bool,
    commands: tuple[Command, ...] = (),
    fallback: Fallback | None = None,
) -> Step:
    return Step(
        id=task_id(kind, shown, arch),
        kind=kind,
        arch=arch,
        label=label,
        shown=shown,
        several_arches=several_arches,
        action=print,
        args=ToolArgs(commands[0], "/p", (), None) if commands else None,
        fallback=fallback,
    )


def fake_task(*step_args, **step_kwargs) -> Task:
    """A doit task of a fake step, as to_doit makes it (with an action of its own)."""
    step = fake_step(*step_args, **step_kwargs)
    return Task(step.id, actions=["true"], meta=to_doit(step)["meta"])


def test_step_lines_name_the_arch_only_when_there_are_several() -> None:
    one = fake_step("bpf", "BPF", "src/x.bpf.c", "x86_64", False)
    two = fake_step("bpf", "BPF", "src/x.bpf.c", "arm64", True)
    assert step_line(one) == "  BPF     src/x.bpf.c"
    assert step_line(two) == "  BPF     src/x.bpf.c (arm64)"
    assert step_line(one, indent="") == "BPF src/x.bpf.c"


def test_bin_lines_keep_their_path_with_several_arches() -> None:
    out = io.StringIO()
    reporter = KbuildReporter(out, RunOptions())
    for arch, size in (("x86_64", 1341 * 1024), ("arm64", 1332 * 1024)):
        task = fake_task("link", "LD", f"output/{arch}/app", arch, True)
        task.values = {"size": size, "needed": []}
        reporter.add_success(task)
    assert out.getvalue().splitlines() == [
        "  BIN     output/x86_64/app: 1341 KiB, static, no NEEDED entry",
        "  BIN     output/arm64/app: 1332 KiB, static, no NEEDED entry",
    ]


def test_an_error_line_has_no_step_padding() -> None:
    out = io.StringIO()
    reporter = KbuildReporter(out, RunOptions())
    reporter.add_failure(
        fake_task("bpf", "BPF", "src/x.bpf.c", "x86_64", False),
        TaskFailed("src/x.bpf.c:3:1: error: oops"),
    )
    assert out.getvalue().splitlines()[0] == "error: BPF src/x.bpf.c failed"


def test_verbose_commands_paste_into_a_shell() -> None:
    command = Command(
        ("/usr/sbin/bpftool", "gen", "skeleton", "output/x86_64/bpf/a b.bpf.o"),
        stdout="output/x86_64/include/a b.skel.h",
    )
    assert command.shell() == (
        "/usr/sbin/bpftool gen skeleton 'output/x86_64/bpf/a b.bpf.o' "
        "> 'output/x86_64/include/a b.skel.h'"
    )
    out = io.StringIO()
    KbuildReporter(out, RunOptions(verbose=True)).execute_task(
        fake_task("skel", "SKEL", "output/x86_64/include/a b.skel.h", "x86_64", False, (command,))
    )
    assert out.getvalue().splitlines()[1] == f"    cd /p && {command.shell()}"


def show_then_run(step: Step) -> tuple[list[str], list[Command]]:
    """What -v prints for a step, then the commands its action gets, as doit calls them."""
    ran: list[Command] = []
    task_dict = to_doit(replace(step, action=lambda args: ran.append(args.command)))
    task = Task(step.id, actions=task_dict["actions"], meta=task_dict["meta"])
    out = io.StringIO()
    KbuildReporter(out, RunOptions(verbose=True)).execute_task(task)
    task.execute(Stream(0))
    return out.getvalue().splitlines(), ran


def test_verbose_shows_the_arguments_the_action_runs() -> None:
    """The step's run takes its arguments when the reporter shows the step (StepRun.start):
    with the fallback not ready then, -v shows the fallback's command and says why, and
    the action runs that command even if the fallback's condition changed since (the
    PCH finished in between)."""
    own = Command(("clang", "-include-pch", "x.pch", "-c", "a.c"))
    direct = Command(("clang", "-c", "a.c"))
    for ready_at_start, taken, note in ((True, own, []), (False, direct, ["    not ready"])):
        answers = iter([ready_at_start, not ready_at_start])
        fallback = Fallback(
            ToolArgs(direct, "/p", (), None), functools.partial(next, answers), "not ready"
        )
        shown, ran = show_then_run(
            fake_step("bpf", "BPF", "a.c", "x86_64", False, (own,), fallback)
        )
        assert shown == ["  BPF     a.c", *note, f"    cd /p && {taken.shell()}"]
        assert ran == [taken]


def test_keep_going_summary_separates_failed_and_not_run() -> None:
    out = io.StringIO()
    reporter = KbuildReporter(out, RunOptions(keep_going=True))
    reporter.add_failure(fake_task("bpf", "BPF", "src/bad.bpf.c", "x86_64", False), TaskFailed("x"))
    reporter.add_failure(
        fake_task("link", "LD", "output/x86_64/bad", "x86_64", False),
        UnmetDependency("bpf:x86_64/bad"),
    )
    reporter.skip_uptodate(fake_task("link", "LD", "output/x86_64/good", "x86_64", False))
    reporter.complete_run()
    assert out.getvalue().endswith(
        "error: 1 step failed:\n  BPF src/bad.bpf.c\n"
        "not run, because they depend on a failed step: 1\n  LD output/x86_64/bad\n"
        "built: output/x86_64/good\n"
    )


BROKEN_BPF = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("xdp")
int broken(struct xdp_md *ctx) { return XDP_PASS }
"""
BROKEN_LOADER = """#include "broken.skel.h"
int main(void) { return 0; }
"""


def test_keep_going_builds_every_app_that_does_not_depend_on_the_failure(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    (root / "src/broken.bpf.c").write_text(BROKEN_BPF)
    (root / "src/broken.c").write_text(BROKEN_LOADER)
    run = bpfbuild(root, "build", "-k", "-j2")
    assert run.returncode != 0, run.describe()
    assert "Traceback" not in run.output
    for app in ("alpha", "gamma"):
        assert (root / "output" / ARCH / app).is_file(), run.describe()
    assert not (root / "output" / ARCH / "broken").exists()
    summary = run.stdout[run.stdout.index("error: 1 step failed:") :]
    assert "  BPF src/broken.bpf.c\n" in summary, run.describe()
    assert f"  LD output/{ARCH}/broken\n" in summary
    assert f"built: output/{ARCH}/alpha, output/{ARCH}/gamma\n" in summary
    assert "expected ';'" in run.stdout  # clang's own diagnostic

    # bpfbuild test -k: the build step lists the failures the same way, and the run stops
    tested = bpfbuild(root, "test", "-k")
    assert tested.returncode != 0, tested.describe()
    assert "  BPF src/broken.bpf.c\n" in tested.stdout, tested.describe()
    assert "==> bpfbuild test: build failed" in tested.stdout

    # without -k the build stops at the failure, and says nothing of what was built
    again = bpfbuild(root, "build", "-j1", "broken")
    assert again.returncode != 0 and "built:" not in again.stdout, again.describe()


def test_verbose_build_with_a_projects_own_dodo_prints_the_commands(tmp_path: Path) -> None:
    """dodo.py calls doit_config() when bpfbuild imports it: that must not undo -v."""
    root = copy_project("withdodo", tmp_path)
    run = build(root, "-v")
    commands = [line[4:] for line in run.stdout.splitlines() if line.startswith("    cd ")]
    # every step runs a command, but bpfbuild's own compile_commands.json
    tool_steps = [step for step in run.steps if step[1] != "compile_commands.json"]
    assert len(commands) == len(tool_steps), run.describe()
    skeleton = next(c for c in commands if " gen skeleton " in c)
    assert re.search(r" > output/\S+/tiny\.skel\.h$", skeleton), skeleton
    # pasted into a shell, the command makes the same file
    made = root / "output" / ARCH / "include" / "tiny.skel.h"
    expected = made.read_bytes()
    made.unlink()
    subprocess.run(["sh", "-c", skeleton], check=True)
    assert made.read_bytes() == expected
    assert build(root).steps == []  # the same content as recorded: nothing to redo
