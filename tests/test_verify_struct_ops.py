"""Programs libbpf loads together, on the running kernel: each struct_ops callback gets
its own verdict (tests/projects/verify_struct_ops, a TCP congestion control), nothing
is registered while verifying, a sched_ext scheduler on a kernel without sched_ext is
named unsupported once for the object, and maps a loader sizes at run time
(tests/projects/verify_maps) load with [verify.maps] sizes or 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildutil import BPF_SKIP_REASON, bpfbuild, copy_project

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON)),
]

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
CONGESTION_CONTROLS = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")
SCHED_EXT = Path("/sys/kernel/sched_ext")


def kernel_has_struct(name: str) -> bool:
    """Whether the running kernel's BTF has `struct name` (read with the repo's reader)."""
    from bpfbuild.testing.btf import Btf, BtfError, Kind

    try:
        Btf(KERNEL_BTF.read_bytes()).find(name, Kind.STRUCT)
    except BtfError:
        return False
    return True


def programs(run_stdout: str) -> dict[str, dict]:
    data = json.loads(run_stdout)
    return {f"{o['object']}/{p['program']}": p for o in data["objects"] for p in o["programs"]}


@pytest.fixture(scope="module")
def struct_ops(tmp_path_factory: pytest.TempPathFactory):
    if not KERNEL_BTF.is_file() or not kernel_has_struct("bpf_struct_ops_tcp_congestion_ops"):
        pytest.skip("this kernel cannot take a BPF tcp_congestion_ops")
    root = copy_project("verify_struct_ops", tmp_path_factory.mktemp("struct_ops"))
    before = CONGESTION_CONTROLS.read_text().split()
    run = bpfbuild(root, "verify", "--format", "json")
    return root, run, before


def test_each_callback_has_its_own_verdict(struct_ops) -> None:
    _, run, _ = struct_ops
    assert run.returncode == 1, run.describe()  # the broken callback
    found = programs(run.stdout)
    assert {name: p["verdict"] for name, p in found.items()} == {
        "slowcc/slowcc_init": "passed",
        "slowcc/slowcc_ssthresh": "passed",
        "slowcc/slowcc_cong_avoid": "rejected",
        "slowcc/slowcc_undo_cwnd": "passed",
        "slowcc/count_packets": "passed",  # no struct_ops map is made for it
    }
    broken = found["slowcc/slowcc_cong_avoid"]
    assert broken["error"].startswith("R0 invalid mem access 'map_value_or_null'")
    assert (broken["source_file"], broken["source_line"]) == ("src/slowcc.bpf.c", 44)
    for name in ("slowcc_init", "slowcc_ssthresh", "slowcc_undo_cwnd"):
        assert found[f"slowcc/{name}"]["insns_processed"] > 0
        assert found[f"slowcc/{name}"]["prog_type"] == "struct_ops"


def test_verifying_registers_no_congestion_control(struct_ops) -> None:
    _, run, before = struct_ops
    after = CONGESTION_CONTROLS.read_text().split()
    assert "bpfbuild_slowcc" not in after and after == before, run.describe()


def test_sched_ext_on_a_kernel_without_it_is_named_once(tmp_path: Path) -> None:
    if SCHED_EXT.exists():
        pytest.skip("this kernel has sched_ext (the VM tests verify on one without it)")
    root = copy_project("scx_fifo", tmp_path)
    (root / "bpfbuild.toml").write_text(
        (root / "bpfbuild.toml").read_text().replace('arches = ["x86_64", "arm64"]', "")
    )
    run = bpfbuild(root, "verify")
    assert run.returncode == 0, run.describe()
    reason = "this kernel has no struct sched_ext_ops (sched_ext is not enabled in it)"
    notes = [line for line in run.output.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: scx_fifo (5 programs: fifo_select_cpu, fifo_enqueue, fifo_dispatch, fifo_init, "
        f"fifo_exit): not supported by this kernel: {reason}"
    ], run.describe()
    # Not a guess about the scheduler's kfuncs, and no advice to guard them.
    assert "kfunc" not in run.output and "bpf_ksym_exists" not in run.output
    assert "5 of 5 programs verified on no kernel at all" in run.output

    required = bpfbuild(root, "verify", "--require")
    assert required.returncode == 1, required.describe()
    assert "error: verification failed (1 problem):" in required.stderr
    assert "5 of 5 programs verified on no kernel at all" in required.stderr
    assert "debian:7.3" in required.stderr  # the hint: where sched_ext is

    tested = bpfbuild(root, "test", "--require")
    assert tested.returncode == 1, tested.describe()
    assert "==> bpfbuild test: verify" in tested.output
    assert "5 of 5 programs verified on no kernel at all" in tested.output
    assert "==> bpfbuild test: pytest" not in tested.output


def test_maps_left_at_zero_load_with_one_and_say_so(tmp_path: Path) -> None:
    root = copy_project("verify_maps", tmp_path)
    run = bpfbuild(root, "verify", "--format", "json")
    assert run.returncode == 0, run.describe()
    (obj,) = json.loads(run.stdout)["objects"]
    assert obj["programs"][0]["verdict"] == "passed"
    assert obj["maps"]["per_interface"] == 1
    assert obj["maps"]["events"] > 0  # libbpf rounds a ring buffer up to a page
    assert len(obj["notes"]) == 2 and all("max_entries 0" in n for n in obj["notes"])
    assert "[verify.maps.flows]" in obj["notes"][0]
    assert "note: flows on this kernel: map 'per_interface' has max_entries 0" in run.stderr

    with open(root / "bpfbuild.toml", "a") as config:
        config.write(
            "\n[verify.maps.flows]\n"
            "per_interface = { max_entries = 1024 }\nevents = { max_entries = 65536 }\n"
        )
    sized = bpfbuild(root, "verify", "--format", "json")
    assert sized.returncode == 0, sized.describe()
    (obj,) = json.loads(sized.stdout)["objects"]
    assert obj["maps"] == {"per_interface": 1024, "events": 65536}
    assert obj["notes"] == [] and "note:" not in sized.stderr


@pytest.mark.parametrize(
    ("table", "line", "message", "hint"),
    [
        (
            "[verify.maps.nosuch]\nx = { max_entries = 4 }\n",
            0,
            "[verify.maps.nosuch] names no BPF object of this project",
            "BPF objects: flows",
        ),
        (
            "[verify.maps.flows]\nnosuch = { max_entries = 4 }\n",
            None,
            "no map 'nosuch' in",
            "[verify.maps.flows] of bpfbuild.toml",
        ),
        (
            "[verify.maps.flows]\nevents = { max_entries = 0 }\n",
            1,
            "'verify.maps.flows.events.max_entries' = 0 is not between 1 and 4294967295",
            "bpf_map__set_max_entries",
        ),
        (
            "[verify.maps.flows]\nevents = { size = 4 }\n",
            1,
            "unknown setting 'size' in 'verify.maps.flows.events'",
            "valid settings: max_entries",
        ),
    ],
    ids=["unknown-object", "unknown-map", "zero", "unknown-setting"],
)
def test_bad_map_sizes_are_clean_errors(
    tmp_path: Path, table: str, line: int | None, message: str, hint: str
) -> None:
    """line: of the error within the table (0: its header); None: no config line (a
    map's name is checked against the built object, which lists its maps)."""
    root = copy_project("verify_maps", tmp_path)
    config = root / "bpfbuild.toml"
    header = len(config.read_text().splitlines()) + 2  # after one blank line
    config.write_text(config.read_text() + "\n" + table)
    run = bpfbuild(root, "verify")
    assert run.returncode != 0, run.describe()
    assert "Traceback" not in run.output
    assert message in run.output, run.describe()
    assert hint in run.output, run.describe()
    if line is None:
        assert "(it has: per_interface, events)" in run.output
    else:
        assert f"bpfbuild.toml:{header + line}: " in run.stderr, run.describe()
