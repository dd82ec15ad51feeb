"""The no-op fast path: a stamp of everything the last successful build depended on,
checked with stat() alone before click or doit is imported.

After a successful `bpfbuild build`, `Recorder.write` saves `.bpfbuild/fastpath.stamp`:
the stat of every input (file_dep of every task run: sources, the headers of their
depfiles, the vmlinux BTF), every output (targets), bpfbuild.toml, the folders that
discovery lists ([build] src, the include folders), every tool and pkg-config folder the
toolchain probed, each folder of PATH, and bpfbuild's and doit's own files; plus a key
made of the command's selection (apps, arches), a digest of the environment, the
Python and bpfbuild that ran and the kernel. `check` (run by bpfbuild.launcher) answers
a later `bpfbuild build` when every one of those is unchanged; any other case, and any
doubt, falls back to the full graph, which rewrites the stamp when it succeeds.

A stat is (inode, device, mode, size, mtime_ns, ctime_ns). Nobody can set a ctime, so
rewriting a file, even with the same size and `os.utime` to its old mtime, is seen.
The stamp also holds the SHA-256 of the project's own inputs (sources, headers,
bpfbuild.toml: the files a user edits, or touches). When one of those no longer has
its recorded stat but has its recorded size, the check reads it: the same content
means a `touch`, after which the full graph would rebuild nothing either (it compares
contents). The check then answers, and records the new stat so that the next no-op
reads nothing. Any other mismatch (an output, a tool, a system header) falls back.

The stamp vouches only for what was true after a build that succeeded: every full
build deletes it before any task runs (`invalidate`), it is written atomically, and
not at all when an input changed while the build ran (it could have been read before
the change).

The racy case (see timestamps.py): a stat recorded within the clock's granularity of
a file's last change could miss a second change in that tick. No input may have
changed that late (the stamp is not written), the outputs' stats are taken once they
are older than that (the writer waits up to one margin), and a touched file's new stat
is recorded only once it is.

This module imports only os, sys, time, marshal, fcntl, zlib, names, timestamps and
files (which import nothing else) at the top: the launcher imports it before anything else. The
writer's imports are inside its functions.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import stat
import sys
import time
import zlib

from .files import include_tree, is_editor_leftover
from .names import CONFIG_NAME, LOCK_NAME, OUTPUT_DIR, STAMP_NAME, STATE_DIR, TOOLCHAIN_CACHE_NAME
from .timestamps import RACE_MARGIN_NS, is_racy, margin

FORMAT = 2
TRACE_ENV = "BPFBUILD_TRACE"
"""Set to 1: `bpfbuild build` says on stderr whether the fast path answered, and why not."""
IGNORED_ENV = frozenset(
    {"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "PYTEST_CURRENT_TEST", TRACE_ENV}
)
"""Variables a shell (or pytest) changes on its own and no tool reads; every other is in
the key. The toolchain reads CC, CC_<arch>, CLANG, BPFTOOL, CFLAGS, LDFLAGS, STRIP,
PKG_CONFIG* and PATH, the compilers read more (CPATH, SOURCE_DATE_EPOCH...): rather
than list them, any change of the environment falls back to the full graph."""
DIGEST_MAX_SIZE = 1 << 20
"""Project inputs up to this size get a content digest (a touch of one stays a no-op)."""

MAX_JOBS = 1024
"""The most jobs `-j` takes: more only starts threads that wait. The CLI refuses more
with a usage error; the fast path leaves such a command to it."""

NO_EFFECT_FLAGS = ("-v", "--verbose", "-k", "--keep-going")
"""Options of `bpfbuild build` that change nothing in a build that has nothing to do
(-j N is parsed apart, since it takes a value). Any other option falls back."""

Signature = tuple[int, int, int, int, int, int]


# -- the check (launcher side): stat() only ----------------------------------------


def signature(path: str) -> Signature | None:
    """What the stamp records of a path: None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def environment_digest(environ: dict[str, str] | os._Environ) -> tuple[int, int, int]:
    """A digest of the environment (its values are not written to the project)."""
    data = marshal.dumps(sorted((k, v) for k, v in environ.items() if k not in IGNORED_ENV))
    return len(data), zlib.crc32(data), zlib.adler32(data)


