"""Fixtures shared by the test modules: the `multi` test project (a fresh copy, built or
not, and one built once per module) and the verifier's tools (vmlinux.h of the running
kernel and the static runner), built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bpfutil import build_runner, generate_vmlinux_header
from buildutil import Run, build, copy_project, require_bpf

from bpfbuild.pipeline.names import STAMP_NAME, STATE_DIR


@pytest.fixture
def multi_source(tmp_path: Path) -> Path:
    """A fresh copy of tests/projects/multi, not built."""
    return copy_project("multi", tmp_path)


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    """A fresh copy of tests/projects/multi, built (its no-op stamp written), for a test
    that edits or rebuilds it."""
    root = copy_project("multi", tmp_path)
    run = build(root, env=dict(os.environ, BPFBUILD_TRACE="1"))
    assert (root / STATE_DIR / STAMP_NAME).is_file(), run.describe()
    return root


@pytest.fixture(scope="module")
def multi_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """tests/projects/multi built once per module, and that first build: for the tests
    that only read it (or only touch it)."""
    root = copy_project("multi", tmp_path_factory.mktemp("built"))
    return root, build(root)


@pytest.fixture(scope="session")
def verify_tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vmlinux.h of the running kernel ("include") and the static verifier runner
    ("runner"), built once per session in a world-readable folder ("root")."""
    require_bpf()
    root = tmp_path_factory.mktemp("verify-tools")
    root.chmod(0o755)
    generate_vmlinux_header(root / "include")
    return {"root": root, "include": root / "include", "runner": build_runner(root / "tools")}
