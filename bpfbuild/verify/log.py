"""Pure parsing of verifier logs, libbpf messages and the bpfverify runner's output."""

from __future__ import annotations

import enum
import errno
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import VerifyError
from ..kernels.abi import ENOSYS_REASON, errno_name, missing_privilege

RUNNER_FORMAT = 1
"""The `format` the runner's first line must carry (bpfverify.c OUTPUT_FORMAT)."""

LIBBPF_PREFIX = "libbpf: "
"""libbpf prefixes each of its messages so; the runner appends them to each log."""


class Verdict(enum.StrEnum):
    """What became of one program."""

    PASSED = "passed"
    REJECTED = "rejected"
    """The verifier refused it: a defect in the program."""
    UNSUPPORTED = "unsupported"
    """This kernel cannot load this kind of program (type, attach target, feature)."""
    SKIPPED = "skipped"
    """Not tried: no BPF privilege."""

    @property
    def description(self) -> str:
        return _VERDICT_DESCRIPTIONS[self]


_VERDICT_DESCRIPTIONS = {
    Verdict.PASSED: "passed",
    Verdict.REJECTED: "rejected by the verifier",
    Verdict.UNSUPPORTED: "not supported by this kernel",
    Verdict.SKIPPED: "skipped",
}


# --------------------------------------------------------------------------
# The verifier log
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierStats:
    """The statistics the verifier prints with log level 4 (BPF_LOG_STATS)."""

    insns_processed: int | None = None
    insn_limit: int | None = None
    max_states_per_insn: int | None = None
    total_states: int | None = None
    peak_states: int | None = None
    mark_read: int | None = None
    verification_time_usec: int | None = None
    stack_depths: tuple[int, ...] = ()
    """One depth per subprogram, as in `stack depth 8+16`."""

    @property
    def stack_depth(self) -> int | None:
        """Sum over subprograms, as veristat reports it (an upper bound)."""
        return sum(self.stack_depths) if self.stack_depths else None


@dataclass(frozen=True)
class SourceLine:
    """A BTF line-info annotation: `; text @ file:line` (file and line since 6.2)."""

    text: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{self.text}"


@dataclass(frozen=True)
class CoreRelocationFailure:
    """A CO-RE relocation libbpf could not resolve against the running kernel's BTF."""

    kind: str
    """Relocation kind, e.g. `byte_off`, `field_exists`, `type_id`, `enumval_value`."""
    local_type: str
    """The type as the program declares it, e.g. `struct task_struct___old`."""
    access: str
    """The accessed field path after the type, e.g. `pid` or `se.vruntime`; may be empty."""

    @property
    def kernel_type(self) -> str:
        """The type name libbpf looks for: the local name without a `___flavor` suffix."""
        return re.sub(r"___\w*$", "", self.local_type)

    def describe(self) -> str:
        if self.access:
            return f"the running kernel's {self.kernel_type} has no field '{self.access}'"
        return f"the running kernel has no type {self.kernel_type}"


