"""Table-driven tests of verifier-log and runner-output parsing, on logs captured
from a 6.18 kernel with bpfverify (log level 4 when passed, 1|2|4 when rejected)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bpfbuild.errors import VerifyError
from bpfbuild.verify.log import (
    CoreRelocationFailure,
    SourceLine,
    Verdict,
    VerifierStats,
    classify_failure,
    hint_for,
    parse_core_failure,
    parse_rejection,
    parse_runner_output,
    parse_source_line,
    parse_stats,
    split_log,
)

# --- captured logs (tails of the files bpfverify wrote) ------------------------

PASSED_XDP = """\
verification time 170 usec
stack depth 0
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

PASSED_SUBPROG = """\
verification time 111 usec
stack depth 8+16
processed 27 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""

UNCHECKED_PACKET = """\
0: R1=ctx() R10=fp0
; void *data = (void *)(long)ctx->data; @ mixed.bpf.c:15
0: (61) r1 = *(u32 *)(r1 +0)          ; R1=pkt(r=0)
; if (eth->h_proto == 0) @ mixed.bpf.c:18
1: (69) r1 = *(u16 *)(r1 +12)
invalid access to packet, off=12 size=2, R1(id=0,off=12,r=0)
R1 offset is outside of the packet
verification time 70 usec
stack depth 0
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

MAP_OUT_OF_BOUNDS = """\
; return row[slot] & 1; @ rodata.bpf.c:24
12: (18) r1 = 0xffffc90001282000      ; R1=map_value(map=rodata.rodata,ks=4,vs=5)
14: (61) r1 = *(u32 *)(r1 +0)         ; R1=8
15: (67) r1 <<= 3                     ; R1=64
16: (0f) r0 += r1
mark_precise: frame0: last_idx 16 first_idx 11 subseq_idx -1 
mark_precise: frame0: regs=r1 stack= before 15: (67) r1 <<= 3
mark_precise: frame0: regs=r1 stack= before 14: (61) r1 = *(u32 *)(r1 +0)
17: R0=map_value(map=table,ks=4,vs=32,off=64) R1=64
17: (79) r6 = *(u64 *)(r0 +0)
invalid access to map value, value_size=32 off=64 size=8
R0 min value is outside of the allowed memory range
verification time 137 usec
stack depth 8
processed 15 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""

NULL_DEREF = """\
2: (bf) r2 = r10                      ; R2=fp0 R10=fp0
;  @ extra2.bpf.c:0
3: (07) r2 += -4                      ; R2=fp-4
; SEC("socket") int null_deref(struct __sk_buff *skb) { __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&h, &k); return *v; } @ extra2.bpf.c:4
4: (18) r1 = 0xffff8881043a7000       ; R1=map_ptr(map=h,ks=4,vs=8)
6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=h,ks=4,vs=8)
7: (79) r0 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
verification time 62 usec
stack depth 8
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

INFINITE_LOOP = """\
from 3 to 2: R1=ctx() R2=scalar(smin=umin=umin32=1,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
2: R1=ctx() R2=scalar(smin=umin=umin32=1,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
2: (61) r2 = *(u32 *)(r1 +0)
infinite loop detected at insn 3
cur state: R1=ctx() R2=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
old state: R1=ctx() R2=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
verification time 119 usec
stack depth 0
processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
"""

TOO_LARGE = """\
mark_precise: frame0: parent state regs= stack=:  R1=P0x22e04 R2=0x260277303 R3=0x26029a106 R10=fp0 fp-8=0x26029a106
7: R1=0x22e09
BPF program is too large. Processed 1000001 insn
verification time 8665214 usec
stack depth 8
processed 1000001 insns (limit 1000000) max_states_per_insn 4 total_states 14287 peak_states 14287 mark_read 0
"""

GPL_ONLY = """\
; bpf_printk("openat"); @ mixed.bpf.c:26
0: (18) r1 = 0xffff888100996338       ; R1=map_value(map=mixed.rodata,ks=4,vs=7)
2: (b7) r2 = 7                        ; R2=7
3: (85) call bpf_trace_printk#6
cannot call GPL-restricted function from non-GPL compatible program
verification time 160 usec
stack depth 0
processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

CORE_FAILURE = """\
arg#0 reference type('UNKNOWN ') size cannot be determined: -22
0: R1=ctx() R10=fp0
; struct task_struct___old *task = (void *)bpf_get_current_task(); @ core.bpf.c:14
0: (85) call bpf_get_current_task#35          ; R0=scalar()
1: <invalid CO-RE relocation>
failed to resolve CO-RE relocation <byte_off> [5] struct task_struct___old.no_such_field_xyz (0:0 @ offset 0)
verification time 103 usec
stack depth 0
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

