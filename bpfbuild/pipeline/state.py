"""Build state that survives any interruption: each task's record is committed as soon as
the task succeeds, and an output counts only while it has the content that was recorded.

As ninja's build log (appended as each edge finishes, an output whose recorded hash does
not match is dirty): a build killed at any moment loses at most the tasks that were running,
and whatever they left in place is rebuilt because no record vouches for it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from doit.dependency import FileChangedChecker, SqliteDB
from doit.tools import config_changed

from .. import safefs
from ..errors import BpfBuildError
from .actions import PARTIAL, call_signature
from .content import content_digest
from .layout import state_dir
from .names import COMPILE_COMMANDS, DB_NAME, OUTPUT_DIR, OUTPUTS_NAME, STATE_DIR
from .timestamps import is_racy, newest_time

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

    The state of each input is the one its step's run took as the tools read it
    (INPUTS_KEY in the task's values, see inputs_as_read), in place of the state doit's
    checker takes after the actions, when the file may already hold a newer edit.

    A record doit started but did not finish (an interrupt inside save_success) is never
    written: the previous record stays, and its target states no longer match. WAL with
    synchronous=NORMAL: a commit is durable when the process is killed (the OS has it),
    without an fsync per task."""

    desc = "sqlite3, each task's record committed as soon as it succeeds (bpfbuild)"

    def __init__(self, name: str, codec: Any, *, module_name: str | None = None) -> None:
        with _state_errors(name):
            super().__init__(name, codec, module_name=module_name)
            self._conn.execute("pragma journal_mode=wal")
            self._conn.execute("pragma synchronous=normal")
        self._recording: set[str] = set()
        self._as_read: dict[str, dict[str, list]] = {}

    def set(self, task_id: str, dependency: str, value: Any) -> None:
        if dependency == FIRST_KEY_OF_A_RECORD:
            self._recording.add(task_id)
            if isinstance(value, dict) and INPUTS_KEY in value:
                value = dict(value)
                self._as_read[task_id] = dict(value.pop(INPUTS_KEY))
            else:
                self._as_read.pop(task_id, None)
        as_read = self._as_read.get(task_id)
        if as_read is not None and dependency in as_read:
            value = as_read.pop(dependency)
        if dependency == LAST_KEY_OF_A_RECORD:
            for input_path, state in self._as_read.pop(task_id, {}).items():
                self._store(task_id, input_path, state)  # doit found them unchanged
        self._store(task_id, dependency, value)
        if dependency == LAST_KEY_OF_A_RECORD:
            self._recording.discard(task_id)
            record = self._cache[task_id]
            if task_id in self._dirty and TARGETS_KEY in (record.get(FIRST_KEY_OF_A_RECORD) or {}):
                with _state_errors(self.name):
                    self._conn.execute(
                        "insert or replace into doit values (?,?)",
                        (task_id, self.codec.encode(record)),
                    )
                    self._conn.commit()
                self._dirty.discard(task_id)

    def _store(self, task_id: str, dependency: str, value: Any) -> None:
        """Set one key of a task's record, unless it holds that value already."""
        if task_id not in self._cache:
            # keep the rest of the record: a row is replaced whole
            self._cache[task_id] = self._get_task_data(task_id)
        record = self._cache[task_id]
        if dependency not in record or record[dependency] != self.codec.decode(
            self.codec.encode(value)
        ):
            super().set(task_id, dependency, value)

    def remove(self, task_id: str) -> None:
        with _state_errors(self.name):
            super().remove(task_id)
            self._recording.discard(task_id)
            self._as_read.pop(task_id, None)
            self._conn.commit()

    def dump(self) -> None:
        self._dirty -= self._recording
        with _state_errors(self.name):
            super().dump()


@contextmanager
def _state_errors(name: str) -> Iterator[None]:
    """The state database cannot be written (a full disk, a read-only folder, damage
    that appeared while the build ran): an error with what to do, not doit's traceback.
    What was committed stays; the next build redoes the rest."""
    import sqlite3

    from doit.dependency import DatabaseException

    try:
        yield
    except (sqlite3.Error, DatabaseException) as err:
        text = str(err).splitlines()[0]
        raise BpfBuildError(
            f"cannot write the build state {os.path.relpath(name)}: {text}",
            hint="free space on its file system (or make .bpfbuild/ writable), then build "
            "again; the steps whose record was not written run again",
        ) from None


