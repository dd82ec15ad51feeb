"""The step model: one frozen `Step` per thing the build does, made by the step builders
(tasks.py, verify/steps.py) and turned into a doit task by one function (tasks.to_doit).

A step says what it is (id, kind, the kbuild line it prints), what it reads and writes
(inputs, outputs, depfile), what decides that it is up to date (its config key, its
checks, its outputs as recorded), what it waits for without reading it (order_only),
and what it does: an action with a typed argument object, whose `commands` are the
command lines `-v` prints. The reporter, the no-op stamp (fastpath.Recorder) and the
compile database read steps; nothing reads doit's task dicts for them.

The argv a step runs is the argv `-v` shows. A step may carry a `Fallback`: other
arguments that make the same outputs, taken when something it would use is not ready
(a BPF compile parses vmlinux.h itself while the precompiled one is being built: no
compile waits for the PCH, and the object is the same bytes either way). Which of the
two a run takes is decided once, as the step starts, by its `StepRun`: doit calls the
reporter's execute_task just before a task's actions, in the thread that runs them,
so the reporter takes the choice there and prints it, and the action runs that very
choice (`StepRun.start` decides on its first call and returns the same after it).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar


def task_id(kind: str, item: str, arch: str | None = None, prefix: str = "") -> str:
    """The full doit name of a step, and the only place one is made: `bpf:x86_64/hello`;
    with no arch, `app:hello`. prefix names the project when a dodo.py holds several
    (`execsnoop.bpf:...`). doit's group of a step is its id up to the first colon."""
    return f"{prefix}{kind}:{arch}/{item}" if arch else f"{prefix}{kind}:{item}"


@dataclass(frozen=True)
class Command:
    """One command of a step, as `-v` prints it: a line that pastes into a shell."""

    argv: tuple[str, ...]
    stdout: str | None = None
    """The file the command's stdout is written to (bpftool btf dump, gen skeleton),
    relative to the step's folder as argv's paths are."""

    def shell(self) -> str:
        line = shlex.join(self.argv)
        return f"{line} > {shlex.quote(self.stdout)}" if self.stdout else line


class ActionArgs(Protocol):
    """What every action's argument object has, besides its own fields."""

    @property
    def cwd(self) -> str:
        """The folder the action's commands run in (the project root)."""
        ...

    @property
    def commands(self) -> tuple[Command, ...]:
        """What the action runs, as `-v` prints it; empty for an action that runs no
        tool (writing a JSON file)."""
        ...


A = TypeVar("A", bound=ActionArgs)


@dataclass(frozen=True)
class Fallback(Generic[A]):
    """Other arguments for a step's action that make the same outputs, taken when
    `ready` says, as the step starts, that what the step's own arguments use is not
    there yet."""

    args: A
    """The arguments taken instead (a BPF compile without -include-pch)."""
    ready: Callable[[], bool]
    """True when the step's own arguments can run (the PCH's key file matches)."""
    note: str
    """What `-v` says under the step's line when the fallback is taken."""


@dataclass(frozen=True)
class Step(Generic[A]):
    """One step of the build: a doit task, described once (see the module docstring)."""

    id: str
    """Its doit name, from task_id: `bpf:x86_64/hello`."""
    kind: str
    """What it does: `bpf`, `cc`, `link`, `verify`... (the id's kind)."""
    arch: str | None
    """The arch it builds for; None for a step of the whole project."""
    label: str | None = None
    """The kbuild label of its line (`BPF`, `CC`, `LD`); None: the step prints no line
    (groups, ordering steps, a VM's verification, which shows its own progress)."""
    shown: str = ""
    """The path its line shows (`src/hello.bpf.c`), relative to the project."""
    several_arches: bool = False
    """The project builds several arches: the line names this one."""
    action: Callable[[A], Any] | None = None
    """A module-level function of args; it returns a TaskFailed, values for doit to
    save (a dict), or None. None: a step that only groups or orders others."""
    args: A | None = None
    """The action's typed argument object."""
    fallback: Fallback[A] | None = None
    """Other arguments, taken while something the step uses is not ready."""
    inputs: tuple[str, ...] = ()
    """Absolute paths it reads (doit's file_dep): a change reruns it."""
    outputs: tuple[str, ...] = ()
    """Absolute paths it writes (doit's targets); each must keep the content recorded
    when the step last succeeded (state.TargetsAsRecorded)."""
    headers: tuple[str, ...] = ()
    """The inputs the previous run's depfile named (besides the source): after a run,
    the headers the new depfile names replace them."""
    depfile: str | None = None
    """The compiler's `.d` file among the outputs: after a run, the headers it names
    become inputs."""
    source: str | None = None
    """The source a compile step compiles, relative to the project: an entry of the
    compile database (BPF and user compiles), the one input its compiler does not
    search for (search.NothingShadows)."""
    config: Mapping[str, Any] | None = None
    """Everything besides the inputs that decides the outputs (tool, version, arch,
    argv): a change reruns the step (doit's config_changed)."""
    checks: tuple[Any, ...] = ()
    """More doit up-to-date checks (a callable with its arguments, or a bool)."""
    order_only: tuple[str, ...] = ()
    """Ids of steps that run first without being inputs (doit's task_dep)."""
    doc: str | None = None
    """One line for `doit list`."""

    @property
    def commands(self) -> tuple[Command, ...]:
        """What the step runs when nothing is missing (its own arguments)."""
        return self.args.commands if self.args is not None else ()

    @property
    def every_command(self) -> tuple[Command, ...]:
        """Its commands and those of its fallback: every tool it may run."""
        fallback = self.fallback.args.commands if self.fallback else ()
        return self.commands + fallback

    @property
    def plain_args(self) -> A | None:
        """The arguments that need nothing prepared: the fallback's when it has one
        (the compile database's commands: an editor's clang may not read the PCH)."""
        return self.fallback.args if self.fallback else self.args


class StepRun(Generic[A]):
    """One run of a step in one build: which arguments it takes is decided once, by the
    first call of start (the reporter's, just before the action), and kept."""

    def __init__(self, step: Step[A]) -> None:
        self.step = step
        self._args: A | None = None
        self.fell_back = False
        """The fallback was taken."""

    def start(self) -> A:
        """The arguments this run takes: the step's own unless its fallback is not
        ready. Decided on the first call; later calls return the same."""
        if self._args is None:
            step = self.step
            assert step.args is not None, f"{step.id} has no action"
            fallback = step.fallback
            self.fell_back = fallback is not None and not fallback.ready()
            self._args = fallback.args if fallback and self.fell_back else step.args
        return self._args


def step_line(step: Step, indent: str = "  ") -> str:
    """The kbuild-style line of a step: `  BPF     src/x.bpf.c`, naming the arch when
    the project builds several. With indent="", one space separates label and path
    (`BPF src/x.bpf.c`), as inside a sentence."""
    label = f"{step.label:<8}" if indent else f"{step.label} "
    suffix = f" ({step.arch})" if step.several_arches else ""
    return f"{indent}{label}{step.shown}{suffix}"
