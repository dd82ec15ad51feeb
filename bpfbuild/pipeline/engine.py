"""Run the task graph with doit embedded as a library: run options, kbuild-style reporter,
loader, lock. The build state (what makes an interrupted build safe) is in state.py."""

from __future__ import annotations

import fcntl
import importlib.util
import inspect
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from doit.cmd_base import TaskLoader2
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidDodoFile, UnmetDependency
from doit.loader import generate_tasks, load_tasks
from doit.reporter import ConsoleReporter

from ..arch import Arch
from ..cache import size_limit
from ..errors import BpfBuildError, ToolchainError
from . import fastpath
from .layout import state_dir
from .project import Project, check_own_folders, load_project, require_buildable
from .state import BACKEND_LOCATION, BACKEND_NAME, SharedDigestChecker, remove_partials
from .tasks import project_tasks, step_line
from .toolchain import Toolchain, find_toolchain

if TYPE_CHECKING:
    from ..vm.targets import VerifyPlan

DB_NAME = "doit.sqlite"


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
    verify: bool | VerifyPlan = False
    """The graph also holds the verification tasks: of the running kernel's arch
    (True), or of the kernels and arches of a VerifyPlan (VMs)."""
    on_success: Callable[[list], None] | None = None
    """Called with doit's tasks after a run that succeeded (bpfbuild build writes the
    no-op stamp, see fastpath.py)."""
    continue_on_failure: bool = False
    """Run every task that does not depend on a failed one, with no summary (one VM
    that fails does not stop the others)."""


class KbuildReporter(ConsoleReporter):
    """One short line per step (`  BPF     src/hello.bpf.c`); with -v also the commands.
    Failures show the tool's own diagnostics; up-to-date tasks print nothing. With
    keep-going, a summary at the end: what failed, what was not run, what was built."""

    desc = "bpfbuild kbuild-style output"

    def __init__(self, outstream: TextIO, options: RunOptions) -> None:
        super().__init__(outstream, {})
        self.options = options
        self.failed: list[str] = []  # steps that failed
        self.not_run: list[str] = []  # steps skipped: they depend on a failed one
        self.executables: list[str] = []  # apps linked or up to date

    def execute_task(self, task) -> None:
        if not task.actions or not task.meta:
            return
        lines = [step_line(task.meta)]
        if self.options.verbose:
            cd = f"    cd {shlex.quote(task.meta['cwd'])} && "
            lines += [cd + command.shell() for command in task.meta["commands"]]
        # one write: jobs' threads call this at the same time
        self.write("\n".join(lines) + "\n")
        self.outstream.flush()

    def add_success(self, task) -> None:
        if not task.meta:
            return
        meta = task.meta
        if (
            self.options.verbose
            and task.values.get("pch") is False
            and "-include-pch" in meta["commands"][0].argv
        ):
            self.write(
                f"    {meta['shown']}: vmlinux.h.pch was not ready yet, "
                "compiled without -include-pch (same object)\n"
            )
        if meta["kind"] == "link":
            self.executables.append(meta["shown"])
            size = task.values.get("size")
            if size is not None:
                needed = task.values.get("needed") or []
                linkage = "dynamic: " + ", ".join(needed) if needed else "static, no NEEDED entry"
                self.write(f"  BIN     {meta['shown']}: {size / 1024:.0f} KiB, {linkage}\n")

    def skip_uptodate(self, task) -> None:
        if task.meta and task.meta["kind"] == "link":
            self.executables.append(task.meta["shown"])

    def add_failure(self, task, fail) -> None:
        self.failures.append({"task": task, "exception": fail})
        step = step_line(task.meta, indent="") if task.meta else task.name
        if isinstance(fail, UnmetDependency):
            if task.meta:  # an app group that waited for a failed link says nothing
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


