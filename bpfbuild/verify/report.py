"""Verification engine of `bpfbuild verify`: load each program in the running kernel,
report verdicts and verifier statistics, check budgets and regression baselines."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..arch import get_arch
from ..errors import ConfigError, VerifyError
from ..kernels.host import ENOSYS_REASON
from .log import (
    NOT_ROOT_HINT,
    RunnerProgram,
    Verdict,
    VerifierStats,
    classify_failure,
    hint_for,
    parse_runner_output,
    parse_stats,
    split_log,
)
from .runner import RUNNER_SOURCE

__all__ = [
    "RUNNER_SOURCE",
    "DEFAULT_INSN_LIMIT",
    "DEFAULT_MAX_SHARE",
    "DEFAULT_MAX_GROWTH_PCT",
    "Verdict",
    "ProgramResult",
    "ObjectReport",
    "VerifyReport",
    "Comparison",
    "build_runner_command",
    "runner_command",
    "verify_object",
    "check_budget",
    "write_baseline",
    "compare_baseline",
    "failures",
    "raise_for_failures",
    "format_table",
    "format_json",
    "format_csv",
    "format_rejection",
]

DEFAULT_INSN_LIMIT = 1_000_000
"""The verifier's limit on processed instructions (BPF_COMPLEXITY_LIMIT_INSNS)."""
DEFAULT_MAX_SHARE = 0.5
"""Budget: a passing program may use at most this share of the instruction limit."""
DEFAULT_MAX_GROWTH_PCT = 10.0
"""Baseline: processed instructions or states may grow by at most this percentage."""
BASELINE_FORMAT = 1

RUNNER_LDFLAGS = ("-lbpf", "-lelf", "-lz")
"""`pkg-config --static --libs libbpf` on Debian 12; the toolchain may pass its own."""


def build_runner_command(
    cc: str,
    output: Path,
    source: Path = RUNNER_SOURCE,
    cflags: Sequence[str] = (),
    ldflags: Sequence[str] = RUNNER_LDFLAGS,
) -> list[str]:
    """The command that compiles bpfverify.c into a static executable.

    cflags: e.g. `-I` for a libbpf built from source, or `--sysroot` for a cross
    build; ldflags: `pkg-config --static --libs libbpf` (libraries after the source,
    as static linking resolves symbols left to right).
    """
    return [
        cc,
        "-O2",  # small and fast; the runner spends its time in the kernel anyway
        "-Wall",
        "-static",  # no shared libraries: runs in a minimal VM or initramfs
        *cflags,
        "-o",
        str(output),
        str(source),
        *ldflags,
    ]


def runner_command(
    runner: Path,
    bpf_object: Path,
    log_dir: Path,
    rodata: Mapping[str, int] | None = None,
    rejected_log_level: int | None = None,
) -> list[str]:
    """The bpfverify invocation for one object; `rodata` sets `.rodata` globals;
    `rejected_log_level` replaces the default 1|2 for the log of a rejection (1 is
    much faster on programs near the instruction limit: only the failing path)."""
    command = [str(runner), "--log-dir", str(log_dir)]
    if rejected_log_level is not None:
        command += ["--log-level", str(rejected_log_level)]
    for name, value in (rodata or {}).items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise VerifyError(
                f"cannot set .rodata variable '{name}' to {value!r}: only integers can be set",
                hint="give an integer (decimal or 0x hex)",
            )
        command += ["--set", f"{name}={value}"]
    return [*command, str(bpf_object)]


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class ProgramResult:
    """One program's verdict and the verifier's statistics for it."""

    arch: str
    object: str
    """The object's name: `xdp` for xdp.bpf.o."""
    program: str
    section: str
    prog_type: str
    verdict: Verdict
    insns_processed: int | None = None
    """Instructions the verifier walked, against insn_limit (all paths, not program size)."""
    insn_limit: int | None = None
    total_states: int | None = None
    peak_states: int | None = None
    max_states_per_insn: int | None = None
    stack_depth: int | None = None
    """Bytes, summed over subprograms as veristat does."""
    verification_time_usec: int | None = None
    xlated_insns: int | None = None
    """Program size after the kernel's rewrites (passed programs only)."""
    jited_bytes: int | None = None
    """Native code size; 0 when the kernel runs the program interpreted."""
    error: str | None = None
    """Rejection: the verifier's message; unsupported: why."""
    failing_insn: str | None = None
    source_file: str | None = None
    source_line: int | None = None
    source_text: str | None = None
    hint: str | None = None
    log_path: Path | None = None
    log_truncated: bool = False
    """The full log was larger than the buffer: the file holds its tail."""

    @property
    def name(self) -> str:
        return f"{self.object}/{self.program}"

    @property
    def insn_share(self) -> float | None:
        """Processed instructions as a share of the limit."""
        if self.insns_processed is None:
            return None
        return self.insns_processed / (self.insn_limit or DEFAULT_INSN_LIMIT)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["log_path"] = str(self.log_path) if self.log_path else None
        return data


