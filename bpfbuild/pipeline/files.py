"""What is found where bpfbuild expects a project file: editors' leftovers (ignored), other
kinds of files than regular ones (an error naming the kind, never opened: a FIFO or a
device would block or never end), names that are not UTF-8 (refused), and the walk of an
include folder. Imports only os, stat and names: the fast path (fastpath.py) uses
is_editor_leftover and include_tree before anything else is imported."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator  # collections is imported already: costs nothing

from .names import OUTPUT_DIR, STATE_DIR

_LEFTOVER_SUFFIXES = ("~", ".kate-swp")
"""Backups (NAME~ of Emacs, Vim's `backup`, many others) and Kate's swap files."""
_VIM_SWAP = (".swp", ".swo", ".swn", ".swm", ".swx")
"""Vim's swap files (.NAME.swp, then .swo, .swn... when one exists; .swx is its probe)."""
VIM_PROBE = "4913"
"""Vim writes, then removes, a file of this name to learn whether it can write a folder."""


def is_editor_leftover(name: str) -> bool:
    """True for the files editors leave beside the ones they edit, which are never
    sources or headers: Emacs's lock links `.#NAME` (links to nothing) and autosaves
    `#NAME#`, Vim's swap files `.NAME.swp` (.swo, .swx...) and probe `4913`, backups
    `NAME~`, gedit's `.goutputstream-*` and Kate's `*.kate-swp`."""
    return (
        name.startswith((".#", ".goutputstream-"))
        or (len(name) > 1 and name.startswith("#") and name.endswith("#"))
        or (name.startswith(".") and name.endswith(_VIM_SWAP))
        or name.endswith(_LEFTOVER_SUFFIXES)
        or name == VIM_PROBE
    )


def kind_problem(path: str | os.PathLike[str]) -> str | None:
    """None when path is a regular file (or a link to one); else what it is, for an
    error line: "a folder", "a FIFO (named pipe)", "a character device", "a block
    device", "a socket", "a symbolic link to nothing", "a symbolic link loop". Only
    stat()ed, never opened."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if os.path.islink(path):
            return (
                "a symbolic link loop" if err.errno == errno.ELOOP else "a symbolic link to nothing"
            )
        return "missing" if isinstance(err, FileNotFoundError) else f"unreadable ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def shown_name(name: str) -> str:
    """A file name for a message: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def non_utf8_byte(name: str) -> int | None:
    """The first byte of a file name (as os gives it) that is not UTF-8; None when the
    name is UTF-8 text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        return os.fsencode(name[err.start])[0]
    return None


NOT_UTF8_HINT = (
    "rename it with UTF-8 characters only: file names go to the compilers' command lines, "
    "depfiles and the build state as text"
)
"""The hint of every refused name that is not UTF-8."""


def include_tree(root: str, folder: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk of an include folder of the project (links to folders not followed),
    top-down, names sorted. It does not enter bpfbuild's own folders (output/ and
    .bpfbuild/ of the project root, which an include folder "." holds: what is there
    is the build's, not the project's) nor hidden folders (.git)."""
    root = os.path.normpath(root)
    own = {os.path.join(root, OUTPUT_DIR), os.path.join(root, STATE_DIR)}
    for current, dirs, names in os.walk(os.path.normpath(os.path.join(root, folder))):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and os.path.join(current, d) not in own
        )
        yield current, dirs, sorted(names)
