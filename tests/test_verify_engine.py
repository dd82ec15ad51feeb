"""The verification engine against the real kernel: verdicts, stats, source lines,
.rodata settings, privilege, leftovers, interrupts, budgets and baselines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bpfutil import compile_bpf, loaded_programs, ours
from buildutil import needs_bpf, require_tool

from bpfbuild.errors import VerifyError
from bpfbuild.verify.baseline import compare_baseline, write_baseline
from bpfbuild.verify.budgets import check_budget, failures, raise_for_failures
from bpfbuild.verify.formats import format_csv, format_rejection, format_table
from bpfbuild.verify.log import Verdict, parse_runner_output
from bpfbuild.verify.objfile import program_ksyms
from bpfbuild.verify.results import ObjectReport, ProgramResult, VerifyReport, format_json
from bpfbuild.verify.run import run_verifier
from bpfbuild.verify.runner import runner_command

FIXTURES = Path(__file__).parent / "fixtures" / "verify"

SLOW_PROGRAMS = [
    f"slow_{n}" for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")
]
OUR_PROGRAM_NAMES = [
    "bpfverify_probe", "xdp_pass", "xdp_unchecked", "tp_openat", "count_loop", "read_slot",
    "fentry_unlinkat", "lsm_file_open", "fentry_missing_target", "raw_tp_sys_enter",
    "core_missing_field", *SLOW_PROGRAMS,
]  # fmt: skip


def source_line_of(fixture: str, text: str) -> int:
    """The 1-based line of `text` in a fixture, to compare with the verifier's annotation."""
    lines = (FIXTURES / fixture).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verify_build(
    verify_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """Compile a fixture `<name>.bpf.c` (with -D defines) into a BPF object, cached."""
    root = tmp_path_factory.mktemp("verify-objects")
    built: dict[tuple[str, tuple[str, ...]], Path] = {}

    def build(name: str, *defines: str) -> Path:
        key = (name, defines)
        if key not in built:
            out_dir = root / (name + "".join(f"-{d}" for d in defines))
            built[key] = compile_bpf(
                FIXTURES / f"{name}.bpf.c", out_dir, verify_tools["include"], defines
            )
        return built[key]

    return build


@pytest.fixture
def verify_run(
    verify_tools: dict[str, Path], verify_build: Callable[..., Path], tmp_path: Path
) -> Callable[..., ObjectReport]:
    """Verify a fixture object: verify_run("mixed", rodata={...}, defines=(...))."""

    def run(name: str, defines: tuple[str, ...] = (), **kwargs: object) -> ObjectReport:
        bpf_object = verify_build(name, *defines)
        return run_verifier(
            verify_tools["runner"],
            bpf_object,
            tmp_path / "verify" / name,
            **kwargs,  # type: ignore[arg-type]
        )

    return run


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Assert that the test leaves the kernel's loaded programs as it found them."""
    before = loaded_programs()
    yield
    after = loaded_programs()
    assert ours(after, OUR_PROGRAM_NAMES) == ours(before, OUR_PROGRAM_NAMES)
    foreign_changed = set(after) ^ set(before)
    if not foreign_changed:
        assert len(after) == len(before)


def by_program(report: ObjectReport) -> dict[str, ProgramResult]:
    return {r.program: r for r in report.results}


# --- verdicts and statistics --------------------------------------------------------------


@needs_bpf
def test_passing_program_stats_match_kernel_log(
    verify_run: Callable[..., ObjectReport], verify_tools: dict[str, Path], verify_build: Callable[..., Path],
    tmp_path: Path, no_leftovers: None,
) -> None:  # fmt: skip
    report = verify_run("loop")
    (result,) = report.results
    assert result.verdict is Verdict.PASSED
    assert result.prog_type == "socket_filter" and result.section == "socket"
    log = result.log_path.read_text()  # type: ignore[union-attr]
    stats = re.search(
        r"processed (\d+) insns \(limit (\d+)\) max_states_per_insn (\d+) total_states (\d+) peak_states (\d+)",
        log,
    )
    assert stats is not None
    assert (
        result.insns_processed, result.insn_limit, result.max_states_per_insn,
        result.total_states, result.peak_states,
    ) == tuple(int(g) for g in stats.groups())  # fmt: skip
    assert result.total_states > 0  # type: ignore[operator]  # a real loop: several states
    assert f"verification time {result.verification_time_usec} usec" in log
    assert f"stack depth {result.stack_depth}" in log
    # The kernel's own count (bpf_prog_info.verified_insns) agrees with the log.
    command = runner_command(verify_tools["runner"], verify_build("loop"), tmp_path / "direct")
    runner_out = parse_runner_output(subprocess.run(command, capture_output=True, text=True).stdout)
    assert runner_out.programs[0].verified_insns == result.insns_processed
    assert result.xlated_insns == runner_out.programs[0].xlated_bytes // 8 > 0
    assert result.jited_bytes and result.jited_bytes > 0
    assert report.kernel == os.uname().release and report.privileged


@needs_bpf
def test_rejection_names_source_file_and_line_and_others_still_verified(
    verify_run: Callable[..., ObjectReport], no_leftovers: None
) -> None:
    report = verify_run("mixed")
    results = by_program(report)
    assert [r.program for r in report.results] == ["xdp_pass", "xdp_unchecked", "tp_openat"]
    assert results["xdp_pass"].verdict is Verdict.PASSED
    assert results["tp_openat"].verdict is Verdict.PASSED
    rejected = results["xdp_unchecked"]
    assert rejected.verdict is Verdict.REJECTED
    line = source_line_of("mixed.bpf.c", "if (eth->h_proto == 0)")
    assert (rejected.source_file, rejected.source_line) == ("mixed.bpf.c", line)
    assert rejected.source_text == "if (eth->h_proto == 0)"
    assert rejected.error and rejected.error.startswith("invalid access to packet")
    assert rejected.failing_insn and "r1 +12" in rejected.failing_insn
    text = format_rejection(rejected)
    assert f"mixed.bpf.c:{line}: if (eth->h_proto == 0)" in text
    assert "hint: check `data + size > data_end`" in text
    assert str(rejected.log_path) in text
    # The full log (levels 1 and 2) is saved where the caller asked.
    assert rejected.log_path is not None and rejected.log_path.parent.name == "mixed"
    assert "R1 offset is outside of the packet" in rejected.log_path.read_text()
    with pytest.raises(VerifyError) as caught:
        raise_for_failures(VerifyReport([report]))
    assert (
        "mixed/xdp_unchecked: rejected by the verifier: invalid access to packet"
        in caught.value.message
    )


@needs_bpf
def test_fentry_and_lsm_are_unsupported_not_rejected(
    verify_run: Callable[..., ObjectReport], no_leftovers: None
) -> None:
    results = by_program(verify_run("unsupported"))
    if results["fentry_unlinkat"].verdict is Verdict.PASSED:
        pytest.skip("this kernel loads fentry programs")
    for name in ("fentry_unlinkat", "lsm_file_open"):
        assert results[name].verdict is Verdict.UNSUPPORTED, results[name]
        assert "EPERM" in (results[name].error or "")
    missing = results["fentry_missing_target"]
    assert missing.verdict is Verdict.UNSUPPORTED
    assert "no_such_kernel_function_xyz" in (missing.error or "")
    assert results["raw_tp_sys_enter"].verdict is Verdict.PASSED
    assert "not supported by this kernel" in format_table(results.values())
    assert failures(VerifyReport([verify_run("unsupported")])) == []


def test_which_program_uses_which_kfunc(verify_build: Callable[..., Path]) -> None:
    """Directly, through static and global subprograms, through a bpf_loop() callback."""
    assert program_ksyms(verify_build("ksyms")) == {
        "direct": {"bpf_test_kfunc_c"},
        "through_static": {"bpf_test_kfunc_a"},
        "through_global": {"bpf_test_kfunc_b"},
        "through_callback": {"bpf_test_kfunc_c"},
        "none": set(),
        "chained": {"bpf_test_kfunc_a", "bpf_test_kfunc_b"},
    }


@needs_bpf
def test_a_missing_kfunc_is_named_only_where_it_is_called(
    verify_run: Callable[..., ObjectReport],
) -> None:
    """libbpf refuses the whole object for one missing kfunc: the programs that call it
    are told so (and how to guard it), the others that the object is why."""
    report = verify_run("ksyms")
    results = {r.program: r for r in report.results}
    assert {r.verdict for r in results.values()} == {Verdict.UNSUPPORTED}
    missing = next(
        name
        for name in ("bpf_test_kfunc_a", "bpf_test_kfunc_c")
        if name in results["direct"].error or name in results["through_static"].error
    )
    users = [p for p, used in program_ksyms(report.path).items() if missing in used]
    for name, result in results.items():
        if name in users:
            assert result.error == f"kfunc {missing} not found in this kernel", result
            assert f"bpf_ksym_exists({missing})" in (result.hint or "")
        else:
            assert result.error.startswith(f"not loaded: {missing} (used by "), result
            assert ", ".join(users) in result.error and "libbpf loads the object" in result.error
            assert f"bpf_ksym_exists({missing})" in (result.hint or "")


@needs_bpf
def test_a_prog_array_with_initial_programs_does_not_tie_them(
    verify_run: Callable[..., ObjectReport],
) -> None:
    results = {r.program: r for r in verify_run("tailcall").results}
    assert {name: r.verdict for name, r in results.items()} == {
        "head": Verdict.PASSED,
        "tail": Verdict.PASSED,
    }
    assert results["head"].insns_processed
    assert "slot 0 of prog array 'jumps'" in (results["head"].hint or "")


@needs_bpf
def test_core_relocation_failure_names_missing_field(
    verify_run: Callable[..., ObjectReport], no_leftovers: None
) -> None:
    (result,) = verify_run("core").results
    assert result.verdict is Verdict.REJECTED
    assert "struct task_struct has no field 'no_such_field_xyz'" in (result.hint or "")
    assert result.source_file == "core.bpf.c"
    assert result.source_line == source_line_of("core.bpf.c", "bpf_get_current_task()")


# --- .rodata -----------------------------------------------------------------------------


@needs_bpf
@pytest.mark.parametrize(
    ("rodata", "verdict"),
    [({}, Verdict.PASSED), ({"slot": 3}, Verdict.PASSED), ({"slot": 8}, Verdict.REJECTED),
     ({"slot": 8, "enabled": 0}, Verdict.PASSED)],
)  # fmt: skip
def test_rodata_setting_changes_verdict(
    verify_run: Callable[..., ObjectReport],
    rodata: dict[str, int],
    verdict: Verdict,
    no_leftovers: None,
) -> None:
    (result,) = verify_run("rodata", rodata=rodata).results
    assert result.verdict is verdict
    if verdict is Verdict.REJECTED:
        assert result.source_text == "return row[slot] & 1;"
        assert "invalid access to map value" in (result.error or "")


@needs_bpf
@pytest.mark.parametrize(
    ("rodata", "message_word", "hint_word"),
    [
        ({"nope": 1}, "no variable 'nope' in .rodata", "const volatile"),
        ({"enabled": 300}, "does not fit in 1 bytes", "const volatile"),
        ({"slot": "8"}, "only integers", "integer"),
    ],
)
def test_rodata_errors(
    verify_run: Callable[..., ObjectReport],
    rodata: dict[str, object],
    message_word: str,
    hint_word: str,
) -> None:
    with pytest.raises(VerifyError) as caught:
        verify_run("rodata", rodata=rodata)
    assert message_word in caught.value.message
    assert hint_word in (caught.value.hint or "")
    if "nope" in rodata:
        assert "slot, enabled" in caught.value.message


@needs_bpf
def test_runner_accepts_hex_values(
    verify_tools: dict[str, Path], verify_build: Callable[..., Path], tmp_path: Path
) -> None:
    command = [str(verify_tools["runner"]), "--log-dir", str(tmp_path), "--set", "slot=0x8",
               str(verify_build("rodata"))]  # fmt: skip
    out = parse_runner_output(subprocess.run(command, capture_output=True, text=True).stdout)
    assert [p.load for p in out.programs] == ["failed"]


# --- privilege ------------------------------------------------------------------------------

UNPRIVILEGED = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    "--inh-caps=-all", "--bounding-set=-all", "--",
]  # fmt: skip


