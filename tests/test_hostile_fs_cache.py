"""The cache deletes only what it made: a root without bpfbuild's marker is never cleaned
or evicted, a folder whose manifest bpfbuild did not sign is never deleted, and an entry
whose manifest does not cover its files is a miss (rebuilt), never copied into output/.
Table-driven; each case asserts what is left on disk byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, build, copy_project, output_hashes, snapshot

from bpfbuild import cache
from bpfbuild.cache import (
    MANIFEST,
    MARKER,
    CacheError,
    clean,
    entries,
    evict,
    own_root,
    read_entry,
    write_entry,
)


def _source(tmp_path: Path, content: bytes = b"data") -> Path:
    path = tmp_path / f"src-{hashlib.sha256(content).hexdigest()[:8]}"
    path.write_bytes(content)
    return path


# -- a root that is not bpfbuild's --------------------------------------------------


def _users_folders(root: Path) -> None:
    """What the issue found deleted: the user's folders that hold a manifest.json."""
    for name in ("photos", "pch", "vmlinux"):
        (root / name / "album").mkdir(parents=True)
        (root / name / "album" / MANIFEST).write_text('{"files": {}, "meta": {}}')
        (root / name / "album" / "picture.jpg").write_bytes(b"\xff\xd8 a picture")


def _a_document(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "thesis.tex").write_text("\\documentclass{article}\n")


def _other_tools_tag(root: Path) -> None:
    """Another tool's cache: a CACHEDIR.TAG, but not bpfbuild's."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("Signature: 8a477f597d28d172789f06886806bc55\n# by other\n")
    (root / "vmlinux" / "k").mkdir(parents=True)
    (root / "vmlinux" / "k" / MANIFEST).write_text('{"files": {}, "meta": {}}')


def _marker_is_a_link(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root.parent / "tag").write_text(cache.MARKER_TEXT)
    (root / MARKER).symlink_to(root.parent / "tag")
    (root / "notes.txt").write_text("mine\n")


def _legacy_names_with_a_link(root: Path) -> None:
    """Only bpfbuild's folder names, but one is a link: not a root bpfbuild made."""
    root.mkdir(parents=True, exist_ok=True)
    (root.parent / "elsewhere").mkdir()
    (root.parent / "elsewhere" / "data").write_text("x")
    (root / "pch").symlink_to(root.parent / "elsewhere")


FOREIGN_ROOTS: list[tuple[str, Callable[[Path], None]]] = [
    ("users-folders-with-manifests", _users_folders),
    ("a-document", _a_document),
    ("another-tools-cachedir-tag", _other_tools_tag),
    ("marker-is-a-link", _marker_is_a_link),
    ("bpfbuild-names-but-a-link", _legacy_names_with_a_link),
]


@pytest.mark.parametrize(("what", "make"), FOREIGN_ROOTS, ids=[c[0] for c in FOREIGN_ROOTS])
def test_clean_of_a_foreign_root_is_an_error_and_deletes_nothing(
    tmp_path: Path, what: str, make: Callable[[Path], None]
) -> None:
    root = tmp_path / "cache"
    make(root)
    before = snapshot(tmp_path)
    run = bpfbuild(tmp_path, "cache", "clean", env=dict(os.environ, BPFBUILD_CACHE_DIR=str(root)))
    assert run.returncode == 1, run.describe()
    assert f"error: the cache folder {root} holds files bpfbuild did not write" in run.stderr
    assert "hint: set $BPFBUILD_CACHE_DIR to a new or empty folder" in run.stderr
    assert "Traceback" not in run.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("what", "make"), FOREIGN_ROOTS, ids=[c[0] for c in FOREIGN_ROOTS])
def test_eviction_in_a_foreign_root_deletes_nothing(
    tmp_path: Path, what: str, make: Callable[[Path], None]
) -> None:
    root = tmp_path / "cache"
    make(root)
    before = snapshot(tmp_path)
    assert evict(0, root=root) == []
    assert entries(root=root) == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("what", "make"), FOREIGN_ROOTS, ids=[c[0] for c in FOREIGN_ROOTS])
