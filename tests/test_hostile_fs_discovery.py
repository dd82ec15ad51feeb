"""Project discovery is strict: a bpfbuild.toml that is there but cannot be read (a link to
nothing or out of the project, a folder, a FIFO, a socket) is an error at that folder;
`build`, `clean` and `list` never fall back to the parent's project, whose outputs stay
byte-identical. `clean` names the project it cleans."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from buildutil import bpfbuild, build, copy_project, snapshot

from bpfbuild.errors import ProjectError
from bpfbuild.pipeline.project import config_problem, find_root


def _dangling(config: Path, outside: Path) -> None:
    config.symlink_to("nothing.toml")


def _loop(config: Path, outside: Path) -> None:
    config.symlink_to(config.name)


def _link_out(config: Path, outside: Path) -> None:
    (outside / "bpfbuild.toml").write_text('[project]\nname = "elsewhere"\n')
    config.symlink_to(outside / "bpfbuild.toml")


def _link_to_folder(config: Path, outside: Path) -> None:
    config.symlink_to(config.parent)


def _folder(config: Path, outside: Path) -> None:
    config.mkdir()


def _fifo(config: Path, outside: Path) -> None:
    os.mkfifo(config)


def _socket(config: Path, outside: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(config))
    server.close()


def _device(config: Path, outside: Path) -> None:
    config.symlink_to("/dev/null")


Plant = Callable[[Path, Path], None]
CASES: list[tuple[str, Plant, str]] = [
    ("dangling-link", _dangling, "is a symbolic link to nothing (to nothing.toml)"),
    ("link-loop", _loop, "is a symbolic link to nothing"),
    ("link-out-of-the-project", _link_out, "is a symbolic link out of its project"),
    ("link-to-a-folder", _link_to_folder, "is a folder, not a file"),
    ("folder", _folder, "is a folder, not a file"),
    ("fifo", _fifo, "is not a regular file (a FIFO)"),
    ("socket", _socket, "is not a regular file (a socket)"),
    ("link-to-a-device", _device, "is a symbolic link out of its project"),
]
HINT = "the project's configuration file, or remove it (bpfbuild does not look above"


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built project: the one a nested folder's broken bpfbuild.toml must not reach."""
    root = copy_project("multi", tmp_path_factory.mktemp("parent"))
    build(root)
    return root


@pytest.mark.parametrize(("name", "plant", "error"), CASES, ids=[c[0] for c in CASES])
def test_find_root_stops_at_an_unreadable_config(
    tmp_path: Path, name: str, plant: Plant, error: str
) -> None:
    (tmp_path / "bpfbuild.toml").write_text('[project]\nname = "parent"\n')
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    nested = tmp_path / "nested"
    (nested / "deeper").mkdir(parents=True)
    plant(nested / "bpfbuild.toml", outside)
    for start in (nested, nested / "deeper"):
        with pytest.raises(ProjectError) as raised:
            find_root(start)
        assert f"{nested / 'bpfbuild.toml'} {error}" in raised.value.message
        assert raised.value.hint and HINT in raised.value.hint


@pytest.mark.parametrize("command", ["build", "clean", "list"])
@pytest.mark.parametrize(("name", "plant", "error"), CASES, ids=[c[0] for c in CASES])
def test_a_nested_broken_config_never_acts_on_the_parent(
    parent: Path, tmp_path: Path, command: str, name: str, plant: Plant, error: str
) -> None:
    nested = parent / f"nested-{name}-{command}"
    nested.mkdir()
    plant(nested / "bpfbuild.toml", tmp_path)
    before = snapshot(parent / "output"), snapshot(parent / ".bpfbuild")
    for run in (bpfbuild(nested, command), bpfbuild(parent, command, "-C", str(nested))):
        assert run.returncode == 1, run.describe()
        assert "Traceback" not in run.output
        assert f"error: {nested / 'bpfbuild.toml'} {error}" in run.stderr, run.describe()
        assert f"hint: make {nested / 'bpfbuild.toml'} {HINT}" in run.stderr
        assert "CLEAN" not in run.stdout
    assert (snapshot(parent / "output"), snapshot(parent / ".bpfbuild")) == before


@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("file", lambda c: c.write_text('[project]\nname = "n"\n')),
        (
            "link-inside",
            lambda c: (
                (c.parent / "real.toml").write_text('[project]\nname = "n"\n'),
                c.symlink_to("real.toml"),
            ),
        ),
    ],
)
def test_a_readable_config_or_a_link_inside_is_the_project(tmp_path: Path, what: str, make) -> None:
    make(tmp_path / "bpfbuild.toml")
    assert config_problem(tmp_path / "bpfbuild.toml") is None
    assert find_root(tmp_path) == tmp_path


def test_clean_names_the_project_it_cleans(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    build(root)
    (root / "src" / "sub").mkdir()
    run = bpfbuild(root / "src" / "sub", "clean")
    assert run.returncode == 0, run.describe()
    assert run.stdout.splitlines()[0] == f"cleaning the project in {root}"


@pytest.mark.parametrize(("name", "plant", "error"), CASES, ids=[c[0] for c in CASES])
def test_the_pytest_plugin_stops_at_an_unreadable_config(
    tmp_path: Path, name: str, plant: Plant, error: str
) -> None:
    """The bpf_project fixture finds the project as the CLI does: a broken bpfbuild.toml
    in the tests' folder is an error there, not the parent's project."""
    from bpfbuild.testing.pytest_plugin import find_project_root

    (tmp_path / "bpfbuild.toml").write_text('[project]\nname = "parent"\n')
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    nested = tmp_path / "nested"
    nested.mkdir()
    plant(nested / "bpfbuild.toml", outside)
    with pytest.raises(ProjectError) as raised:
        find_project_root([nested], environ={})
    assert error in raised.value.message
    assert find_project_root([tmp_path], environ={}) == tmp_path