@dataclass(frozen=True)
class Rejection:
    """Why the verifier refused a program, and where."""

    message: str
    """The verifier's error: first line is the headline, further lines the details."""
    failing_insn: str | None = None
    """The last instruction the verifier looked at, e.g. `1: (69) r1 = *(u16 *)(r1 +12)`."""
    source: SourceLine | None = None
    """The last source annotation before the error: the failing C line."""
    core_failure: CoreRelocationFailure | None = None

    @property
    def headline(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


_STATS_RE = re.compile(
    r"^processed (?P<insns>\d+) insns \(limit (?P<limit>\d+)\)"
    r"(?: max_states_per_insn (?P<max_states>\d+))?"
    r"(?: total_states (?P<total>\d+))?"
    r"(?: peak_states (?P<peak>\d+))?"
    r"(?: mark_read (?P<mark_read>\d+))?"
)
_TIME_RE = re.compile(r"^verification time (\d+) usec$")
_STACK_RE = re.compile(r"^stack depth (\d+(?:\+\d+)*)$")
_INSN_RE = re.compile(r"^\d+: \([0-9a-f]{2}\) ")
"""An instruction the verifier walked: `12: (61) r1 = *(u32 *)(r1 +0)`."""
_CORE_INSN_RE = re.compile(r"^\d+: <invalid CO-RE relocation>$")
_SOURCE_RE = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>\S+):(?P<line>\d+))?$")
_STRUCTURE_RES = tuple(
    re.compile(p)
    for p in (
        r"^\d+: (R\d|fp-|frame\d|\(|<)",  # a state dump or an instruction
        r"^from \d+ to \d+: ",  # a branch the verifier resumes
        r"^;",  # a source annotation
        r"^mark_precise: ",  # precision backtracking
        r"^\s",  # the indented "Live regs" listing
        r"^func#\d+ @\d+$",
        r"^Live regs before insn:$",
        r"^Func#\d+ ",
        r"^Validating ",
        r"^propagating ",
        r"^last_idx \d+ ",
        r"^caller:$|^callee:$|^returning from callee:$|^to caller at \d+:$",
    )
)
_CORE_RE = re.compile(
    r"failed to resolve CO-RE relocation <(?P<kind>\w+)> \[\d+\] "
    r"(?P<spec>.+?)(?: \((?P<raw>[^)]*)\))?$"
)
_LIBBPF_RELO_RE = re.compile(
    r"prog '[^']*': relo #(?P<num>\d+): <(?P<kind>\w+)> \[\d+\] (?P<spec>.+?)(?: \([^)]*\))?$"
)
_LIBBPF_RELO_FAILED_RE = re.compile(
    r"prog '[^']*': relo #(?P<num>\d+): (no matching targets found|"
    r"target candidate search failed|failed to)"
)


def split_log(text: str) -> tuple[str, list[str]]:
    """Split a runner log file into the kernel's verifier log and libbpf's lines."""
    kernel: list[str] = []
    libbpf: list[str] = []
    for line in text.splitlines():
        (libbpf if line.startswith(LIBBPF_PREFIX) else kernel).append(line)
    return "\n".join(kernel), [line[len(LIBBPF_PREFIX) :] for line in libbpf]


def _is_trailer(line: str) -> bool:
    return bool(_STATS_RE.match(line) or _TIME_RE.match(line) or _STACK_RE.match(line))


def parse_stats(log: str) -> VerifierStats:
    """The stats lines of a verifier log; fields the log lacks stay None."""
    values: dict[str, object] = {}
    for line in log.splitlines():
        if m := _STATS_RE.match(line):
            values.update(
                insns_processed=int(m["insns"]),
                insn_limit=int(m["limit"]),
                max_states_per_insn=_int_or_none(m["max_states"]),
                total_states=_int_or_none(m["total"]),
                peak_states=_int_or_none(m["peak"]),
                mark_read=_int_or_none(m["mark_read"]),
            )
        elif m := _TIME_RE.match(line):
            values["verification_time_usec"] = int(m[1])
        elif m := _STACK_RE.match(line):
            values["stack_depths"] = tuple(int(d) for d in m[1].split("+"))
    return VerifierStats(**values)  # type: ignore[arg-type]


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def parse_source_line(line: str) -> SourceLine | None:
    """A `; text @ file:line` annotation, or None (also for the empty `;  @ f.c:0`)."""
    m = _SOURCE_RE.match(line)
    if not m or not m["text"].strip():
        return None
    return SourceLine(
        text=m["text"].strip(),
        file=m["file"],
        line=int(m["line"]) if m["line"] else None,
    )