@dataclass
class ObjectReport:
    """The verdicts of every program of one BPF object, and where they were obtained."""

    object: str
    path: Path
    arch: str
    kernel: str
    privileged: bool
    results: list[ProgramResult] = field(default_factory=list)
    progs_loaded_before: int | None = None
    progs_loaded_after: int | None = None
    """Programs loaded in the whole kernel around the run (None without privilege)."""
    skip_reason: str | None = None
    """Without privilege: why (no bpf() syscall, capabilities dropped, not root)."""
    skip_hint: str | None = None
    kernel_spec: str = "host"
    """The kernel as the user named it: `host`, `debian:6.1`, a package, an image path."""


@dataclass
class VerifyReport:
    """Reports of several objects: what the CLI prints and the checks look at."""

    objects: list[ObjectReport] = field(default_factory=list)

    @property
    def results(self) -> list[ProgramResult]:
        return [r for o in self.objects for r in o.results]

    @property
    def privileged(self) -> bool:
        return all(o.privileged for o in self.objects)

    @property
    def status(self) -> str:
        """`ok`; when programs could not be loaded at all, `no bpf syscall` (ENOSYS)
        or `no privilege`."""
        if self.privileged:
            return "ok"
        if any(o.skip_reason == ENOSYS_REASON for o in self.objects):
            return "no bpf syscall"
        return "no privilege"

    @property
    def skip_message(self) -> str | None:
        """The one line to print when verification was skipped, else None."""
        if self.privileged:
            return None
        reason = next((o.skip_reason for o in self.objects if o.skip_reason), None)
        return _skip_message(reason)

    @property
    def skip_hint(self) -> str:
        """What to do when verification was skipped."""
        return next((o.skip_hint for o in self.objects if o.skip_hint), NOT_ROOT_HINT)


def _skip_message(reason: str | None = None) -> str:
    return f"verify skipped: {reason or 'no BPF privilege (the kernel refused a trivial program)'}"


def save_object_report(report: ObjectReport, path: Path) -> None:
    """Write an object's report as JSON: the verify task's target."""
    data = {k: v for k, v in asdict(report).items() if k != "results"}
    data["path"] = str(report.path)
    data["results"] = [r.to_dict() for r in report.results]
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def load_object_report(path: Path) -> ObjectReport:
    """Read a report written by save_object_report; a corrupt or older one is an error
    that says how to make it again."""
    try:
        data = json.loads(path.read_text())
        results = []
        for entry in data.pop("results"):
            entry["verdict"] = Verdict(entry["verdict"])
            entry["log_path"] = Path(entry["log_path"]) if entry["log_path"] else None
            results.append(ProgramResult(**entry))
        return ObjectReport(**{**data, "path": Path(data["path"]), "results": results})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise VerifyError(
            f"{path}: unreadable verify report ({type(err).__name__}: {err})",
            hint=f"delete {path} (or run `bpfbuild clean`); verify makes it again",
        ) from None


# --------------------------------------------------------------------------
# Running the runner
# --------------------------------------------------------------------------


