"""A normal (non-editable) wheel carries the templates and the runner's C source, and
`bpfbuild init` and `build` work from it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from buildutil import ARCH, REPO

pytestmark = pytest.mark.slow


def can_build_wheels() -> bool:
    """setuptools before 70.1 needs the `wheel` package for bdist_wheel."""
    version = tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of a copy of this source tree, built offline with the installed setuptools."""
    if not can_build_wheels():
        pytest.skip(
            "building a wheel with setuptools < 70.1 needs `pip install wheel` (in the test extra)"
        )
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "output", ".bpfbuild")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("bpfbuild", "templates"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            str(source),
            "-w",
            str(folder / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (folder / "dist").glob("bpfbuild-*.whl")
    return built


def test_wheel_holds_templates_and_runner_source(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = REPO / "templates"
    expected = {
        "bpfbuild/templates/" + str(path.relative_to(templates))
        for path in templates.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "bpfbuild/templates/tracepoint/src/{{name}}.bpf.c" in expected
    assert "bpfbuild/templates/tracepoint/template.toml" in expected
    assert expected <= names, sorted(expected - names)
    runner_sources = {
        f"bpfbuild/verify/runner/{p.name}" for p in (REPO / "bpfbuild/verify/runner").glob("*.c")
    }
    assert runner_sources <= names, sorted(runner_sources - names)
    assert "bpfbuild/cli.py" in names


def test_init_and_build_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # PYTHONPATH comes before site-packages, where an editable install may also be.
    env = {**os.environ, "PYTHONPATH": str(site)}
    cli = [sys.executable, "-m", "bpfbuild.cli"]
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bpfbuild.scaffold as s; print(s.__file__); print(s.templates_root())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(site / "bpfbuild/scaffold.py"), str(site / "bpfbuild/templates")]

    init = subprocess.run(
        [*cli, "init", "--name", "wheeled", "wheeled"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    root = tmp_path / "wheeled"
    assert (root / "src/wheeled.bpf.c").is_file()
    assert (root / ".gitignore").is_file()

    built = subprocess.run(
        [*cli, "build"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (root / "output" / ARCH / "wheeled").is_file()


def test_bpfbuild_test_works_in_a_fresh_venv_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    """`pip install bpfbuild` with no extras gives a working `bpfbuild test`: pytest is a
    runtime dependency. The wheel's dependencies come from pip's configured index."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0 and (
        "Could not find a version" in install.stderr or "NewConnectionError" in install.stderr
    ):
        pytest.skip(
            f"pip cannot reach an index for the wheel's dependencies: {install.stderr[-300:]}"
        )
    assert install.returncode == 0, install.stdout + install.stderr
    pytest_installed = subprocess.run([str(venv / "bin/python"), "-c", "import pytest"], env=env)
    assert pytest_installed.returncode == 0, "pytest is not installed with bpfbuild"

    cli = str(venv / "bin/bpfbuild")
    init = subprocess.run(
        [cli, "init", "--name", "fresh", "fresh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    root = tmp_path / "fresh"
    done = subprocess.run(
        [cli, "test"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "No module named" not in output and "Traceback" not in output
    assert "==> bpfbuild test: pytest" in output
    assert " passed" in output or " skipped" in output, output
    assert (root / "output" / ARCH / "fresh").is_file()