CORE_LIBBPF = [
    "prog 'core_missing_field': relo #0: <byte_off> [5] struct task_struct___old.no_such_field_xyz (0:0 @ offset 0)",
    "prog 'core_missing_field': relo #0: non-matching candidate #0 <byte_off> [114] struct task_struct (0 @ offset 0)",
    "prog 'core_missing_field': relo #0: no matching targets found",
    "prog 'core_missing_field': relo #0: substituting insn #1 w/ invalid insn",
    "prog 'core_missing_field': BPF program load failed: Invalid argument",
]

MISSING_TARGET_LIBBPF = [
    "prog 'fentry_missing_target': failed to find kernel BTF type ID of 'no_such_kernel_function_xyz': -3",
    "prog 'fentry_missing_target': failed to prepare load attributes: -3",
    "prog 'fentry_missing_target': failed to load: -3",
]

FENTRY_EPERM_LIBBPF = [
    "prog 'fentry_unlinkat': BPF program load failed: Operation not permitted",
    "permission error while running as root; try raising 'ulimit -l'? current value: 8.0 MiB",
    "prog 'fentry_unlinkat': failed to load: -1",
]


# --- stats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (PASSED_XDP, VerifierStats(2, 1_000_000, 0, 0, 0, 0, 170, (0,))),
        (PASSED_SUBPROG, VerifierStats(27, 1_000_000, 0, 1, 1, 0, 111, (8, 16))),
        (TOO_LARGE, VerifierStats(1_000_001, 1_000_000, 4, 14287, 14287, 0, 8665214, (8,))),
        (UNCHECKED_PACKET, VerifierStats(2, 1_000_000, 0, 0, 0, 0, 70, (0,))),
        ("", VerifierStats()),
    ],
    ids=["passed", "subprograms", "too-large", "rejected", "empty"],
)
def test_parse_stats(log: str, expected: VerifierStats) -> None:
    assert parse_stats(log) == expected


@pytest.mark.parametrize(("stack_depths", "expected"), [((0,), 0), ((8, 16), 24), ((), None)])
def test_stack_depth_sums_subprograms(stack_depths: tuple[int, ...], expected: int | None) -> None:
    assert VerifierStats(stack_depths=stack_depths).stack_depth == expected


# --- source annotations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "; if (eth->h_proto == 0) @ mixed.bpf.c:18",
            SourceLine("if (eth->h_proto == 0)", "mixed.bpf.c", 18),
        ),
        (
            '; bpf_printk("openat"); @ mixed.bpf.c:26',
            SourceLine('bpf_printk("openat");', "mixed.bpf.c", 26),
        ),
        (";  @ extra2.bpf.c:0", None),
        ("1: (69) r1 = *(u16 *)(r1 +12)", None),
    ],
)
def test_parse_source_line(line: str, expected: SourceLine | None) -> None:
    assert parse_source_line(line) == expected


