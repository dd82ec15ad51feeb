"""The user's cache shared by every project (kernels, generated headers, sources): its
root, and entries that are written atomically and verified when read.

An entry is a folder `<root>/<kind>/<key>/` holding its files and a `manifest.json`
with the SHA-256 of each file and free-form metadata (provenance). The folder is
assembled under a temporary name and renamed into place, so a reader sees a whole
entry or none; a reader that finds a file whose hash does not match drops the entry
and treats it as a miss, as ccache does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BpfBuildError

CACHE_ENV = "BPFBUILD_CACHE_DIR"
"""Overrides the cache root (default: $XDG_CACHE_HOME/bpfbuild, else ~/.cache/bpfbuild)."""
MANIFEST = "manifest.json"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")


class CacheError(BpfBuildError):
    """The cache folder cannot be created or written."""


def cache_root() -> Path:
    """Where the user's cache lives; nothing else of the machine is written."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "bpfbuild").resolve()


@dataclass(frozen=True)
class Entry:
    """A verified cache entry."""

    path: Path
    files: dict[str, str]
    """File name -> SHA-256 of its content."""
    meta: dict

    def file(self, name: str) -> Path:
        return self.path / name


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_name(what: str, name: str) -> str:
    if not _KEY.match(name) or name in (".", ".."):
        raise CacheError(
            f"invalid cache {what} {name!r}",
            hint="use letters, digits and . _ + ~ - only (this is a bug in bpfbuild)",
        )
    return name


def entry_path(kind: str, key: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / _check_name("kind", kind) / _check_name("key", key)


def read_entry(kind: str, key: str, root: Path | None = None) -> Entry | None:
    """The entry if it exists and every file matches its recorded hash; a corrupt or
    partial entry is removed and reported as a miss."""
    path = entry_path(kind, key, root)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = dict(manifest["files"])
        meta = dict(manifest.get("meta", {}))
        for name, digest in files.items():
            if sha256_file(path / _check_name("file", name)) != digest:
                raise ValueError(f"{name}: hash mismatch")
    except FileNotFoundError:
        if path.is_dir():
            _remove(path)
        return None
    except (OSError, ValueError, KeyError, TypeError, CacheError):
        _remove(path)
        return None
    entry = Entry(path, files, meta)
    mark_used(entry)
    return entry


def write_entry(
    kind: str,
    key: str,
    files: Mapping[str, Path],
    meta: Mapping | None = None,
    root: Path | None = None,
    move: bool = False,
) -> Entry:
    """Store files (name -> source path) as one entry, atomically. When another process
    stored the same key meanwhile, its verified entry is kept and returned.
    move: rename the sources into the entry instead of copying them (same file system)."""
    final = entry_path(kind, key, root)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=parent))
    except OSError as err:
        raise CacheError(
            f"cannot write the cache in {parent}: {err.strerror}",
            hint=f"make it writable, or set ${CACHE_ENV} to another folder",
        ) from None
    try:
        digests = {}
        for name, source in files.items():
            target = staging / _check_name("file", name)
            if move:
                os.replace(source, target)
            else:
                shutil.copyfile(source, target)
            digests[name] = sha256_file(target)
        manifest = {"files": digests, "meta": dict(meta or {})}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        try:
            os.rename(staging, final)
        except OSError:
            # Another writer won the race, or a corrupt entry is in the way.
            existing = read_entry(kind, key, root)
            if existing:
                return existing
            os.rename(staging, final)
    except OSError as err:
        raise CacheError(
            f"cannot write the cache entry {final}: {err.strerror}",
            hint=f"check free space and permissions, or set ${CACHE_ENV}",
        ) from None
    finally:
        if staging.exists():
            _remove(staging)
    return Entry(final, digests, dict(meta or {}))


@contextmanager
def locked(kind: str, key: str, root: Path | None = None) -> Iterator[None]:
    """Hold an exclusive lock on one key (e.g. while fetching it), so that two builds
    filling the cache at once do the work once."""
    parent = (root or cache_root()) / _check_name("kind", kind)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent / f".{_check_name('key', key)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise CacheError(
            f"cannot write the cache in {parent}: {err.strerror}",
            hint=f"make it writable, or set ${CACHE_ENV} to another folder",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_partials(kind: str, root: Path | None = None) -> None:
    """Delete staging folders that a killed process left behind."""
    parent = (root or cache_root()) / kind
    if parent.is_dir():
        for child in parent.glob(".*.partial"):
            _remove(child)


