"""`bpfbuild verify` and `bpfbuild test` as a user runs them: the console script in a
subprocess, on copies of tests/projects/verify_*, with the real clang, bpftool and
kernel. The engine itself is tested in test_verify_engine.py."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bpfutil import loaded_programs, ours
from buildutil import (
    ARCH,
    Run,
    bpfbuild,
    bpfbuild_command,
    copy_project,
    needs_bpf,
    parse_steps,
    require_tool,
)

pytestmark = [
    pytest.mark.root,
    needs_bpf,
]

OUR_PROGRAMS = [
    "bpfverify_probe", "count_packets", "sum_array", "good_pass", "bad_read",
    "on_unlinkat", "on_file_open", "on_sys_enter", "read_slot",
]  # fmt: skip
"""Names of the programs these projects (and the runner's privilege probe) load."""

PROJECT_TEST = '''\
"""The project's own tests: run the built XDP program with BPF_PROG_TEST_RUN."""

XDP_DROP, XDP_PASS = 1, 2
ETH_IPV4 = bytes(12) + b"\\x08\\x00"


def test_ipv4_packet_passes(bpf_object):
    result = bpf_object("counter").program("count_packets").test_run(data_in=ETH_IPV4 + bytes(50))
    assert result.retval == XDP_PASS


def test_zero_ethertype_is_dropped(bpf_object):
    result = bpf_object("counter").program("count_packets").test_run(data_in=bytes(64))
    assert result.retval == XDP_DROP
'''
"""tests/test_counter.py of the verify_pass copy (kept out of the repo's tests/ tree,
where pytest would collect it)."""

FAILING_PROJECT_TEST = """\
def test_zero_ethertype_passes(bpf_object):
    result = bpf_object("counter").program("count_packets").test_run(data_in=bytes(64))
    assert result.retval == 2
"""


# --- helpers ---------------------------------------------------------------------------


@dataclass
class Verified:
    """A project copy after its first `bpfbuild verify`, and the kernel's loaded
    programs around that run."""

    root: Path
    first: Run
    programs_before: dict[int, str]
    programs_after: dict[int, str]


def first_verify(name: str, destination: Path, *args: str) -> Verified:
    """Copy a project and run its first `bpfbuild verify ARGS` (build included)."""
    root = copy_project(name, destination)
    before = loaded_programs()
    run = bpfbuild(root, "verify", *args)
    return Verified(root, run, before, loaded_programs())


def table_rows(stdout: str) -> dict[str, dict[str, str]]:
    """The verdict table's rows by program (`object/program`), cells by column header."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Program "))
    headers = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(headers, cells, strict=False))
    return rows


def logged_insns(root: Path, bpf_object: str, program: str) -> int:
    """`processed N insns` from the saved verifier log of one program."""
    log = (root / "output" / ARCH / "verify" / bpf_object / f"{program}.log").read_text()
    match = re.search(r"^processed (\d+) insns \(limit \d+\)", log, re.M)
    assert match, log
    return int(match[1])


def line_of(path: Path, text: str) -> int:
    """The 1-based line of `text` in a source file."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def assert_clean(run: Run) -> None:
    """Whatever the exit code, no traceback and no internal error."""
    assert "Traceback" not in run.output, run.describe()
    assert "internal error" not in run.output, run.describe()


def assert_nothing_left_loaded(verified: Verified) -> None:
    """No program the run loaded stays loaded. Another process (a concurrent test run)
    may load or unload programs meanwhile, so ours are told apart by name."""
    before, after = verified.programs_before, verified.programs_after
    appeared = {i: n for i, n in after.items() if i not in before}
    assert ours(appeared, OUR_PROGRAMS) == {}, f"left loaded: {appeared}"
    assert len(ours(after, OUR_PROGRAMS)) == len(ours(before, OUR_PROGRAMS))


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory) -> Verified:
    """verify_pass, first verified with `--format json` (so that run builds, too), and
    given its tests/ for `bpfbuild test`."""
    verified = first_verify("verify_pass", tmp_path_factory.mktemp("pass"), "--format", "json")
    (verified.root / "tests").mkdir()
    (verified.root / "tests" / "test_counter.py").write_text(PROJECT_TEST)
    return verified


