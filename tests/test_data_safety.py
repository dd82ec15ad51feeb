"""Nothing outside the project is written or deleted: `clean` removes links as links,
names cannot leave output/<arch>/, and `init` keeps what exists and never writes
through a link out of its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, build, snapshot
from click.testing import CliRunner

from bpfbuild.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def new_project(folder: Path, name: str = "hello") -> Path:
    result = invoke("init", "--name", name, str(folder / name))
    assert result.exit_code == 0, result.output
    return folder / name


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the project holding files that must survive."""
    folder = tmp_path / "precious"
    (folder / "deep").mkdir(parents=True)
    (folder / "data.txt").write_text("keep me\n")
    (folder / "deep" / "more.txt").write_text("me too\n")
    return folder


@pytest.mark.parametrize("link", ["output", ".bpfbuild"])
def test_clean_removes_a_linked_folder_as_a_link(tmp_path: Path, outside: Path, link: str) -> None:
    root = new_project(tmp_path)
    (root / link).symlink_to(outside)
    before = snapshot(outside)
    result = invoke("clean", "-C", str(root))
    assert result.exit_code == 0, result.output
    assert "a symbolic link; removed, its target left alone" in result.output
    assert not (root / link).is_symlink()  # (.bpfbuild/ is a real folder again: the lock)
    assert snapshot(outside) == before


def test_clean_with_a_link_to_a_folder_inside_output(tmp_path: Path, outside: Path) -> None:
    """output/foo -> a folder outside: the link goes, the folder and its files stay."""
    root = new_project(tmp_path)
    build(root)
    (root / "output" / "foo").symlink_to(outside)
    (root / "output" / ARCH / "bar").symlink_to(outside / "data.txt")
    (root / "output" / ARCH / "user" / "baz").symlink_to(outside)  # inside a folder rmtree takes
    before = snapshot(outside)
    run = bpfbuild(root, "clean")
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output
    assert list((root / "output").iterdir()) == []
    assert snapshot(outside) == before
    build(root)  # and the project builds again after it


@pytest.mark.parametrize("link", ["output", ".bpfbuild"])
def test_build_refuses_a_linked_folder(tmp_path: Path, outside: Path, link: str) -> None:
    root = new_project(tmp_path)
    (root / link).symlink_to(outside)
    before = snapshot(outside)
    run = bpfbuild(root, "build")
    assert run.returncode == 1, run.describe()
    assert f"error: {root}/{link} is a symbolic link" in run.stderr
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", ["../../x", "../../src/hello.h", "../escape", "include"])
def test_app_names_cannot_leave_output(tmp_path: Path, name: str) -> None:
    """Today's escape: output/<arch>/../../x is the project's x, or src/hello.h."""
    root = new_project(tmp_path)
    (root / "bpfbuild.toml").write_text(
        f'[app."{name}"]\nsources = ["src/hello.c"]\nbpf = ["src/hello.bpf.c"]\n'
    )
    before = snapshot(tmp_path)
    run = bpfbuild(root, "build")
    assert run.returncode == 1, run.describe()
    assert f"error: {root}/bpfbuild.toml:1: '{name}' is not a valid app name" in run.stderr
    assert snapshot(tmp_path) == before


def test_init_into_a_non_empty_folder_keeps_what_exists(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "src").mkdir(parents=True)
    (target / "README.md").write_text("my readme\n")
    (target / "src" / "mine.c").write_text("int main(void) { return 0; }\n")
    (target / "notes.txt").write_text("mine\n")
    before = snapshot(target)
    result = invoke("init", str(target))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "kept      README.md (it exists; --force overwrites it)",
        "kept      src/mine.c (it exists; --force overwrites it)",
    ]
    after = snapshot(target)
    assert {k: after[k] for k in before} == before  # kept byte for byte
    assert {"bpfbuild.toml", ".gitignore", "src/mine.bpf.c", "src/mine.h"} <= set(after)


def test_init_force_lists_every_file_it_overwrote(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "src").mkdir(parents=True)
    (target / "README.md").write_text("my readme\n")
    (target / "bpfbuild.toml").write_text("# mine\n")
    (target / "src" / "mine.c").write_text("int main(void) { return 0; }\n")
    (target / "notes.txt").write_text("mine\n")
    result = invoke("init", "--force", str(target))
    assert result.exit_code == 0, result.output
    overwritten = [
        line.split()[1] for line in result.output.splitlines() if line.startswith("overwrote ")
    ]
    assert sorted(overwritten) == ["README.md", "bpfbuild.toml", "src/mine.c"]
    assert (target / "notes.txt").read_text() == "mine\n"  # not the template's: untouched
    assert (target / "README.md").read_text() != "my readme\n"
    assert 'name = "mine"' in (target / "bpfbuild.toml").read_text()


@pytest.mark.parametrize("force", [False, True])
def test_init_never_writes_through_a_linked_src(tmp_path: Path, outside: Path, force: bool) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "src").symlink_to(outside)
    before = snapshot(outside)
    result = invoke("init", *(["--force"] if force else []), str(target))
    assert result.exit_code == 1, result.output
    assert f"error: {target}/src is a symbolic link out of {target}" in result.output
    assert snapshot(outside) == before
    assert [p.name for p in target.iterdir()] == ["src"]  # nothing half-written


def test_init_force_replaces_a_linked_file_not_its_target(tmp_path: Path, outside: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "README.md").symlink_to(outside / "data.txt")
    before = snapshot(outside)
    result = invoke("init", "--force", str(target))
    assert result.exit_code == 0, result.output
    assert "overwrote README.md" in result.output
    assert not (target / "README.md").is_symlink()
    assert snapshot(outside) == before


def test_init_keeps_a_link_inside_the_folder(tmp_path: Path) -> None:
    """A src/ that links inside the project is the user's layout: init writes there."""
    target = tmp_path / "mine"
    (target / "code").mkdir(parents=True)
    (target / "src").symlink_to("code")
    result = invoke("init", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "code" / "mine.bpf.c").is_file()


def test_plain_doit_writes_nothing_through_a_linked_state_folder(
    tmp_path: Path, outside: Path
) -> None:
    """A project's own dodo.py run by plain doit takes the lock too: not through a link."""
    import subprocess
    import sys

    from buildutil import copy_project

    root = copy_project("withdodo", tmp_path)
    (root / ".bpfbuild").symlink_to(outside)
    before = snapshot(outside)
    done = subprocess.run(
        [sys.executable, "-m", "doit"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "is a symbolic link" in done.stdout + done.stderr
    assert snapshot(outside) == before