def verify_object(
    runner: Path,
    bpf_object: Path,
    log_dir: Path,
    rodata: Mapping[str, int] | None = None,
    *,
    name: str | None = None,
    arch: str | None = None,
    require: bool = False,
    timeout: float | None = None,
    launcher: Sequence[str] = (),
    rejected_log_level: int | None = None,
) -> ObjectReport:
    """Load each program of `bpf_object` in the running kernel, one at a time.

    Writes only `<log_dir>/<program>.log` (stale logs there are removed first).
    name: the object's name (default: file name without `.bpf.o`); arch:
    bpfbuild's arch name (default: from the kernel's `uname -m`); require: raise
    VerifyError instead of reporting `no privilege`; launcher: a command prefix
    for the runner (`sudo`, `setpriv ...`, a VM launcher). On KeyboardInterrupt the
    runner is killed (the kernel frees what it loaded) and the interrupt re-raised.
    """
    name = name or bpf_object.name.removesuffix(".o").removesuffix(".bpf")
    log_dir.mkdir(parents=True, exist_ok=True)
    for stale in log_dir.glob("*.log"):
        stale.unlink()
    command = [*launcher, *runner_command(runner, bpf_object, log_dir, rodata, rejected_log_level)]
    return object_report(
        _run_runner(command, timeout),
        bpf_object,
        log_dir,
        name=name,
        arch=arch,
        require=require,
        rerun=" ".join(command),
    )


def object_report(
    runner_stdout: str,
    bpf_object: Path,
    log_dir: Path,
    *,
    name: str,
    arch: str | None = None,
    require: bool = False,
    rerun: str = "",
    kernel_spec: str = "host",
) -> ObjectReport:
    """Turn the runner's output for one object into its report. The runner named each
    log `<log-dir>/<program>.log`; they are read from log_dir (where a VM's logs
    were brought back). kernel_spec: the kernel as the user named it."""
    output = parse_runner_output(runner_stdout)
    if output.error is not None:
        raise VerifyError(
            f"{bpf_object}: {output.error}",
            hint=_runner_error_hint(output.error, name),
        )
    if output.header is None or output.done is None:
        raise VerifyError(
            f"bpfverify stopped before the end of {bpf_object}",
            hint="this is a bug in bpfbuild: run the runner's command by hand: " + rerun,
        )
    header = output.header
    arch = arch or _arch_name(header.machine)
    skip_reason, skip_hint = header.no_privilege() or (None, None)
    if skip_reason and require:
        raise VerifyError(_skip_message(skip_reason), hint=skip_hint)
    before = header.progs_loaded_before
    after = output.done.progs_loaded_after
    programs = [
        replace(p, log_path=str(log_dir / Path(p.log_path).name)) if p.log_path else p
        for p in output.programs
    ]
    return ObjectReport(
        object=name,
        path=bpf_object,
        arch=arch,
        kernel=header.kernel,
        privileged=header.privileged,
        results=[_program_result(arch, name, p, skip_reason) for p in programs],
        progs_loaded_before=None if before < 0 else before,
        progs_loaded_after=None if after < 0 else after,
        skip_reason=skip_reason,
        skip_hint=skip_hint,
        kernel_spec=kernel_spec,
    )


def _run_runner(command: list[str], timeout: float | None) -> str:
    """Run bpfverify; kill it on KeyboardInterrupt or timeout. Returns its stdout."""
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
        )
    except OSError as err:
        raise VerifyError(
            f"cannot run {command[0]}: {err.strerror}",
            hint="build it again: `bpfbuild verify` rebuilds the runner "
            "(delete output/<arch>/tools/bpfverify)",
        ) from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise VerifyError(
            f"bpfverify did not finish within {timeout} s: {' '.join(command)}",
            hint="raise the timeout, or look for a program the verifier spends long on",
        ) from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    # Exit status 2 comes with an "error" line that the caller reports.
    if process.returncode not in (0, 2):
        raise VerifyError(
            f"bpfverify failed with exit status {process.returncode}: {' '.join(command)}\n"
            f"{stderr.strip()}",
            hint="this is a bug in bpfbuild or libbpf; the partial output was:\n" + stdout[-2000:],
        )
    return stdout


def _runner_error_hint(message: str, name: str) -> str:
    if message.startswith(("no variable", "cannot set")):
        return f"set only `const volatile` integer globals that {name}.bpf.c declares"
    return "check that the object is a BPF object built by bpfbuild"


def _arch_name(machine: str) -> str:
    """bpfbuild's name of the arch `uname -m` names; the machine itself if unknown."""
    try:
        return get_arch(machine).name
    except ConfigError:
        return machine


