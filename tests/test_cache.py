"""The user cache: entries appear whole or not at all, and a corrupt one is a miss."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from bpfbuild.cache import (
    CacheError,
    cache_root,
    own_root,
    read_entry,
    remove_partials,
    write_entry,
)


def _source(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BPFBUILD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "bpfbuild"
    monkeypatch.setenv("BPFBUILD_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == tmp_path / "own"


def test_written_entry_reads_back_with_its_metadata(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    entry = write_entry(
        "things", "a-1.0", {"blob": _source(tmp_path, "b", b"data")}, {"package": "a"}, root=root
    )
    again = read_entry("things", "a-1.0", root=root)
    assert again == entry
    assert again.file("blob").read_bytes() == b"data"
    assert again.meta == {"package": "a"}
    assert read_entry("things", "missing", root=root) is None


def test_corrupt_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    entry = write_entry("things", "k", {"blob": _source(tmp_path, "b", b"data")}, root=root)
    entry.file("blob").write_bytes(b"datx")
    assert read_entry("things", "k", root=root) is None
    assert not entry.path.exists()
    entry = write_entry("things", "k", {"blob": _source(tmp_path, "b", b"data")}, root=root)
    (entry.path / "manifest.json").write_text("{")
    assert read_entry("things", "k", root=root) is None


def test_keys_cannot_leave_the_cache(tmp_path: Path) -> None:
    for key in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(CacheError):
            write_entry("things", key, {}, root=tmp_path)


def _writer(args: tuple[str, str]) -> str:
    root, content = args
    source = Path(root) / f"src-{content}"
    source.write_text(content)
    return write_entry("race", "k", {"f": source}, root=Path(root) / "cache").file("f").read_text()


def test_concurrent_writers_leave_one_whole_entry(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_writer, [(str(tmp_path), str(i)) for i in range(8)])
    entry = read_entry("race", "k", root=tmp_path / "cache")
    assert entry is not None
    assert entry.file("f").read_text() in results
    assert not list((tmp_path / "cache" / "race").glob(".*.partial"))


def test_leftover_staging_folders_are_removed(tmp_path: Path) -> None:
    own_root(tmp_path)
    staging = tmp_path / "things" / ".k.abc.partial"
    staging.mkdir(parents=True)
    remove_partials("things", root=tmp_path)
    assert not staging.exists()
