"""Run the task graph with doit embedded as a library: run options, kbuild-style reporter,
loader, lock. The build state (what makes an interrupted build safe) is in state.py."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import inspect
import os
import shlex
import stat
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from doit.action import PythonAction
from doit.cmd_base import TaskLoader2
from doit.cmd_run import Run
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidCommand, InvalidDodoFile, InvalidTask, UnmetDependency
from doit.loader import generate_tasks, load_tasks
from doit.reporter import ConsoleReporter

from .. import safefs
from ..arch import Arch, get_arch, host_arch
from ..cache import size_limit
from ..errors import BpfBuildError, ProjectError, ToolchainError
from . import fastpath
from .bpfcheck import bpftool_for_sections, libbpf_for_skeletons
from .layout import OUTPUT_DIR, state_dir
from .names import DB_NAME, LOCK_NAME, TOOLCHAIN_CACHE_NAME
from .project import Project, check_own_folders, load_project
from .state import (
    BACKEND_LOCATION,
    BACKEND_NAME,
    InputContentChecker,
    remove_dead_outputs,
    remove_partials,
    repair_database,
)
from .steps import Step, step_line
from .tasks import (
    GENERATED_KEY,
    StepSource,
    own_outputs,
    project_steps,
    project_tasks,
    run_of,
    to_doit,
    without_inputs,
)
from .toolchain import PCH_SAME_BYTES_CLANG, Toolchain, find_toolchain, pch_keeps_bytes


@dataclass(frozen=True)
class RunOptions:
    """How one bpfbuild command runs the graph; handed to the loader and the reporter."""

    jobs: int | None = None
    """Parallel jobs; None: one per core."""
    verbose: bool = False
    """Print each step's commands, as lines that paste into a shell."""
    keep_going: bool = False
    """Build everything that does not depend on a failed step, then print a summary."""
    steps_to_stderr: bool = False
    """Step lines on stderr, keeping stdout for a machine format (verify --format json)."""
    step_sources: tuple[StepSource, ...] = ()
    """Steps other stages add to each arch's build (`bpfbuild verify`: the verifier
    runner, the verification of each object, one VM per kernel and arch)."""
    on_success: Callable[[list], None] | None = None
    """Called with doit's tasks after a run that succeeded (bpfbuild build writes the
    no-op stamp, see fastpath.py)."""
    continue_on_failure: bool = False
    """Run every task that does not depend on a failed one, with no summary (one VM
    that fails does not stop the others)."""


