"""Unpacking tar archives (Debian packages' data, source tarballs) safely on every Python
bpfbuild runs on: each member is checked and written by bpfbuild itself, so nothing
depends on `tarfile`'s extraction filters, which Debian 12's Python 3.11.2 lacks.

A member is refused, and nothing of the archive is kept, when it would leave the
destination: an absolute name, a `..` component, a symbolic link whose target is
absolute or resolves outside, a hard link to anything but a regular file unpacked
before it, a device node or a FIFO. Files are created with O_EXCL | O_NOFOLLOW under
parents checked to be real folders, so no link planted by an earlier member (or by
anyone else) is ever written through. Owners, setuid/setgid bits and odd modes are
dropped: files are 0644, or 0755 when the archive marks them executable.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

from .errors import BpfBuildError


class ArchiveError(BpfBuildError):
    """An archive is corrupt or holds a member that would leave its destination."""


def member_name(name: str) -> str:
    """A member's name as a relative path inside the destination (`./a/b` -> `a/b`);
    "" for the destination itself (`./`); ValueError, saying why, when it is absolute
    or has a `..` component."""
    if name.startswith("/"):
        raise ValueError("an absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("a '..' component")
    return "/".join(parts)


def unpack(
    archive: tarfile.TarFile,
    destination: Path,
    wanted: Iterable[str] | None = None,
    origin: str = "the archive",
    hint: str = "delete the file and fetch it again",
) -> None:
    """Unpack the members of archive (or only those named in wanted) into destination,
    a folder the caller owns (it is created; what it holds may be removed on error).
    ArchiveError names the first member refused and why, with hint."""
    destination.mkdir(parents=True, exist_ok=True)
    destination = Path(os.path.realpath(destination))
    selected = {member_name(n) for n in wanted} if wanted is not None else None
    files: set[str] = set()
    links: list[str] = []
    try:
        for member in archive:
            try:
                name = member_name(member.name)
            except ValueError as why:
                raise _refused(origin, member.name, str(why), hint) from None
            if not name and member.isdir():
                continue  # `./`: the destination itself
            if not name:
                raise _refused(origin, member.name, "an empty name", hint)
            if selected is not None and name not in selected:
                continue
            _unpack_one(archive, member, name, destination, files, links, origin, hint)
        for name in links:  # after all members: a later link can change where one leads
            if not _inside(os.path.realpath(destination / name), destination):
                raise _refused(
                    origin, name, "a symbolic link that leads out of the destination", hint
                )
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"cannot unpack {origin}: {err}", hint=hint) from None
    except ArchiveError:
        _empty(destination)
        raise


def _unpack_one(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    destination: Path,
    files: set[str],
    links: list[str],
    origin: str,
    hint: str,
) -> None:
    path = destination / name
    _real_parents(destination, name, origin, hint)
    if member.isdir():
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise _refused(origin, name, "a folder over another member", hint)
        path.mkdir(mode=0o755, exist_ok=True)
        return
    if os.path.lexists(path):
        raise _refused(origin, name, "a second member of the same name", hint)
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            raise _refused(origin, name, f"a symbolic link to the absolute path {target}", hint)
        if not _inside(os.path.normpath(os.path.join(os.path.dirname(path), target)), destination):
            raise _refused(
                origin, name, f"a symbolic link to {target}, outside the destination", hint
            )
        os.symlink(target, path)
        links.append(name)
    elif member.islnk():
        try:
            source = member_name(member.linkname)
        except ValueError as why:
            raise _refused(
                origin, name, f"a hard link to {member.linkname} ({why})", hint
            ) from None
        if source not in files:
            raise _refused(
                origin,
                name,
                f"a hard link to {member.linkname}, which is not a file unpacked before it",
                hint,
            )
        os.link(destination / source, path, follow_symlinks=False)
        files.add(name)
    elif member.isreg():
        data = archive.extractfile(member)
        mode = 0o755 if member.mode & 0o111 else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out)
        os.chmod(path, mode)  # whatever the umask took away
        files.add(name)
    else:
        kind = (
            "a device node"
            if member.ischr() or member.isblk()
            else "a FIFO"
            if member.isfifo()
            else "a member of an unknown type"
        )
        raise _refused(origin, name, kind, hint)


def _real_parents(destination: Path, name: str, origin: str, hint: str) -> None:
    """Create the folders above name; each must be a real folder, never a link."""
    current = destination
    for part in name.split("/")[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if not stat.S_ISDIR(mode):
            raise _refused(
                origin,
                name,
                f"a member under {current.relative_to(destination)}, "
                "which is not a folder (a link or a file)",
                hint,
            )


def _inside(path: str, destination: Path) -> bool:
    """path (absolute, normalized) is destination or under it."""
    root = str(destination)
    return path == root or path.startswith(root + os.sep)


def _refused(origin: str, name: str, why: str, hint: str) -> ArchiveError:
    return ArchiveError(f"{origin}: refused to unpack member '{name}': it is {why}", hint=hint)


def _empty(destination: Path) -> None:
    """Remove what was unpacked, never following a link."""
    for child in destination.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
