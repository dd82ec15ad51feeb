"""`bpfbuild verify --kernel/--arch/--matrix-json`: errors found before anything boots, and
the matrix of cells, without qemu or kernels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, copy_project


@pytest.mark.parametrize(
    "args, message, hint",
    [
        (
            ("--kernel", "debian:6.1", "--arch", "s390x"),
            "arch s390x is not in this project's arches",
            "add it to `arches` in [build]",
        ),
        (
            ("--kernel", "images/vmlinuz-none"),
            "kernel image images/vmlinuz-none not found",
            "give a bootable image",
        ),
        (("--merge",), "--merge needs result files", "bpfbuild verify --merge results/*.json"),
        (
            ("--kernel", "debian:6.1", "--update-baseline"),
            "--update-baseline records the running kernel",
            "add --kernel host",
        ),
    ],
)
def test_vm_errors_are_one_line_with_a_hint(tmp_path: Path, args, message, hint) -> None:
    root = copy_project("verify_pass", tmp_path)
    run = bpfbuild(root, "verify", *args)
    assert run.returncode == 1, run.describe()
    assert f"error: {message}" in run.stderr and f"hint: {hint}" in run.stderr, run.describe()
    assert "Traceback" not in run.output


def test_matrix_json_lists_the_cells_without_building(tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    run = bpfbuild(root, "verify", "--matrix-json", "--kernel", "host", "--kernel", "debian:6.1")
    assert run.returncode == 0, run.describe()
    assert json.loads(run.stdout) == {
        "include": [{"kernel": "host", "arch": ARCH}, {"kernel": "debian:6.1", "arch": ARCH}]
    }
    assert not (root / "output").exists()


def test_verify_config_keys_are_checked(tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    toml = root / "bpfbuild.toml"
    toml.write_text(toml.read_text() + '\n[verify]\narches = ["sparc"]\n')
    run = bpfbuild(root, "verify", "--matrix-json")
    assert run.returncode == 1 and "unknown arch 'sparc'" in run.stderr, run.describe()
    toml.write_text(toml.read_text().replace('arches = ["sparc"]', 'kernels = ["debian:6.12"]'))
    run = bpfbuild(root, "verify", "--matrix-json")
    assert json.loads(run.stdout) == {"include": [{"kernel": "debian:6.12", "arch": ARCH}]}


def test_a_timeout_that_is_not_positive_is_refused_with_its_line(tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    toml = root / "bpfbuild.toml"
    toml.write_text(toml.read_text() + "\n[verify]\ntimeout = 0\n")
    run = bpfbuild(root, "verify", "--matrix-json")
    assert run.returncode == 1, run.describe()
    assert "must be a positive number of seconds" in run.stderr and "hint:" in run.stderr
    assert "bpfbuild.toml:" in run.stderr
