"""What bpfbuild relies on in doit beyond its documented API, checked against the installed
doit: if a doit release changes any of it, these tests fail loudly (widen the pin in
pyproject.toml only when they pass)."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import sqlite3
import threading
import time
from importlib.metadata import entry_points, requires, version
from pathlib import Path

import doit
from doit.control import TaskControl
from doit.dependency import Dependency, JSONCodec, SqliteDB
from doit.reporter import ConsoleReporter
from doit.runner import MThreadRunner, Runner
from doit.task import Task
from packaging.requirements import Requirement

from bpfbuild.pipeline.state import (
    BACKEND_LOCATION,
    BACKEND_NAME,
    CHANGED_WHILE_ITS_STEP_RAN,
    FIRST_KEY_OF_A_RECORD,
    INPUTS_KEY,
    LAST_KEY_OF_A_RECORD,
    TARGETS_KEY,
    InputContentChecker,
    StateDB,
    TargetsAsRecorded,
)


def test_installed_doit_is_in_the_pinned_range() -> None:
    (pin,) = [Requirement(r) for r in requires("bpfbuild") if Requirement(r).name == "doit"]
    assert pin.specifier.contains(version("doit")), (version("doit"), str(pin))
    assert (
        doit.__version__
        == tuple(int(p) for p in version("doit").split("."))[: len(doit.__version__)]
    )


def test_sqlite_backend_has_what_state_db_uses() -> None:
    for name in ("_conn", "_cache", "_dirty"):
        assert name in SqliteDB.__init__.__code__.co_names, name
    assert callable(SqliteDB._get_task_data)


def test_the_backend_plugin_is_registered_for_plain_doit() -> None:
    (point,) = [p for p in entry_points(group="doit.BACKEND") if p.name == BACKEND_NAME]
    assert f"{point.module}:{point.attr}" == BACKEND_LOCATION


def make_task(tmp_path: Path) -> Task:
    source, target = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("input\n")

    def copy() -> None:
        target.write_text(source.read_text())

    return Task(
        "copy",
        actions=[copy],
        file_dep=[str(source)],
        targets=[str(target)],
        uptodate=[TargetsAsRecorded()],
    )


def run_without_finishing(task: Task, db: Path) -> Dependency:
    """Run one task as doit's runner does, but never close the state (as a killed build)."""
    dep_manager = Dependency(StateDB, str(db), checker_cls=InputContentChecker)
    control = TaskControl([task])
    control.process(None)
    Runner(dep_manager, ConsoleReporter(io.StringIO(), {})).run_tasks(control.task_dispatcher())
    return dep_manager