def _program_result(
    arch: str, object_name: str, program: RunnerProgram, skip_reason: str | None = None
) -> ProgramResult:
    log_path = Path(program.log_path) if program.log_path else None
    text = log_path.read_text(errors="replace") if log_path and log_path.exists() else ""
    kernel_log, libbpf_lines = split_log(text)
    libbpf_lines = libbpf_lines or program.libbpf_messages
    stats = parse_stats(kernel_log)
    result = ProgramResult(
        arch=arch,
        object=object_name,
        program=program.name,
        section=program.section,
        prog_type=program.prog_type,
        verdict=Verdict.PASSED,
        log_path=log_path,
        log_truncated=program.log_truncated,
    )
    if program.load == "skipped":
        result.verdict = Verdict.SKIPPED
        result.error = skip_reason or "no BPF privilege"
        return result
    _set_stats(result, stats)
    if program.load == "ok":
        result.insns_processed = result.insns_processed or program.verified_insns or None
        result.xlated_insns = program.xlated_bytes // 8  # struct bpf_insn is 8 bytes
        result.jited_bytes = program.jited_bytes
        return result
    classification = classify_failure(program.errno, kernel_log, libbpf_lines)
    result.verdict = classification.verdict
    rejection = classification.rejection
    if classification.verdict is Verdict.UNSUPPORTED or rejection is None:
        result.error = classification.reason
        result.hint = classification.hint or (
            "nothing to fix in the program for this kernel; "
            "verify on a kernel that supports it (e.g. in a VM)"
        )
    else:
        result.error = rejection.message
        result.failing_insn = rejection.failing_insn
        if rejection.source is not None:
            result.source_file = rejection.source.file
            result.source_line = rejection.source.line
            result.source_text = rejection.source.text
        result.hint = hint_for(rejection)
    return result


def _set_stats(result: ProgramResult, stats: VerifierStats) -> None:
    result.insns_processed = stats.insns_processed
    result.insn_limit = stats.insn_limit
    result.total_states = stats.total_states
    result.peak_states = stats.peak_states
    result.max_states_per_insn = stats.max_states_per_insn
    result.stack_depth = stats.stack_depth
    result.verification_time_usec = stats.verification_time_usec


# --------------------------------------------------------------------------
# Budgets and checks
# --------------------------------------------------------------------------


def check_budget(
    results: Iterable[ProgramResult], max_share: float = DEFAULT_MAX_SHARE
) -> list[str]:
    """One line per passing program that uses more than `max_share` of the insn limit."""
    problems = []
    for r in results:
        share = r.insn_share
        if r.verdict is Verdict.PASSED and share is not None and share > max_share:
            problems.append(
                f"{r.name}: {r.insns_processed:,} of {r.insn_limit or DEFAULT_INSN_LIMIT:,} "
                f"instructions processed ({share:.0%}), over the {max_share:.0%} budget"
            )
    return problems


def failures(
    report: VerifyReport,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    comparison: Comparison | None = None,
) -> list[str]:
    """Every reason to fail: rejections, budget overruns, baseline regressions.
    Unsupported and skipped programs are not failures."""
    problems = [
        f"{r.name}{_on_kernel(o)}: rejected by the verifier: {_headline(r.error)}"
        for o in report.objects
        for r in o.results
        if r.verdict is Verdict.REJECTED
    ]
    problems += check_budget(report.results, max_share)
    if comparison is not None:
        problems += comparison.regressions
    return problems


def raise_for_failures(
    report: VerifyReport,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    comparison: Comparison | None = None,
) -> None:
    """Raise one VerifyError listing every failure, if any."""
    problems = failures(report, max_share=max_share, comparison=comparison)
    if problems:
        # The logs of the programs at fault (all of them for a baseline regression):
        # with VMs, a run has a log folder per kernel and object.
        at_fault = [
            r
            for r in report.results
            if r.verdict is Verdict.REJECTED
            or (r.verdict is Verdict.PASSED and (r.insn_share or 0) > max_share)
        ]
        logs = sorted({str(r.log_path.parent) for r in at_fault or report.results if r.log_path})
        raise VerifyError(
            f"verification failed ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  "
            + "\n  ".join(problems),
            hint="full verifier logs are in " + ", ".join(logs) if logs else None,
        )


# --------------------------------------------------------------------------
# Regression baselines
# --------------------------------------------------------------------------