def test_no_entry_is_written_in_a_foreign_root(
    tmp_path: Path, what: str, make: Callable[[Path], None]
) -> None:
    root = tmp_path / "cache"
    make(root)
    before = snapshot(tmp_path)
    with pytest.raises(CacheError) as raised:
        write_entry("pch", "k", {"f": _source(tmp_path)}, root=root)
    assert "holds files bpfbuild did not write" in raised.value.message
    after = snapshot(tmp_path)
    after = {k: v for k, v in after.items() if not k.startswith("src-")}
    assert after == {k: v for k, v in before.items() if not k.startswith("src-")}


@pytest.mark.parametrize(
    "names",
    [(), ("pch", "vmlinux"), ("kernels", "kernel-specs", "apt", "busybox", "vm", "tools")],
    ids=["empty", "headers", "kernels"],
)
def test_a_new_empty_or_older_bpfbuild_root_is_marked(tmp_path: Path, names: tuple) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    for name in names:
        (root / name).mkdir()
    own_root(root)
    assert cache.is_marked(root)
    assert "created by bpfbuild" in (root / MARKER).read_text()


def test_cache_clean_of_a_missing_or_empty_root_removes_nothing(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path / "empty"):
        if root.name == "empty":
            root.mkdir()
        run = bpfbuild(
            tmp_path, "cache", "clean", env=dict(os.environ, BPFBUILD_CACHE_DIR=str(root))
        )
        assert run.returncode == 0, run.describe()
        assert "removed 0 entries" in run.stdout


# -- folders in a marked root that are not bpfbuild's entries -------------------------


def _users_manifest(path: Path) -> None:
    (path / MANIFEST).write_text(json.dumps({"files": {"a": "0" * 64}, "meta": {}}))
    (path / "a").write_text("user's\n")


def _forged_signature(path: Path) -> None:
    (path / MANIFEST).write_text(
        json.dumps(
            {
                "format": cache.ENTRY_FORMAT,
                "version": cache.ENTRY_VERSION,
                "kind": path.parent.name,
                "key": path.name,
                "files": {},
                "meta": {},
                "signature": "0" * 64,
            }
        )
    )


def _manifest_garbage(path: Path) -> None:
    (path / MANIFEST).write_bytes(b"\x00\xff not json")


def _manifest_a_list(path: Path) -> None:
    (path / MANIFEST).write_text("[1, 2, 3]")


def _manifest_a_fifo(path: Path) -> None:
    os.mkfifo(path / MANIFEST)


def _manifest_a_link(path: Path) -> None:
    (path.parent.parent.parent / "m.json").write_text('{"files": {}, "meta": {}}')
    (path / MANIFEST).symlink_to(path.parent.parent.parent / "m.json")


def _no_manifest(path: Path) -> None:
    (path / "notes.txt").write_text("mine\n")


def _signed_for_another_key(path: Path) -> None:
    """A signed entry of key `other`, copied under this name: not this key's."""
    body = {
        "format": cache.ENTRY_FORMAT,
        "version": cache.ENTRY_VERSION,
        "kind": path.parent.name,
        "key": "other",
        "files": {},
        "meta": {},
    }
    (path / MANIFEST).write_text(json.dumps({**body, "signature": cache._signature(body)}))


NOT_ENTRIES: list[tuple[str, Callable[[Path], None]]] = [
    ("users-manifest", _users_manifest),
    ("forged-signature", _forged_signature),
    ("manifest-garbage", _manifest_garbage),
    ("manifest-a-list", _manifest_a_list),
    ("manifest-a-fifo", _manifest_a_fifo),
    ("manifest-a-link", _manifest_a_link),
    ("no-manifest", _no_manifest),
    ("signed-for-another-key", _signed_for_another_key),
]