@pytest.fixture
def world_readable_copy(
    verify_tools: dict[str, Path], verify_build: Callable[..., Path]
) -> Iterator[tuple[Path, Path]]:
    """The runner and an object where user nobody can read them (pytest's tmp is 0700)."""
    require_tool("setpriv", "util-linux")
    root = Path(tempfile.mkdtemp(prefix="bpfverify-"))
    root.chmod(0o755)
    runner = Path(shutil.copy(verify_tools["runner"], root))
    bpf_object = Path(shutil.copy(verify_build("mixed"), root))
    bpf_object.chmod(0o644)
    yield runner, bpf_object
    shutil.rmtree(root)


@needs_bpf
def test_no_privilege_is_one_clear_skip(world_readable_copy: tuple[Path, Path]) -> None:
    runner, bpf_object = world_readable_copy
    log_dir = runner.parent / "logs"
    report = VerifyReport([run_verifier(runner, bpf_object, log_dir, launcher=UNPRIVILEGED)])
    assert report.status == "no privilege"
    assert report.skip_message == (
        "verify skipped: no BPF privilege: not root, and no CAP_BPF/CAP_SYS_ADMIN"
    )
    assert {r.verdict for r in report.results} == {Verdict.SKIPPED}
    assert failures(report) == []
    with pytest.raises(VerifyError) as caught:
        run_verifier(runner, bpf_object, log_dir, launcher=UNPRIVILEGED, require=True)
    assert "no BPF privilege" in caught.value.message
    assert "CAP_BPF" in (caught.value.hint or "")