BASELINE_FIELDS = (
    "verdict",
    "insns_processed",
    "total_states",
    "peak_states",
    "max_states_per_insn",
    "stack_depth",
    "xlated_insns",
)
"""What a baseline entry records; insns_processed and total_states are compared."""


def baseline_key(result: ProgramResult) -> str:
    return f"{result.arch}/{result.object}/{result.program}"


def load_baseline(path: Path) -> dict[str, dict[str, object]]:
    rewrite = "rewrite it with `bpfbuild verify --update-baseline` (and commit it)"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise VerifyError(
            f"no verifier baseline at {path}",
            hint="write one first with `bpfbuild verify --update-baseline` and commit it",
        ) from None
    except json.JSONDecodeError as exc:
        raise VerifyError(
            f"{path}:{exc.lineno}: not a verifier baseline: {exc.msg}",
            hint=rewrite,
        ) from None
    except UnicodeDecodeError:
        raise VerifyError(
            f"{path}: not a verifier baseline: not UTF-8 text", hint=rewrite
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != BASELINE_FORMAT
        or not isinstance(data.get("programs"), dict)
        or not all(isinstance(entry, dict) for entry in data["programs"].values())
    ):
        found = data.get("format") if isinstance(data, dict) else "?"
        raise VerifyError(f"{path}: unknown baseline format {found}", hint=rewrite)
    return data["programs"]


def write_baseline(path: Path, results: Iterable[ProgramResult]) -> None:
    """Write (or update) a baseline meant to be committed: sorted keys, one entry per
    arch/object/program. Entries of objects not in `results` are kept; those of
    objects in `results` are replaced, so a removed program leaves the baseline."""
    results = [r for r in results if r.verdict is not Verdict.SKIPPED]
    if not results:
        raise VerifyError(
            "no verdicts to write a baseline from (verification was skipped)",
            hint=NOT_ROOT_HINT,
        )
    programs = load_baseline(path) if path.exists() else {}
    replaced = {f"{r.arch}/{r.object}/" for r in results}
    programs = {k: v for k, v in programs.items() if not k.startswith(tuple(replaced))}
    for r in results:
        entry = {name: getattr(r, name) for name in BASELINE_FIELDS}
        entry["verdict"] = r.verdict.value
        programs[baseline_key(r)] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": BASELINE_FORMAT, "programs": programs}, indent=2, sort_keys=True)
    path.write_text(text + "\n")


@dataclass(frozen=True)
class Change:
    """One metric before and after."""

    before: int | None
    after: int | None

    @property
    def diff(self) -> int | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def percent(self) -> float | None:
        """Growth relative to before; infinite when it grew from zero."""
        if self.diff is None:
            return None
        if self.before == 0:
            return 0.0 if self.diff == 0 else math.copysign(math.inf, self.diff)
        return 100.0 * self.diff / self.before


@dataclass(frozen=True)
class ComparisonRow:
    key: str
    """arch/object/program."""
    verdict_before: str | None
    verdict_after: str | None
    insns: Change
    states: Change
    problems: tuple[str, ...] = ()


@dataclass
class Comparison:
    """A run compared with a baseline, as veristat's compare mode shows it."""

    rows: list[ComparisonRow]
    max_growth_pct: float

    @property
    def regressions(self) -> list[str]:
        return [f"{row.key}: {p}" for row in self.rows for p in row.problems]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def format(self) -> str:
        headers = (
            "Program",
            "Verdict (before)", "Verdict (after)",
            "Insns (before)", "Insns (after)", "Insns (diff)", "Insns (%)",
            "States (before)", "States (after)", "States (diff)", "States (%)",
            "Result",
        )  # fmt: skip
        rows = [
            (
                row.key,
                row.verdict_before or "-",
                row.verdict_after or "-",
                *_change_cells(row.insns),
                *_change_cells(row.states),
                "; ".join(row.problems) or "ok",
            )
            for row in self.rows
        ]
        return _columns(headers, rows, numeric=range(3, 11))


def _change_cells(change: Change) -> tuple[str, str, str, str]:
    diff, pct = change.diff, change.percent
    return (
        _cell(change.before),
        _cell(change.after),
        "-" if diff is None else f"{diff:+,}",
        "-" if pct is None else ("+inf%" if pct == math.inf else f"{pct:+.2f}%"),
    )


