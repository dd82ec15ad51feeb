"""The user's cache shared by every project (kernels, generated headers, sources): its
root, and entries that are written atomically and verified when read.

An entry is a folder `<root>/<kind>/<key>/` holding its files and a `manifest.json`
with the SHA-256 of each file, free-form metadata (provenance), and a signature (an
HMAC-SHA-256 of the rest under a format tag). The folder is assembled under a temporary
name and renamed into place, so a reader sees a whole entry or none. A reader that finds
a file the manifest does not list, or whose hash does not match, treats the entry as a
miss, as ccache does.

The cache deletes only what it made: its root holds a CACHEDIR.TAG that bpfbuild wrote
(a root that holds something else is never cleaned nor evicted), and a folder is an
entry only when its manifest carries bpfbuild's format and signature (a user's folder
with a manifest.json is never deleted).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import safefs
from .errors import BpfBuildError

CACHE_ENV = "BPFBUILD_CACHE_DIR"
"""Overrides the cache root (default: $XDG_CACHE_HOME/bpfbuild, else ~/.cache/bpfbuild)."""
MANIFEST = "manifest.json"
MARKER = "CACHEDIR.TAG"
"""The root's marker: the Cache Directory Tagging format (backup tools skip the
folder), with a line naming bpfbuild (MARKER_TEXT)."""
MARKER_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by bpfbuild.\n"
    "# bpfbuild deletes here only the entries it wrote and signed.\n"
)
_MARKER_LINE = "created by bpfbuild"
ENTRY_FORMAT = "bpfbuild-cache-entry"
ENTRY_VERSION = 2
"""Version 1 (no signature) entries are misses: rebuilt, and replaced when rewritten."""
_SIGNING_KEY = f"{ENTRY_FORMAT}/{ENTRY_VERSION}".encode()
LEGACY_FOLDERS = frozenset(
    {
        "vmlinux",
        "pch",
        "kernels",
        "kernel-specs",
        "apt",
        "busybox",
        "libbpf-src",
        "runner",
        "tools",
        "vm",
    }
)
"""The folders a root made by a bpfbuild without the marker holds: a root that holds
only these (and LEGACY_FILES) is marked on its first write."""
LEGACY_FILES = frozenset({".bpfbuild-cache"})
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CacheError(BpfBuildError):
    """The cache folder cannot be created or written."""


class MissingFile(CacheError, KeyError):
    """An entry asked for a file its manifest does not list (a KeyError, as a missing
    key of the metadata that names it)."""

    def __str__(self) -> str:
        return self.message


def cache_root() -> Path:
    """Where the user's cache lives; nothing else of the machine is written."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "bpfbuild").resolve()


def is_marked(root: Path) -> bool:
    """True when root holds bpfbuild's CACHEDIR.TAG (a regular file, not a link)."""
    text = safefs.read_regular(root / MARKER, limit=4096)
    return text is not None and _MARKER_LINE in text.decode(errors="replace")


def _is_legacy_root(root: Path) -> bool:
    """A root made by a bpfbuild from before the marker: only its own folders."""
    try:
        children = list(os.scandir(root))
    except OSError:
        return False
    return all(
        (child.name in LEGACY_FOLDERS and child.is_dir(follow_symlinks=False))
        or (child.name in LEGACY_FILES and child.is_file(follow_symlinks=False))
        or (child.name.startswith(MARKER + ".") and child.name.endswith(safefs.PARTIAL))
        # (another process marking it now; a CACHEDIR.TAG in place is checked by is_marked)
        for child in children
    )


def own_root(root: Path | None = None) -> Path:
    """The cache root, made and marked if needed, before anything is written in it. A
    folder that holds other things and no marker is not bpfbuild's: an error."""
    root = root or cache_root()
    if is_marked(root):
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(root))
    except OSError as err:
        raise CacheError(
            f"cannot make the cache folder {root}: {err.strerror}",
            hint=f"make it writable, or set ${CACHE_ENV} to another folder",
        ) from None
    if not _is_legacy_root(root):
        if is_marked(root):  # another process marked it meanwhile
            return root
        raise not_ours(root)
    try:
        safefs.write_file(root, root / MARKER, MARKER_TEXT.encode(), relative=False)
    except safefs.UnsafePathError as err:
        raise CacheError(err.message, hint=err.hint) from None
    return root


def not_ours(root: Path) -> CacheError:
    return CacheError(
        f"the cache folder {root} holds files bpfbuild did not write (it has no {MARKER} "
        "of bpfbuild): nothing there is written or deleted",
        hint=f"set ${CACHE_ENV} to a new or empty folder (bpfbuild marks it as its own), "
        "or unset it",
    )


def own_folder(name: str, root: Path | None = None) -> Path:
    """root/name, made under the marked root without following a link."""
    root = own_root(root)
    folder = root / _check_name("kind", name)
    try:
        safefs.make_folders(root, folder, relative=False)
    except safefs.UnsafePathError as err:
        raise CacheError(err.message, hint=err.hint) from None
    return folder


