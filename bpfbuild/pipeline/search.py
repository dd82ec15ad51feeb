"""Negative dependencies of a compile: where it looked for its headers, and the paths that
must stay absent for it to find the same ones again.

A compile's depfile names the headers it used, not where it looked first. A header
created earlier in the search path (`src/shadow.h` in front of the `include/shadow.h`
in use), or a search folder that did not exist and now does, changes what the same
command compiles without touching any of its inputs. After a compile runs, its run
records where it looked (`lookup_record`): the search path its command had (the
compiler says, `-E -v`), and the paths before its headers that existed then and that
it passed over. On the next build, the check `NothingShadows` derives from that
record and the headers of the depfile the paths that would hide each of them, and
runs the compile again when one exists. Only stat() is needed (os.path.exists), each
path once a run. The no-op stamp watches the folders those paths would appear in
(fastpath.Recorder).

For a header found in folder D as NAME, the paths before it are NAME in every folder
the compiler searches before D: for `#include "NAME"` the folder of the file that
includes it (any of the project's own files the depfile names: which one included it
is not known), then the -iquote folders, then the <...> chain (-I, -isystem, the
compiler's own folders, -idirafter) in the compiler's order. A header found under
several of them is taken under each. That is a superset: a path that would not hide
the header (an `#include <NAME>` skips the includer's folder) may rebuild the compile
once, after which it is recorded as passed over; one that would hide it is never
missed. Headers the compile used are not paths to keep absent (`#include_next` finds
a header of the same name after the one that includes it). A folder of the chain that
did not exist when the compile ran must stay absent: what it would hold could answer
any include, a `__has_include` too.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from .actions import call_signature
from .layout import OUTPUT_DIR, STATE_DIR
from .timestamps import is_racy, newest_time

SEARCH_KEY = "_header_lookup_"
"""Key, in a compile's recorded values, of where it looked for its headers
(lookup_record)."""

_SEPARATE_VALUE = frozenset(
    {
        "-I",
        "-iquote",
        "-isystem",
        "-idirafter",
        "-isysroot",
        "--sysroot",
        "-target",
        "-B",
        "-iprefix",
        "-iwithprefix",
        "-iwithprefixbefore",
        "-imultilib",
        "-imultiarch",
        "-resource-dir",
        "--gcc-toolchain",
    }
)
"""Options that change where headers are searched, whose value is the next word."""
_JOINED_VALUE = (
    "-I",
    "-iquote",
    "-isystem",
    "-idirafter",
    "-isysroot",
    "--sysroot=",
    "--target=",
    "-B",
    "--gcc-toolchain=",
    "-resource-dir=",
)
"""The same options with their value in the same word (`-Isrc`, `--sysroot=/x`)."""
_ALONE = frozenset({"-nostdinc", "-nostdlibinc", "-nobuiltininc", "-m32", "-m64", "-mx32", "-I-"})
"""Options without a value that change the compiler's own folders."""


def search_flags(argv: Sequence[str]) -> list[str]:
    """The words of a compile command (after the compiler) that decide where it looks
    for headers; nothing else (no -include-pch, no -o), so that the probe runs alone."""
    flags: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word in _SEPARATE_VALUE:
            flags += [word, next(words, "")]
        elif word in _ALONE or word.startswith(_JOINED_VALUE):
            flags.append(word)
    return flags


@dataclass(frozen=True)
class SearchPath:
    """Where a compile looks for headers, in order; absolute, normalized folders."""

    quote: tuple[str, ...]
    """-iquote folders: searched for `#include "..."` only, after the including
    file's own folder."""
    angle: tuple[str, ...]
    """The <...> chain, searched by both forms: -I, -isystem, the compiler's own
    folders, -idirafter, as the compiler orders them (it drops duplicates)."""
    missing: tuple[str, ...]
    """Folders of either list that did not exist: each must stay absent."""


@functools.cache
def _interned(
    quote: tuple[str, ...], angle: tuple[str, ...], missing: tuple[str, ...]
) -> SearchPath:
    """One object per distinct search path in a run, so that memos key by it cheaply."""
    return SearchPath(quote, angle, missing)


