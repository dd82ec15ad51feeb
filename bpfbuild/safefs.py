"""Writes inside bpfbuild's own folders (output/, .bpfbuild/, the cache) through checked
paths only: each folder below the owned root is opened without following links (made if
missing), files are created with O_NOFOLLOW beside their final name and renamed, and a
link found where bpfbuild writes is refused with a hint or removed as a link. Nothing is
ever written through a link out of the folder.

The owned root itself (the project's folder, the cache's root) may be reached through
links: it is the user's choice. What lies below it is bpfbuild's.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import BpfBuildError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARTIAL = ".partial"
"""Suffix of the temporary a write renames into place (remove_partials deletes those a
killed process left)."""


class UnsafePathError(BpfBuildError):
    """A link, a file or an unwritable folder where bpfbuild writes."""


def shown(root: Path | str, path: Path | str, relative: bool = True) -> str:
    """path as messages show it: relative to the owned root (the project) or whole."""
    return os.path.relpath(path, root) if relative else str(path)


def _parts(root: Path | str, path: Path | str) -> list[str]:
    """The names from root down to path; a path outside root is a bug."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    parts = [] if relative == "." else relative.split(os.sep)
    if parts and parts[0] == "..":
        raise UnsafePathError(
            f"{path} is not under {root}", hint="this is a bug in bpfbuild; please report it"
        )
    return parts


def refusal(
    root: Path | str, path: Path | str, err: OSError, relative: bool = True
) -> UnsafePathError:
    """The error for an OSError met at path while bpfbuild made or opened it."""
    name = shown(root, path, relative)
    if err.errno == errno.ELOOP or os.path.islink(path):
        return UnsafePathError(
            f"{name} is a symbolic link, where bpfbuild writes: it never writes through one",
            hint=f"remove the link: rm {name} (its target is left alone), then run again",
        )
    if err.errno == errno.ENOTDIR:
        return UnsafePathError(
            f"{name} is a file, where bpfbuild keeps a folder of its own",
            hint=f"move the file away (or delete it: rm {name}), then run again",
        )
    if err.errno == errno.EISDIR:
        return UnsafePathError(
            f"{name} is a folder, where bpfbuild writes a file",
            hint=f"move the folder away (or delete it: rm -r {name}), then run again",
        )
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return UnsafePathError(
            f"cannot write {name}: {err.strerror}",
            hint="free space on its file system, then run again",
        )
    if err.errno == errno.EROFS:
        return UnsafePathError(
            f"cannot write {name}: it is on a read-only file system",
            hint="remount it read-write, or build a writable copy of the project",
        )
    if os.path.lexists(path):
        return UnsafePathError(
            f"cannot write {name}: {err.strerror}",
            hint=f"make it writable (chmod u+w {name}), or remove it, then run again",
        )
    folder = os.path.dirname(name) or "."
    return UnsafePathError(
        f"cannot write in {folder}/: {err.strerror}",
        hint=f"make the folder writable (chmod u+w {folder}), then run again",
    )


def open_folder(
    root: Path | str, folder: Path | str, create: bool = True, relative: bool = True
) -> int:
    """A descriptor of folder, reached from root one name at a time, each opened with
    O_NOFOLLOW (and made first when create); the caller closes it. A link, a file or a
    missing folder (not create) on the way is an UnsafePathError."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as err:
        raise refusal(root, root, err, relative) from None
    walked = Path(root)
    try:
        for name in _parts(root, folder):
            walked = walked / name
            if create:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as err:
                    raise refusal(root, walked, err, relative) from None
            try:
                inner = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as err:
                raise refusal(root, walked, err, relative) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_folders(root: Path | str, folder: Path | str, relative: bool = True) -> None:
    """Make folder and every folder between root and it; none may be a link."""
    os.close(open_folder(root, folder, relative=relative))


def prepare_file(root: Path | str, path: Path | str, relative: bool = True) -> None:
    """Before a tool writes path: its folders are made and checked, and a link found at
    path is removed as a link (its target left alone). A folder there is refused."""
    fd = open_folder(root, os.path.dirname(os.path.abspath(path)), relative=relative)
    name = os.path.basename(path)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            os.unlink(name, dir_fd=fd)
        elif stat.S_ISDIR(st.st_mode):
            raise refusal(root, path, OSError(errno.EISDIR, "Is a directory"), relative)
    finally:
        os.close(fd)


def open_file(
    root: Path | str, path: Path | str, flags: int, mode: int = 0o644, relative: bool = True
) -> int:
    """os.open of path with O_NOFOLLOW under checked folders (made if missing): a link at
    path is refused with a hint, never followed. The caller closes the descriptor."""
    fd = open_folder(root, os.path.dirname(os.path.abspath(path)), relative=relative)
    try:
        return os.open(
            os.path.basename(path), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd
        )
    except OSError as err:
        raise refusal(root, path, err, relative) from None
    finally:
        os.close(fd)


def write_file(
    root: Path | str,
    path: Path | str,
    data: bytes,
    mode: int = 0o644,
    sync: bool = False,
    relative: bool = True,
) -> None:
    """Write path atomically: a new temporary beside it (O_EXCL, O_NOFOLLOW), renamed
    over it; a link at path is replaced, never followed. sync: fsync the file before
    the rename (for what must survive a crash of the machine, not only of bpfbuild)."""
    fd = open_folder(root, os.path.dirname(os.path.abspath(path)), relative=relative)
    name = os.path.basename(path)
    temporary = f"{name}.{os.getpid()}{PARTIAL}"
    try:
        try:
            os.unlink(temporary, dir_fd=fd)  # a killed run of a process with our pid
        except FileNotFoundError:
            pass
        out = os.open(temporary, _NEW_FILE, mode, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            if sync:
                os.fsync(out)
        finally:
            os.close(out)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    except OSError as err:
        try:
            os.unlink(temporary, dir_fd=fd)
        except OSError:
            pass
        raise refusal(root, path, err, relative) from None
    finally:
        os.close(fd)


def read_regular(path: Path | str, limit: int | None = None) -> bytes | None:
    """The bytes of path when it is a regular file (not a link, a FIFO, a device or a
    folder); None otherwise or when it cannot be read. Never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def remove_link(path: Path | str) -> bool:
    """Remove path if it is a symbolic link (the link itself); True when it was one."""
    if os.path.islink(path):
        os.unlink(path)
        return True
    return False