def parse_core_failure(log: str, libbpf_lines: Sequence[str] = ()) -> CoreRelocationFailure | None:
    """The first unresolved CO-RE relocation, from the verifier log as libbpf rewrote
    it (`failed to resolve CO-RE relocation <byte_off> [5] struct s.f (0:1 @ offset 4)`)
    or else from libbpf's own `relo #N` messages."""
    for line in log.splitlines():
        if m := _CORE_RE.search(line):
            return _core_from_spec(m["kind"], m["spec"])
    specs: dict[str, tuple[str, str]] = {}
    for line in libbpf_lines:
        if m := _LIBBPF_RELO_FAILED_RE.search(line):
            if m["num"] in specs:
                return _core_from_spec(*specs[m["num"]])
        elif m := _LIBBPF_RELO_RE.search(line):
            specs.setdefault(m["num"], (m["kind"], m["spec"]))
    return None


def _core_from_spec(kind: str, spec: str) -> CoreRelocationFailure:
    # spec is `struct task_struct___old.no_such_field` or `struct foo` or `enum e::VAL`
    words = spec.split(" ", 1)
    if len(words) == 2 and words[0] in ("struct", "union", "enum", "enum64", "typedef"):
        keyword, rest = words
    else:
        keyword, rest = "", spec
    name, _, access = rest.partition(".")
    if not access and "::" in name:
        name, _, access = name.partition("::")
    local_type = f"{keyword} {name}".strip()
    return CoreRelocationFailure(kind=kind, local_type=local_type, access=access)


def parse_rejection(log: str, libbpf_lines: Sequence[str] = ()) -> Rejection | None:
    """The error at the end of a failed load's log, or None when the log has none.

    The verifier stops at the first error: its message follows the last
    instruction it walked and precedes the stats trailer. The source line is the
    last `; ... @ file:line` annotation before that point.
    """
    lines = [line for line in log.splitlines() if line.strip()]
    while lines and _is_trailer(lines[-1]):
        lines.pop()
    end = len(lines)
    # The error: the lines after the last structural line (instruction, state...),
    # but a CO-RE failure names its own instruction line.
    start = end
    while start > 0 and not _is_structure(lines[start - 1]):
        start -= 1
    message_lines = lines[start:end]
    core = parse_core_failure(log, libbpf_lines)
    if not message_lines and core is None:
        return None
    failing_insn = None
    source = None
    for line in reversed(lines[:start]):
        if failing_insn is None and (_INSN_RE.match(line) or _CORE_INSN_RE.match(line)):
            failing_insn = line.split(" ;", 1)[0].rstrip()
        if source is None and line.startswith(";"):
            source = parse_source_line(line)
        if failing_insn is not None and source is not None:
            break
    message = "\n".join(message_lines)
    if core is not None and not message:
        message = f"failed to resolve CO-RE relocation: {core.describe()}"
    return Rejection(message=message, failing_insn=failing_insn, source=source, core_failure=core)


def _is_structure(line: str) -> bool:
    return any(r.match(line) for r in _STRUCTURE_RES)


# --------------------------------------------------------------------------
# Telling a rejection from a kernel that lacks support
# --------------------------------------------------------------------------

UNSUPPORTED_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (
            r"^invalid func unknown#(?!195896080\b)\d+",
            "this kernel lacks a helper the program calls",
        ),
        (r"^unknown func ", "this kernel lacks a helper the program calls"),
        (
            r"^calling kernel function \S+ is not allowed",
            "this kernel does not allow this kfunc here",
        ),
        (r"^kernel btf_id \d+ is not a function", "this kernel lacks a kfunc the program calls"),
        (r"not supported", "this kernel does not support a feature the program uses"),
    )
)
"""Verifier messages that mean the kernel lacks something, not that the program is wrong."""

HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), hint)
    for pattern, hint in (
        (r"invalid access to packet", "check `data + size > data_end` before reading the packet"),
        (
            r"invalid mem access '(map_value_or_null|\w*_or_null)'",
            "check the pointer against NULL (e.g. the result of bpf_map_lookup_elem()) before using it",
        ),
        (
            r"invalid access to map value|min value is outside|max value is outside|"
            r"unbounded memory access",
            "bound the index or offset with a check the verifier can see (e.g. `if (i >= N) return 0;`)",
        ),
        (
            r"BPF program is too large",
            "the verifier walked more than its instruction limit: bound loops more tightly, "
            "or use bpf_loop() or tail calls",
        ),
        (
            r"infinite loop detected|back-edge from insn|unbounded loop",
            "give the loop a bound the verifier can prove (a constant trip count)",
        ),
        (
            r"cannot call GPL-restricted function",
            'declare `char LICENSE[] SEC("license") = "GPL";` in the program',
        ),
        (
            r"combined stack size|stack size .* too large|invalid stack off",
            "use less stack: move large buffers into a per-CPU array map",
        ),
        (
            r"Unreleased reference|unreleased reference",
            "release every acquired reference (e.g. bpf_ringbuf_submit/discard) on every path",
        ),
        (r"R0 !read_ok", "return a value on every path"),
        (r"!read_ok", "initialise the register or stack slot before reading it"),
        (
            r"invalid indirect read from stack",
            "initialise the whole stack buffer before passing it",
        ),
    )
)
"""Verifier messages and the fix that usually applies, first match wins."""


def hint_for(rejection: Rejection) -> str:
    """A hint for a rejection: from the CO-RE failure or the first matching message."""
    if rejection.core_failure is not None:
        core = rejection.core_failure
        return (
            f"{core.describe()}: guard the access with bpf_core_field_exists() / "
            "bpf_core_type_exists(), or check the field's name and type"
        )
    for pattern, hint in HINTS:
        if pattern.search(rejection.message):
            return hint
    return "read the full verifier log for the path that leads to the error"


@dataclass(frozen=True)
class Classification:
    """The verdict of a failed load and a one-line reason."""

    verdict: Verdict
    reason: str
    rejection: Rejection | None = None
    hint: str | None = None
    """What to do, when the reason calls for more than the default advice."""


_MISSING_KSYM_RE = re.compile(
    r"extern \((?P<kind>func|var) ksym\) '(?P<name>[^']+)': not found in kernel"
)
"""libbpf, before any program is loaded: a non-weak `extern ... __ksym` the running
kernel's BTF (and its modules') lacks; the load then fails with ESRCH or EINVAL."""


def missing_ksym(libbpf_lines: Sequence[str]) -> Classification | None:
    """A kfunc (or kernel variable) the program declares and this kernel lacks.

    Unsupported, not rejected, as for a helper the kernel lacks (`unknown func`):
    the program may be right for a newer kernel, and nothing was verified here."""
    for line in libbpf_lines:
        if m := _MISSING_KSYM_RE.search(line):
            name = m["name"]
            if m["kind"] == "func":
                return Classification(
                    Verdict.UNSUPPORTED,
                    f"kfunc {name} not found in this kernel",
                    hint=f"declare it `extern ... {name}(...) __ksym __weak;` and call it only "
                    f"when `bpf_ksym_exists({name})` is true (libbpf 1.2+; `if ({name})` with "
                    "older headers), so the program loads on kernels without it; or verify on "
                    "a kernel that has it (check the name)",
                )
            return Classification(
                Verdict.UNSUPPORTED,
                f"kernel variable {name} not found in this kernel",
                hint=f"declare it `__ksym __weak` and check `&{name}` before use, "
                "or verify on a kernel that has it (check the name)",
            )
    return None