def _doit_config(root: Path, options: RunOptions) -> dict[str, Any]:
    state = state_dir(root)
    state.mkdir(exist_ok=True)
    outstream = sys.stderr if options.steps_to_stderr else sys.stdout
    return {
        "dep_file": str(state / DB_NAME),
        # sqlite3 (tolerates concurrent readers, one file), each task committed as soon
        # as it succeeds; registered as a doit.BACKEND plugin (pyproject.toml)
        "backend": BACKEND_NAME,
        "check_file_uptodate": SharedDigestChecker,  # content: a touch rebuilds nothing
        "reporter": KbuildReporter(outstream, options),
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
    path = state_dir(root) / "lock"
    if path in _held_locks:
        return
    check_own_folders(root)  # the lock would be written through the link
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


def toolchains_for(project: Project) -> list[Toolchain]:
    """Every arch's toolchain, with the optional tools the config asks for."""
    state = state_dir(project.root)
    toolchains = [
        find_toolchain(
            arch, state, project, user_space=bool(project.apps), linker=project.config.build.linker
        )
        for arch in project.arches
    ]
    for toolchain in toolchains:
        if project.config.build.strip and project.apps and toolchain.strip is None:
            raise ToolchainError(
                f"no strip for {toolchain.arch.name}, needed by `strip = true` in [build]",
                hint=f"apt-get install {toolchain.arch.binutils_package}, or set strip = false",
            )
    return toolchains


def select_arches(project: Project, arches: list[Arch] | None) -> Project:
    """Restrict a project to some of its arches (bpfbuild build --arch)."""
    if arches:
        unknown = [a.name for a in arches if a not in project.arches]
        if unknown:
            raise BpfBuildError(
                f"arch {', '.join(unknown)} is not in this project's arches "
                f"({', '.join(a.name for a in project.arches)})",
                hint="add it to `arches` in [build] of bpfbuild.toml",
            )
        project.arches = [a for a in project.arches if a in arches]
    return project


def prepare(project: Project) -> list[Toolchain]:
    """Before any task of a project is created: hold its lock, delete what killed
    builds left half-written, and find the toolchains (a missing tool is a clean error)."""
    require_buildable(project)
    acquire_lock(project.root)
    remove_partials(project.root)
    size_limit()  # a malformed $BPFBUILD_CACHE_SIZE is an error now, not in a task
    return toolchains_for(project)


def task_bpfbuild(
    root: Path | None = None, prefix: str = "", verify: bool = False
) -> Iterator[dict]:
    """doit task creator for a project: import it in a dodo.py to extend the graph.
    verify: also the verification tasks of the running kernel's arch."""
    root = (root or Path.cwd()).resolve()
    try:
        project = load_project(root)
        toolchains = prepare(project)
    except BpfBuildError as err:
        # Under plain `doit`, an error doit knows prints as one line, no traceback.
        raise InvalidDodoFile(err.describe()) from None
    yield from project_tasks(project, toolchains, prefix, verify=verify)


class _Loader(TaskLoader2):
    """Loads the project's tasks, and those of its own dodo.py when it has one. The
    project and toolchains are those the command already checked; where the dodo.py
    names bpfbuild's `task_bpfbuild`, that graph is this one (with the verification
    tasks when the command asks for them)."""

    def __init__(self, project: Project, toolchains: list[Toolchain], options: RunOptions) -> None:
        super().__init__()
        self.project, self.toolchains, self.options = project, toolchains, options
        self.tasks: list = []

    def setup(self, opt_values) -> None:
        pass

    def load_doit_config(self) -> dict:
        return _doit_config(self.project.root, self.options)

    def load_tasks(self, cmd, pos_args) -> list:
        project, toolchains, verify = self.project, self.toolchains, self.options.verify

        def task_bpfbuild_of_this_run():
            yield from project_tasks(project, toolchains, verify=verify)

        dodo = project.root / "dodo.py"
        if not dodo.is_file():
            # What load_tasks does with this one creator, without the source lookup it
            # makes to order creators by line (tokenize's regexes: ~5 ms a build).
            self.tasks = generate_tasks(
                "bpfbuild", task_bpfbuild_of_this_run(), task_bpfbuild_of_this_run.__doc__
            )
            return self.tasks
        namespace = dict(inspect.getmembers(_import_dodo(dodo)))
        if namespace.get("task_bpfbuild") is task_bpfbuild:
            namespace["task_bpfbuild"] = task_bpfbuild_of_this_run
        self.tasks = load_tasks(namespace, self.cmd_names, allow_delayed=cmd.execute_tasks)
        return self.tasks


def _import_dodo(path: Path):
    spec = importlib.util.spec_from_file_location("dodo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_doit(project: Project, doit_args: list[str], options: RunOptions) -> int:
    """Run a doit command (`run`, `clean`, `list`...) on the project; doit's exit code."""
    toolchains = prepare(project)
    fastpath.invalidate(project.root)  # before any task runs: see fastpath.py
    os.chdir(project.root)
    # StateDB is also a doit.BACKEND entry point (for plain `doit` on a project's
    # dodo.py); naming it here keeps bpfbuild working from a source tree.
    loader = _Loader(project, toolchains, options)
    main = DoitMain(
        loader, config_filenames=(), extra_config={"BACKEND": {BACKEND_NAME: BACKEND_LOCATION}}
    )
    main.BIN_NAME = "bpfbuild"
    code = main.run(doit_args)
    if code == 0 and options.on_success:
        options.on_success(loader.tasks)
    return code