def compare_baseline(
    path: Path,
    results: Iterable[ProgramResult],
    max_growth_pct: float = DEFAULT_MAX_GROWTH_PCT,
) -> Comparison:
    """Compare results with a baseline. A regression: a program that passed no longer
    passes, or its processed instructions or total states grew by more than
    `max_growth_pct` percent (growth from zero counts as infinite). Skipped programs
    and programs new since the baseline are shown but never regress."""
    baseline = load_baseline(path)
    rows = []
    seen_objects = set()
    for r in sorted(results, key=baseline_key):
        key = baseline_key(r)
        seen_objects.add(f"{r.arch}/{r.object}/")
        entry = baseline.get(key, {})
        verdict_before = entry.get("verdict")
        insns = Change(entry.get("insns_processed"), r.insns_processed)  # type: ignore[arg-type]
        states = Change(entry.get("total_states"), r.total_states)  # type: ignore[arg-type]
        problems: list[str] = []
        if r.verdict is Verdict.SKIPPED:
            insns = Change(insns.before, None)
            states = Change(states.before, None)
        elif verdict_before == Verdict.PASSED.value and r.verdict is not Verdict.PASSED:
            problems.append(f"passed before, now {r.verdict.description}")
        elif verdict_before == Verdict.PASSED.value:
            for label, change in (("processed instructions", insns), ("total states", states)):
                pct = change.percent
                if pct is not None and pct > max_growth_pct:
                    shown = "from 0" if pct == math.inf else f"by {pct:.1f}%"
                    problems.append(
                        f"{label} grew {shown} ({change.before:,} -> {change.after:,}), "
                        f"more than {max_growth_pct:g}%"
                    )
        rows.append(
            ComparisonRow(key, verdict_before, r.verdict.value, insns, states, tuple(problems))  # type: ignore[arg-type]
        )
    for key in sorted(baseline):
        if key.startswith(tuple(seen_objects)) and key not in {row.key for row in rows}:
            entry = baseline[key]
            rows.append(
                ComparisonRow(
                    key,
                    entry.get("verdict"),  # type: ignore[arg-type]
                    None,
                    Change(entry.get("insns_processed"), None),  # type: ignore[arg-type]
                    Change(entry.get("total_states"), None),  # type: ignore[arg-type]
                )
            )
    return Comparison(rows=rows, max_growth_pct=max_growth_pct)


# --------------------------------------------------------------------------
# Output formats
# --------------------------------------------------------------------------

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Program", "name"),
    ("Type", "prog_type"),
    ("Verdict", "verdict"),
    ("Insns", "insns_processed"),
    ("% limit", "insn_share"),
    ("States", "total_states"),
    ("Peak", "peak_states"),
    ("Max/insn", "max_states_per_insn"),
    ("Stack", "stack_depth"),
    ("Time (us)", "verification_time_usec"),
    ("Xlated", "xlated_insns"),
    ("Jited (B)", "jited_bytes"),
)
"""The table's columns: header and ProgramResult attribute."""


def format_table(results: Iterable[ProgramResult]) -> str:
    rows = []
    for r in results:
        cells = []
        for _, attr in TABLE_COLUMNS:
            value = getattr(r, attr)
            if attr == "verdict":
                cells.append(r.verdict.description)
            elif attr == "insn_share":
                cells.append("-" if value is None else f"{value:.2%}")
            else:
                cells.append(_cell(value))
        rows.append(tuple(cells))
    return _columns(tuple(h for h, _ in TABLE_COLUMNS), rows, numeric=range(3, len(TABLE_COLUMNS)))