def _running() -> tuple:
    """The Python and the bpfbuild that run now; the stamp names those that wrote it."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    uname = os.uname()
    return (FORMAT, sys.version, sys.prefix, package, uname.release, uname.version, uname.machine)


def parse_build_args(args: list[str]) -> tuple[str | None, tuple[str, ...], tuple[str, ...]] | None:
    """(directory, apps, arches) of `bpfbuild build ...`, or None for anything the
    fast path does not answer: another command, --help, an option it does not know,
    a bad value. -j and -v change nothing in a no-op."""
    if args[:1] != ["build"]:
        return None
    directory = None
    apps: list[str] = []
    arches: list[str] = []
    rest = args[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if word in NO_EFFECT_FLAGS:
            continue
        if not word.startswith("-") or word == "-":
            apps.append(word)
            continue
        if word in ("-j", "--jobs", "-C", "--directory", "--arch"):
            if i >= len(rest):
                return None
            name, value = word, rest[i]
            i += 1
        elif word.startswith(("--jobs=", "--directory=", "--arch=")):
            name, _, value = word.partition("=")
        elif word[:2] in ("-j", "-C") and len(word) > 2:
            name, value = word[:2], word[2:]
        else:
            return None
        if name in ("-j", "--jobs"):
            if not value.isdigit() or not 1 <= int(value) <= MAX_JOBS:
                return None  # the CLI's usage error
        elif name in ("-C", "--directory"):
            if not value:
                return None
            directory = value
        else:
            arches.append(value)
    return directory, tuple(sorted(set(apps))), tuple(sorted(set(arches)))


def check(args: list[str], environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """None when the last successful build vouches for this `bpfbuild build` (nothing
    to do); otherwise why not, in a few words."""
    parsed = parse_build_args(args)
    if parsed is None:
        return "not a plain `bpfbuild build`"
    directory, apps, arches = parsed
    root = directory or "."
    state = os.path.join(root, STATE_DIR)
    try:  # never through a link, never blocking on a FIFO
        lock = os.open(os.path.join(state, LOCK_NAME), _READ_OWN)
    except OSError:
        return "no build state here"
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return "another build holds the lock"
        try:
            stamp = _read_stamp(os.path.join(state, STAMP_NAME))
        except (OSError, EOFError, ValueError, TypeError):
            return "no stamp"
        try:
            return _compare(stamp, root, apps, arches, environ)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError):
            return "a stamp of another shape"  # a full build writes a new one
    finally:
        os.close(lock)


_READ_OWN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How the fast path opens the state folder's files: not through a link, and never
blocking on a FIFO planted there."""


def _read_stamp(path: str) -> object:
    fd = os.open(path, _READ_OWN)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a file")
        return marshal.load(f)


def _compare(
    stamp, root: str, apps: tuple[str, ...], arches: tuple[str, ...], environ
) -> str | None:
    if not isinstance(stamp, dict) or stamp.get("running") != _running():
        return "the stamp was written by another bpfbuild, Python or kernel"
    root_stat = signature(root)
    if root_stat is None or stamp.get("root") != root_stat[:2]:
        return "not the project root"
    if stamp.get("selection") != (apps, arches):
        return "other apps or arches"
    if stamp.get("environment") != environment_digest(environ):
        return "the environment changed"
    files, digests = stamp.get("files"), stamp.get("digests")
    if not isinstance(files, dict) or not isinstance(digests, dict):
        return "no stamp"
    listings = stamp.get("listings", {})
    touched: dict[str, Signature] = {}
    for path, recorded in files.items():
        current = signature(path)
        if current == recorded:
            continue
        if (
            current
            and recorded
            and path in listings
            and current[:3] == recorded[:3]
            and listing(path) == listings[path]
        ):
            touched[path] = current  # a project folder that gained or lost leftovers only
            continue
        if not (
            current
            and recorded
            and path in digests
            and current[3] == recorded[3]
            and _same_content(path, current, digests[path])
        ):
            return f"{path} changed"
        touched[path] = current
    if touched:
        _refresh(root, stamp, touched)
    return None