@dataclass(frozen=True)
class Lookup:
    """Where one compile looked for its headers: what its run records."""

    search: SearchPath
    passed_over: frozenset[str]
    """Paths before its headers that existed when it ran, and that it did not take
    (an `#include <NAME>` skips the includer's folder): they hide nothing."""

    @property
    def record(self) -> dict[str, list[str]]:
        """The JSON a compile's recorded values hold under SEARCH_KEY."""
        search = self.search
        return {
            "quote": list(search.quote),
            "angle": list(search.angle),
            "missing": list(search.missing),
            "passed_over": sorted(self.passed_over),
        }

    @classmethod
    def from_record(cls, record: object) -> Lookup | None:
        """The lookup a record holds; None for anything else."""
        parts = ("quote", "angle", "missing", "passed_over")
        if not (
            isinstance(record, dict)
            and all(isinstance(record.get(part), list) for part in parts)
            and all(isinstance(path, str) for part in parts for path in record[part])
        ):
            return None
        search = _interned(tuple(record["quote"]), tuple(record["angle"]), tuple(record["missing"]))
        return cls(search, frozenset(record["passed_over"]))


def search_path(argv: Sequence[str], cwd: str) -> SearchPath | None:
    """The search path of a compile command, as its compiler reports it (`-E -v` on an
    empty file, with the command's search options, in its folder and environment);
    None when the compiler does not answer. Asked once a run for each command's
    options: the compiles of a project share a few."""
    return _probe(argv[0], tuple(search_flags(argv)), cwd)


@functools.cache
def _probe(compiler: str, flags: tuple[str, ...], cwd: str) -> SearchPath | None:
    argv = [compiler, *flags, "-E", "-v", "-x", "c", os.devnull, "-o", os.devnull]
    # LC_ALL=C: gcc translates the lines parse_search reads; the search is the same
    env = {**os.environ, "LC_ALL": "C"}
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, errors="replace"
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return parse_search(done.stderr, cwd)


_NONEXISTENT = 'ignoring nonexistent directory "'
_QUOTE_START = '#include "..." search starts here:'
_ANGLE_START = "#include <...> search starts here:"
_END = "End of search list."


def parse_search(verbose: str, cwd: str) -> SearchPath | None:
    """The search path in the `-v` output of gcc or clang; None if it has none."""
    quote: list[str] = []
    angle: list[str] = []
    missing: list[str] = []
    current: list[str] | None = None
    ended = False
    for line in verbose.splitlines():
        if line.startswith(_NONEXISTENT) and line.endswith('"'):
            missing.append(_absolute(line[len(_NONEXISTENT) : -1], cwd))
        elif line == _QUOTE_START:
            current = quote
        elif line == _ANGLE_START:
            current = angle
        elif line == _END:
            ended = True
            current = None
        elif current is not None and line.startswith(" "):
            folder = line.strip().removesuffix(" (framework directory)")
            current.append(_absolute(folder, cwd))
    if not ended:
        return None
    return _interned(tuple(quote), tuple(angle), tuple(dict.fromkeys(missing)))


def _absolute(folder: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, folder))


def project_folders(root: str, files: Iterable[str]) -> tuple[str, ...]:
    """The folders of the project's own files among files (a source, its headers): where
    a `#include "..."` of theirs looks first. Not output/ (generated headers include
    with <...>) nor the state folder."""
    inside = os.path.join(root, "")
    own = (os.path.join(root, OUTPUT_DIR, ""), os.path.join(root, STATE_DIR, ""))
    return tuple(
        sorted(
            {
                os.path.dirname(os.path.normpath(path))
                for path in files
                if path.startswith(inside) and not path.startswith(own)
            }
        )
    )


_Key = tuple[int, tuple[str, ...]]
_before: dict[_Key, dict[str, tuple[str, ...]]] = {}
"""paths_before of each header, for each (search path, includers) asked in this run (a
build is one process): the compiles of a project share most of their headers and
search paths."""
_exists: dict[str, bool] = {}
"""os.path.exists of each path asked by the up-to-date checks of this run."""
_existing_before: dict[_Key, dict[str, tuple[str, ...]]] = {}
"""The paths before each header that exist, for each (search path, includers)."""


def paths_before(header: str, search: SearchPath, includers: tuple[str, ...]) -> tuple[str, ...]:
    """The paths that would hide header (found where it is) from a compile with this
    search path, whose files including it are in the folders includers. Worked out
    once a run for each (search path, includers, header)."""
    known = _before.setdefault((id(search), includers), {})
    paths = known.get(header)
    if paths is None:
        paths = known[header] = _paths_before(os.path.normpath(header), search, includers)
    return paths