# --- rejections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "message", "failing_insn", "source", "hint_word"),
    [
        (
            UNCHECKED_PACKET,
            "invalid access to packet, off=12 size=2, R1(id=0,off=12,r=0)\nR1 offset is outside of the packet",
            "1: (69) r1 = *(u16 *)(r1 +12)",
            SourceLine("if (eth->h_proto == 0)", "mixed.bpf.c", 18),
            "data_end",
        ),
        (
            MAP_OUT_OF_BOUNDS,
            "invalid access to map value, value_size=32 off=64 size=8\n"
            "R0 min value is outside of the allowed memory range",
            "17: (79) r6 = *(u64 *)(r0 +0)",
            SourceLine("return row[slot] & 1;", "rodata.bpf.c", 24),
            "bound the index",
        ),
        (
            NULL_DEREF,
            "R0 invalid mem access 'map_value_or_null'",
            "7: (79) r0 = *(u64 *)(r0 +0)",
            SourceLine(
                'SEC("socket") int null_deref(struct __sk_buff *skb) '
                "{ __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&h, &k); return *v; }",
                "extra2.bpf.c",
                4,
            ),
            "NULL",
        ),
        (
            INFINITE_LOOP,
            "infinite loop detected at insn 3\n"
            "cur state: R1=ctx() R2=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0\n"
            "old state: R1=ctx() R2=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0",
            "2: (61) r2 = *(u32 *)(r1 +0)",
            None,
            "bound",
        ),
        (TOO_LARGE, "BPF program is too large. Processed 1000001 insn", None, None, "bpf_loop"),
        (
            GPL_ONLY,
            "cannot call GPL-restricted function from non-GPL compatible program",
            "3: (85) call bpf_trace_printk#6",
            SourceLine('bpf_printk("openat");', "mixed.bpf.c", 26),
            "LICENSE",
        ),
        (
            CORE_FAILURE,
            "failed to resolve CO-RE relocation <byte_off> [5] "
            "struct task_struct___old.no_such_field_xyz (0:0 @ offset 0)",
            "1: <invalid CO-RE relocation>",
            SourceLine(
                "struct task_struct___old *task = (void *)bpf_get_current_task();", "core.bpf.c", 14
            ),
            "no_such_field_xyz",
        ),
    ],
    ids=["packet", "map-bounds", "null", "infinite-loop", "too-large", "gpl", "core"],
)
def test_parse_rejection(
    log: str, message: str, failing_insn: str | None, source: SourceLine | None, hint_word: str
) -> None:
    rejection = parse_rejection(log)
    assert rejection is not None
    assert rejection.message == message
    assert rejection.failing_insn == failing_insn
    assert rejection.source == source
    assert hint_word in hint_for(rejection)


@pytest.mark.parametrize(
    "log", [PASSED_XDP, PASSED_SUBPROG, ""], ids=["passed", "subprog", "empty"]
)
def test_no_rejection_in_passing_log(log: str) -> None:
    assert parse_rejection(log) is None


# --- CO-RE ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "libbpf_lines"),
    [(CORE_FAILURE, []), ("", CORE_LIBBPF)],
    ids=["from-verifier-log", "from-libbpf-messages"],
)
def test_core_failure_names_type_and_field(log: str, libbpf_lines: list[str]) -> None:
    core = parse_core_failure(log, libbpf_lines)
    assert core == CoreRelocationFailure(
        "byte_off", "struct task_struct___old", "no_such_field_xyz"
    )
    assert core.kernel_type == "struct task_struct"
    assert (
        core.describe()
        == "the running kernel's struct task_struct has no field 'no_such_field_xyz'"
    )


def test_no_core_failure_without_failed_relocation() -> None:
    assert parse_core_failure(UNCHECKED_PACKET, CORE_LIBBPF[:2]) is None


# --- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("load_errno", "log", "libbpf_lines", "verdict", "reason_word"),
    [
        (errno.EACCES, UNCHECKED_PACKET, [], Verdict.REJECTED, "invalid access to packet"),
        (errno.EACCES, MAP_OUT_OF_BOUNDS, [], Verdict.REJECTED, "invalid access to map value"),
        (errno.E2BIG, TOO_LARGE, [], Verdict.REJECTED, "too large"),
        (errno.EINVAL, INFINITE_LOOP, [], Verdict.REJECTED, "infinite loop"),
        (errno.EINVAL, CORE_FAILURE, CORE_LIBBPF, Verdict.REJECTED, "CO-RE"),
        (errno.EPERM, "", FENTRY_EPERM_LIBBPF, Verdict.UNSUPPORTED, "EPERM"),
        (errno.ESRCH, "", MISSING_TARGET_LIBBPF, Verdict.UNSUPPORTED, "no_such_kernel_function_xyz"),
        (errno.EINVAL, "", [], Verdict.UNSUPPORTED, "EINVAL"),
        (524, "", [], Verdict.UNSUPPORTED, "ENOTSUPP"),
    ],
    ids=[
        "packet", "map-bounds", "too-large", "loop", "core",
        "eperm", "missing-attach-target", "einval-no-log", "enotsupp",
    ],
)  # fmt: skip
def test_classify_failure(
    load_errno: int, log: str, libbpf_lines: list[str], verdict: Verdict, reason_word: str
) -> None:
    result = classify_failure(load_errno, log, libbpf_lines)
    assert result.verdict is verdict
    assert reason_word in result.reason


# --- the runner's log files and output ------------------------------------------------------


def test_split_log_separates_libbpf_lines() -> None:
    text = (
        PASSED_XDP
        + "libbpf: loading object from mixed.bpf.o\nlibbpf: license of mixed.bpf.o is GPL\n"
    )
    kernel, libbpf = split_log(text)
    assert kernel == PASSED_XDP.rstrip("\n")
    assert libbpf == ["loading object from mixed.bpf.o", "license of mixed.bpf.o is GPL"]