class Raised:
    """The first exception a run raised where doit would not let it reach the CLI: doit
    prints one raised while it loads or runs the graph (a task creator, the reporter) as
    its own traceback, and turns one raised by an action into a failed step that says
    "PythonAction Error". Kept here, it is raised again once doit returns (run_doit),
    so that it goes through the CLI's one door: error and hint, or "internal error"."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.steps: set[str] = set()
        """The tasks whose action raised (their failure is the kept error, not a step's)."""
        self._lock = threading.Lock()  # actions run in the jobs' threads

    def keep(self, error: Exception, step: str | None = None) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            if step is not None:
                self.steps.add(step)

    def keeping(self, function: Callable, step: str) -> Callable:
        """function (a doit action), keeping what it raises before doit sees it."""

        @functools.wraps(function)  # and its __signature__, which doit inspects
        def action(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as err:
                self.keep(err, step)
                raise

        return action


class KbuildReporter(ConsoleReporter):
    """One short line per step (`  BPF     src/hello.bpf.c`); with -v also the commands.
    Failures show the tool's own diagnostics; up-to-date tasks print nothing. With
    keep-going, a summary at the end: what failed, what was not run, what was built."""

    desc = "bpfbuild kbuild-style output"

    def __init__(
        self, outstream: TextIO, options: RunOptions, raised: Raised | None = None
    ) -> None:
        super().__init__(outstream, {})
        self.options = options
        self.raised = raised
        self.failed: list[str] = []  # steps that failed
        self.not_run: list[str] = []  # steps skipped: they depend on a failed one
        self.executables: list[str] = []  # apps linked or up to date

    def execute_task(self, task) -> None:
        """Called by doit just before a task's actions, in the thread that runs them:
        the step's run takes its arguments here (StepRun.start), so the commands shown
        are the ones the action runs."""
        try:
            self._start_step(task)
        except Exception as err:
            # In a job's thread: doit would hand on only the error's type and text.
            if self.raised:
                self.raised.keep(err)
            raise

    def _start_step(self, task) -> None:
        run = run_of(task)
        if run is None or not task.actions or run.step.label is None:
            return
        args = run.start()
        lines = [step_line(run.step)]
        if self.options.verbose:
            if run.fell_back and run.step.fallback:
                lines.append(f"    {run.step.fallback.note}")
            cd = f"    cd {shlex.quote(args.cwd)} && "
            lines += [cd + command.shell() for command in args.commands]
        # one write: jobs' threads call this at the same time
        self.write("\n".join(lines) + "\n")
        self.outstream.flush()

    def add_success(self, task) -> None:
        run = run_of(task)
        if run is None or run.step.kind != "link":
            return
        shown = run.step.shown
        self.executables.append(shown)
        size = task.values.get("size")
        if size is not None:
            needed = task.values.get("needed") or []
            linkage = "dynamic: " + ", ".join(needed) if needed else "static, no NEEDED entry"
            self.write(f"  BIN     {shown}: {size / 1024:.0f} KiB, {linkage}\n")

    def skip_uptodate(self, task) -> None:
        run = run_of(task)
        if run and run.step.kind == "link":
            self.executables.append(run.step.shown)

    def add_failure(self, task, fail) -> None:
        self.failures.append({"task": task, "exception": fail})
        if self.raised and task.name in self.raised.steps:
            return  # the CLI reports what the action raised
        run = run_of(task)
        labeled = run is not None and run.step.label is not None
        step = step_line(run.step, indent="") if run and labeled else task.name
        if isinstance(fail, UnmetDependency):
            if labeled:  # an app group that waited for a failed link says nothing
                self.not_run.append(step)
            return
        self.failed.append(step)
        self.write(f"error: {step} failed\n{fail.get_msg().rstrip()}\n")

    def skip_ignore(self, task) -> None:
        pass

    def complete_run(self) -> None:
        if self.runtime_errors:
            self.write("error: " + "\n".join(self.runtime_errors) + "\n")
        if self.options.keep_going and self.failed:
            self.write(keep_going_summary(self.failed, self.not_run, self.executables))
        self.outstream.flush()


def keep_going_summary(failed: list[str], not_run: list[str], executables: list[str]) -> str:
    """What a keep-going build that failed says last."""
    lines = [f"error: {len(failed)} step{'s' if len(failed) > 1 else ''} failed:"]
    lines += [f"  {step}" for step in failed]
    if not_run:
        lines.append(f"not run, because they depend on a failed step: {len(not_run)}")
        lines += [f"  {step}" for step in not_run]
    lines.append("built: " + (", ".join(sorted(executables)) or "no executable"))
    return "\n".join(lines) + "\n"


def doit_config(root: Path, options: RunOptions | None = None) -> dict[str, Any]:
    """DOIT_CONFIG for a project's own dodo.py (plain `doit` reads it; `bpfbuild build`
    makes its own with the command's options)."""
    from importlib.metadata import entry_points

    if not any(p.name == BACKEND_NAME for p in entry_points(group="doit.BACKEND")):
        raise InvalidDodoFile(
            f"doit does not know bpfbuild's build state backend ({BACKEND_NAME})"
            "\nhint: reinstall bpfbuild (pip install bpfbuild, or pip install -e "
            "in its source tree) so that its doit.BACKEND entry point is registered"
        )
    try:
        check_own_folders(root)  # doit opens its database in the state folder
    except BpfBuildError as err:
        raise InvalidDodoFile(err.describe()) from None
    return _doit_config(root, options or RunOptions())


def _doit_config(root: Path, options: RunOptions, raised: Raised | None = None) -> dict[str, Any]:
    state = state_dir(root)
    safefs.make_folders(root, state)
    outstream = sys.stderr if options.steps_to_stderr else sys.stdout
    return {
        "dep_file": str(state / DB_NAME),
        # sqlite3 (tolerates concurrent readers, one file), each task committed as soon
        # as it succeeds; registered as a doit.BACKEND plugin (pyproject.toml)
        "backend": BACKEND_NAME,
        "check_file_uptodate": InputContentChecker,  # content: a touch rebuilds nothing
        "reporter": KbuildReporter(outstream, options, raised),
        # No capture: doit captures a Python action's output by swapping sys.stdout
        # without a lock, which threads race on. Actions print nothing themselves;
        # a failure carries the tool's diagnostics in its TaskFailed.
        "verbosity": 2,
        "num_process": options.jobs or os.cpu_count() or 1,
        "par_type": "thread",  # actions are subprocesses; no pickling
        "continue": options.keep_going or options.continue_on_failure,
    }


_held_locks: dict[Path, int] = {}
"""The lock file descriptors this process holds (one per project), for its whole life."""


def acquire_lock(root: Path) -> None:
    """Hold .bpfbuild/lock for the life of this process; wait, saying so, if taken."""
    path = state_dir(root) / LOCK_NAME
    if path in _held_locks:
        return
    check_own_folders(root)  # the lock would be written through the link
    fd = safefs.open_file(root, path, os.O_RDWR | os.O_CREAT)  # a link there is refused
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        name = os.path.relpath(path, root)
        raise safefs.UnsafePathError(
            f"{name} is not a file: bpfbuild keeps its lock there",
            hint=f"remove it: rm {name}, then run again",
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        print(
            f"bpfbuild: waiting for another build in {root} (pid {holder}) to finish...",
            file=sys.stderr,
            flush=True,
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held_locks[path] = fd


def toolchains_for(project: Project, runner: bool = False) -> list[Toolchain]:
    """Every arch's toolchain, with the optional tools the config asks for. runner: the
    run verifies, so it builds the verifier's runner (a C program) for every arch."""
    state = state_dir(project.root)
    toolchains = [
        find_toolchain(
            arch,
            state,
            project,
            user_space=bool(project.apps),
            linker=project.config.build.linker,
            runner=runner,
        )
        for arch in project.arches
    ]
    newer = bpftool_for_sections(project, toolchains[0].bpftool, state / TOOLCHAIN_CACHE_NAME)
    if newer is not None:
        toolchains = [replace(toolchain, gen_bpftool=newer) for toolchain in toolchains]
        toolchains = libbpf_for_skeletons(toolchains, project)
    for toolchain in toolchains:
        if project.config.build.strip and project.apps and toolchain.strip is None:
            raise ToolchainError(
                f"no strip for {toolchain.arch.name}, needed by `strip = true` in [build]",
                hint=f"apt-get install {toolchain.arch.binutils_package}, or set strip = false",
            )
    return toolchains


def require_arches(known: Sequence[str], names: Iterable[str]) -> None:
    """Refuse an arch the project does not build (known: the names of those it does):
    bpfbuild build --arch, verify --arch."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BpfBuildError(
            f"arch {', '.join(unknown)} is not in this project's arches ({', '.join(known)})",
            hint="add it to `arches` in [build] of bpfbuild.toml",
        )


def select_arches(project: Project, arches: list[Arch] | None) -> Project:
    """Restrict a project to some of its arches (bpfbuild build --arch)."""
    if arches:
        require_arches([a.name for a in project.arches], [a.name for a in arches])
        project.arches = [a for a in project.arches if a in arches]
    return project


def prepare(project: Project, runner: bool = False) -> list[Toolchain]:
    """Before any task of a project is created: hold its lock, delete what killed
    builds left half-written, and find the toolchains (a missing tool is a clean error;
    runner: the verifier runner's C compiler too)."""
    acquire_lock(project.root)
    note = repair_database(project.root)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    remove_partials(
        project.root, keep={n for a in project.apps.values() for n in (a.name, *a.aliases)}
    )
    size_limit()  # a malformed $BPFBUILD_CACHE_SIZE is an error now, not in a task
    toolchains = toolchains_for(project, runner)
    for line in pch_refusals(project, toolchains):
        print(f"note: {line}", file=sys.stderr, flush=True)
    return toolchains


def pch_refusals(project: Project, toolchains: Sequence[Toolchain]) -> list[str]:
    """With `pch = true` (asked for, not "auto") and no source able to take the
    precompiled vmlinux.h: why (the clang in use, or each source's first read). When
    some take it, `bpfbuild list` says which do not."""
    if project.config.build.pch is not True or not toolchains:
        return []
    clang = toolchains[0].clang
    if not pch_keeps_bytes(clang):
        return [
            f"pch = true: no precompiled vmlinux.h with clang {clang.version}: its objects "
            f"would differ in bytes from a build without it (clang {PCH_SAME_BYTES_CLANG} "
            "and older make the same bytes)"
        ]
    verdicts = project.pch_verdicts()
    if any(why_not is None for why_not in verdicts.values()):
        return []
    return [
        f"pch = true, but no source takes the precompiled vmlinux.h: {source}: {why_not}"
        for source, why_not in verdicts.items()
    ]


def judged_by(project: Project) -> Callable[[str], bool]:
    """Which recorded outputs (relative to the root) a build of project decides about:
    all but those of an arch the project still builds and this build does not (a
    build with --arch, a verification in some arches' VMs)."""
    configured = {get_arch(name).name for name in project.config.build.arches} or {host_arch().name}
    built = {arch.name for arch in project.arches}

    def judged(relative: str) -> bool:
        parts = relative.split("/")
        if parts[0] != OUTPUT_DIR or len(parts) < 3:
            return True
        return parts[1] in built or parts[1] not in configured

    return judged


def tasks_of_project(
    root: Path | None = None, prefix: str = "", sources: Sequence[StepSource] = ()
) -> Iterator[dict]:
    """The doit tasks of the project at root (the current folder by default), with the
    steps of sources, for a dodo.py (bpfbuild.task_bpfbuild). prefix names its tasks
    when a dodo.py holds several projects."""
    root = (root or Path.cwd()).resolve()
    try:
        project = load_project(root)
        toolchains = prepare(project)
    except BpfBuildError as err:
        # Under plain `doit`, an error doit knows prints as one line, no traceback.
        raise InvalidDodoFile(err.describe()) from None
    yield from project_tasks(project, toolchains, prefix, sources)


F = TypeVar("F", bound=Callable)
_RUN_GRAPH = "bpfbuild_run_graph"


def replaced_by_the_run(creator: F) -> F:
    """Mark bpfbuild's own task creator (bpfbuild.task_bpfbuild): where a project's
    dodo.py names it, a bpfbuild command loads the graph it runs in its place."""
    setattr(creator, _RUN_GRAPH, True)
    return creator


class _Loader(TaskLoader2):
    """Loads the project's tasks, and those of its own dodo.py when it has one. The
    steps are those the command already made (of the project and toolchains it
    checked, with the steps it adds, as its verification); where the dodo.py names
    bpfbuild's `task_bpfbuild`, that graph is this one."""

    def __init__(self, project: Project, steps: list[Step], options: RunOptions) -> None:
        super().__init__()
        self.project, self.steps, self.options = project, steps, options
        self.tasks: list = []
        self.raised = Raised()

    def setup(self, opt_values) -> None:
        pass

    def load_doit_config(self) -> dict:
        return _doit_config(self.project.root, self.options, self.raised)

    def load_tasks(self, cmd, pos_args) -> list:
        self.tasks = self._load_tasks(cmd)
        for task in self.tasks:
            for action in task.actions:
                if isinstance(action, PythonAction):
                    action.py_callable = self.raised.keeping(action.py_callable, task.name)
        return self.tasks

    def _load_tasks(self, cmd) -> list:
        steps = self.steps

        def task_bpfbuild_of_this_run():
            yield from map(to_doit, steps)

        dodo = self.project.root / "dodo.py"
        if not dodo.is_file():
            # What load_tasks does with this one creator, without the source lookup it
            # makes to order creators by line (tokenize's regexes: ~5 ms a build).
            return generate_tasks(
                "bpfbuild", task_bpfbuild_of_this_run(), task_bpfbuild_of_this_run.__doc__
            )
        namespace = dict(inspect.getmembers(_import_dodo(dodo)))
        if getattr(namespace.get("task_bpfbuild"), _RUN_GRAPH, False):
            namespace["task_bpfbuild"] = task_bpfbuild_of_this_run
        tasks = load_tasks(namespace, self.cmd_names, allow_delayed=cmd.execute_tasks)
        wait_for_generated(self.project, tasks)
        return tasks


def wait_for_generated(project: Project, tasks: list) -> None:
    """A compile of a source that includes a header the project's own dodo.py tasks
    make (one of their targets, directly or through project headers) waits for the
    task that makes it: the header, named as the task names it, becomes an input of
    the compile, which doit runs after the task whose target it is (and again when it
    changes). A [build] generated header that no task names as a target waits for
    every task of the dodo.py that does not itself wait for bpfbuild's."""
    own = [task for task in tasks if run_of(task) is None]
    root = project.root
    makers: dict[str, list[str]] = {}
    for task in own:
        for target in task.targets:
            normal = os.path.normpath(os.path.join(root, target))
            makers.setdefault(os.path.relpath(normal, root), []).append(target)
    includers = project.generated_includers(makers)
    if not includers:
        return
    independent: list[str] = []
    if any(header not in makers for found in includers.values() for header in found):
        independent = [task.name for task in _not_after_bpfbuild(tasks, own)]
    for task in tasks:
        run = run_of(task)
        source = run.step.source if run else None
        if source is None or source not in includers or run is None or not run.step.depfile:
            continue
        for header in includers[source]:
            if header in makers:
                task.file_dep.update(makers[header])
            else:
                task.task_dep.extend(n for n in independent if n not in task.task_dep)
                generated = task.meta.setdefault(GENERATED_KEY, [])
                generated.append(str(root / header))


def _not_after_bpfbuild(tasks: list, own: list) -> list:
    """The tasks of own that wait for none of bpfbuild's steps, even through others."""
    after = {task.name for task in tasks if run_of(task) is not None}
    outputs = {
        os.path.normpath(output) for task in tasks if run_of(task) for output in task.targets
    }
    changed = True
    while changed:
        changed = False
        for task in own:
            if task.name in after:
                continue
            files = {os.path.normpath(os.path.abspath(dep)) for dep in task.file_dep}
            if not after.isdisjoint(task.task_dep) or not outputs.isdisjoint(files):
                after.add(task.name)
                changed = True
    return [task for task in own if task.name not in after]


class _Run(Run):
    """doit's `run`, but what is raised while it loads the tasks, checks the graph or runs
    it (the reporter included) is kept for the CLI, where doit would print its traceback."""

    def execute(self, params, args) -> int:
        try:
            return super().execute(params, args)
        except Exception as err:  # noqa: BLE001 - kept, and raised again by run_doit
            self.loader.raised.keep(err)
            return 3  # doit's "error before or while running", never returned as is


class _DoitMain(DoitMain):
    BIN_NAME = "bpfbuild"  # doit's hints name the command

    def get_cmds(self):
        commands = super().get_cmds()
        commands["run"] = _Run
        return commands


def _project_error(error: Exception, dodo: Path) -> BpfBuildError | None:
    """What the project's own dodo.py raised, or what doit refused in it, as an error of
    the project naming the file and line; None when it came from bpfbuild or doit (a bug)."""
    if isinstance(error, InvalidTask | InvalidDodoFile | InvalidCommand) and dodo.is_file():
        return ProjectError(
            f"{dodo}: {' '.join(str(error).split())}",
            hint="fix that task in the project's dodo.py (doit's task dictionary)",
        )
    own = Path(__file__).resolve().parents[1]
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename) == dodo or Path(frame.filename).is_relative_to(own)
    ]
    if isinstance(error, SyntaxError) and error.filename == str(dodo):
        line = error.lineno
    elif frames and Path(frames[-1].filename) == dodo:
        line = frames[-1].lineno
    else:
        return None
    return ProjectError(
        f"{dodo}:{line}: {type(error).__name__}: {' '.join(str(error).split())}",
        hint="the project's dodo.py raised it (a task creator or one of its actions); fix it there",
    )


def _import_dodo(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("dodo", path)
    assert spec is not None and spec.loader is not None, f"{path} is a Python file"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_doit(project: Project, doit_args: list[str], options: RunOptions) -> int:
    """Run a doit command (`run`, `clean`, `list`...) on the project: 0, or 1 when a step
    failed. What doit would print as its own traceback (a task creator, an action or the
    reporter raised) is raised here, for the CLI."""
    toolchains = prepare(project, runner=bool(options.step_sources))
    fastpath.invalidate(project.root)  # before any task runs: see fastpath.py
    steps = list(project_steps(project, toolchains, sources=options.step_sources))
    removed = remove_dead_outputs(
        project.root, own_outputs(steps, project.root), judged_by(project)
    )
    outstream = sys.stderr if options.steps_to_stderr else sys.stdout
    for relative in removed:
        print(f"  {'RM':<8}{relative}", file=outstream, flush=True)
    steps = without_inputs(steps, {str(project.root / relative) for relative in removed})
    os.chdir(project.root)
    # StateDB is also a doit.BACKEND entry point (for plain `doit` on a project's
    # dodo.py); naming it here keeps bpfbuild working from a source tree.
    loader = _Loader(project, steps, options)
    main = _DoitMain(
        loader, config_filenames=(), extra_config={"BACKEND": {BACKEND_NAME: BACKEND_LOCATION}}
    )
    code = main.run(doit_args)
    error = loader.raised.error
    if error is not None:
        raise _project_error(error, project.root / "dodo.py") or error
    if code == 0 and options.on_success:
        options.on_success(loader.tasks)
    # doit returns 2 when a step could not run because one it depends on failed (-k):
    # still a failed step, which bpfbuild's exit code 1 says (2 is a usage error).
    return 0 if code == 0 else 1