@pytest.fixture(scope="module")
def rejected(tmp_path_factory: pytest.TempPathFactory) -> Verified:
    """verify_reject, with a project test that `bpfbuild test` must never reach."""
    verified = first_verify("verify_reject", tmp_path_factory.mktemp("reject"))
    (verified.root / "tests").mkdir()
    (verified.root / "tests" / "test_never_runs.py").write_text(
        "def test_never_runs():\n    pass\n"
    )
    return verified


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
          "--inh-caps=-all", "--bounding-set=-all", "--"]  # fmt: skip
ROOT_WITHOUT_CAPABILITIES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


@pytest.fixture
def unprivileged() -> list[str]:
    """A command prefix that runs bpfbuild without BPF privilege: as user nobody
    without capabilities; or, when nobody cannot run this Python (pyenv under root's
    0700 home), as root with every capability dropped."""
    require_tool("setpriv", "util-linux")
    disabled = Path("/proc/sys/kernel/unprivileged_bpf_disabled")
    if disabled.exists() and disabled.read_text().strip() == "0":
        pytest.skip("unprivileged BPF is enabled (kernel.unprivileged_bpf_disabled=0)")
    probe = subprocess.run(
        [*NOBODY, *bpfbuild_command(), "--version"], cwd="/", capture_output=True, text=True
    )
    return NOBODY if probe.returncode == 0 else ROOT_WITHOUT_CAPABILITIES


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="bpfbuild-verify-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


# --- 1. a passing project: formats, saved logs, up to date -------------------------------


def test_first_verify_builds_and_prints_only_json_on_stdout(passing: Verified) -> None:
    run = passing.first
    assert run.returncode == 0, run.describe()
    assert_clean(run)
    # The steps go to stderr, so that `> report.json` is valid JSON even on a fresh tree.
    assert ("VERIFY", f"output/{ARCH}/bpf/counter.bpf.o") in parse_steps(run.stderr)
    data = json.loads(run.stdout)
    assert data["status"] == "ok"
    (obj,) = data["objects"]
    assert (obj["object"], obj["arch"], obj["privileged"]) == ("counter", ARCH, True)
    assert obj["kernel"] == os.uname().release
    programs = {p["program"]: p for p in obj["programs"]}
    assert list(programs) == ["count_packets", "sum_array"]
    for name, program in programs.items():
        assert program["verdict"] == "passed"
        assert program["insns_processed"] == logged_insns(passing.root, "counter", name) > 0
        assert program["insn_limit"] == 1_000_000
        assert program["xlated_insns"] > 0 and program["total_states"] >= 1
        assert program["log_path"] == str(
            passing.root / "output" / ARCH / "verify" / "counter" / f"{name}.log"
        )


def test_second_verify_is_up_to_date_and_prints_the_table(passing: Verified) -> None:
    run = bpfbuild(passing.root, "verify")
    assert run.returncode == 0, run.describe()
    assert_clean(run)
    assert "  VERIFY" not in run.output and run.steps == [], run.describe()
    rows = table_rows(run.stdout)
    assert set(rows) == {"counter/count_packets", "counter/sum_array"}
    assert rows["counter/count_packets"]["Type"] == "xdp"
    assert rows["counter/sum_array"]["Type"] == "socket_filter"
    for name, row in rows.items():
        assert row["Verdict"] == "passed"
        program = name.split("/")[1]
        assert int(row["Insns"].replace(",", "")) == logged_insns(passing.root, "counter", program)
        assert row["% limit"].endswith("%") and int(row["Xlated"]) > 0


def test_csv_format_parses(passing: Verified) -> None:
    run = bpfbuild(passing.root, "verify", "--format", "csv")
    assert run.returncode == 0, run.describe()
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(r["object"], r["program"], r["verdict"]) for r in rows] == [
        ("counter", "count_packets", "passed"), ("counter", "sum_array", "passed"),
    ]  # fmt: skip
    for row in rows:
        assert int(row["insns_processed"]) == logged_insns(passing.root, "counter", row["program"])
        assert row["arch"] == ARCH and row["error"] == ""


def test_unknown_object_is_an_error_with_the_objects(passing: Verified) -> None:
    run = bpfbuild(passing.root, "verify", "nope")
    assert run.returncode == 1, run.describe()
    assert_clean(run)
    assert "error: no BPF object named nope" in run.stderr
    assert "hint: objects: counter" in run.stderr


# --- 2. a rejection ----------------------------------------------------------------------


