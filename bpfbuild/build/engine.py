"""Run the task graph with doit embedded as a library: loader, kbuild-style reporter, lock."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import inspect
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doit.cmd_base import TaskLoader2
from doit.control import ExecNode
from doit.dependency import MD5Checker
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidDodoFile
from doit.loader import load_tasks
from doit.reporter import ConsoleReporter

from . import fastpath
from .actions import content_md5
from ..arch import Arch, host_arch
from ..errors import BpfBuildError, ToolchainError
from .layout import state_dir
from .project import Project, load_project
from .tasks import project_tasks
from .toolchain import Toolchain, find_toolchain

DB_NAME = "doit.sqlite"


class KbuildReporter(ConsoleReporter):
    """One short line per step (`  BPF     src/hello.bpf.c`); with -v also the commands.
    Failures show the tool's own diagnostics; up-to-date tasks print nothing."""

    desc = "bpfbuild kbuild-style output"
    verbose = False

    def execute_task(self, task) -> None:
        if not task.actions or not task.meta:
            return
        self.write(task.title() + "\n")
        if self.verbose:
            for command in task.meta["commands"]:
                self.write(f"    cd {shlex.quote(task.meta['cwd'])} && {shlex.join(command)}\n")
        self.outstream.flush()

    def add_success(self, task) -> None:
        if self.verbose and task.values.get("pch") is False and task.meta \
                and "-include-pch" in task.meta["commands"][0]:
            self.write(f"    {task.meta['line'].split()[-1]}: vmlinux.h.pch was not ready yet, "
                       "compiled without -include-pch (same object)\n")
        size = task.values.get("size") if task.meta else None
        if size is not None:
            needed = task.values.get("needed") or []
            linkage = "dynamic: " + ", ".join(needed) if needed else "static, no NEEDED entry"
            target = task.meta["line"].split()[-1]
            self.write(f"  BIN     {target}: {size / 1024:.0f} KiB, {linkage}\n")

    def add_failure(self, task, fail) -> None:
        self.failures.append({"task": task, "exception": fail})
        line = task.meta["line"].strip() if task.meta else task.name
        self.write(f"error: {line} failed\n{fail.get_msg().rstrip()}\n")

    def skip_uptodate(self, task) -> None:
        pass

    def skip_ignore(self, task) -> None:
        pass

    def complete_run(self) -> None:
        if self.runtime_errors:
            self.write("error: " + "\n".join(self.runtime_errors) + "\n")


class _OrderedSet(dict):
    """The `set` API doit's dispatcher uses (add, in, iteration), in insertion order."""

    def add(self, item) -> None:
        self[item] = None


def _dispatch_in_definition_order(init):
    """doit keeps the tasks that wait for a task in a set, so when vmlinux.h is done
    the next ones start in an arbitrary order. Insertion order is definition order:
    the PCH starts first, and the other jobs compile without it meanwhile. Only the
    order changes; should a doit release drop the attribute, nothing breaks."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        if type(getattr(self, "waiting_me", None)) is set and not self.waiting_me:
            self.waiting_me = _OrderedSet()

    return wrapper


ExecNode.__init__ = _dispatch_in_definition_order(ExecNode.__init__)


class SharedMD5Checker(MD5Checker):
    """doit's content check, hashing each file once per run: every BPF object depends
    on vmlinux.h and libbpf's headers, which doit would otherwise hash again after
    each object, in the main thread, holding back the next job."""

    def _hash(self, path: str) -> tuple[float, int, str]:
        st = os.stat(path)
        return st.st_mtime, st.st_size, content_md5(path)

    def check_modified(self, file_path, file_stat, state) -> bool:
        timestamp, size, file_md5 = state
        if file_stat.st_mtime == timestamp:
            return False
        if file_stat.st_size != size:
            return True
        return file_md5 != self._hash(file_path)[2]

    def get_state(self, dep, current_state):
        timestamp = os.path.getmtime(dep)
        if current_state and current_state[0] == timestamp:
            return None
        return self._hash(dep)


def doit_config(root: Path, jobs: int | None = None, verbose: bool = False,
                steps_to_stderr: bool = False) -> dict[str, Any]:
    """DOIT_CONFIG shared by `bpfbuild build` and a project's own dodo.py.

    steps_to_stderr: print the step lines on stderr, keeping stdout for a machine
    format (`bpfbuild verify --format json`)."""
    state = state_dir(root)
    state.mkdir(exist_ok=True)
    KbuildReporter.verbose = verbose
    return {
        "dep_file": str(state / DB_NAME),
        "backend": "sqlite3",          # tolerates concurrent readers, one file
        "check_file_uptodate": SharedMD5Checker,  # content: a touch rebuilds nothing
        "reporter": KbuildReporter,
        "outfile": sys.stderr if steps_to_stderr else sys.stdout,
        # No capture: doit captures a Python action's output by swapping sys.stdout
        # without a lock, which threads race on. Actions print nothing themselves;
        # a failure carries the tool's diagnostics in its TaskFailed.
        "verbosity": 2,
        "num_process": jobs or os.cpu_count() or 1,
        "par_type": "thread",          # actions are subprocesses; no pickling
    }


_held_locks: dict[Path, int] = {}


def acquire_lock(root: Path) -> None:
    """Hold .bpfbuild/lock for the life of this process; wait, saying so, if taken."""
    path = state_dir(root) / "lock"
    if path in _held_locks:
        return
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        print(f"bpfbuild: waiting for another build in {root} (pid {holder}) to finish...",
              file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held_locks[path] = fd


def toolchains_for(project: Project) -> list[Toolchain]:
    """Every arch's toolchain, with the optional tools the config asks for."""
    state = state_dir(project.root)
    toolchains = [find_toolchain(arch, state) for arch in project.arches]
    for toolchain in toolchains:
        if project.config.build.strip and toolchain.strip is None:
            raise ToolchainError(
                f"no strip for {toolchain.arch.name}, needed by `strip = true` in [build]",
                hint=f"apt-get install {'binutils' if toolchain.arch == host_arch() else 'binutils-' + toolchain.arch.gnu_triplet}"
                ", or set strip = false")
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