# --- nothing left behind -------------------------------------------------------------------------


@needs_bpf
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_runner_leaves_nothing_loaded(
    verify_tools: dict[str, Path], verify_build: Callable[..., Path], tmp_path: Path,
    sig: signal.Signals, no_leftovers: None,
) -> None:  # fmt: skip
    command = runner_command(verify_tools["runner"], verify_build("slow"), tmp_path / "logs")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["kind"] == "runner"
    assert json.loads(process.stdout.readline())["kind"] == "object"
    assert json.loads(process.stdout.readline())["name"] == "slow_one"
    process.send_signal(sig)  # while slow_two is being verified
    remaining = process.stdout.read()
    assert process.wait() == -sig
    assert '"kind":"done"' not in remaining


@needs_bpf
def test_keyboard_interrupt_kills_the_runner(
    verify_run: Callable[..., ObjectReport], verify_tools: dict[str, Path], no_leftovers: None
) -> None:
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.4, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            verify_run("slow")  # about 2 s: 8 programs of 630,000 processed insns
    finally:
        timer.cancel()
    runner = str(verify_tools["runner"].resolve())
    assert not [pid for pid in _pids_of(runner)], "the runner survived the interrupt"


def _pids_of(executable: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "exe") == executable:
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@needs_bpf
def test_runner_counts_loaded_programs(
    verify_run: Callable[..., ObjectReport], no_leftovers: None
) -> None:
    report = verify_run("mixed")
    assert report.progs_loaded_before is not None and report.progs_loaded_after is not None