INPUTS_KEY = "_inputs_as_read_"
"""Key, in the values a step's run gives doit (tasks.run_step), of the state of each of
its inputs as its tools read them (inputs_as_read). StateDB records them as the inputs'
states and keeps the key out of the saved values."""
CHANGED_WHILE_ITS_STEP_RAN = "changed while its step ran"
"""The state of an input that changed while its step ran (its tools may have read
either version): it never matches a file, so the next build runs the step again."""


def input_state(st: os.stat_result, digest: str, vouched_ns: int) -> list:
    """What the record of an input holds: [size, mtime_ns, ctime_ns, inode, digest,
    vouched_ns]. The stat vouches for the digest only while the file is older than
    vouched_ns by the clock's granularity (timestamps.is_racy)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest, vouched_ns]


def _same_stat(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino, a.st_dev) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_ino,
        b.st_dev,
    )


class InputContentChecker(FileChangedChecker):
    """doit's check of a task's inputs (its file_dep), by content, never by an mtime
    alone: a file whose size, mtime, ctime and inode are those recorded, and that was
    older than its record by the clock's granularity, is unchanged without being read;
    any other file is hashed (content.CONTENT_DIGEST) and compared. Nobody can set a
    ctime back, so `touch -r`, `tar x`, `rsync -t` and `cp -p` of another version, and a
    tree whose files all have one mtime (a Nix store), are read. Each file is hashed
    once per run: every BPF object depends on vmlinux.h and libbpf's headers.

    doit records this class's name with each task and runs again a task recorded under
    another checker (SharedDigestChecker, bpfbuild's former check, recorded (mtime,
    size, digest) and trusted an equal mtime): no older state is misread."""

    def check_modified(self, file_path, file_stat, state) -> bool:
        if not isinstance(state, list | tuple) or len(state) != 6:
            return True  # changed while its step ran, or not a state of this checker
        size, mtime_ns, ctime_ns, inode, digest, vouched_ns = state
        if file_stat.st_size != size:
            return True
        if (file_stat.st_mtime_ns, file_stat.st_ctime_ns, file_stat.st_ino) == (
            mtime_ns,
            ctime_ns,
            inode,
        ) and not is_racy(max(mtime_ns, ctime_ns), vouched_ns):
            return False
        return digest != content_digest(file_path, file_stat)

    def get_state(self, dep, current_state):
        """The state of an input after a task's actions (tasks that are not bpfbuild's
        steps: a step's run gives StateDB the state its tools read); None when the
        recorded one still vouches for the file."""
        st = os.stat(dep)
        if (
            isinstance(current_state, list | tuple)
            and len(current_state) == 6
            and current_state[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            and not is_racy(newest_time(st), current_state[5])
        ):
            return None
        vouched_ns = time.time_ns()
        return input_state(st, content_digest(dep, st), vouched_ns)


@dataclass(frozen=True)
class InputSnapshot:
    """The inputs of a step as its run starts, before its tools read them."""

    started_ns: int
    """When it was taken."""
    stats: dict[str, os.stat_result]
    """The stat of each input that exists."""
    digests: dict[str, str]
    """The digest of each input changed within the clock's granularity of the start:
    its stat alone cannot show a change in that same tick."""


def snapshot_inputs(paths: Iterable[str]) -> InputSnapshot:
    """Take the inputs' snapshot: call it in the job's thread, just before the actions."""
    started_ns = time.time_ns()
    stats: dict[str, os.stat_result] = {}
    digests: dict[str, str] = {}
    for path in paths:
        try:
            st = os.stat(path)
            if is_racy(newest_time(st), started_ns):
                digests[path] = content_digest(path, st)
        except OSError:
            continue  # a missing input is doit's error, after the actions
        stats[path] = st
    return InputSnapshot(started_ns, stats, digests)


def inputs_as_read(
    paths: Iterable[str], before: InputSnapshot, own_outputs: str
) -> dict[str, list]:
    """The state of each input as the step's tools read it, taken after its actions in
    the job's thread (so that doit's main thread, which records the task later, cannot
    take a newer edit for what was read): the stat and digest of an input that did not
    change since the snapshot; CHANGED_WHILE_ITS_STEP_RAN for one that did, or for one
    not in the snapshot (a header its depfile names now) changed since the step
    started. Outputs of other steps (paths under own_outputs, the project's output/)
    are written only by steps that finished before this one started (doit's order):
    the depfile may name them first without a snapshot, however recent."""
    return {path: _as_read(path, before, own_outputs) for path in paths}


def _as_read(path: str, before: InputSnapshot, own_outputs: str) -> list:
    try:
        st = os.stat(path)
        digest = content_digest(path, st)
        vouched_ns = time.time_ns()
        after = os.stat(path)
    except OSError:
        return [CHANGED_WHILE_ITS_STEP_RAN]
    if not _same_stat(st, after):
        return [CHANGED_WHILE_ITS_STEP_RAN]  # changed while it was hashed
    start = before.stats.get(path)
    if start is not None:
        unchanged = _same_stat(start, after) and before.digests.get(path, digest) == digest
    else:
        unchanged = path.startswith(own_outputs) or not is_racy(
            newest_time(after), before.started_ns
        )
    return input_state(after, digest, vouched_ns) if unchanged else [CHANGED_WHILE_ITS_STEP_RAN]


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


TOOL_TEMPORARIES = re.compile(
    r"""
      .+\.partial                         # OUTPUT.partial, renamed into place when its step succeeds
    | .+\.partial\.tmp                    # clang: x.tmp.bpf.o-1a2b3c4d.partial.tmp (-o x.tmp.bpf.o.partial)
    | .+\.partial\.tmp[0-9a-f]{7}         # lld, LLVM's output buffer: x.partial.tmp1a2b3c4
    | .+\.partial\.temp-stream-[0-9a-f]{6}  # llvm-strip, llvm-objcopy
    | \.mold-[0-9A-Za-z]{6}               # mold: .mold-XXXXXX beside its -o, renamed over it
    | st[0-9A-Za-z]{6}                    # GNU strip and ar: stXXXXXX beside the file they rewrite
    """,
    re.VERBOSE,
)
"""The names of what a killed build can leave in output/: bpfbuild's OUTPUT.partial, and
each tool's own temporary, which it writes beside its output (OUTPUT.partial) and renames
or copies over it when done."""


def remove_partials(root: Path, keep: Collection[str] = ()) -> list[str]:
    """Delete what killed builds left half-written: every tool's temporary (TOOL_TEMPORARIES)
    under root/output/, and bpfbuild's own .partial files in .bpfbuild/ and beside the
    compile database. keep: names the project gives its outputs (an app named like a
    tool's temporary). Never follows a symlink (a symlinked output/ is not searched);
    call it holding the project's lock, so that no running build owns them. Returns
    what it deleted."""
    removed: list[str] = []

    def remove(path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # never follows the links inside
        else:
            os.unlink(path)  # a symlink itself, not what it points to
        removed.append(path)

    output = root / OUTPUT_DIR
    if output.is_dir() and not output.is_symlink():
        for folder, dirs, files in os.walk(output):  # os.walk does not enter symlinked folders
            for name in [*dirs, *files]:
                if name not in keep and TOOL_TEMPORARIES.fullmatch(name):
                    remove(os.path.join(folder, name))
            dirs[:] = [name for name in dirs if os.path.lexists(os.path.join(folder, name))]
    state = state_dir(root)
    if state.is_dir() and not state.is_symlink():
        for entry in state.iterdir():
            if entry.name.endswith(PARTIAL):  # toolchain probes, the no-op stamp
                remove(str(entry))
    if os.path.lexists(root / (COMPILE_COMMANDS + PARTIAL)):
        remove(str(root / (COMPILE_COMMANDS + PARTIAL)))
    return removed


"""In the state folder: every output the build's own steps may have made, with the step
that makes it (remove_dead_outputs)."""
OUTPUTS_FORMAT = 1


def read_record(path: Path) -> dict[str, str]:
    """The outputs a record holds ({path relative to the root: step id}); empty when
    there is none or it is not one (nothing can be known to be dead then)."""
    text = safefs.read_regular(path)  # never a FIFO's or a link's
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("format") != OUTPUTS_FORMAT:
        return {}
    outputs = data.get("outputs")
    if not isinstance(outputs, dict):
        return {}
    return {p: s for p, s in outputs.items() if isinstance(p, str) and isinstance(s, str)}


def replace_record(path: Path, outputs: Mapping[str, str]) -> None:
    """Write the record atomically: a temporary file renamed over it, under checked
    folders (safefs); a link there is replaced, never followed."""
    data = {"format": OUTPUTS_FORMAT, "outputs": dict(sorted(outputs.items()))}
    root = path.parent.parent
    safefs.write_file(root, path, (json.dumps(data, indent=0) + "\n").encode())


def is_removable(relative: str) -> bool:
    """True for a path the record may name: under output/ (bpfbuild's own folder), or
    the compile database at the root; relative, with no `.` or `..` part."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    return relative == COMPILE_COMMANDS or (parts[0] == OUTPUT_DIR and len(parts) > 1)


def remove_output(root: Path, relative: str) -> bool:
    """Unlink root/relative when it is a file or a link (the link itself), never
    following a link on the way: each folder is opened without following links, so a
    linked folder is not entered. A folder found where the output was is left alone.
    True when something was removed."""
    *folders, name = relative.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            try:
                inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                return False
            except OSError as err:
                if err.errno == errno.ELOOP:  # a link: not followed
                    return False
                raise
            os.close(fd)
            fd = inner
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            return False
        os.unlink(name, dir_fd=fd)
        return True
    finally:
        os.close(fd)


def remove_dead_outputs(
    root: Path, current: Mapping[str, str], judged: Callable[[str], bool]
) -> list[str]:
    """Remove the outputs earlier builds recorded that no step of this build makes (as
    ninja's dead outputs: nothing links against the skeleton of a deleted source),
    then record the outputs this build's steps may make. current: each output of the
    build's own steps, relative to root, with its step's id; judged: whether this
    build decides about a recorded output (not of an arch it does not build). Call it
    holding the project's lock, before any step runs. Returns what it removed.

    The record only grows before a step writes anything: a build killed at any moment
    leaves a record that names every output that exists, and the next build removes
    what this one did not get to."""
    path = root / STATE_DIR / OUTPUTS_NAME
    path.with_name(path.name + PARTIAL).unlink(missing_ok=True)  # a killed build's
    recorded = read_record(path)
    kept = {p: step for p, step in recorded.items() if is_removable(p)}
    removed = []
    for relative in sorted(p for p in kept if p not in current and judged(p)):
        try:
            if remove_output(root, relative):
                removed.append(relative)
        except OSError as err:
            raise BpfBuildError(
                f"cannot remove {relative}, an output no step makes any more: {err.strerror}",
                hint=f"remove {root / relative} yourself, then build again",
            ) from None
        del kept[relative]
    kept.update(current)
    if kept != recorded:
        replace_record(path, kept)
    return removed


DAMAGED_SUFFIX = ".damaged"
"""A damaged state database is moved to STATE_DIR/doit.sqlite.damaged (the last one)."""
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files sqlite keeps beside a database (WAL mode: -wal and -shm)."""


def database_problem(path: Path) -> str | None:
    """Why the state database at path cannot be used (a link, a folder, a FIFO,
    read-only, not a database, damaged pages), or None when it can, or is absent.
    Read before doit opens it: doit would follow a link, hang on a FIFO, and fail with
    a traceback on a damaged file."""
    for name in (path.name, *(path.name + c for c in _SQLITE_COMPANIONS)):
        try:
            st = os.lstat(path.with_name(name))
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            return f"{name} is a symbolic link"
        if stat.S_ISDIR(st.st_mode):
            return f"{name} is a folder"
        if not stat.S_ISREG(st.st_mode):
            return f"{name} is not a regular file"
        if not st.st_mode & stat.S_IWUSR or not os.access(path.with_name(name), os.W_OK):
            return f"{name} is read-only"
    if not os.path.lexists(path):
        return None
    import sqlite3

    try:
        connection = sqlite3.connect(os.fsencode(path))  # exists: checked above
        try:
            verdict = connection.execute("pragma quick_check").fetchone()
            if not verdict or verdict[0] != "ok":
                return f"damaged pages: {verdict[0] if verdict else 'no answer'}"
            connection.execute("select count(*) from sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as err:
        return str(err)
    return None


def repair_database(root: Path) -> str | None:
    """Move a damaged state database aside (a link is removed as a link, its target
    left alone), so that doit starts a new one and every step runs again; returns
    the note that says so, or None when the database is sound. Call it holding the
    project's lock."""
    path = root / STATE_DIR / DB_NAME
    problem = database_problem(path)
    if problem is None:
        return None
    aside = path.with_name(DB_NAME + DAMAGED_SUFFIX)
    shown = os.path.relpath(path, root)
    moved = False
    try:
        _remove_own(aside)
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.lexists(path):
            os.rename(path, aside)
            moved = True
        for companion in _SQLITE_COMPANIONS:
            _remove_own(path.with_name(DB_NAME + companion))
    except OSError as err:  # a read-only .bpfbuild/, a full disk
        raise safefs.refusal(root, getattr(err, "filename", None) or path, err) from None
    where = f"moved to {os.path.relpath(aside, root)}" if moved else "the link removed"
    return f"{shown}: the build state was damaged ({problem}); {where}; everything is rebuilt"


def _remove_own(path: Path) -> None:
    """Remove a file, link or folder in the state folder (a link as a link)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)  # never follows the links inside
    elif os.path.lexists(path):
        os.unlink(path)
