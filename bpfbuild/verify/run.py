"""Running bpfverify on one object in the running kernel, and turning what it printed
(JSON lines, one log per program) into the object's report with a verdict per program."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from .. import safefs
from ..arch import get_arch
from ..errors import ConfigError, VerifyError
from .log import (
    Classification,
    RunnerObject,
    RunnerProgram,
    Verdict,
    VerifierStats,
    classify_failure,
    hint_for,
    missing_ksym_elsewhere,
    missing_ksym_name,
    missing_struct_ops,
    parse_runner_output,
    parse_stats,
    split_log,
)
from .objfile import program_ksyms
from .results import ObjectReport, ProgramResult, skip_message
from .runner import runner_command


def run_verifier(
    runner: Path,
    bpf_object: Path,
    log_dir: Path,
    rodata: Mapping[str, int] | None = None,
    *,
    max_entries: Mapping[str, int] | None = None,
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
    bpfbuild's arch name (default: from the kernel's `uname -m`); max_entries: map
    sizes ([verify.maps]); require: raise
    VerifyError instead of reporting `no privilege`; launcher: a command prefix
    for the runner (`sudo`, `setpriv ...`, a VM launcher). On KeyboardInterrupt the
    runner is killed (the kernel frees what it loaded) and the interrupt re-raised.
    """
    name = name or bpf_object.name.removesuffix(".o").removesuffix(".bpf")
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    safefs.make_folders(log_dir.parent, log_dir)  # a link there is refused, never followed
    for stale in log_dir.glob("*.log"):
        stale.unlink()
    command = [
        *launcher,
        *runner_command(runner, bpf_object, log_dir, rodata, rejected_log_level, max_entries),
    ]
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
        raise VerifyError(skip_message(skip_reason), hint=skip_hint)
    before = header.progs_loaded_before
    after = output.done.progs_loaded_after
    programs = [
        replace(p, log_path=str(log_dir / Path(p.log_path).name)) if p.log_path else p
        for p in output.programs
    ]
    missing, notes = _object_facts(name, output.object)
    ksyms = _KsymUsers(bpf_object)
    return ObjectReport(
        object=name,
        path=bpf_object,
        arch=arch,
        kernel=header.kernel,
        privileged=header.privileged,
        results=[_program_result(arch, name, p, skip_reason, missing, ksyms) for p in programs],
        notes=notes,
        maps={m.name: m.max_entries for m in output.object.maps},
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
    if message.startswith(("no variable", "cannot set '")):
        return f"set only `const volatile` integer globals that {name}.bpf.c declares"
    if message.startswith(("no map", "cannot set max_entries")):
        return (
            f"size only maps that {name}.bpf.c defines (the message lists them), in "
            f"[verify.maps.{name}] of bpfbuild.toml"
        )
    return "check that the object is a BPF object built by bpfbuild"


def _arch_name(machine: str) -> str:
    """bpfbuild's name of the arch `uname -m` names; the machine itself if unknown."""
    try:
        return get_arch(machine).name
    except ConfigError:
        return machine


class _KsymUsers:
    """The kernel symbols each program of an object uses, read from its ELF once and
    only when a load failed for a missing one."""

    def __init__(self, bpf_object: Path) -> None:
        self.bpf_object = bpf_object
        self._found: dict[str, frozenset[str]] | None = None

    def of(self, program: str) -> frozenset[str] | None:
        """What program uses; None when the object cannot tell."""
        return self._programs().get(program)

    def users(self, symbol: str) -> list[str]:
        return [p for p, used in self._programs().items() if symbol in used]

    def _programs(self) -> dict[str, frozenset[str]]:
        if self._found is None:
            self._found = program_ksyms(self.bpf_object)
        return self._found


def _object_facts(
    name: str, facts: RunnerObject
) -> tuple[dict[str | None, Classification], list[str]]:
    """What the object as a whole tells: the struct_ops types this kernel cannot take
    (program name -> why, and None -> why for the object), and the notes to show once
    per object (the missing subsystem, maps sized by the runner)."""
    missing: dict[str | None, Classification] = {}
    for ops in facts.struct_ops:
        reason = missing_struct_ops(ops.type, ops.in_kernel, ops.wrapper_in_kernel)
        if reason is not None:
            missing.setdefault(None, reason)
            for program in ops.programs:
                missing.setdefault(program, reason)
    notes = [missing[None].reason] if None in missing else []
    notes += [
        f"map '{m.name}' has max_entries 0 (its loader sizes it at run time): verified with "
        f"max_entries {m.max_entries}; give the size the loader uses as "
        f"`{m.name} = {{ max_entries = N }}` in [verify.maps.{name}] of bpfbuild.toml"
        for m in facts.maps
        if m.defaulted
    ]
    return missing, notes


def _program_result(
    arch: str,
    object_name: str,
    program: RunnerProgram,
    skip_reason: str | None = None,
    missing: dict[str | None, Classification] | None = None,
    ksyms: _KsymUsers | None = None,
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
    classification = classify_failure(
        program.errno, kernel_log, libbpf_lines, program.libbpf_messages or None
    )
    symbol = missing_ksym_name(libbpf_lines) if classification.rejection is None else None
    if symbol and ksyms is not None:
        used = ksyms.of(program.name)
        if used is not None and symbol not in used:
            # The kfunc is another program's: name it as the object's, not this one's.
            classification = missing_ksym_elsewhere(symbol, ksyms.users(symbol))
    missing = missing or {}
    if program.name in missing or (None in missing and classification.rejection is None):
        # The kernel lacks the subsystem the object implements: that is why, not a
        # kfunc of that subsystem (libbpf resolves an object's kfuncs all at once).
        classification = missing.get(program.name) or missing[None]
    result.verdict = classification.verdict
    rejection = classification.rejection
    if classification.verdict is Verdict.PASSED:
        result.hint = classification.reason  # passed, with what the load could not do
        return result
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