# --- budget and baselines ------------------------------------------------------------------------


@needs_bpf
def test_budget(verify_run: Callable[..., ObjectReport]) -> None:
    results = verify_run("loop").results
    assert check_budget(results) == []
    (problem,) = check_budget(results, max_share=0.00001)
    assert re.fullmatch(
        r"loop/count_loop: \d+ of 1,000,000 instructions processed \(0%\), over the 0% budget",
        problem,
    )


@needs_bpf
def test_baseline_catches_a_grown_loop(
    verify_run: Callable[..., ObjectReport], tmp_path: Path
) -> None:
    baseline = tmp_path / "verify-baseline.json"
    small = verify_run("loop", defines=("LOOP_BOUND=16",)).results
    write_baseline(baseline, small)
    first = baseline.read_text()
    write_baseline(baseline, small)
    assert baseline.read_text() == first  # stable: committing it twice is a no-op
    assert list(json.loads(first)["programs"]) == ["x86_64/loop/count_loop"]

    unchanged = compare_baseline(baseline, verify_run("loop", defines=("LOOP_BOUND=16",)).results)
    assert unchanged.ok, unchanged.format()

    grown = compare_baseline(baseline, verify_run("loop", defines=("LOOP_BOUND=64",)).results)
    assert not grown.ok
    (regression,) = [r for r in grown.regressions if "processed instructions" in r]
    assert regression.startswith("x86_64/loop/count_loop: processed instructions grew by")
    table = grown.format()
    for header in ("Insns (before)", "Insns (after)", "Insns (diff)", "Insns (%)"):
        assert header in table
    with pytest.raises(VerifyError) as caught:
        raise_for_failures(VerifyReport(), comparison=grown)
    assert "processed instructions grew" in caught.value.message


