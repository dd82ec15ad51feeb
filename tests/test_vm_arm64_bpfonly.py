"""A project of BPF objects only (no app) verifies in an arm64 VM: the verifier's runner is
a C program, built with arm64's C compiler although nothing else is linked for arm64;
without that compiler, one error names its package and `scripts/setup --arch arm64`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from buildutil import bpfbuild, copy_project, require_vm
from vmutil import kill_leftovers

from bpfbuild.arch import get_arch
from bpfbuild.pipeline.actions import needed_libraries

ARM64 = get_arch("arm64")


def bpfonly_for_arm64(tmp_path: Path) -> Path:
    root = copy_project("bpfonly", tmp_path)
    with (root / "bpfbuild.toml").open("a") as config:
        config.write(
            '\n[build]\narches = ["x86_64", "arm64"]\n\n[vmlinux]\narm64 = "debian:6.12"\n'
        )
    return root


@pytest.mark.slow
def test_objects_only_project_verifies_on_debian_6_12_arm64(tmp_path: Path) -> None:
    kernel = require_vm("debian:6.12", "arm64")
    if shutil.which(ARM64.cross_cc) is None:
        pytest.skip(f"no arm64 cross compiler ({ARM64.cross_cc}): scripts/setup --arch arm64")
    root = bpfonly_for_arm64(tmp_path)
    try:
        run = bpfbuild(
            root,
            *("verify", "--arch", "arm64", "--kernel", "debian:6.12", "--format", "json"),
            timeout=600,
        )
    finally:
        kill_leftovers(root)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output, run.describe()
    [obj] = json.loads(run.stdout)["objects"]
    assert (obj["object"], obj["arch"], obj["kernel"]) == ("probe", "arm64", kernel.release)
    assert obj["programs"] and {p["verdict"] for p in obj["programs"]} == {"passed"}, obj
    runner = root / "output" / "arm64" / "tools" / "bpfverify"
    assert runner.read_bytes()[18:20] == (183).to_bytes(2, "little")  # EM_AARCH64
    assert needed_libraries(str(runner)) == []  # static: runs in a bare initramfs
    assert not (root / "output" / "x86_64").exists()  # only the arch verified was built


def test_without_the_arm64_compiler_the_error_names_its_package(tmp_path: Path) -> None:
    root = bpfonly_for_arm64(tmp_path)
    missing = tmp_path / "no-such-gcc"  # $CC_arm64: the compiler bpfbuild looks for
    env = dict(os.environ, CC_arm64=str(missing))
    run = bpfbuild(root, "verify", "--arch", "arm64", "--kernel", "debian:6.12", env=env)
    assert run.returncode == 1, run.describe()
    assert run.stdout == "", run.describe()
    error, hint = run.stderr.splitlines()
    assert error.startswith("error: no C compiler for arm64"), run.describe()
    assert "verifier's runner" in error, run.describe()
    assert hint.startswith("hint: apt-get install gcc-aarch64-linux-gnu "), run.describe()
    assert "`scripts/setup --arch arm64`" in hint, run.describe()
    assert not (root / "output" / "arm64" / "tools").exists()