def classify_failure(load_errno: int, log: str, libbpf_lines: Sequence[str]) -> Classification:
    """Tell a verifier rejection from a kernel that lacks support, for a privileged load.

    - EPERM although privileged: the kernel refuses the program type (lockdown,
      an LSM, or no support for fentry/LSM programs).
    - A verifier error message: a rejection, unless the message says the kernel
      lacks a helper or feature (UNSUPPORTED_MESSAGES). A failed CO-RE
      relocation counts as a rejection: the program reads a field without
      guarding it, and the hint names the field the kernel lacks.
    - No verifier output: libbpf failed before the kernel verified anything (a
      kfunc the kernel lacks, a missing attach target: ESRCH/ENOENT), or the kernel does not know the
      program or attach type (EINVAL, EOPNOTSUPP, ENOTSUPP).
    """
    libbpf_error = _libbpf_error(libbpf_lines)
    if ksym := missing_ksym(libbpf_lines):
        return ksym
    if load_errno == errno.EPERM:
        return Classification(
            Verdict.UNSUPPORTED,
            "the kernel refused this program type although we are privileged (EPERM)",
        )
    rejection = parse_rejection(log, libbpf_lines)
    if rejection is not None:
        if rejection.core_failure is None:
            for pattern, reason in UNSUPPORTED_MESSAGES:
                if pattern.search(rejection.headline):
                    return Classification(
                        Verdict.UNSUPPORTED, f"{reason}: {rejection.headline}", rejection
                    )
        return Classification(Verdict.REJECTED, rejection.headline, rejection)
    if m := re.search(r"extern \(func ksym\) '([^']+)': not found", "\n".join(libbpf_lines)):
        return Classification(
            Verdict.UNSUPPORTED, f"this kernel lacks the kfunc '{m[1]}' the program calls"
        )
    if m := re.search(r"failed to find kernel BTF type ID of '([^']+)'", "\n".join(libbpf_lines)):
        return Classification(
            Verdict.UNSUPPORTED, f"attach target '{m[1]}' is not in the running kernel's BTF"
        )
    reason = f"the kernel refused the load with {errno_name(load_errno)} and no verifier log"
    if libbpf_error:
        reason += f" ({libbpf_error})"
    return Classification(Verdict.UNSUPPORTED, reason)


def _libbpf_error(libbpf_lines: Sequence[str]) -> str:
    """libbpf's first specific complaint, skipping its generic "failed to load" lines."""
    for line in libbpf_lines:
        if re.search(
            r"failed to load|BPF program load failed|permission error while running", line
        ):
            continue
        return line
    return ""


# --------------------------------------------------------------------------
# Why BPF cannot be loaded here
# --------------------------------------------------------------------------

NOT_ROOT_HINT = (
    "run as root (sudo bpfbuild verify), or give the runner CAP_BPF with CAP_PERFMON "
    "and CAP_NET_ADMIN"
)


def no_privilege_reason(probe_errno: int, euid: int, capable: bool) -> tuple[str, str]:
    """Why a trivial program could not be loaded, and what to do: the probe's errno
    (ENOSYS: no bpf() syscall, under qemu-user or a seccomp filter), the euid and
    whether CAP_BPF or CAP_SYS_ADMIN is effective (root may have dropped them)."""
    if probe_errno == errno.ENOSYS:
        return ENOSYS_REASON, (
            "verify on a Linux kernel built with CONFIG_BPF_SYSCALL, outside qemu-user and "
            "outside any seccomp filter that refuses bpf() (a container's, a sandbox's)"
        )
    if euid == 0 and not capable:
        return f"no BPF privilege: {missing_privilege(euid, capable)}", (
            "run without dropping capabilities (no `setpriv --bounding-set=-all`, `capsh "
            "--drop`, or a container without CAP_BPF), or add CAP_BPF with CAP_PERFMON and "
            "CAP_NET_ADMIN"
        )
    if not capable:
        return f"no BPF privilege: {missing_privilege(euid, capable)}", NOT_ROOT_HINT
    return (
        f"the kernel refused a trivial program with {errno_name(probe_errno)}: "
        + missing_privilege(euid, capable),
        "check kernel.unprivileged_bpf_disabled, lockdown and LSM policies of this machine",
    )