@dataclass(frozen=True)
class Entry:
    """A verified cache entry."""

    path: Path
    files: dict[str, str]
    """File name -> SHA-256 of its content."""
    meta: dict

    def file(self, name: str) -> Path:
        if name not in self.files:
            raise MissingFile(
                f"the cache entry {self.path} has no file {name!r}",
                hint="this is a bug in bpfbuild; `bpfbuild cache clean` works around it",
            )
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


def _signature(body: Mapping) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_SIGNING_KEY, text, hashlib.sha256).hexdigest()


def _manifest(
    kind: str, key: str, files: Mapping[str, str], meta: Mapping, derived: tuple[str, ...]
) -> dict:
    body = {
        "format": ENTRY_FORMAT,
        "version": ENTRY_VERSION,
        "kind": kind,
        "key": key,
        "files": dict(files),
        "meta": dict(meta),
        "derived": list(derived),
    }
    return {**body, "signature": _signature(body)}


def _signed_manifest(path: Path) -> dict | None:
    """The manifest of the folder path when bpfbuild wrote and signed it for this very
    kind and key (so a folder renamed into another key is not taken); else None."""
    data = safefs.read_regular(path / MANIFEST, limit=1 << 20)
    try:
        manifest = json.loads(data) if data is not None else None
    except ValueError:
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("signature"), str):
        return None
    body = {k: v for k, v in manifest.items() if k != "signature"}
    if not hmac.compare_digest(manifest["signature"], _signature(body)):
        return None
    files, derived = manifest.get("files"), manifest.get("derived", [])
    if (
        manifest.get("format") != ENTRY_FORMAT
        or manifest.get("version") != ENTRY_VERSION
        or manifest.get("kind") != path.parent.name
        or manifest.get("key") != path.name
        or not isinstance(files, dict)
        or not isinstance(manifest.get("meta"), dict)
        or not isinstance(derived, list)
        or not all(isinstance(name, str) and _KEY.match(name) for name in derived)
        or not all(
            isinstance(name, str) and _KEY.match(name) and isinstance(d, str) and _SHA256.match(d)
            for name, d in files.items()
        )
    ):
        return None
    return manifest


_LEGACY_KEYS = frozenset({"files", "meta", "format", "signature", "derived"})
_LEGACY_FORMATS = (None, 2)
"""Manifests of older bpfbuilds: none (version 1), or 2 (an earlier signature)."""


def _legacy_entry(path: Path) -> bool:
    """True for a whole entry of an older format (a manifest of files and meta, with
    no signature or another one), each file present and matching: what an older
    bpfbuild wrote. It is a miss, and a new entry replaces it."""
    data = safefs.read_regular(path / MANIFEST, limit=1 << 20)
    try:
        manifest = json.loads(data) if data is not None else None
    except ValueError:
        return False
    if not isinstance(manifest, dict) or not {"files", "meta"} <= set(manifest) <= _LEGACY_KEYS:
        return False
    if manifest.get("format") not in _LEGACY_FORMATS:
        return False
    files, derived = manifest["files"], manifest.get("derived", [])
    return (
        isinstance(files, dict)
        and isinstance(derived, list)
        and all(isinstance(name, str) for name in derived)
        and _holds_exactly(path, files, derived)
    )


def _holds_exactly(path: Path, files: Mapping[str, object], derived: Iterable[str] = ()) -> bool:
    """True when the folder holds the manifest and exactly these regular files (no
    link, no folder, nothing unlisted), each with its recorded SHA-256; and, maybe,
    the derived folders the manifest names (real folders, not links)."""
    try:
        present = {c.name: c for c in os.scandir(path)}
    except OSError:
        return False
    made = {name for name in derived if name in present}
    if set(present) - made != {*files, MANIFEST}:
        return False
    if not all(present[name].is_dir(follow_symlinks=False) for name in made):
        return False
    for name, digest in files.items():
        if not present[name].is_file(follow_symlinks=False):
            return False
        try:
            if sha256_file(path / name) != digest:
                return False
        except OSError:
            return False
    return True


def read_entry(
    kind: str, key: str, root: Path | None = None, required: tuple[str, ...] = ()
) -> Entry | None:
    """The entry if bpfbuild wrote and signed it, it holds exactly the files its manifest
    lists (required among them) and each matches its recorded hash. An entry of
    bpfbuild's that does not is removed; anything else found there is left alone. Both
    are a miss."""
    path = entry_path(kind, key, root)
    if os.path.islink(path.parent):
        return None  # a linked kind folder: nothing outside the cache is read
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    manifest = _signed_manifest(path)
    if manifest is None:
        return None
    files = manifest["files"]
    derived = manifest.get("derived", [])
    if not set(required) <= set(files) or not _holds_exactly(path, files, derived):
        _discard(path)
        return None
    entry = Entry(path, dict(files), dict(manifest["meta"]))
    mark_used(entry)
    return entry