def test_rejection_names_the_source_line_and_the_hint(rejected: Verified) -> None:
    run = rejected.first
    assert run.returncode == 1, run.describe()
    assert_clean(run)
    rows = table_rows(run.stdout)
    assert rows["bad/good_pass"]["Verdict"] == "passed"
    assert rows["bad/bad_read"]["Verdict"] == "rejected by the verifier"
    line = line_of(rejected.root / "src" / "bad.bpf.c", "if (eth->h_proto == 0)")
    assert f"src/bad.bpf.c:{line}: if (eth->h_proto == 0)" in run.stdout
    assert "rejected by the verifier: invalid access to packet" in run.stdout
    assert "hint: check `data + size > data_end` before reading the packet" in run.stdout
    assert "error: verification failed (1 problem):" in run.stderr
    assert "bad/bad_read: rejected by the verifier" in run.stderr
    assert "bad/good_pass" not in run.stderr
    assert f"hint: full verifier logs are in {rejected.root}/output/{ARCH}/verify/bad" in run.stderr


def test_rejection_in_json_keeps_stdout_parseable(rejected: Verified) -> None:
    run = bpfbuild(rejected.root, "verify", "--format", "json")
    assert run.returncode == 1, run.describe()
    (obj,) = json.loads(run.stdout)["objects"]
    bad = {p["program"]: p for p in obj["programs"]}["bad_read"]
    assert (bad["verdict"], bad["source_file"]) == ("rejected", "src/bad.bpf.c")
    assert "hint: check `data + size > data_end`" in run.stderr


# --- 3. program types this kernel refuses ----------------------------------------------------


def test_fentry_and_lsm_are_not_supported_rather_than_rejected(tmp_path: Path) -> None:
    run = first_verify("verify_unsupported", tmp_path).first
    assert_clean(run)
    rows = table_rows(run.stdout)
    if rows["hooks/on_unlinkat"]["Verdict"] == "passed":
        pytest.skip("this kernel loads fentry programs")
    assert run.returncode == 0, run.describe()
    for name in ("hooks/on_unlinkat", "hooks/on_file_open"):
        assert rows[name]["Verdict"] == "not supported by this kernel", run.describe()
    # One reason, one note for the object (not one per program).
    notes = [line for line in run.output.splitlines() if line.startswith("note: hooks")]
    assert len(notes) == 1, run.describe()
    assert notes[0].startswith("note: hooks (2 programs: on_unlinkat, on_file_open): not supported")
    # The object has a program that passed: only the two are verified on no kernel.
    assert (
        "warning: 2 of 3 programs verified on no kernel at all (unsupported or skipped "
        "everywhere): hooks/on_file_open, hooks/on_unlinkat" in run.output
    )
    assert rows["hooks/on_sys_enter"]["Verdict"] == "passed"
    assert "error:" not in run.output and "rejected" not in run.output


def test_merge_require_fails_on_programs_no_kernel_verified(tmp_path: Path) -> None:
    """The templates' combined CI job: `--merge --require` fails when a program was
    verified nowhere in the whole matrix; plain `--merge` says so and passes."""
    root = copy_project("verify_unsupported", tmp_path)
    run = bpfbuild(root, "verify", "--format", "json")
    if '"verdict": "unsupported"' not in run.stdout:
        pytest.skip("this kernel loads fentry and LSM programs: nothing unsupported")
    assert run.returncode == 0, run.describe()
    result = tmp_path / "result.json"
    result.write_text(run.stdout)
    merged = bpfbuild(root, "verify", "--merge", str(result))
    assert merged.returncode == 0, merged.describe()
    assert "warning: 2 of 3 programs verified on no kernel at all" in merged.output
    required = bpfbuild(root, "verify", "--merge", "--require", str(result))
    assert required.returncode == 1, required.describe()
    assert "error: verification failed" in required.stderr, required.describe()
    assert "hooks/on_unlinkat" in required.stderr and "hint: " in required.stderr
    assert "Traceback" not in required.output


# --- 4. baselines ------------------------------------------------------------------------------