def listing(path: str) -> tuple[str, ...] | None:
    """The names in a folder but editors' leftovers (files.is_editor_leftover), sorted;
    None when it cannot be listed. A project folder with the same listing, whose
    files have their recorded stats, holds what the build read: an editor's lock or
    swap file appearing there changes its mtime, and nothing else."""
    try:
        return tuple(sorted(n for n in os.listdir(path) if not is_editor_leftover(n)))
    except OSError:
        return None


def _same_content(path: str, current: Signature, digest: str) -> bool:
    """True when path holds the content the stamp's digest names, and did not change
    while it was read."""
    try:
        actual = file_digest(path)
    except OSError:
        return False
    return actual == digest and signature(path) == current


def file_digest(path: str) -> str:
    import hashlib  # only when a file was touched: its import costs a few ms

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _refresh(root: str, stamp: dict, touched: dict[str, Signature]) -> None:
    """Record the new stat of files touched with their content unchanged, so that the
    next no-op reads nothing; not for one changed within a clock tick of now (it
    could change again within that tick and keep this stat), and never an error."""
    trace(f"{len(touched)} touched, same content")
    now = time.time_ns()
    if any(is_racy(_newest(sig), now) for sig in touched.values()):
        return
    stamp["files"].update(touched)
    _write(os.path.join(root, STATE_DIR, STAMP_NAME), stamp)


def _newest(sig: Signature) -> int:
    """The later of a signature's mtime and ctime."""
    return max(sig[4], sig[5])


def _write(path: str, stamp: dict) -> bool:
    """Write the stamp atomically; False (and no stamp) when that fails."""
    partial = f"{path}.{os.getpid()}.partial"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(partial, flags, 0o644), "wb") as f:  # not through a link
            marshal.dump(stamp, f)
        os.replace(partial, path)
    except OSError as err:
        trace(f"not recorded: {err}")
        for leftover in (partial, path):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        return False
    return True


# -- the stamp (full-build side) ---------------------------------------------------


def stamp_path(root) -> str:
    return os.path.join(str(root), STATE_DIR, STAMP_NAME)


def invalidate(root) -> None:
    """Delete the stamp: call before any task runs, so that a build killed half way
    never leaves a stamp that vouches for outputs it was replacing."""
    try:
        os.unlink(stamp_path(root))
    except FileNotFoundError:
        pass


def trace(message: str) -> None:
    if os.environ.get(TRACE_ENV) == "1":
        print(f"fastpath: {message}", file=sys.stderr, flush=True)


