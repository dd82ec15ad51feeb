"""The same bytes wherever the project lives: one project built in two folders gives
identical objects, skeletons and executables, none of which names its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from buildutil import NOT_REPRODUCIBLE, build, copy_project, output_hashes

pytestmark = pytest.mark.slow


def test_two_folders_build_identical_outputs(tmp_path: Path) -> None:
    first = copy_project("multi", tmp_path / "a")
    second = copy_project("multi", tmp_path / "a-much-longer-folder" / "nested")
    build(first, "-j1")
    build(second, "-j2")
    hashes = output_hashes(first)
    assert any(path.endswith(".tmp.bpf.o") for path in hashes)  # DWARF kept there
    assert hashes == output_hashes(second)
    for root in (first, second):
        for path in (root / "output").rglob("*"):
            if path.is_file() and not path.name.endswith(NOT_REPRODUCIBLE):
                assert str(root).encode() not in path.read_bytes(), path


def test_moved_project_rebuilds_to_the_same_bytes(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path / "before")
    build(root)
    hashes = output_hashes(root)
    moved = tmp_path / "after" / "multi"
    moved.parent.mkdir()
    root.rename(moved)
    build(moved)
    assert output_hashes(moved) == hashes