def test_baseline_catches_a_raised_loop_bound(tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    written = bpfbuild(root, "verify", "--update-baseline")
    assert written.returncode == 0, written.describe()
    assert "wrote baseline verify-baseline.json (2 programs)" in written.output
    baseline = json.loads((root / "verify-baseline.json").read_text())
    assert sorted(baseline["programs"]) == [
        f"{ARCH}/counter/count_packets",
        f"{ARCH}/counter/sum_array",
    ]
    before = baseline["programs"][f"{ARCH}/counter/sum_array"]["insns_processed"]

    unchanged = bpfbuild(root, "verify")
    assert unchanged.returncode == 0, unchanged.describe()
    assert unchanged.steps == []
    assert "compared with verify-baseline.json:" in unchanged.output
    assert "Insns (before)" in unchanged.output
    assert re.search(rf"{ARCH}/counter/sum_array .* ok$", unchanged.output, re.M), (
        unchanged.describe()
    )

    source = root / "src" / "counter.bpf.c"
    source.write_text(source.read_text().replace("#define SUM_BOUND 16", "#define SUM_BOUND 64"))
    grown = bpfbuild(root, "verify")
    assert grown.returncode == 1, grown.describe()
    assert_clean(grown)
    # Editing the source rebuilds and re-verifies the object.
    assert ("BPF", "src/counter.bpf.c") in grown.steps
    assert ("VERIFY", f"output/{ARCH}/bpf/counter.bpf.o") in grown.steps
    after = logged_insns(root, "counter", "sum_array")
    assert after > 2 * before
    assert (
        f"{ARCH}/counter/sum_array: processed instructions grew by "
        f"{100 * (after - before) / before:.1f}% ({before:,} -> {after:,}), more than 10%"
    ) in grown.stderr
    assert "count_packets" not in grown.stderr

    config = root / "bpfbuild.toml"
    config.write_text(config.read_text() + "\n[verify]\nmax_growth = 1000\n")
    allowed = bpfbuild(root, "verify")
    assert allowed.returncode == 0, allowed.describe()
    assert allowed.steps == []  # a budget is not an input of verification
    assert "compared with verify-baseline.json:" in allowed.output
    assert "error:" not in allowed.output


# --- 5. budget ---------------------------------------------------------------------------------


def test_instruction_budget_fails_a_passing_program(passing: Verified) -> None:
    config = passing.root / "bpfbuild.toml"
    original = config.read_text()
    config.write_text(original + "\n[verify]\nmax_insn_share = 0.00001\n")
    try:
        run = bpfbuild(passing.root, "verify")
    finally:
        config.write_text(original)
    assert run.returncode == 1, run.describe()
    assert_clean(run)
    assert table_rows(run.stdout)["counter/sum_array"]["Verdict"] == "passed"
    insns = logged_insns(passing.root, "counter", "sum_array")
    assert (
        f"counter/sum_array: {insns:,} of 1,000,000 instructions processed (0%), over the 0% budget"
    ) in run.stderr


# --- 6. .rodata from bpfbuild.toml -----------------------------------------------------------


def test_rodata_setting_from_config_changes_the_verdict(tmp_path: Path) -> None:
    root = copy_project("verify_rodata", tmp_path)
    default = bpfbuild(root, "verify")
    assert default.returncode == 0, default.describe()
    assert table_rows(default.stdout)["table/read_slot"]["Verdict"] == "passed"

    config = root / "bpfbuild.toml"
    original = config.read_text()
    config.write_text(original + "\n[verify.rodata.table]\nslot = 8\n")
    out_of_bounds = bpfbuild(root, "verify")
    assert out_of_bounds.returncode == 1, out_of_bounds.describe()
    assert_clean(out_of_bounds)
    assert out_of_bounds.steps == [("VERIFY", f"output/{ARCH}/bpf/table.bpf.o")]
    assert (
        table_rows(out_of_bounds.stdout)["table/read_slot"]["Verdict"] == "rejected by the verifier"
    )
    line = line_of(root / "src" / "table.bpf.c", "return row[slot] & 1;")
    assert f"src/table.bpf.c:{line}: return row[slot] & 1;" in out_of_bounds.stdout
    assert "invalid access to map value" in out_of_bounds.stdout

    config.write_text(original + "\n[verify.rodata.table]\nslot = 3\n")
    in_bounds = bpfbuild(root, "verify")
    assert in_bounds.returncode == 0, in_bounds.describe()
    assert table_rows(in_bounds.stdout)["table/read_slot"]["Verdict"] == "passed"


# --- 7. without privilege --------------------------------------------------------------------


def test_without_privilege_verify_skips_and_require_fails(
    unprivileged: list[str], shared_dir: Path
) -> None:
    # The project's program is rejected when verified: a skip must not verify it.
    root = copy_project("verify_reject", shared_dir)
    built = bpfbuild(root, "build")
    assert built.returncode == 0, built.describe()
    subprocess.run(["chmod", "-R", "a+rwX", str(root)], check=True)
    env = dict(os.environ, HOME=str(root))

    def verify(*args: str) -> Run:
        done = subprocess.run(
            [*unprivileged, *bpfbuild_command(), "verify", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    skipped = verify()
    assert skipped.returncode == 0, skipped.describe()
    assert_clean(skipped)
    skip_lines = [line for line in skipped.output.splitlines() if "skipped" in line]
    assert len(skip_lines) == 1 and skip_lines[0].startswith("verify skipped: no BPF privilege"), (
        skipped.describe()
    )
    assert "rejected" not in skipped.output and "Program" not in skipped.output

    as_json = verify("--format", "json")
    assert as_json.returncode == 0, as_json.describe()
    data = json.loads(as_json.stdout)
    assert data["status"] == "no privilege"
    assert {p["verdict"] for o in data["objects"] for p in o["programs"]} == {"skipped"}
    assert as_json.stderr.count("verify skipped: no BPF privilege") == 1

    required = verify("--require")
    assert required.returncode != 0, required.describe()
    assert_clean(required)
    assert "error: verify skipped: no BPF privilege" in required.stderr
    # as nobody: become root; as root without capabilities (nobody cannot run this
    # Python, e.g. a clone in root's 0700 home): keep them
    hint = "run as root" if unprivileged == NOBODY else "run without dropping capabilities"
    assert f"hint: {hint}" in required.stderr and "CAP_BPF" in required.stderr


# --- 8. nothing left loaded --------------------------------------------------------------------


def test_verify_leaves_no_program_loaded(passing: Verified, rejected: Verified) -> None:
    assert passing.first.returncode == 0 and rejected.first.returncode == 1
    assert_nothing_left_loaded(passing)
    assert_nothing_left_loaded(rejected)


# --- 9. bpfbuild test ----------------------------------------------------------------------------


def test_test_command_builds_verifies_then_runs_the_project_tests(passing: Verified) -> None:
    run = bpfbuild(passing.root, "test")
    assert run.returncode == 0, run.describe()
    assert_clean(run)
    phases = [line for line in run.stdout.splitlines() if line.startswith("==> bpfbuild test:")]
    assert phases == ["==> bpfbuild test: build", "==> bpfbuild test: verify",
                      "==> bpfbuild test: pytest"]  # fmt: skip
    # The build phase builds everything `bpfbuild build` does, which verify alone does not.
    assert (passing.root / "output" / ARCH / "include" / "counter.skel.h").is_file()
    assert "counter/sum_array" in run.stdout  # the verify phase's table
    assert "2 passed" in run.stdout


def test_test_command_writes_junit_xml_and_passes_args_to_pytest(
    passing: Verified, tmp_path: Path
) -> None:
    # From another folder with -C: a relative report path is relative to where we are.
    run = bpfbuild(tmp_path, "test", "-C", str(passing.root), "--junit-xml", "report.xml",
                   "--", "-k", "dropped")  # fmt: skip
    assert run.returncode == 0, run.describe()
    assert "1 passed, 1 deselected" in run.stdout
    suite = ElementTree.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.iter("testcase")] == [
        "test_zero_ethertype_is_dropped"
    ]
    assert not (passing.root / "report.xml").exists()


def test_test_command_fails_on_a_failing_project_test(passing: Verified) -> None:
    failing = passing.root / "tests" / "test_failing.py"
    failing.write_text(FAILING_PROJECT_TEST)
    try:
        run = bpfbuild(passing.root, "test")
    finally:
        failing.unlink()
    assert run.returncode != 0, run.describe()
    assert_clean(run)
    assert "FAILED tests/test_failing.py::test_zero_ethertype_passes" in run.stdout
    assert "1 failed, 2 passed" in run.stdout


def test_test_command_stops_at_a_rejection_before_pytest(rejected: Verified) -> None:
    run = bpfbuild(rejected.root, "test")
    assert run.returncode != 0, run.describe()
    assert_clean(run)
    assert "==> bpfbuild test: verify" in run.stdout
    assert "==> bpfbuild test: pytest" not in run.stdout
    assert "test_never_runs" not in run.output
    assert "bad/bad_read: rejected by the verifier" in run.stderr