def format_json(report: VerifyReport) -> str:
    """Machine-readable: every object with its kernel and every program's fields."""
    data = {
        "status": report.status,
        "objects": [
            {
                "object": o.object,
                "path": str(o.path),
                "arch": o.arch,
                "kernel": o.kernel,
                "kernel_spec": o.kernel_spec,
                "privileged": o.privileged,
                "programs": [r.to_dict() for r in o.results],
            }
            for o in report.objects
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True)


def report_from_json(text: str, origin: str = "<json>") -> VerifyReport:
    """Read back a document printed by format_json (e.g. one CI job's result)."""
    try:
        data = json.loads(text)
        objects = []
        for o in data["objects"]:
            results = []
            for entry in o["programs"]:
                entry = dict(entry)
                entry["verdict"] = Verdict(entry["verdict"])
                entry["log_path"] = Path(entry["log_path"]) if entry.get("log_path") else None
                results.append(ProgramResult(**entry))
            objects.append(
                ObjectReport(
                    object=o["object"],
                    path=Path(o["path"]),
                    arch=o["arch"],
                    kernel=o["kernel"],
                    privileged=o["privileged"],
                    results=results,
                    kernel_spec=o.get("kernel_spec", "host"),
                )
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise VerifyError(
            f"{origin}: not a result of `bpfbuild verify --format json` ({exc})",
            hint="give the files that each matrix job wrote with --format json",
        ) from None
    return VerifyReport(objects)


MATRIX_CELLS = {
    Verdict.PASSED: "ok",
    Verdict.REJECTED: "REJECTED",
    Verdict.UNSUPPORTED: "unsupported",
    Verdict.SKIPPED: "skipped",
}
"""One word per verdict in the matrix: a rejection stands out."""


def format_matrix(report: VerifyReport) -> str:
    """Programs x (kernel, arch): every verdict at a glance; `-` where a program was
    not verified (its object is not built for that arch)."""
    columns: dict[tuple[str, str], str] = {}
    cells: dict[tuple[str, tuple[str, str]], str] = {}
    for o in report.objects:
        column = (o.kernel_spec, o.arch)
        columns.setdefault(column, f"{o.kernel_spec} {o.arch}")
        for r in o.results:
            cells[(r.name, column)] = MATRIX_CELLS[r.verdict]
    programs = sorted({name for name, _ in cells})
    order = sorted(columns, key=lambda c: (kernel_order(c[0]), c[1]))
    rows = [(name, *(cells.get((name, c), "-") for c in order)) for name in programs]
    return _columns(("Program", *(columns[c] for c in order)), rows, numeric=())


def kernel_order(spec: str) -> tuple:
    """host first, then Debian series by version, then the rest by name."""
    if spec == "host":
        return (0,)
    if spec.startswith("debian:"):
        version = spec.split(":", 1)[1]
        return (1, tuple(int(p) if p.isdigit() else 0 for p in version.split(".")), spec)
    return (2, (), spec)


def format_csv(results: Iterable[ProgramResult], report: VerifyReport | None = None) -> str:
    """One row per program, every ProgramResult field, header first. With the report
    of a run on several kernels, each row starts with its kernel_spec and kernel."""
    names = [f.name for f in fields(ProgramResult)]
    rows = [(None, r) for r in results]
    if report is not None:
        names = ["kernel_spec", "kernel", *names]
        rows = [(o, r) for o in report.objects for r in o.results]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for o, r in rows:
        row = r.to_dict()
        if o is not None:
            row.update(kernel_spec=o.kernel_spec, kernel=o.kernel)
        writer.writerow({k: "" if row[k] is None else row[k] for k in names})
    return buffer.getvalue()


def format_rejection(result: ProgramResult) -> str:
    """A rejection (or unsupported program) for humans: the verifier's message, the
    failing instruction, `file:line: source`, a hint and the full log's path."""
    headline, *details = (result.error or "").splitlines() or [""]
    lines = [f"{result.name} ({result.section}): {result.verdict.description}: {headline}"]
    lines += [f"  {d}" for d in details]
    if result.failing_insn:
        lines.append(f"  at insn {result.failing_insn}")
    if result.source_text:
        where = f"{result.source_file}:{result.source_line}: " if result.source_file else ""
        lines.append(f"  {where}{result.source_text}")
    if result.hint:
        lines.append(f"  hint: {result.hint}")
    if result.log_path:
        truncated = " (tail only: the log outgrew the buffer)" if result.log_truncated else ""
        lines.append(f"  full log: {result.log_path}{truncated}")
    return "\n".join(lines)


def _on_kernel(report: ObjectReport) -> str:
    """` on debian:6.1 (arm64)` for a result from a VM; empty for the host's."""
    return "" if report.kernel_spec == "host" else f" on {report.kernel_spec} ({report.arch})"


def _headline(error: str | None) -> str:
    return error.splitlines()[0] if error else ""


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int]) -> str:
    """Aligned columns with a dashed rule under the headers; numbers right-aligned."""
    numeric = set(numeric)
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])