class Recorder:
    """Writes the stamp after a successful build of (apps, arches) of the project at
    root. Create it when the command starts: inputs changed after that are suspect."""

    def __init__(self, root, apps, arches) -> None:
        self.root = str(root)
        self.targets: set[str] = set()
        self.selection = (tuple(sorted(set(apps))), tuple(sorted(set(arches))))
        self.started_ns = time.time_ns()

    def write(self, project, tasks: list) -> None:
        """Record everything the selected tasks depended on; no stamp (and a trace
        line saying why) when something cannot be vouched for."""
        try:
            files = self._files(project, tasks)
            digests = self._digests(files)
        except _NoStamp as reason:
            trace(f"not recorded: {reason}")
            return
        root = signature(self.root)
        if root is None:
            trace("not recorded: the project folder is gone")
            return
        stamp = {
            "running": _running(),
            "root": root[:2],
            "selection": self.selection,
            "environment": environment_digest(os.environ),
            "files": files,
            "digests": digests,
            "listings": self._listings(files),
        }
        if _write(stamp_path(self.root), stamp):  # else only the next no-op is slower
            trace(f"recorded {len(files)} paths")

    def _files(self, project, tasks: list) -> dict[str, Signature | None]:
        root = self.root
        if os.path.exists(os.path.join(root, "dodo.py")):
            raise _NoStamp("the project has its own dodo.py")
        from .steps import task_id  # the build imported these already
        from .tasks import step_of

        selected = _selected_tasks(tasks, [task_id("app", a) for a in self.selection[0]])
        inputs: set[str] = set()
        targets: set[str] = set()
        tools: set[str] = set()
        absent: set[str] = set()
        for task in selected:
            absent |= _absent_paths(root, task)
            if task.actions and not task.file_dep and not task.uptodate:
                raise _NoStamp(f"task {task.name} runs on every build")
            for check, _, _ in task.uptodate:
                if not _covered(check):
                    raise _NoStamp(
                        f"task {task.name} has an up-to-date check the stamp "
                        f"does not cover ({type(check).__name__})"
                    )
            inputs.update(os.path.join(root, p) for p in task.file_dep)
            targets.update(os.path.join(root, p) for p in task.targets)
            step = step_of(task)
            for command in step.every_command if step else ():
                argv = command.argv
                if argv and os.path.isabs(argv[0]):
                    tools.add(argv[0])
        files = _settled_outputs(sorted(targets))
        self.targets = targets
        settings = self._settings(project, tools)
        watched = sorted(inputs - targets) + settings
        watched += _watched_for_absent(root, absent, set(settings))
        for path in watched:
            sig = signature(path)
            # An input edited just before the command ran is older than started_ns by
            # much more than the margin: Python and click started in between.
            if sig is not None and path not in files and is_racy(_newest(sig), self.started_ns):
                raise _NoStamp(f"{path} changed while the build ran")
            files.setdefault(path, sig)
        return files

    def _listings(self, files: dict[str, Signature | None]) -> dict[str, tuple[str, ...]]:
        """The listing of each of the project's own folders the stamp watches (src, the
        include folders, those of [build] exclude...), outside output/ and .bpfbuild/."""
        import stat

        inside = os.path.join(self.root, "")
        own = (os.path.join(self.root, OUTPUT_DIR, ""), os.path.join(self.root, STATE_DIR, ""))
        listings = {}
        for path, sig in files.items():
            if (
                sig
                and stat.S_ISDIR(sig[2])
                and os.path.join(path, "").startswith(inside)
                and not os.path.join(path, "").startswith(own)
            ):
                names = listing(path)
                if names is not None:
                    listings[path] = names
        return listings

    def _digests(self, files: dict[str, Signature | None]) -> dict[str, str]:
        """SHA-256 of the project's own inputs: regular files under the root, not
        made by the build, not in .bpfbuild/, at most DIGEST_MAX_SIZE bytes."""
        import stat

        inside = os.path.join(self.root, "")
        state = os.path.join(self.root, STATE_DIR, "")
        digests = {}
        for path, sig in files.items():
            if (
                sig
                and path.startswith(inside)
                and not path.startswith(state)
                and path not in self.targets
                and stat.S_ISREG(sig[2])
                and sig[3] <= DIGEST_MAX_SIZE
            ):
                digest = file_digest(path)
                if signature(path) != sig:
                    raise _NoStamp(f"{path} changed while the build ran")
                digests[path] = digest
        return digests

    def _settings(self, project, tools: set[str]) -> list[str]:
        """Paths besides the tasks' own that decide what the graph would do."""

        root = self.root
        paths = [os.path.join(root, CONFIG_NAME), os.path.join(root, "dodo.py")]
        # the folders discovery lists ([build] src), and those the globs of
        # [object]/[bpflib] sources and [build] exclude read
        paths += [os.path.normpath(os.path.join(root, f)) for f in project.config.build.src]
        paths += [os.path.join(root, folder) for folder in project.listed_folders]
        for folder in project.config.build.include_dirs:
            paths.append(os.path.normpath(os.path.join(root, folder)))
            for current, dirs, names in include_tree(root, folder):
                paths += [os.path.join(current, d) for d in dirs]
                paths += [
                    os.path.join(current, n)
                    for n in names
                    if n.endswith(".h") and not is_editor_leftover(n)
                ]
        from .toolchain import probed_paths

        probed = probed_paths(os.path.join(root, STATE_DIR, TOOLCHAIN_CACHE_NAME))
        for path in sorted(tools | probed):
            paths.append(path)
            if os.path.isdir(path):  # pkg-config's folders: the .pc files too
                paths += [
                    os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".pc")
                ]
        search = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]
        paths += [os.path.abspath(d) for d in search if d]
        paths += _package_files()
        return paths