RUNNER_OUTPUT = """\
{"kind":"runner","format":2,"kernel":"6.18.44-fc-v669","machine":"x86_64","libbpf":"1.5","object":"mixed.bpf.o","privileged":true,"probe_errno":0,"cap_bpf":true,"cap_sys_admin":true,"progs_loaded_before":0}
{"kind":"object","maps":[{"name":"sizes","type":"hash","defaulted":true,"max_entries":1},{"name":"fifo_ops","type":"struct_ops","defaulted":false,"max_entries":1}],"struct_ops":[{"map":"fifo_ops","type":"sched_ext_ops","in_kernel":false,"wrapper_in_kernel":false,"programs":["fifo_enqueue","fifo_init"]}]}
{"kind":"program","index":0,"name":"xdp_pass","section":"xdp","type":"xdp","load":"ok","errno":0,"strerror":"","log_level":4,"log":"logs/mixed/xdp_pass.log","log_truncated":false,"xlated_bytes":16,"jited_bytes":23,"verified_insns":2,"libbpf":""}
{"kind":"program","index":1,"name":"xdp_unchecked","section":"xdp","type":"xdp","load":"failed","errno":13,"strerror":"Permission denied","log_level":7,"log":"logs/mixed/xdp_unchecked.log","log_truncated":false,"xlated_bytes":0,"jited_bytes":0,"verified_insns":0,"libbpf":"libbpf: prog 'xdp_unchecked': BPF program load failed: Permission denied\\nlibbpf: prog 'xdp_unchecked': failed to load: -13\\nlibbpf: failed to load object 'mixed.bpf.o'\\n"}
{"kind":"done","programs":3,"loaded":2,"failed":1,"skipped":0,"progs_loaded_after":0}
"""


def test_parse_runner_output() -> None:
    out = parse_runner_output(RUNNER_OUTPUT)
    assert out.header is not None and out.header.kernel == "6.18.44-fc-v669"
    assert out.header.privileged and out.header.progs_loaded_before == 0
    assert [(p.name, p.load, p.errno) for p in out.programs] == [
        ("xdp_pass", "ok", 0),
        ("xdp_unchecked", "failed", 13),
    ]
    assert out.programs[0].xlated_bytes == 16 and out.programs[0].verified_insns == 2
    assert (
        out.programs[1].libbpf_messages[0]
        == "prog 'xdp_unchecked': BPF program load failed: Permission denied"
    )
    assert out.done is not None and out.done.progs_loaded_after == 0
    assert out.error is None
    assert [(m.name, m.max_entries, m.defaulted) for m in out.object.maps] == [
        ("sizes", 1, True),
        ("fifo_ops", 1, False),
    ]
    (ops,) = out.object.struct_ops
    assert (ops.map, ops.type, ops.in_kernel, ops.programs) == (
        "fifo_ops",
        "sched_ext_ops",
        False,
        ("fifo_enqueue", "fifo_init"),
    )


@pytest.mark.parametrize(
    ("text", "has_header", "programs", "has_done", "error"),
    [
        ("\n".join(RUNNER_OUTPUT.splitlines()[:3]), True, 1, False, None),
        (
            '{"kind":"error","message":"no variable \'nope\' in .rodata of rodata.bpf.o (it has: slot, enabled)"}',
            False, 0, False, "no variable 'nope' in .rodata of rodata.bpf.o (it has: slot, enabled)",
        ),
        ("", False, 0, False, None),
    ],
    ids=["killed-after-first-program", "fatal-error", "nothing"],
)  # fmt: skip
def test_parse_partial_runner_output(
    text: str, has_header: bool, programs: int, has_done: bool, error: str | None
) -> None:
    out = parse_runner_output(text)
    assert (out.header is not None, len(out.programs), out.done is not None, out.error) == (
        has_header, programs, has_done, error,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message_word"),
    [
        ("Segmentation fault", "unexpected line 1"),
        ('{"kind":"program","index":0}', "unexpected line 1"),
        ('{"kind":"runner","format":99}', "output format 99"),
    ],
)
def test_bad_runner_output_is_a_verify_error(text: str, message_word: str) -> None:
    with pytest.raises(VerifyError) as caught:
        parse_runner_output(text)
    assert message_word in caught.value.message
    assert "bpfverify" in (caught.value.hint or "")


