"""sched_ext schedulers (tests/projects/scx_fifo, scx_broken) verified in emulated VMs:
per callback on Debian's trixie-backports 7.3 kernel (sched_ext built in) for x86_64
and arm64, "no struct sched_ext_ops" once per object on debian:6.12, nothing verified
failing --require, and no scheduler ever switched on in the VM that verifies."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import Run, bpfbuild, copy_project, require_vm
from vmutil import kill_leftovers

pytestmark = pytest.mark.slow

KERNELS = ("debian:7.3", "debian:6.12")
ARCHES = ("x86_64", "arm64")
NO_SCHED_EXT = "this kernel has no struct sched_ext_ops (sched_ext is not enabled in it)"
FIFO = ("fifo_select_cpu", "fifo_enqueue", "fifo_dispatch", "fifo_init", "fifo_exit")
BROKEN = ("broken_select_cpu", "broken_enqueue", "broken_dispatch", "broken_init", "broken_exit")


@dataclass
class Verified:
    root: Path
    run: Run
    releases: dict[tuple[str, str], str]
    """(spec, arch) -> `uname -r`."""

    def programs(self, spec: str, arch: str) -> dict[str, dict]:
        data = json.loads(self.run.stdout)
        return {
            f"{o['object']}/{p['program']}": p
            for o in data["objects"]
            if (o["kernel_spec"], o["arch"]) == (spec, arch)
            for p in o["programs"]
        }


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Verified:
    """Both schedulers in one project, verified on 7.3 and 6.12 for both arches: four
    VMs, each booted once for the module."""
    releases = {(s, a): require_vm(s, a).release for s in KERNELS for a in ARCHES}
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("no arm64 cross compiler for the runner (scripts/setup --arch arm64)")
    base = tmp_path_factory.mktemp("scx")
    root = copy_project("scx_fifo", base)
    broken = copy_project("scx_broken", base / "broken")
    shutil.copy(broken / "src" / "scx_broken.bpf.c", root / "src")
    try:
        run = bpfbuild(
            root,
            "verify",
            *[f"--kernel={k}" for k in KERNELS],
            "--format",
            "json",
            timeout=1500,
        )
    finally:
        kill_leftovers(root)
    assert "Traceback" not in run.output, run.describe()
    assert run.returncode == 1, run.describe()  # the broken callback
    return Verified(root, run, releases)


@pytest.mark.parametrize("arch", ARCHES)
def test_each_callback_has_its_own_verdict_on_7_3(verified: Verified, arch: str) -> None:
    found = verified.programs("debian:7.3", arch)
    for name in FIFO:
        program = found[f"scx_fifo/{name}"]
        assert (program["verdict"], program["prog_type"]) == ("passed", "struct_ops"), program
        assert program["insns_processed"] > 0
    for name in BROKEN:
        program = found[f"scx_broken/{name}"]
        if name != "broken_enqueue":
            assert program["verdict"] == "passed", program  # not "not supported"
            continue
        assert program["verdict"] == "rejected", program
        assert program["error"].startswith("R0 invalid mem access 'map_value_or_null'")
        assert "Register Type Safety: Invalid dereference" in program["error"]
        assert (program["source_file"], program["source_line"]) == ("src/scx_broken.bpf.c", 35)
        assert "BROKEN: no NULL check" in program["source_text"]
        assert "NULL" in program["hint"]


@pytest.mark.parametrize("arch", ARCHES)
def test_6_12_names_the_missing_subsystem_once_per_object(verified: Verified, arch: str) -> None:
    found = verified.programs("debian:6.12", arch)
    assert {p["verdict"] for p in found.values()} == {"unsupported"}
    assert {p["error"] for p in found.values()} == {NO_SCHED_EXT}
    notes = [
        line
        for line in verified.run.stderr.splitlines()
        if line.startswith("note:") and f"debian:6.12 ({arch})" in line
    ]
    assert len(notes) == 2, verified.run.stderr  # one per object, not one per program
    assert sorted(line.split(" (")[0] for line in notes) == ["note: scx_broken", "note: scx_fifo"]
    assert all(line.endswith(NO_SCHED_EXT) for line in notes)
    data = json.loads(verified.run.stdout)
    for obj in data["objects"]:
        if obj["kernel_spec"] == "debian:6.12":
            assert obj["notes"] == [NO_SCHED_EXT]
    # No kfunc guess, no advice to guard a kfunc: the whole subsystem is absent.
    assert "kfunc" not in verified.run.stderr and "bpf_ksym_exists" not in verified.run.stderr


def test_sched_ext_stays_disabled_while_verifying(verified: Verified) -> None:
    for arch in ARCHES:
        release = verified.releases[("debian:7.3", arch)]
        record = verified.root / "output" / arch / "verify" / release / "kernel-state.json"
        states = json.loads(record.read_text())
        after = {s["after"] for s in states}
        assert after == {"boot", "scx_fifo", "scx_broken"}, states
        by_file: dict[str, set[str]] = {}
        for state in states:
            by_file.setdefault(state["file"], set()).add(state["value"])
        assert by_file == {
            "/sys/kernel/sched_ext/state": {"disabled"},
            "/sys/kernel/sched_ext/enable_seq": {"0"},  # never enabled, not even briefly
        }


def test_the_matrix_ends_with_the_kernels_each_scheduler_runs_on(verified: Verified) -> None:
    run = bpfbuild(verified.root, "verify", *[f"--kernel={k}" for k in KERNELS])  # no boot
    assert run.returncode == 1, run.describe()
    assert "  VM " not in run.output
    lines = run.stdout.split("== matrix\n", 1)[1].splitlines()
    assert "scx_fifo: x86_64 7.3+, arm64 7.3+" in lines, run.stdout
    assert (
        "scx_broken: x86_64 none (7.3 rejected, 6.12 unsupported), arm64 none "
        in "\n".join(lines) + " "
    ), run.stdout
    data = json.loads(verified.run.stdout)
    assert data["kernel_support"]["scx_fifo"]["x86_64"]["oldest"] == "7.3"


def test_nothing_verified_fails_require(verified: Verified) -> None:
    run = bpfbuild(verified.root, "verify", "--kernel", "debian:6.12", "--require")
    assert run.returncode == 1, run.describe()
    assert "  VM " not in run.output  # the reports of the module's run
    assert "10 of 10 programs verified on no kernel at all" in run.stderr, run.describe()
    assert "debian:7.3" in run.stderr  # the hint
    passed = bpfbuild(verified.root, "verify", "--kernel", "debian:6.12")
    assert passed.returncode == 0, passed.describe()
    assert "warning: 10 of 10 programs verified on no kernel at all" in passed.output