_preloaded: dict[Path, tuple[Project, list[Toolchain]]] = {}
_with_verify_tasks = False
"""Set by `bpfbuild verify`/`test`: task_bpfbuild then adds the verification tasks."""


def preload(project: Project) -> None:
    """Find the toolchains before doit starts, so that a missing tool is a clean
    error, and so that task_bpfbuild reuses this project rather than reloading it."""
    _preloaded[project.root] = (project, toolchains_for(project))


def task_bpfbuild(root: Path | None = None, prefix: str = ""):
    """doit task creator for a project: import it in a dodo.py to extend the graph."""
    root = (root or Path.cwd()).resolve()
    acquire_lock(root)
    if root not in _preloaded:
        try:
            preload(load_project(root))
        except BpfBuildError as err:
            # Under plain `doit`, an error doit knows prints as one line, no traceback.
            raise InvalidDodoFile(err.message + (f"\nhint: {err.hint}" if err.hint else "")) from None
    project, toolchains = _preloaded[root]
    yield from project_tasks(project, toolchains, prefix, verify=_with_verify_tasks)


class _Loader(TaskLoader2):
    """Loads the project's tasks, and those of its own dodo.py when it has one."""

    def __init__(self, root: Path, jobs: int | None, verbose: bool, steps_to_stderr: bool) -> None:
        super().__init__()
        self.root, self.jobs, self.verbose = root, jobs, verbose
        self.steps_to_stderr = steps_to_stderr

    def setup(self, opt_values) -> None:
        pass

    def load_doit_config(self) -> dict:
        return doit_config(self.root, self.jobs, self.verbose, self.steps_to_stderr)

    def load_tasks(self, cmd, pos_args) -> list:
        dodo = self.root / "dodo.py"
        if dodo.is_file():
            namespace = dict(inspect.getmembers(_import_dodo(dodo)))
        else:
            namespace = {"task_bpfbuild": lambda: task_bpfbuild(self.root)}
        self.tasks = load_tasks(namespace, self.cmd_names, allow_delayed=cmd.execute_tasks)
        return self.tasks


def _import_dodo(path: Path):
    spec = importlib.util.spec_from_file_location("dodo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_doit(root: Path, doit_args: list[str], jobs: int | None = None, verbose: bool = False,
             verify: bool = False, steps_to_stderr: bool = False,
             on_success: Callable[[list], None] | None = None) -> int:
    """Run a doit command (`run`, `clean`, `list`...) on the project; doit's exit code.
    With verify, the graph also holds the verification tasks. on_success gets doit's
    tasks after a run that succeeded (bpfbuild build writes the no-op stamp)."""
    global _with_verify_tasks
    _with_verify_tasks = verify
    acquire_lock(root)
    fastpath.invalidate(root)  # before any task runs: see fastpath.py
    os.chdir(root)
    loader = _Loader(root, jobs, verbose, steps_to_stderr)
    main = DoitMain(loader, config_filenames=())
    main.BIN_NAME = "bpfbuild"
    code = main.run(doit_args)
    if code == 0 and on_success:
        on_success(loader.tasks)
    return code
