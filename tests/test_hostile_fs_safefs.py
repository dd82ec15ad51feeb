"""bpfbuild writes only through paths it checked (safefs): a link, a file or a FIFO planted
where it makes a folder or writes a file is refused with a hint or removed as a link, and
what such a link points to outside is never written. Table-driven: each case plants one
thing, then asserts the error and hint, and that the outside is byte-identical."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from buildutil import snapshot

from bpfbuild import safefs
from bpfbuild.safefs import UnsafePathError


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): an owned root, and a folder outside it with files to keep."""
    root = tmp_path / "project"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "data.txt").write_text("keep me\n")
    (outside / "deep" / "more.txt").write_text("me too\n")
    return root, outside


def _link_to_folder(root: Path, outside: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside)


def _link_to_file(root: Path, outside: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "data.txt")


def _dangling(root: Path, outside: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside / "nothing")


def _file(root: Path, outside: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file\n")


def _fifo(root: Path, outside: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


Plant = Callable[[Path, Path, str], None]

TARGET = "output/x86_64/user/alpha/src__a.c.o"
"""The file each case writes; the cases plant something at one of its folders."""

FOLDER_CASES: list[tuple[str, Plant, str, str]] = [
    # (planted at, how, error, hint)
    (
        "output",
        _link_to_folder,
        "output is a symbolic link, where bpfbuild writes",
        "remove the link: rm output",
    ),
    (
        "output/x86_64",
        _link_to_folder,
        "output/x86_64 is a symbolic link",
        "remove the link: rm output/x86_64",
    ),
    (
        "output/x86_64/user",
        _link_to_folder,
        "output/x86_64/user is a symbolic link",
        "rm output/x86_64/user",
    ),
    (
        "output/x86_64/user/alpha",
        _link_to_folder,
        "output/x86_64/user/alpha is a symbolic link",
        "remove the link: rm output/x86_64/user/alpha (its target is left alone)",
    ),
    (
        "output/x86_64/user/alpha",
        _dangling,
        "output/x86_64/user/alpha is a symbolic link",
        "rm output/x86_64/user/alpha",
    ),
    (
        "output/x86_64/user/alpha",
        _link_to_file,
        "output/x86_64/user/alpha is a symbolic link",
        "rm output/x86_64/user/alpha",
    ),
    (
        "output/x86_64",
        _dangling,
        "output/x86_64 is a symbolic link",
        "rm output/x86_64",
    ),
    (
        "output",
        _file,
        "output is a file, where bpfbuild keeps a folder of its own",
        "move the file away (or delete it: rm output)",
    ),
    (
        "output/x86_64/user",
        _file,
        "output/x86_64/user is a file, where bpfbuild keeps a folder",
        "rm output/x86_64/user",
    ),
    (
        "output/x86_64/user/alpha",
        _fifo,
        "output/x86_64/user/alpha is a file, where bpfbuild keeps a folder",
        "rm output/x86_64/user/alpha",
    ),
]


def _write(root: Path) -> None:
    safefs.write_file(root, root / TARGET, b"object\n")


def _prepare(root: Path) -> None:
    safefs.prepare_file(root, root / TARGET)


def _make(root: Path) -> None:
    safefs.make_folders(root, (root / TARGET).parent)


def _open(root: Path) -> None:
    os.close(safefs.open_file(root, root / TARGET, os.O_RDWR | os.O_CREAT))


OPERATIONS = {
    "write_file": _write,
    "prepare_file": _prepare,
    "make_folders": _make,
    "open_file": _open,
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize(
    ("planted", "plant", "error", "hint"),
    FOLDER_CASES,
    ids=[f"{c[0]}-{c[1].__name__.strip('_')}" for c in FOLDER_CASES],
)
def test_a_planted_folder_is_refused(
    place: tuple[Path, Path], operation: str, planted: str, plant: Plant, error: str, hint: str
) -> None:
    root, outside = place
    plant(root, outside, planted)
    before = snapshot(outside)
    with pytest.raises(UnsafePathError) as raised:
        OPERATIONS[operation](root)
    assert error in raised.value.message
    assert raised.value.hint and hint in raised.value.hint
    assert snapshot(outside) == before


FILE_CASES: list[tuple[str, Plant]] = [
    ("link to a file outside", _link_to_file),
    ("link to a folder outside", _link_to_folder),
    ("dangling link", _dangling),
]


@pytest.mark.parametrize(("what", "plant"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_link_at_the_file_is_replaced_never_followed(
    place: tuple[Path, Path], what: str, plant: Plant
) -> None:
    root, outside = place
    plant(root, outside, TARGET)
    before = snapshot(outside)
    safefs.write_file(root, root / TARGET, b"object\n")
    assert not (root / TARGET).is_symlink()
    assert (root / TARGET).read_bytes() == b"object\n"
    assert snapshot(outside) == before
    assert not list((root / TARGET).parent.glob("*.partial"))


@pytest.mark.parametrize(("what", "plant"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_prepare_removes_a_link_at_the_file_as_a_link(
    place: tuple[Path, Path], what: str, plant: Plant
) -> None:
    root, outside = place
    plant(root, outside, TARGET)
    before = snapshot(outside)
    safefs.prepare_file(root, root / TARGET)
    assert not os.path.lexists(root / TARGET)
    assert snapshot(outside) == before


@pytest.mark.parametrize(("what", "plant"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_open_refuses_a_link_at_the_file(place: tuple[Path, Path], what: str, plant: Plant) -> None:
    """The lock: opened in place (not replaced), so a link there is an error."""
    root, outside = place
    plant(root, outside, ".bpfbuild/lock")
    before = snapshot(outside)
    with pytest.raises(UnsafePathError) as raised:
        safefs.open_file(root, root / ".bpfbuild/lock", os.O_RDWR | os.O_CREAT)
    assert ".bpfbuild/lock is a symbolic link" in raised.value.message
    assert raised.value.hint and "remove the link: rm .bpfbuild/lock" in raised.value.hint
    assert snapshot(outside) == before


@pytest.mark.parametrize("operation", ["write_file", "prepare_file"])
def test_a_folder_at_the_file_is_refused(place: tuple[Path, Path], operation: str) -> None:
    root, outside = place
    (root / TARGET).mkdir(parents=True)
    (root / TARGET / "users-file").write_text("mine\n")
    with pytest.raises(UnsafePathError) as raised:
        OPERATIONS[operation](root)
    assert f"{TARGET} is a folder, where bpfbuild writes a file" in raised.value.message
    assert raised.value.hint and f"rm -r {TARGET}" in raised.value.hint
    assert (root / TARGET / "users-file").read_text() == "mine\n"


def test_the_root_itself_may_be_a_link(place: tuple[Path, Path], tmp_path: Path) -> None:
    """The owned root is the user's choice (a project reached through a link)."""
    root, _ = place
    (tmp_path / "via").symlink_to(root)
    safefs.write_file(tmp_path / "via", tmp_path / "via" / TARGET, b"x")
    assert (root / TARGET).read_bytes() == b"x"


def test_a_path_outside_the_root_is_a_bug(place: tuple[Path, Path]) -> None:
    root, outside = place
    with pytest.raises(UnsafePathError) as raised:
        safefs.write_file(root, outside / "data.txt", b"x")
    assert "this is a bug" in (raised.value.hint or "")
    assert (outside / "data.txt").read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("what", "plant", "expected"),
    [
        ("regular file", _file, b"a file\n"),
        ("link to a file", _link_to_file, None),
        ("dangling link", _dangling, None),
        ("fifo", _fifo, None),
        ("folder", lambda r, o, p: (r / p).mkdir(parents=True), None),
        ("absent", lambda r, o, p: None, None),
    ],
)
def test_read_regular_reads_only_files_and_never_blocks(
    place: tuple[Path, Path], what: str, plant: Plant, expected: bytes | None
) -> None:
    root, outside = place
    plant(root, outside, "state.json")
    assert safefs.read_regular(root / "state.json") == expected


def test_write_file_leaves_no_temporary_on_failure(place: tuple[Path, Path]) -> None:
    root, _ = place
    (root / "out").mkdir()
    (root / "out" / "name").mkdir()  # a folder: the rename fails
    with pytest.raises(UnsafePathError):
        safefs.write_file(root, root / "out" / "name", b"x")
    assert [p.name for p in (root / "out").iterdir()] == ["name"]


def test_remove_link_removes_only_links(place: tuple[Path, Path]) -> None:
    root, outside = place
    (root / "l").symlink_to(outside)
    (root / "f").write_text("x")
    assert safefs.remove_link(root / "l") is True
    assert safefs.remove_link(root / "f") is False
    assert (root / "f").exists() and (outside / "data.txt").exists()
