"""`__kconfig` externs in VMs: the guest has its kernel's configuration where libbpf looks
(/boot/config-<release>), taken from the Debian package with the image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildutil import bpfbuild, copy_project, require_host, require_vm
from vmutil import kill_leftovers

pytestmark = pytest.mark.slow

SPEC = "debian:6.12"


def test_kconfig_externs_resolve_in_a_vm(tmp_path: Path) -> None:
    require_host("x86_64", "the project's vmlinux.h is the host's")
    kernel = require_vm(SPEC)
    assert kernel.config is not None and kernel.config.is_file()
    assert "CONFIG_HZ=" in kernel.config.read_text()
    root = copy_project("verify_kconfig", tmp_path)
    try:
        run = bpfbuild(root, "verify", f"--kernel={SPEC}", "--require", "--format", "json")
    finally:
        kill_leftovers(root)
    assert run.returncode == 0, run.describe()
    data = json.loads(run.stdout)
    verdicts = {
        (o["kernel_spec"], p["program"]): p["verdict"]
        for o in data["objects"]
        for p in o["programs"]
    }
    assert verdicts[(SPEC, "remember_hz")] == "passed", run.describe()


@pytest.mark.parametrize(
    ("spec", "arch", "line"),
    [
        ("debian:5.10", "x86_64", "CONFIG_BPF_SYSCALL=y"),
        ("debian:6.12", "arm64", "# CONFIG_SCHED_CLASS_EXT is not set"),
        # 7.x: the image's .deb has no configuration; linux-base-<release> has it
        ("debian:7.3", "x86_64", "CONFIG_SCHED_CLASS_EXT=y"),
        ("debian:7.3", "arm64", "CONFIG_SCHED_CLASS_EXT=y"),
    ],
)
def test_every_debian_kernel_comes_with_its_configuration(spec: str, arch: str, line: str) -> None:
    kernel = require_vm(spec, arch)
    assert kernel.config is not None, kernel.describe()
    assert line in kernel.config.read_text().splitlines()