@needs_bpf
def test_machine_formats(verify_run: Callable[..., ObjectReport]) -> None:
    report = VerifyReport([verify_run("mixed")])
    data = json.loads(format_json(report))
    assert data["status"] == "ok"
    assert [p["verdict"] for p in data["objects"][0]["programs"]] == [
        "passed",
        "rejected",
        "passed",
    ]
    csv_lines = format_csv(report.results).splitlines()
    assert csv_lines[0].startswith("arch,object,program,section,prog_type,verdict,insns_processed")
    assert csv_lines[1].startswith("x86_64,mixed,xdp_pass,xdp,xdp,passed,")


# --- pure: comparisons without a kernel ----------------------------------------------------------


def _result(
    verdict: Verdict, insns: int | None, states: int | None, program: str = "p"
) -> ProgramResult:
    return ProgramResult(
        arch="x86_64", object="obj", program=program, section="xdp", prog_type="xdp",
        verdict=verdict, insns_processed=insns, insn_limit=1_000_000, total_states=states,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "problem"),
    [
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.PASSED, 100, 10), None),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.PASSED, 110, 11), None),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.PASSED, 111, 10), "processed instructions grew by 11.0%"),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.PASSED, 100, 12), "total states grew by 20.0%"),
        (_result(Verdict.PASSED, 100, 0), _result(Verdict.PASSED, 100, 3), "total states grew from 0"),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.PASSED, 50, 5), None),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.REJECTED, 7, 0), "passed before, now rejected by the verifier"),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.UNSUPPORTED, None, None), "passed before, now not supported"),
        (_result(Verdict.PASSED, 100, 10), _result(Verdict.SKIPPED, None, None), None),
        (_result(Verdict.REJECTED, 7, 0), _result(Verdict.PASSED, 100, 10), None),
    ],
    ids=["same", "at-limit", "insns", "states", "states-from-zero", "shrunk", "now-rejected",
         "now-unsupported", "skipped", "fixed"],
)  # fmt: skip
def test_compare_baseline(
    tmp_path: Path, before: ProgramResult, after: ProgramResult, problem: str | None
) -> None:
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, [before])
    comparison = compare_baseline(baseline, [after], max_growth_pct=10.0)
    if problem is None:
        assert comparison.ok, comparison.regressions
    else:
        (regression,) = comparison.regressions
        assert regression.startswith(f"x86_64/obj/p: {problem}")


def test_baseline_keeps_other_objects_and_drops_removed_programs(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    other = ProgramResult("x86_64", "other", "q", "xdp", "xdp", Verdict.PASSED, 5)
    write_baseline(baseline, [_result(Verdict.PASSED, 1, 0, "gone"), other])
    write_baseline(baseline, [_result(Verdict.PASSED, 1, 0, "p")])
    assert list(json.loads(baseline.read_text())["programs"]) == ["x86_64/obj/p", "x86_64/other/q"]


def test_compare_shows_new_and_removed_programs(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, [_result(Verdict.PASSED, 100, 1, "old")])
    comparison = compare_baseline(baseline, [_result(Verdict.PASSED, 100, 1, "new")])
    assert comparison.ok
    rows = {row.key: row for row in comparison.rows}
    assert rows["x86_64/obj/new"].verdict_before is None
    assert rows["x86_64/obj/old"].verdict_after is None
    assert rows["x86_64/obj/new"].insns.percent is None


def test_missing_baseline_is_a_verify_error(tmp_path: Path) -> None:
    with pytest.raises(VerifyError) as caught:
        compare_baseline(tmp_path / "nope.json", [])
    assert "no verifier baseline" in caught.value.message and caught.value.hint


def test_comparison_format_is_veristat_like(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, [_result(Verdict.PASSED, 1000, 10)])
    comparison = compare_baseline(baseline, [_result(Verdict.PASSED, 1250, 10)])
    header, rule, row = comparison.format().splitlines()
    assert header.split("  ")[0] == "Program"
    assert set(rule.replace(" ", "")) == {"-"}
    assert re.search(r"1,000\s+1,250\s+\+250\s+\+25\.00%", row)
    assert row.rstrip().endswith("more than 10%")