class _NoStamp(Exception):
    """Why a build cannot be vouched for by a stamp."""


def _absent_paths(root: str, task) -> set[str]:
    """The paths that must stay absent for a compile that ran or was found up to date
    (search.NothingShadows): from its record's search path and its depfile's headers."""
    from .search import SEARCH_KEY, compile_absent_paths
    from .tasks import step_of

    step = step_of(task)
    record = (task.values or {}).get(SEARCH_KEY)
    if step is None or step.source is None or record is None:
        return set()
    return compile_absent_paths(root, os.path.join(root, step.source), task.file_dep, record)


def _watched_for_absent(root: str, absent: set[str], watched: set[str]) -> list[str]:
    """What the stamp watches so that any of the absent paths appearing is seen: the
    nearest folder that exists above each, outside the project (a system folder
    changes seldom); inside it, the absent path's first missing part (the root changes
    whenever output/ or an editor's file comes and goes). Paths in folders the stamp
    watches already (the src and include folders) and under output/ (only the build
    writes there: its outputs are watched themselves) need nothing more."""
    inside = os.path.join(root, "")
    output = os.path.join(root, OUTPUT_DIR, "")
    is_folder: dict[str, bool] = {}
    paths: set[str] = set()
    for path in absent:
        parent = os.path.dirname(path)
        if parent in watched or path.startswith(output):
            continue
        child = path
        while parent != child:
            exists = is_folder.get(parent)
            if exists is None:
                exists = is_folder[parent] = os.path.isdir(parent)
            if exists:
                break
            child, parent = parent, os.path.dirname(parent)
        if parent not in watched:
            paths.add(child if os.path.join(parent, "").startswith(inside) else parent)
    return sorted(paths)


def _settled_outputs(targets: list[str]) -> dict[str, Signature | None]:
    """The signatures of the build's outputs, taken when the newest of them is older than
    the clock's granularity, so that a later rewrite in the same tick cannot keep its
    stat: waits for it (at most one margin, once), or no stamp where file times are
    whole seconds."""
    files: dict[str, Signature | None] = {}
    for path in targets:
        files[path] = signature(path)
        if files[path] is None:
            raise _NoStamp(f"target {path} does not exist")
    newest = max((_newest(sig) for sig in files.values() if sig), default=0)
    now = time.time_ns()
    if not is_racy(newest, now):
        return files
    if margin(newest) > RACE_MARGIN_NS:
        raise _NoStamp("outputs written within the file system's clock granularity")
    time.sleep((newest + margin(newest) - now) / 1e9 + 0.001)
    for path, sig in files.items():
        if signature(path) != sig:
            raise _NoStamp(f"{path} changed while the build ran")
    return files


def _covered(check) -> bool:
    """Up-to-date checks whose inputs the stamp records: doit's config_changed (its
    values come from bpfbuild.toml, the environment and the tools), `True` (an
    ordering task), and any check that says so with a true `fastpath_covered` attribute."""
    from doit.tools import config_changed

    return (
        check is True
        or isinstance(check, config_changed)
        or bool(getattr(check, "fastpath_covered", False))
    )


def _selected_tasks(tasks: list, names: list[str]) -> list:
    """The tasks a `doit run NAMES` ran or found up to date: all of them without
    names, else the names and everything they depend on."""
    if not names:
        return list(tasks)
    by_name = {task.name: task for task in tasks}
    producer = {target: task for task in tasks for target in task.targets}
    seen: dict[str, object] = {}
    todo = list(names)
    while todo:
        task = by_name.get(todo.pop())
        if task is None or task.name in seen:
            continue
        seen[task.name] = task
        todo += list(task.task_dep) + list(task.setup_tasks)
        todo += [producer[d].name for d in task.file_dep if d in producer]
    return list(seen.values())


def _package_files() -> list[str]:
    """bpfbuild's own files and doit's: another version may build differently."""
    import doit

    paths = []
    for package in (
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        os.path.dirname(os.path.abspath(doit.__file__)),
    ):
        for current, dirs, names in os.walk(package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths += [os.path.join(current, n) for n in sorted(names) if n.endswith((".py", ".c"))]
    return paths