@pytest.fixture
def marked(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    own_root(root)
    return root


@pytest.mark.parametrize(("what", "make"), NOT_ENTRIES, ids=[c[0] for c in NOT_ENTRIES])
def test_a_folder_bpfbuild_did_not_sign_is_never_deleted(
    marked: Path, tmp_path: Path, what: str, make: Callable[[Path], None]
) -> None:
    folder = marked / "pch" / "k"
    folder.mkdir(parents=True)
    make(folder)
    write_entry("pch", "ours", {"f": _source(tmp_path)}, root=marked)
    before = snapshot(folder)
    assert read_entry("pch", "k", root=marked) is None  # a miss
    assert [e.key for e in entries(root=marked)] == ["ours"]
    assert [e.key for e in evict(0, root=marked)] == []  # "ours" was used just now
    assert [e.key for e in clean(root=marked)] == ["ours"]
    assert snapshot(folder) == before
    with pytest.raises(CacheError) as raised:  # and nothing is written over it
        write_entry("pch", "k", {"f": _source(tmp_path)}, root=marked)
    assert "is not one bpfbuild wrote: it is left alone" in raised.value.message
    assert raised.value.hint and "move it away" in raised.value.hint
    assert snapshot(folder) == before


def test_an_entry_of_an_older_format_is_a_miss_and_is_replaced(
    marked: Path, tmp_path: Path
) -> None:
    folder = marked / "vmlinux" / "k"
    folder.mkdir(parents=True)
    (folder / "vmlinux.h").write_bytes(b"old\n")
    digest = hashlib.sha256(b"old\n").hexdigest()
    (folder / MANIFEST).write_text(
        json.dumps({"files": {"vmlinux.h": digest}, "meta": {}, "format": 2, "signature": "x"})
    )
    assert read_entry("vmlinux", "k", root=marked) is None
    entry = write_entry("vmlinux", "k", {"vmlinux.h": _source(tmp_path, b"new\n")}, root=marked)
    assert entry.file("vmlinux.h").read_bytes() == b"new\n"
    assert read_entry("vmlinux", "k", root=marked) == entry


# -- entries whose manifest does not cover their files --------------------------------


def _unlisted_file(path: Path) -> None:
    (path / "extra").write_text("not listed\n")


def _listed_file_missing(path: Path) -> None:
    (path / "f").unlink()


def _file_replaced(path: Path) -> None:
    (path / "f").write_bytes(b"datx")


def _file_a_link(path: Path) -> None:
    target = path.parent.parent.parent / "same"
    target.write_bytes(b"data")
    (path / "f").unlink()
    (path / "f").symlink_to(target)


def _file_a_folder(path: Path) -> None:
    (path / "f").unlink()
    (path / "f").mkdir()


def _a_subfolder(path: Path) -> None:
    (path / "sub").mkdir()


def _file_truncated(path: Path) -> None:
    (path / "f").write_bytes(b"")


DAMAGED: list[tuple[str, Callable[[Path], None]]] = [
    ("unlisted-file", _unlisted_file),
    ("listed-file-missing", _listed_file_missing),
    ("file-replaced", _file_replaced),
    ("file-a-link", _file_a_link),
    ("file-a-folder", _file_a_folder),
    ("a-subfolder", _a_subfolder),
    ("file-truncated", _file_truncated),
]


@pytest.mark.parametrize(("what", "damage"), DAMAGED, ids=[c[0] for c in DAMAGED])
def test_an_entry_not_covered_by_its_manifest_is_a_miss(
    marked: Path, tmp_path: Path, what: str, damage: Callable[[Path], None]
) -> None:
    entry = write_entry("things", "k", {"f": _source(tmp_path)}, root=marked)
    damage(entry.path)
    assert read_entry("things", "k", root=marked) is None
    assert not os.path.lexists(entry.path)  # bpfbuild's own entry: removed
    again = write_entry("things", "k", {"f": _source(tmp_path)}, root=marked)
    assert read_entry("things", "k", root=marked) == again


def test_an_entry_without_a_required_file_is_a_miss(marked: Path, tmp_path: Path) -> None:
    write_entry("pch", "k", {"other": _source(tmp_path)}, root=marked)
    assert read_entry("pch", "k", root=marked, required=("vmlinux.h.pch",)) is None


def test_an_entry_names_only_its_files(marked: Path, tmp_path: Path) -> None:
    entry = write_entry("pch", "k", {"f": _source(tmp_path)}, root=marked)
    with pytest.raises(CacheError):
        entry.file("not-listed")


@pytest.mark.parametrize("where", ["kind", "entry"])
def test_a_link_in_the_cache_is_never_followed(marked: Path, tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep\n")
    if where == "kind":
        (marked / "pch").symlink_to(outside)
    else:
        (marked / "pch").mkdir()
        (marked / "pch" / "k").symlink_to(outside)
    before = snapshot(outside)
    try:
        write_entry("pch", "k", {"f": _source(tmp_path)}, root=marked)
    except CacheError as err:
        assert err.hint
    assert read_entry("pch", "k", root=marked) is None or where == "entry"
    clean(root=marked)
    evict(0, root=marked)
    assert snapshot(outside) == before


# -- through a build: a damaged entry never reaches output/ -------------------------


def _entries(entry_folder: Path) -> list[Path]:
    """The entry folders of one cache kind: at least one, or the damage below damages
    nothing and its test proves nothing."""
    found = [p for p in entry_folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert found, f"no cache entry in {entry_folder}"
    return found


def _hit(entry_folder: Path) -> None:
    """Make every entry of a kind say one thing and hold another."""
    for path in _entries(entry_folder):
        for name in os.listdir(path):
            if name != MANIFEST:
                (path / name).write_bytes(b"#error this is not vmlinux.h\n")


def _drop_listing(entry_folder: Path) -> None:
    """A manifest that no longer lists its file (re-signed, as if bpfbuild had a bug)."""
    for path in _entries(entry_folder):
        manifest = json.loads((path / MANIFEST).read_text())
        manifest.pop("signature")
        manifest["files"] = {}
        manifest["signature"] = cache._signature(manifest)
        (path / MANIFEST).write_text(json.dumps(manifest))


def _unsign(entry_folder: Path) -> None:
    for path in _entries(entry_folder):
        manifest = json.loads((path / MANIFEST).read_text())
        manifest.pop("signature")
        (path / MANIFEST).write_text(json.dumps(manifest))


BUILD_DAMAGE: list[tuple[str, str, Callable[[Path], None]]] = [
    ("vmlinux-content-replaced", "vmlinux", _hit),
    ("pch-content-replaced", "pch", _hit),
    ("vmlinux-manifest-lists-nothing", "vmlinux", _drop_listing),
    ("pch-manifest-lists-nothing", "pch", _drop_listing),
    ("vmlinux-unsigned", "vmlinux", _unsign),
]


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The bytes of a clean build of `multi`, with a cache of its own."""
    tmp = tmp_path_factory.mktemp("clean")
    root = copy_project("multi", tmp)
    build(root, env=dict(os.environ, BPFBUILD_CACHE_DIR=str(tmp / "cache")))
    return output_hashes(root)


@pytest.mark.parametrize(("what", "kind", "damage"), BUILD_DAMAGE, ids=[c[0] for c in BUILD_DAMAGE])
def test_a_damaged_header_entry_is_rebuilt_not_copied(
    tmp_path: Path, clean_build: dict[str, str], what: str, kind: str, damage
) -> None:
    env = dict(os.environ, BPFBUILD_CACHE_DIR=str(tmp_path / "cache"))
    first = copy_project("multi", tmp_path / "first")
    build(first, env=env)  # fills the cache
    damage(tmp_path / "cache" / kind)
    root = copy_project("multi", tmp_path / "second")
    run = build(root, env=env)
    assert "Traceback" not in run.output
    assert output_hashes(root) == clean_build
    assert (root / "output" / ARCH / "include" / "vmlinux.h").read_bytes().startswith(b"#ifndef")


@pytest.mark.parametrize(("what", "make"), FOREIGN_ROOTS, ids=[c[0] for c in FOREIGN_ROOTS])
def test_a_build_with_the_cache_pointed_at_users_data_deletes_nothing(
    tmp_path: Path, clean_build: dict[str, str], what: str, make: Callable[[Path], None]
) -> None:
    """The issue's case: $BPFBUILD_CACHE_DIR at a folder of the user's, and a plain build
    with a size bound of one byte (eviction would take everything): nothing there is
    written or deleted, the build warns once per header and gives a clean build's bytes."""
    folder = tmp_path / "users"
    make(folder)
    before = snapshot(folder)
    root = copy_project("multi", tmp_path / "project")
    env = dict(os.environ, BPFBUILD_CACHE_DIR=str(folder), BPFBUILD_CACHE_SIZE="1")
    run = build(root, env=env)
    assert "warning: the cache folder" in run.stderr, run.describe()
    assert output_hashes(root) == clean_build
    assert snapshot(folder) == before
    info = bpfbuild(root, "cache", "info", env=env)
    assert info.returncode == 0 and "0 entries" in info.stdout, info.describe()
    for args in (["clean"], ["clean", "--kind", "pch"]):
        run = bpfbuild(root, "cache", *args, env=env)
        assert run.returncode == 1, run.describe()
        assert "error:" in run.stderr and "hint:" in run.stderr, run.describe()
        assert "Traceback" not in run.output
    assert snapshot(folder) == before


def _older_entry(root: Path, kind: str, key: str, content: bytes) -> Path:
    """An entry as a bpfbuild without signatures wrote it (manifest of files and meta)."""
    folder = root / kind / key
    folder.mkdir(parents=True)
    (folder / "vmlinux.h").write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    (folder / MANIFEST).write_text(json.dumps({"files": {"vmlinux.h": digest}, "meta": {}}))
    return folder


def test_cache_clean_of_an_older_bpfbuilds_root_marks_it_and_keeps_its_entries(
    tmp_path: Path,
) -> None:
    """A root an older bpfbuild made (its own folder names only, no marker): `cache clean`
    marks it, deletes nothing unsigned, and says how many older entries are left."""
    root = tmp_path / "cache"
    older = _older_entry(root, "vmlinux", "k", b"old\n")
    before = snapshot(older)
    run = bpfbuild(tmp_path, "cache", "clean", env=dict(os.environ, BPFBUILD_CACHE_DIR=str(root)))
    assert run.returncode == 0, run.describe()
    assert "removed 0 entries" in run.stdout
    assert f"note: 1 entries of an older bpfbuild are left in {root}" in run.stdout
    assert cache.is_marked(root)
    assert snapshot(older) == before


def test_cache_clean_removes_signed_entries_and_leaves_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    own_root(root)
    older = _older_entry(root, "vmlinux", "old", b"old\n")
    (root / "vmlinux" / "users").mkdir()
    (root / "vmlinux" / "users" / "notes.txt").write_text("mine\n")
    ours = write_entry("vmlinux", "new", {"vmlinux.h": _source(tmp_path, b"new\n")}, root=root)
    kept = snapshot(older), snapshot(root / "vmlinux" / "users")
    run = bpfbuild(tmp_path, "cache", "clean", env=dict(os.environ, BPFBUILD_CACHE_DIR=str(root)))
    assert run.returncode == 0, run.describe()
    assert "removed 1 entries" in run.stdout
    assert not ours.path.exists()
    assert (snapshot(older), snapshot(root / "vmlinux" / "users")) == kept