def write_entry(
    kind: str,
    key: str,
    files: Mapping[str, Path],
    meta: Mapping | None = None,
    root: Path | None = None,
    move: bool = False,
    derived: tuple[str, ...] = (),
) -> Entry:
    """Store files (name -> source path) as one entry, atomically. When another process
    stored the same key meanwhile, its verified entry is kept and returned.
    move: rename the sources into the entry instead of copying them (same file system).
    derived: names of folders its user may make in it later (an unpacked tree)."""
    final = entry_path(kind, key, root)
    parent = own_folder(kind, root)
    try:
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
        manifest = _manifest(kind, key, digests, meta or {}, derived)
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        safefs.write_file(staging, staging / MANIFEST, text, relative=False)
        if not _holds_exactly(staging, digests):
            raise CacheError(
                f"the cache entry {final} changed while it was written",
                hint=f"check the disk and the free space of {parent}",
            )
        try:
            os.rename(staging, final)
        except OSError:
            # Another writer won the race, or something else is in the way.
            existing = read_entry(kind, key, root)
            if existing:
                return existing
            if os.path.lexists(final) and not _legacy_entry(final):
                raise CacheError(
                    f"{final} is in the way of a cache entry and is not one bpfbuild wrote: "
                    "it is left alone",
                    hint=f"move it away (or delete it), or set ${CACHE_ENV} to another folder",
                ) from None
            if os.path.lexists(final):
                _discard(final)
            os.rename(staging, final)
    except safefs.UnsafePathError as err:
        raise CacheError(err.message, hint=err.hint) from None
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
    parent = own_folder(kind, root)
    lock = parent / f".{_check_name('key', key)}.lock"
    try:
        fd = safefs.open_file(parent.parent, lock, os.O_RDWR | os.O_CREAT, relative=False)
    except safefs.UnsafePathError as err:
        raise CacheError(err.message, hint=err.hint) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_partials(kind: str, root: Path | None = None) -> None:
    """Delete staging folders that a killed process left behind (in a marked root)."""
    root = root or cache_root()
    parent = root / kind
    if is_marked(root) and parent.is_dir() and not parent.is_symlink():
        for child in parent.glob(".*.partial"):
            _remove(child)


def _remove(path: Path) -> None:
    """Delete a folder of bpfbuild's; a symlink is removed as a link, never followed."""
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
    """Every entry bpfbuild signed (of one kind), least recently used first; none when
    the root is not marked as bpfbuild's."""
    root = root or cache_root()
    if not is_marked(root):
        return []
    found = []
    kinds = [root / kind] if kind else sorted(p for p in root.iterdir() if p.is_dir())
    for folder in kinds:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in folder.iterdir():
            if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
                continue
            if _signed_manifest(path) is None:
                continue  # not an entry of bpfbuild's: never listed, never deleted
            try:
                size = sum(
                    os.lstat(os.path.join(folder_, name)).st_size
                    for folder_, _, names in os.walk(path)  # never into a linked folder
                    for name in names
                )
                found.append(EntryInfo(folder.name, path.name, path, size, path.stat().st_mtime))
            except OSError:
                continue  # removed meanwhile by another process
    return sorted(found, key=lambda e: (e.last_used, e.kind, e.key))


def evict(
    limit: int, keep: tuple[str, str] | None = None, root: Path | None = None
) -> list[EntryInfo]:
    """Remove least recently used entries until the cache holds at most limit bytes;
    keep (kind, key) and the entries used in the last KEEP_RECENT seconds are never
    removed, nor anything bpfbuild did not sign, nor anything in a root it did not
    mark. An entry is renamed away before it is deleted, so a reader sees it whole or
    not at all. Returns what was removed."""
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
    """Remove every entry bpfbuild signed (of one kind) and the staging folders of
    killed writers. A root that exists, holds something and is not marked as bpfbuild's
    is an error: nothing there is deleted."""
    root = root or cache_root()
    if not is_marked(root):
        if not os.path.lexists(root):
            return []
        if root.is_dir() and _is_legacy_root(root):
            own_root(root)  # an older bpfbuild's root: marked, then cleaned as ours
        elif not root.is_dir() or any(os.scandir(root)):
            raise not_ours(root)
        else:
            return []
    removed = [e for e in entries(kind, root) if _discard(e.path)]
    for folder in [root / kind] if kind else [p for p in root.iterdir() if p.is_dir()]:
        if folder.is_dir() and not folder.is_symlink():
            remove_partials(folder.name, root)
    return removed


def older_entries(root: Path | None = None) -> list[Path]:
    """The whole entries of an older bpfbuild in a marked root (no signature of this
    one): never deleted by clean or eviction; `cache clean` names how many are left."""
    root = root or cache_root()
    if not is_marked(root):
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
                continue
            if _signed_manifest(path) is None and _legacy_entry(path):
                found.append(path)
    return found


def discard_entry(kind: str, key: str, root: Path | None = None) -> bool:
    """Remove one entry bpfbuild signed (intact, but of an older shape, to make it
    again); anything else found there is left alone."""
    path = entry_path(kind, key, root)
    if _signed_manifest(path) is None:
        return False
    return _discard(path)


def _discard(path: Path) -> bool:
    """Rename an entry to a staging name (atomic for readers), then delete it."""
    gone = path.with_name(f".{path.name}.{os.getpid()}.evicted.partial")
    try:
        os.rename(path, gone)
    except OSError:
        return False
    _remove(gone)
    return True
