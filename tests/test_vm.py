"""`bpfbuild verify --kernel debian:6.1 --kernel debian:6.12`: the same objects verified in
two emulated VMs. Each kernel boots once for the module (tests/projects/vm_kernels)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import ARCH, Run, bpfbuild, bpfbuild_command, copy_project, require_host, require_vm
from vmutil import kill_leftovers, qemu_processes

pytestmark = pytest.mark.slow

KERNELS = ("debian:6.1", "debian:6.12")


@dataclass
class Verified:
    root: Path
    run: Run
    releases: dict[str, str]
    """Kernel spec -> `uname -r` of its kernel."""

    def programs(self, spec: str) -> dict[str, dict]:
        data = json.loads(self.run.stdout)
        return {
            f"{o['object']}/{p['program']}": p
            for o in data["objects"]
            if o["kernel_spec"] == spec
            for p in o["programs"]
        }


def matrix_of(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The matrix printed after `== matrix`: its header words and a row per program."""
    lines = text.split("== matrix\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return lines[0].split(), {line.split()[0]: line.split()[1:] for line in lines[2:]}


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Verified:
    require_host("x86_64", "the fixture's vmlinux.h is the host's")
    releases = {spec: require_vm(spec).release for spec in KERNELS}
    root = copy_project("vm_kernels", tmp_path_factory.mktemp("vm"))
    try:
        run = bpfbuild(
            root, "verify", *[f"--kernel={k}" for k in KERNELS], "--format", "json", timeout=600
        )
    finally:
        kill_leftovers(root)
    assert "Traceback" not in run.output, run.describe()
    assert run.returncode == 1, run.describe()  # the unguarded read on 6.1
    return Verified(root, run, releases)


def test_one_record_per_object_and_kernel_named_by_release_and_spec(verified: Verified) -> None:
    data = json.loads(verified.run.stdout)
    records = sorted(
        (o["object"], o["arch"], o["kernel_spec"], o["kernel"]) for o in data["objects"]
    )
    assert records == sorted(
        (name, ARCH, spec, verified.releases[spec])
        for name in ("core", "hooks", "kfunc")
        for spec in KERNELS
    )
    lines = [line for line in verified.run.stderr.splitlines() if line.startswith("  VM ")]
    assert len(lines) == 2 and all("done, 3 objects, 4 programs" in line for line in lines), lines


def test_field_missing_on_6_1_is_rejected_with_type_and_field_named(verified: Verified) -> None:
    program = verified.programs("debian:6.1")["core/read_mtime"]
    assert program["verdict"] == "rejected"
    assert "struct inode.i_mtime_sec" in program["error"]
    assert "struct inode has no field 'i_mtime_sec'" in program["hint"]
    assert program["failing_insn"]
    log = (
        verified.root
        / "output"
        / ARCH
        / "verify"
        / verified.releases["debian:6.1"]
        / "core"
        / "read_mtime.log"
    )
    assert Path(program["log_path"]) == log
    assert "i_mtime_sec" in log.read_text()
    assert "on debian:6.1 (x86_64): core/read_mtime" in verified.run.stderr
    assert verified.programs("debian:6.12")["core/read_mtime"]["verdict"] == "passed"


def test_guarded_read_passes_on_both(verified: Verified) -> None:
    for spec in KERNELS:
        assert verified.programs(spec)["core/read_mtime_guarded"]["verdict"] == "passed", spec


def test_fentry_loads_in_the_vms(verified: Verified) -> None:
    for spec in KERNELS:
        program = verified.programs(spec)["hooks/on_unlinkat"]
        assert (program["verdict"], program["prog_type"]) == ("passed", "tracing"), spec
        assert program["insns_processed"] > 0


def test_kfunc_missing_on_6_1_is_named(verified: Verified) -> None:
    program = verified.programs("debian:6.1")["kfunc/on_exec"]
    assert program["verdict"] == "unsupported"
    assert "bpf_rcu_read_lock" in program["error"]
    assert verified.programs("debian:6.12")["kfunc/on_exec"]["verdict"] == "passed"


def test_second_verify_boots_nothing_and_shows_the_matrix(verified: Verified) -> None:
    run = bpfbuild(verified.root, "verify")  # the same kernels, from [verify] kernels
    assert run.returncode == 1, run.describe()
    assert "  VM " not in run.output and "  BPF " not in run.output, run.describe()
    for spec in KERNELS:
        assert f"== {spec} {ARCH} ({verified.releases[spec]})" in run.stdout
    header, rows = matrix_of(run.stdout)
    assert header == ["Program", "debian:6.1", ARCH, "debian:6.12", ARCH]
    assert rows["core/read_mtime"] == ["REJECTED", "ok"]
    assert rows["kfunc/on_exec"] == ["unsupported", "ok"]
    assert rows["hooks/on_unlinkat"] == ["ok", "ok"]
    assert "core/read_mtime on debian:6.1 (x86_64): rejected" in run.stderr


def test_matrix_json_and_merge_round_trip(verified: Verified, tmp_path: Path) -> None:
    run = bpfbuild(verified.root, "verify", "--matrix-json")
    assert run.returncode == 0, run.describe()
    cells = json.loads(run.stdout)["include"]
    assert cells == [{"kernel": spec, "arch": ARCH} for spec in KERNELS]
    results = []
    for cell in cells:  # what each matrix job runs; up to date here, so no boot
        job = bpfbuild(
            verified.root,
            "verify",
            "--kernel",
            cell["kernel"],
            "--arch",
            cell["arch"],
            "--format",
            "json",
        )
        assert "  VM " not in job.stderr, job.describe()
        path = tmp_path / f"{cell['kernel'].replace(':', '-')}-{cell['arch']}.json"
        path.write_text(job.stdout)
        results.append(path)
    merged = bpfbuild(tmp_path, "verify", "--merge", *map(str, results))
    assert merged.returncode == 1, merged.describe()
    _, rows = matrix_of(merged.stdout)
    assert rows["core/read_mtime"] == ["REJECTED", "ok"]
    assert "error: verification failed (1 problem)" in merged.stderr
    only_new = bpfbuild(tmp_path, "verify", "--merge", str(results[1]))
    assert only_new.returncode == 0, only_new.describe()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    broken = bpfbuild(tmp_path, "verify", "--merge", str(bad))
    assert broken.returncode == 1 and "hint:" in broken.stderr and "Traceback" not in broken.stderr


def test_hung_vm_is_killed_at_its_timeout(tmp_path: Path) -> None:
    require_vm("debian:6.12")
    root = copy_project("vm_kernels", tmp_path)
    toml = root / "bpfbuild.toml"
    toml.write_text(toml.read_text() + "timeout = 2\n")
    started = time.monotonic()
    try:
        run = bpfbuild(root, "verify", "--kernel", "debian:6.12", timeout=300)
    finally:
        leftovers = qemu_processes(root)
        kill_leftovers(root)
    assert run.returncode == 1, run.describe()
    assert "did not finish within 2 s and was killed; last console lines:" in run.output
    assert "hint: raise `timeout` in [verify]" in run.output
    assert "VM      debian:6.12 x86_64: timed out" in run.stderr
    assert leftovers == []
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_verify_leaves_no_qemu(tmp_path: Path, how: signal.Signals) -> None:
    require_vm("debian:6.12")
    root = copy_project("vm_kernels", tmp_path)
    process = subprocess.Popen(
        [*bpfbuild_command(), "verify", "--kernel", "debian:6.12"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not qemu_processes(root) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert qemu_processes(root), "no VM started"
        os.killpg(process.pid, how)  # as a terminal's Ctrl-C does: the foreground group
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while qemu_processes(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert qemu_processes(root) == []
        stderr = process.stderr.read().decode()
        if how == signal.SIGINT:
            assert process.returncode == 130 and "interrupted" in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        kill_leftovers(root)


def test_a_failed_vm_does_not_hide_the_verdicts_of_the_others(verified: Verified) -> None:
    image = verified.root / "not-a-kernel"
    image.write_bytes(b"\0" * 4096)
    try:
        run = bpfbuild(
            verified.root, "verify", "--kernel", "debian:6.12", "--kernel", str(image), timeout=300
        )
    finally:
        kill_leftovers(verified.root)
    assert run.returncode != 0, run.describe()
    assert f"VM {image} {ARCH} ({image}) stopped before the end" in run.output, run.describe()
    assert f"== debian:6.12 {ARCH} ({verified.releases['debian:6.12']})" in run.stdout
    assert "Traceback" not in run.output


def test_csv_rows_name_their_kernel(verified: Verified) -> None:
    import csv
    import io

    run = bpfbuild(verified.root, "verify", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert len(rows) == 8, run.describe()
    keyed = {(row["kernel_spec"], row["object"], row["program"]): row for row in rows}
    assert keyed[("debian:6.1", "core", "read_mtime")]["verdict"] == "rejected"
    assert (
        keyed[("debian:6.12", "core", "read_mtime")]["kernel"] == verified.releases["debian:6.12"]
    )


def test_kvm_probe_boots_a_kernel_once_and_keeps_its_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bpfbuild.vm import qemu

    kernel = require_vm("debian:6.12")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/kvm: TCG is chosen without a probe")
    monkeypatch.setenv("BPFBUILD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(qemu.ACCEL_ENV, raising=False)
    monkeypatch.setattr(qemu, "_kvm_verdicts", {})
    machine = qemu.MACHINES[ARCH]
    started = time.monotonic()
    works = qemu.use_kvm(machine, kernel.image)
    assert time.monotonic() - started < qemu.KVM_PROBE_SECONDS + 5  # a hanging KVM is cut short
    saved = json.loads((tmp_path / "vm" / f"kvm-{ARCH}.json").read_text())
    assert saved["works"] is works
    monkeypatch.setattr(qemu, "_kvm_verdicts", {})
    monkeypatch.setattr(qemu, "_probe_kvm", lambda *args: pytest.fail("probed again"))
    assert qemu.use_kvm(machine, kernel.image) is works
    assert qemu_processes(Path(kernel.image)) == []


def test_bpfbuild_test_verifies_the_configured_kernels(verified: Verified) -> None:
    run = bpfbuild(verified.root, "test")
    assert run.returncode == 1, run.describe()
    assert "==> bpfbuild test: verify\n" in run.stdout
    assert "core/read_mtime on debian:6.1 (x86_64): rejected" in run.stderr
    assert "  VM " not in run.output  # up to date: nothing boots