# --------------------------------------------------------------------------
# The runner's output: JSON lines
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerHeader:
    """The runner's first line: the kernel it ran on and whether it may load BPF."""

    kernel: str
    machine: str
    libbpf: str
    privileged: bool
    probe_errno: int
    cap_bpf: bool
    cap_sys_admin: bool
    progs_loaded_before: int
    euid: int = -1
    """The runner's effective uid (-1 from a runner older than this field)."""

    def no_privilege(self) -> tuple[str, str] | None:
        """Why this runner may not load BPF, and the hint; None when it may."""
        return (
            None
            if self.privileged
            else no_privilege_reason(
                self.probe_errno, self.euid, self.cap_bpf or self.cap_sys_admin
            )
        )


@dataclass(frozen=True)
class RunnerProgram:
    """One program's load, as the runner saw it: facts, no verdict."""

    index: int
    name: str
    section: str
    prog_type: str
    load: str
    """`ok`, `failed` or `skipped`."""
    errno: int
    strerror: str
    log_level: int
    log_path: str
    log_truncated: bool
    xlated_bytes: int
    jited_bytes: int
    verified_insns: int
    libbpf_messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunnerDone:
    programs: int
    loaded: int
    failed: int
    skipped: int
    progs_loaded_after: int


@dataclass
class RunnerOutput:
    header: RunnerHeader | None = None
    programs: list[RunnerProgram] = field(default_factory=list)
    done: RunnerDone | None = None
    error: str | None = None
    """The runner's fatal error (unknown --set variable, unreadable object)."""


def parse_runner_output(text: str) -> RunnerOutput:
    """Parse bpfverify's stdout; a partial output (killed runner) parses too."""
    out = RunnerOutput()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["kind"]
            if kind == "runner":
                if record.get("format") != RUNNER_FORMAT:
                    raise VerifyError(
                        f"bpfverify speaks output format {record.get('format')}, "
                        f"bpfbuild expects {RUNNER_FORMAT}",
                        hint="rebuild the runner: delete output/<arch>/tools/bpfverify",
                    )
                out.header = RunnerHeader(
                    kernel=record["kernel"],
                    machine=record["machine"],
                    libbpf=record["libbpf"],
                    privileged=record["privileged"],
                    probe_errno=record["probe_errno"],
                    cap_bpf=record["cap_bpf"],
                    cap_sys_admin=record["cap_sys_admin"],
                    progs_loaded_before=record["progs_loaded_before"],
                    euid=record.get("euid", -1),
                )
            elif kind == "program":
                out.programs.append(
                    RunnerProgram(
                        index=record["index"],
                        name=record["name"],
                        section=record["section"],
                        prog_type=record["type"],
                        load=record["load"],
                        errno=record["errno"],
                        strerror=record["strerror"],
                        log_level=record["log_level"],
                        log_path=record["log"],
                        log_truncated=record["log_truncated"],
                        xlated_bytes=record["xlated_bytes"],
                        jited_bytes=record["jited_bytes"],
                        verified_insns=record["verified_insns"],
                        libbpf_messages=[
                            m[len(LIBBPF_PREFIX) :] if m.startswith(LIBBPF_PREFIX) else m
                            for m in record["libbpf"].splitlines()
                        ],
                    )
                )
            elif kind == "done":
                out.done = RunnerDone(
                    programs=record["programs"],
                    loaded=record["loaded"],
                    failed=record["failed"],
                    skipped=record["skipped"],
                    progs_loaded_after=record["progs_loaded_after"],
                )
            elif kind == "error":
                out.error = record["message"]
            else:
                raise KeyError(kind)
        except (ValueError, KeyError, TypeError) as exc:
            raise VerifyError(
                f"bpfverify printed an unexpected line {number}: {line[:200]!r} ({exc})",
                hint="this is a bug in bpfbuild or a stale runner: delete output/<arch>/tools/bpfverify",
            ) from exc
    return out