# --- real rejections, one folder per Debian kernel family (tests/fixtures/verify/logs) ---

LOGS = Path(__file__).parent / "fixtures" / "verify" / "logs"
FAMILIES = ("5.10", "6.1", "6.12", "7.3")
MISTAKES = {  # program: (headline, mistakes.bpf.c line, source text starts, hint words)
    "packet_unchecked": (
        "invalid access to packet, off=12 size=2, R1(id=0,off=12,r=0)",
        34,
        "if (eth->h_proto == 0)",
        "data_end",
    ),
    "null_unchecked": (
        "R0 invalid mem access 'map_value_or_null'",
        45,
        "*count += 1;",
        "against NULL",
    ),
    "reference_leaked": ("Unreleased reference id=2 alloc_insn=5", 58, "}", "release every"),
    "index_unbounded": (
        "R0 unbounded memory access, make sure to bounds check any such access",
        68,
        "slots->hits[ctx->ingress_ifindex] += 1;",
        "bound the index",
    ),
}
SOURCE_FILE_SINCE = "6.2"
"""The kernel names file:line in its source annotations from 6.2 on."""


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("program", list(MISTAKES))
def test_real_rejection_of_each_kernel_family(family: str, program: str) -> None:
    headline, line, text, hint_words = MISTAKES[program]
    kernel_log, libbpf_lines = split_log((LOGS / family / f"{program}.log").read_text())
    classification = classify_failure(errno.EACCES, kernel_log, libbpf_lines)
    assert classification.verdict is Verdict.REJECTED
    assert classification.reason == headline  # not "verification time ... usec"
    rejection = classification.rejection
    assert rejection is not None and rejection.failing_insn
    assert rejection.source is not None and rejection.source.text.startswith(text)
    newer = tuple(map(int, family.split("."))) >= tuple(map(int, SOURCE_FILE_SINCE.split(".")))
    if newer:
        assert (rejection.source.file, rejection.source.line) == ("mistakes.bpf.c", line)
    assert hint_words in hint_for(rejection)
    stats = parse_stats(kernel_log)
    assert stats.insns_processed and stats.verification_time_usec


def test_7x_explanation_joins_the_message() -> None:
    """7.x follows the classic message with `Verification failed: <class>: <what>`,
    Reason, At, Causal path and Suggestion sections: the class and reason join the
    message (not the stats trailer), At names the line, Suggestion is the kernel's."""
    kernel_log, _ = split_log((LOGS / "7.3" / "reference_leaked.log").read_text())
    rejection = parse_rejection(kernel_log)
    assert rejection is not None
    assert rejection.message.splitlines() == [
        "Unreleased reference id=2 alloc_insn=5",
        "Resource Lifetime Safety: Unreleased resource: Owned resource (id=2) was acquired at "
        "instruction 5 and still needs to be released before this exit path.",
        "BPF_EXIT instruction in main prog would lead to reference leak",
    ]
    assert rejection.suggestion == (
        "Release or transfer ownership of the acquired resource on every path before the "
        "program exits."
    )
    assert "verification time" not in rejection.message
    assert parse_stats(kernel_log).stack_depths == (0,)  # `subprog 0 (...) ... stack 0`


def test_7x_struct_ops_rejection_names_its_line() -> None:
    kernel_log, libbpf_lines = split_log((LOGS / "7.3" / "broken_enqueue.log").read_text())
    classification = classify_failure(errno.EACCES, kernel_log, libbpf_lines)
    assert classification.verdict is Verdict.REJECTED
    assert classification.reason == "R0 invalid mem access 'map_value_or_null'"
    source = classification.rejection.source
    assert (source.file, source.line) == ("scx_broken.bpf.c", 35)
    assert "Register Type Safety: Invalid dereference" in classification.rejection.message


@pytest.mark.parametrize(
    ("log", "depths"),
    [
        ("stack depth 8+16\nprocessed 2 insns (limit 1000000)", (8, 16)),
        (
            "verification time 9 usec\nstack depth max 16\n"
            "subprog 0 (a) main insns_self 20 insns_total 26 stack 8\n"
            "subprog 1 (b) insns_self 6 insns_total 6 stack 8\n"
            "processed 26 insns (limit 1000000) max_states_per_insn 0 total_states 1",
            (8, 8),
        ),
    ],
    ids=["6.x", "7.x"],
)
def test_stack_depths_of_each_format(log: str, depths: tuple[int, ...]) -> None:
    assert parse_stats(log).stack_depths == depths