def committed_record(db: Path, task_id: str) -> dict:
    """The record another process reads now: only what is committed."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("select task_data from doit where task_id=?", (task_id,)).fetchone()
    return json.loads(row[0]) if row else {}


def test_a_task_is_committed_as_soon_as_it_succeeds(tmp_path: Path) -> None:
    """doit's runner calls the value savers, then Dependency.save_success, which sets the
    values first and `deps:` last: StateDB commits there, before the run ends."""
    task = make_task(tmp_path)
    run_without_finishing(task, tmp_path / "state.sqlite")
    record = committed_record(tmp_path / "state.sqlite", "copy")
    assert FIRST_KEY_OF_A_RECORD in record and LAST_KEY_OF_A_RECORD in record
    (target,) = task.targets
    assert record[FIRST_KEY_OF_A_RECORD][TARGETS_KEY][target][1:3] == [
        6,
        hashlib.sha256(b"input\n").hexdigest(),
    ]
    assert list(record)[0] == FIRST_KEY_OF_A_RECORD and list(record)[-1] == LAST_KEY_OF_A_RECORD


def test_a_record_interrupted_halfway_is_not_written(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    state = StateDB(str(db), codec=JSONCodec())
    state.set("t", FIRST_KEY_OF_A_RECORD, {"v": 1, TARGETS_KEY: {}})
    state.set("t", LAST_KEY_OF_A_RECORD, [])
    assert committed_record(db, "t")[FIRST_KEY_OF_A_RECORD]["v"] == 1  # at once
    state.set("t", FIRST_KEY_OF_A_RECORD, {"v": 2, TARGETS_KEY: {}})  # never finished
    state.dump()
    assert committed_record(db, "t")[FIRST_KEY_OF_A_RECORD]["v"] == 1


def test_records_without_targets_wait_and_unchanged_ones_are_not_written(tmp_path: Path) -> None:
    """doit saves its group tasks (no targets) on every run: no commit each time."""
    db = tmp_path / "state.sqlite"
    state = StateDB(str(db), codec=JSONCodec())
    state.set("group", FIRST_KEY_OF_A_RECORD, {})
    state.set("group", LAST_KEY_OF_A_RECORD, ("a", "b"))
    assert committed_record(db, "group") == {}  # not yet: it vouches for no file
    state.dump()
    assert committed_record(db, "group")[LAST_KEY_OF_A_RECORD] == ["a", "b"]
    again = StateDB(str(db), codec=JSONCodec())
    again.set("group", FIRST_KEY_OF_A_RECORD, {})
    again.set("group", LAST_KEY_OF_A_RECORD, ("a", "b"))
    assert not again._dirty


def test_the_inputs_are_recorded_as_the_run_read_them(tmp_path: Path) -> None:
    """tasks.run_step puts the state of each input as its tools read it in the task's
    values, after the actions: StateDB records those in place of the states doit's
    checker takes later, in the main thread (which save_success asks for only after it
    set the values), and keeps the key out of the saved values."""
    source, target = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("input\n")

    def copy(task: Task) -> None:
        target.write_text(source.read_text())
        task.values[INPUTS_KEY] = {str(source): [CHANGED_WHILE_ITS_STEP_RAN]}

    task = Task(
        "copy",
        actions=[copy],
        file_dep=[str(source)],
        targets=[str(target)],
        uptodate=[TargetsAsRecorded()],
    )
    db = tmp_path / "state.sqlite"
    run_without_finishing(task, db)
    record = committed_record(db, "copy")
    assert record[str(source)] == [CHANGED_WHILE_ITS_STEP_RAN]
    assert INPUTS_KEY not in record[FIRST_KEY_OF_A_RECORD]
    again = Task(
        "copy",
        actions=None,
        file_dep=[str(source)],
        targets=[str(target)],
        uptodate=[TargetsAsRecorded()],
    )
    dep_manager = Dependency(StateDB, str(db), checker_cls=InputContentChecker)
    assert dep_manager.get_status(again, {"copy": again}).status == "run"


def test_a_target_changed_after_its_record_makes_the_task_run(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    run_without_finishing(make_task(tmp_path), db)
    (tmp_path / "out.txt").write_text("other\n")  # same size, other content
    task = make_task(tmp_path)
    dep_manager = Dependency(StateDB, str(db), checker_cls=InputContentChecker)
    assert dep_manager.get_status(task, {"copy": task}).status == "run"
    (tmp_path / "out.txt").write_text("input\n")  # the recorded content again
    assert dep_manager.get_status(task, {"copy": task}).status == "up-to-date"


def test_the_pch_starts_before_the_compiles_that_wait_with_it(tmp_path: Path) -> None:
    """tasks.StepBuilder.pch_first: in doit's threaded runner all of them wait for
    vmlinux.h, in a set (arbitrary order). doit queues ready tasks first in, first out,
    so the PCH is queued before the no-op task that releases the compiles: it is among
    the first two jobs of two workers whatever the set's order (which of the two
    threads starts first is up to the threads)."""
    started = []

    def run(name: str, seconds: float) -> None:
        started.append(name)
        time.sleep(seconds)

    for trial in range(10):
        started.clear()
        compiles = [
            Task(f"bpf{i}", actions=[(run, (f"bpf{i}", 0.05))], task_dep=["order"])
            for i in range(trial % 5 + 3)
        ]
        tasks = [
            Task("vmlinux", actions=[(run, ("vmlinux", 0.1))]),
            Task("pch", actions=[(run, ("pch", 0.05))], task_dep=["vmlinux"]),
            Task("order", actions=None, task_dep=["vmlinux"], uptodate=[True]),
            *compiles,
        ]
        control = TaskControl(tasks)
        control.process(None)  # all, in definition order: `bpfbuild build`
        dep_manager = Dependency(StateDB, str(tmp_path / f"{trial}.sqlite"))
        MThreadRunner(dep_manager, ConsoleReporter(io.StringIO(), {}), num_process=2).run_all(
            control.task_dispatcher()
        )
        assert started[0] == "vmlinux" and "pch" in started[1:3], started
        assert len(started) == len(tasks) - 1


def test_the_reporter_sees_a_task_just_before_its_actions_in_their_thread(tmp_path: Path) -> None:
    """steps.StepRun: the reporter's execute_task takes a step's arguments, which the
    action then runs. doit's threaded runner calls execute_task in the job's thread,
    right before the task's actions, with nothing of that task in between."""
    events: list[tuple[str, str, int]] = []

    class Recording(ConsoleReporter):
        def execute_task(self, task: Task) -> None:
            events.append(("shown", task.name, threading.get_ident()))

    def act(name: str) -> None:
        events.append(("ran", name, threading.get_ident()))

    tasks = [Task(f"t{i}", actions=[(act, (f"t{i}",))]) for i in range(6)]
    control = TaskControl(tasks)
    control.process(None)
    dep_manager = Dependency(StateDB, str(tmp_path / "state.sqlite"))
    MThreadRunner(dep_manager, Recording(io.StringIO(), {}), num_process=2).run_all(
        control.task_dispatcher()
    )
    for task in tasks:
        shown, ran = [e for e in events if e[1] == task.name]
        assert shown[0] == "shown" and ran[0] == "ran"
        assert shown[2] == ran[2]  # one thread: nothing can come between them


def test_run_accepts_a_reporter_instance() -> None:
    """engine.doit_config hands doit a KbuildReporter instance, holding the run's options."""
    from doit.cmd_run import Run

    assert "also accepts reporter instances" in inspect.getsource(Run._execute)


def test_one_creator_loads_as_generate_tasks_makes_it() -> None:
    """engine._Loader, for a project without dodo.py, calls generate_tasks with its one
    creator instead of load_tasks (which reads the creator's source to order creators)."""
    from doit.loader import generate_tasks, load_tasks

    def task_bpfbuild():
        yield {"name": "a", "actions": None, "file_dep": ["x"]}
        yield {"name": "b", "actions": None, "task_dep": ["bpfbuild:a"]}

    loaded = load_tasks({"task_bpfbuild": task_bpfbuild}, ("run", "list"))
    generated = generate_tasks("bpfbuild", task_bpfbuild(), task_bpfbuild.__doc__)
    assert [(t.name, t.file_dep, t.task_dep, t.subtask_of, t.doc) for t in loaded] == [
        (t.name, t.file_dep, t.task_dep, t.subtask_of, t.doc) for t in generated
    ]
    assert "getsourcelines" in inspect.getsource(load_tasks.__globals__["_get_task_creators"])