def _paths_before(header: str, search: SearchPath, includers: tuple[str, ...]) -> tuple[str, ...]:
    chain = (
        [(folder, "includer") for folder in includers]
        + [(folder, "quote") for folder in search.quote]
        + [(folder, "angle") for folder in search.angle]
    )
    found: list[str] = []
    for index, (folder, kind) in enumerate(chain):
        if not header.startswith(folder + "/"):
            continue
        name = header[len(folder) + 1 :]
        # found in the including file's folder: nothing comes before it
        earlier = [] if kind == "includer" else chain[:index]
        found += [os.path.join(before, name) for before, _ in earlier if before != folder]
    return tuple(dict.fromkeys(found))


def lookup_record(
    argv: Sequence[str], cwd: str, inputs: Collection[str], source: str, started_ns: int
) -> dict[str, list[str]] | None:
    """What a compile's run records of where it looked (SEARCH_KEY), taken in the job's
    thread after the compile: the search path of its command, and the paths before its
    headers (inputs but the source) that exist and existed before the step started
    (started_ns): it passed over those. One that may have appeared while it ran is
    not excused: the next build compiles again. None: the compiler did not answer."""
    search = search_path(argv, cwd)
    if search is None:
        return None
    includers = project_folders(cwd, inputs)
    passed_over = set()
    for header in inputs:
        if header == source:
            continue
        for path in paths_before(header, search, includers):
            try:
                st = os.stat(path)  # now, not a memo of the planning's
            except OSError:
                continue
            if path not in inputs and not is_racy(newest_time(st), started_ns):
                passed_over.add(path)
    return Lookup(search, frozenset(passed_over)).record


def absent_paths(inputs: Collection[str], source: str, root: str, lookup: Lookup) -> set[str]:
    """Every path that must stay absent for a compile of source with these inputs to
    find its headers again: the paths before each header, but those it used or passed
    over, and the search folders that did not exist."""
    search = lookup.search
    includers = project_folders(root, inputs)
    absent = set(search.missing)
    for header in inputs:
        if header != source:
            absent.update(paths_before(header, search, includers))
    return absent - lookup.passed_over - set(inputs)


def compile_absent_paths(
    root: str, source: str, inputs: Collection[str], record: object
) -> set[str]:
    """absent_paths of a compile of source (absolute) with these inputs (the source and
    the headers of its depfile) and this record (SEARCH_KEY); none without a record."""
    lookup = Lookup.from_record(record)
    return absent_paths(inputs, source, root, lookup) if lookup else set()


def exists_now(path: str) -> bool:
    """os.path.exists, asked once a run (one process) for each path; not asked at all
    of a path whose folder is known to be missing (most of them: the system folders
    have no bits/ of their own)."""
    known = _exists.get(path)
    if known is None:
        parent = os.path.dirname(path)
        known = (parent == path or exists_now(parent)) and os.path.exists(path)
        _exists[path] = known
    return known


def forget() -> None:
    """Drop what this process learned of the file system (a test that changes it)."""
    _exists.clear()
    _existing_before.clear()


def existing_before(header: str, search: SearchPath, includers: tuple[str, ...]) -> tuple[str, ...]:
    """The paths before header that exist now (asked once a run)."""
    known = _existing_before.setdefault((id(search), includers), {})
    found = known.get(header)
    if found is None:
        found = known[header] = tuple(
            path for path in paths_before(header, search, includers) if exists_now(path)
        )
    return found


class NothingShadows:
    """doit `uptodate` item of a compile: up to date only while no path that would hide
    one of the headers it used exists (but those it used or passed over), and no search
    folder that did not exist does (the record its last run made, SEARCH_KEY). A
    record without it (a compiler that did not answer) checks nothing."""

    fastpath_covered = True
    """The no-op stamp watches the folders those paths would appear in."""

    def __init__(self, root: str, source: str) -> None:
        self.root = root
        self.source = source
        """The compiled source (absolute): the one input not searched for."""

    def __call__(self, task: Any, values: dict) -> bool:
        lookup = Lookup.from_record(values.get(SEARCH_KEY))
        if lookup is None:
            return True
        search = lookup.search
        if any(exists_now(folder) for folder in search.missing):
            return False
        inputs = task.file_dep
        includers = project_folders(self.root, inputs)
        return not any(
            path not in inputs and path not in lookup.passed_over
            for header in inputs
            if header != self.source
            for path in existing_before(header, search, includers)
        )


cast(Any, NothingShadows).__signature__ = call_signature(NothingShadows)
