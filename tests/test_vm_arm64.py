"""arm64 in an emulated VM: every template's BPF objects, built for arm64, verify on
Debian's 6.12 arm64 kernel (qemu-system-aarch64, TCG)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from buildutil import STRUCT_OPS_TEMPLATES, bpfbuild, require_cross, require_vm
from vmutil import kill_leftovers

from bpfbuild.pipeline.actions import needed_libraries
from bpfbuild.scaffold import available_templates, create_project

pytestmark = pytest.mark.slow


def templates() -> list[str]:
    """Every template whose vmlinux.h can be 6.12's: not sched_ext, whose kernel must
    have it (tests/test_template_sched_ext.py verifies it on 7.3, and on 6.12)."""
    return [t.name for t in available_templates() if t.name not in STRUCT_OPS_TEMPLATES]


def templates_project(root: Path, btf: Path) -> Path:
    """One arm64 project holding the sources of those templates (their names differ)."""
    src = root / "src"
    src.mkdir(parents=True)
    for template in templates():
        made = root.parent / f"t_{template}"
        create_project(made, template, template, force=False)
        for source in (made / "src").iterdir():
            shutil.copy(source, src / source.name)
    shutil.copy(btf, root / "arm64.btf")
    (root / "bpfbuild.toml").write_text(
        '[project]\nname = "templates"\n\n[build]\narches = ["arm64"]\n\n'
        '[vmlinux]\narm64 = "arm64.btf"\n'
    )
    return root


def test_templates_verify_on_debian_6_12_arm64(tmp_path: Path) -> None:
    kernel = require_vm("debian:6.12", "arm64")
    require_cross("arm64")  # the runner is built for the guest
    root = templates_project(tmp_path / "templates", kernel.btf)
    try:
        run = bpfbuild(
            root,
            "verify",
            "--kernel",
            "debian:6.12",
            "--arch",
            "arm64",
            "--format",
            "json",
            timeout=900,
        )
    finally:
        kill_leftovers(root)
    assert run.returncode == 0, run.describe()
    data = json.loads(run.stdout)
    names = set(templates())
    assert {o["object"] for o in data["objects"]} == names
    for obj in data["objects"]:
        assert (obj["arch"], obj["kernel"], obj["kernel_spec"]) == (
            "arm64",
            kernel.release,
            "debian:6.12",
        )
        assert obj["programs"], obj
        for program in obj["programs"]:
            assert program["verdict"] == "passed", (obj["object"], program)
    runner = root / "output" / "arm64" / "tools" / "bpfverify"
    assert runner.read_bytes()[18:20] == (183).to_bytes(2, "little")  # EM_AARCH64
    assert needed_libraries(str(runner)) == []  # static: runs in a bare initramfs