def _remove(path: Path) -> None:
    """Delete an entry folder; a symlink is removed as a link, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


# -- size accounting: what `bpfbuild cache info|clean` show and the size bound ---------

SIZE_ENV = "BPFBUILD_CACHE_SIZE"
"""The cache's size bound, e.g. 2G, 500M or 0 (0: do not cache generated headers)."""
DEFAULT_SIZE = 2 * 1024**3
KEEP_RECENT = 600
"""Seconds during which a used entry is never evicted: a running build or VM may
still open its files."""
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class EntryInfo:
    """One entry as `bpfbuild cache info` lists it."""

    kind: str
    key: str
    path: Path
    size: int
    """Bytes of every file in the entry."""
    last_used: float
    """When a build last wrote or read it (the folder's mtime)."""


def size_limit() -> int:
    """The size bound from $BPFBUILD_CACHE_SIZE (default 2 GiB)."""
    text = os.environ.get(SIZE_ENV, "").strip().upper().removesuffix("IB").removesuffix("B")
    if not text:
        return DEFAULT_SIZE
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", text)
    if not match:
        raise CacheError(
            f"${SIZE_ENV} is '{os.environ[SIZE_ENV]}', not a size",
            hint=f"set ${SIZE_ENV} to a size such as 2G, 500M or 0, or unset it",
        )
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def mark_used(entry: Entry) -> None:
    """Record a use of entry (read_entry does), for the least-recently-used eviction."""
    try:
        os.utime(entry.path)
    except OSError:
        pass


def entries(kind: str | None = None, root: Path | None = None) -> list[EntryInfo]:
    """Every whole entry (of one kind), least recently used first."""
    root = root or cache_root()
    found = []
    kinds = [root / kind] if kind else sorted(p for p in root.glob("*") if p.is_dir())
    for folder in kinds:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") or path.is_symlink() or not (path / MANIFEST).is_file():
                continue
            try:
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                found.append(EntryInfo(folder.name, path.name, path, size, path.stat().st_mtime))
            except OSError:
                continue  # removed meanwhile by another process
    return sorted(found, key=lambda e: (e.last_used, e.kind, e.key))


def evict(
    limit: int, keep: tuple[str, str] | None = None, root: Path | None = None
) -> list[EntryInfo]:
    """Remove least recently used entries until the cache holds at most limit bytes;
    keep (kind, key) and the entries used in the last KEEP_RECENT seconds are never
    removed. An entry is renamed away before it is deleted, so a reader sees it whole
    or not at all. Returns what was removed."""
    present = entries(root=root)
    total = sum(e.size for e in present)
    recent = time.time() - KEEP_RECENT
    removed = []
    for entry in present:
        if total <= limit:
            break
        if (keep and (entry.kind, entry.key) == keep) or entry.last_used > recent:
            continue
        if _discard(entry.path):
            total -= entry.size
            removed.append(entry)
    return removed


def clean(kind: str | None = None, root: Path | None = None) -> list[EntryInfo]:
    """Remove every entry (of one kind) and the staging folders of killed writers."""
    removed = [e for e in entries(kind, root) if _discard(e.path)]
    root = root or cache_root()
    for folder in [root / kind] if kind else [p for p in root.glob("*") if p.is_dir()]:
        if folder.is_dir() and not folder.is_symlink():
            remove_partials(folder.name, root)
    return removed


def discard_entry(kind: str, key: str, root: Path | None = None) -> bool:
    """Remove one entry (one that is intact but of an older shape, to make it again)."""
    return _discard(entry_path(kind, key, root))


def _discard(path: Path) -> bool:
    """Rename an entry to a staging name (atomic for readers), then delete it."""
    gone = path.with_name(f".{path.name}.{os.getpid()}.evicted.partial")
    try:
        os.rename(path, gone)
    except OSError:
        return False
    _remove(gone)
    return True
