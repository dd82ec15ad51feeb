"""Build state that survives any interruption: each task's record is committed as soon as
the task succeeds, and an output counts only while it has the content that was recorded.

As ninja's build log (appended as each edge finishes, an output whose recorded hash does
not match is dirty): a build killed at any moment loses at most the tasks that were running,
and whatever they left in place is rebuilt because no record vouches for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from doit.dependency import MD5Checker, SqliteDB
from doit.tools import config_changed

from .actions import PARTIAL, call_signature
from .content import content_digest
from .layout import OUTPUT_DIR

BACKEND_NAME = "bpfbuild-sqlite3"
"""The name DOIT_CONFIG gives StateDB (a doit.BACKEND plugin, see pyproject.toml)."""
BACKEND_LOCATION = "bpfbuild.pipeline.state:StateDB"

TARGETS_KEY = "_targets_"
"""Key, in a task's saved values, of its targets' recorded states."""
LAST_KEY_OF_A_RECORD = "deps:"
"""doit's Dependency.save_success sets a task's values first and this key last (checked
by tests/test_doit_internals.py against the pinned doit)."""
FIRST_KEY_OF_A_RECORD = "_values_:"


class StateDB(SqliteDB):
    """doit's sqlite3 backend, but the record of a task that has targets is written and
    committed the moment doit finishes saving it, instead of all records at the end of
    the run. (Records without targets, such as doit's group tasks, vouch for no file:
    they are written at the end, as doit does.) A value equal to the stored one is not
    written again, so a build that runs nothing writes nothing.

    A record doit started but did not finish (an interrupt inside save_success) is never
    written: the previous record stays, and its target states no longer match. WAL with
    synchronous=NORMAL: a commit is durable when the process is killed (the OS has it),
    without an fsync per task."""

    desc = "sqlite3, each task's record committed as soon as it succeeds (bpfbuild)"

    def __init__(self, name: str, codec: Any, *, module_name: str | None = None) -> None:
        super().__init__(name, codec, module_name=module_name)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._recording: set[str] = set()

    def set(self, task_id: str, dependency: str, value: Any) -> None:
        if task_id not in self._cache:
            # keep the rest of the record: a row is replaced whole
            self._cache[task_id] = self._get_task_data(task_id)
        record = self._cache[task_id]
        if dependency == FIRST_KEY_OF_A_RECORD:
            self._recording.add(task_id)
        if dependency not in record or record[dependency] != self.codec.decode(
            self.codec.encode(value)
        ):
            super().set(task_id, dependency, value)
        if dependency == LAST_KEY_OF_A_RECORD:
            self._recording.discard(task_id)
            if task_id in self._dirty and TARGETS_KEY in (record.get(FIRST_KEY_OF_A_RECORD) or {}):
                self._conn.execute(
                    "insert or replace into doit values (?,?)", (task_id, self.codec.encode(record))
                )
                self._conn.commit()
                self._dirty.discard(task_id)

    def remove(self, task_id: str) -> None:
        super().remove(task_id)
        self._recording.discard(task_id)
        self._conn.commit()

    def dump(self) -> None:
        self._dirty -= self._recording
        super().dump()


class SharedDigestChecker(MD5Checker):
    """doit's content check, with content.CONTENT_DIGEST instead of MD5, hashing each
    file once per run: every BPF object depends on vmlinux.h and libbpf's headers, which
    doit would otherwise hash again after each object, in the main thread, holding back
    the next job. doit records this class's name with each task and runs again a task
    recorded under another checker: a state written with MD5 (SharedMD5Checker) is never
    compared with these digests."""

    def check_modified(self, file_path, file_stat, state) -> bool:
        timestamp, size, file_digest = state
        if file_stat.st_mtime == timestamp:
            return False
        if file_stat.st_size != size:
            return True
        return file_digest != content_digest(file_path, file_stat)

    def get_state(self, dep, current_state):
        st = os.stat(dep)
        if current_state and current_state[0] == st.st_mtime:
            return None
        return st.st_mtime, st.st_size, content_digest(dep, st)


def file_state(path: str) -> list:
    """[mtime_ns, size, digest, ctime_ns] of a file: what a target's record holds. A
    symlink target (an app's alias) is recorded as the link itself, ["link", its text],
    not as what it points to: relinking the app must not make its aliases out of date."""
    if os.path.islink(path):
        return ["link", os.readlink(path)]
    st = os.stat(path)
    return [st.st_mtime_ns, st.st_size, content_digest(path, st), st.st_ctime_ns]


def has_recorded_content(path: str, recorded: list | None) -> bool:
    """True when path still has the content recorded for it: the same size, mtime and
    ctime (a rewrite that puts the mtime back still moves the ctime), else the same
    digest."""
    if recorded and recorded[0] == "link":
        return os.path.islink(path) and os.readlink(path) == recorded[1]
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not recorded or len(recorded) != 4:
        return False
    mtime_ns, size, digest, ctime_ns = recorded
    if st.st_size != size:
        return False
    if st.st_mtime_ns == mtime_ns and st.st_ctime_ns == ctime_ns:
        return True
    return content_digest(path, st) == digest


class TargetsAsRecorded:
    """doit `uptodate` item: a task is up to date only while each of its targets has the
    content recorded when the task last succeeded. doit alone checks only that targets
    exist, so an output replaced by a build killed before it saved its state would be
    trusted. Records the states (a value saver, run by doit after the actions succeed,
    before it saves the task) and checks them on the next run."""

    fastpath_covered = True
    """The no-op stamp (fastpath.py) records the stat of every target, so a target
    changed since is seen there too."""

    def configure_task(self, task) -> None:
        task.value_savers.append(lambda: {TARGETS_KEY: {t: file_state(t) for t in task.targets}})

    def __call__(self, task, values: dict) -> bool:
        recorded = values.get(TARGETS_KEY) or {}
        return all(has_recorded_content(target, recorded.get(target)) for target in task.targets)


cast(Any, TargetsAsRecorded).__signature__ = call_signature(TargetsAsRecorded)


class ConfigChanged(config_changed):
    """doit's config_changed, with the signature doit inspects at each call stored
    (see actions.signature_once)."""

    __signature__ = call_signature(config_changed)


LEFTOVER_SUFFIXES = (PARTIAL, PARTIAL + ".tmp")
"""OUTPUT.partial, and the temporary a tool writes before renaming it to its -o
(clang: `x.tmp.bpf.o-1a2b3c4d.partial.tmp` for `-o x.tmp.bpf.o.partial`)."""


def remove_partials(root: Path) -> list[str]:
    """Delete the temporaries (LEFTOVER_SUFFIXES) a killed build left under root/output/,
    never following a symlink (a symlinked output/ is not searched). Call it holding the
    project's lock, so that no running build owns them. Returns what it deleted."""
    output = root / OUTPUT_DIR
    if output.is_symlink() or not output.is_dir():
        return []
    removed = []
    for folder, _dirs, files in os.walk(output):  # os.walk does not enter symlinked folders
        for name in files:
            if name.endswith(LEFTOVER_SUFFIXES):
                path = os.path.join(folder, name)
                os.unlink(path)  # a symlink itself, not what it points to
                removed.append(path)
    return removed
