"""Table-driven tests of what a run says beyond each verdict: programs verified on no
kernel, notes once per object, the oldest kernel each tool runs on, and why a kernel
cannot take a struct_ops map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfbuild.verify.budgets import failures
from bpfbuild.verify.log import Verdict, missing_struct_ops
from bpfbuild.verify.results import (
    ObjectReport,
    ProgramResult,
    VerifyReport,
    format_json,
    report_from_json,
)
from bpfbuild.verify.summary import (
    kernel_support,
    object_notes,
    support_lines,
    unverified_line,
    unverified_programs,
)

RELEASES = {
    "debian:5.10": "5.10.0-32-cloud-amd64",
    "debian:6.1": "6.1.0-50-cloud-amd64",
    "debian:6.12": "6.12.117+deb13-cloud-amd64",
    "debian:7.3": "7.3.4+deb13-cloud-amd64",
}


def cell(
    spec: str, arch: str, obj: str, verdicts: dict[str, Verdict], **extra: object
) -> ObjectReport:
    """One object's report on one kernel: a program per verdict."""
    results = [
        ProgramResult(arch, obj, program, "xdp", "xdp", verdict, error=f"{verdict} {program}")
        for program, verdict in verdicts.items()
    ]
    release = RELEASES[spec].replace("amd64", "arm64") if arch == "arm64" else RELEASES[spec]
    return ObjectReport(
        obj, Path(f"{obj}.bpf.o"), arch, release, True, results, kernel_spec=spec, **extra
    )  # type: ignore[arg-type]


P, R, U, S = Verdict.PASSED, Verdict.REJECTED, Verdict.UNSUPPORTED, Verdict.SKIPPED


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            [
                ("debian:5.10", "x86_64", {"a": P, "b": P}),
                ("debian:6.1", "x86_64", {"a": P, "b": P}),
                ("debian:6.12", "x86_64", {"a": P, "b": P}),
                ("debian:6.12", "arm64", {"a": P, "b": P}),
            ],
            "execsnoop: x86_64 5.10+, arm64 6.12+ (5.10, 6.1 not tried)",
            id="oldest-per-arch",
        ),
        pytest.param(
            [
                ("debian:6.1", "x86_64", {"a": U, "b": P}),
                ("debian:6.12", "x86_64", {"a": P, "b": P}),
                ("debian:7.3", "x86_64", {"a": P, "b": P}),
            ],
            "execsnoop: x86_64 6.12+",
            id="unsupported-on-the-oldest",
        ),
        pytest.param(
            [
                ("debian:6.1", "x86_64", {"a": P, "b": P}),
                ("debian:6.12", "x86_64", {"a": P, "b": P}),
                ("debian:7.3", "x86_64", {"a": R, "b": P}),
            ],
            "execsnoop: x86_64 none (7.3 rejected)",
            id="regression-on-the-newest-is-not-hidden",
        ),
        pytest.param(
            [
                ("debian:6.1", "x86_64", {"a": P, "b": P}),
                ("debian:6.12", "x86_64", {"a": R, "b": P}),
                ("debian:7.3", "x86_64", {"a": P, "b": P}),
            ],
            "execsnoop: x86_64 7.3+",
            id="a-failure-in-between",
        ),
        pytest.param(
            [
                ("debian:6.12", "x86_64", {"a": U, "b": U}),
                ("debian:7.3", "x86_64", {"a": R, "b": P}),
            ],
            "execsnoop: x86_64 none (7.3 rejected, 6.12 unsupported)",
            id="nothing-passes",
        ),
    ],
)
def test_oldest_kernel_per_tool_and_arch(
    cells: list[tuple[str, str, dict[str, Verdict]]], expected: str
) -> None:
    report = VerifyReport(
        [
            o
            for spec, arch, verdicts in cells
            for o in (
                cell(spec, arch, "exec", {"a": verdicts["a"]}),
                cell(spec, arch, "helper", {"b": verdicts["b"]}),
            )
        ]
    )
    assert support_lines(kernel_support(report, {"execsnoop": ("exec", "helper")})) == [expected]


def test_objects_without_an_app_stand_for_themselves_and_the_json_has_it() -> None:
    report = VerifyReport(
        [
            cell("debian:6.12", "x86_64", "probe", {"p": P}),
            cell("debian:7.3", "x86_64", "probe", {"p": P}),
            cell("debian:7.3", "x86_64", "scx", {"s": P}),
            cell("debian:6.12", "x86_64", "scx", {"s": U}),
        ]
    )
    assert support_lines(kernel_support(report)) == ["probe: x86_64 6.12+", "scx: x86_64 7.3+"]
    data = json.loads(format_json(report))
    assert data["kernel_support"]["scx"]["line"] == "x86_64 7.3+"
    assert data["kernel_support"]["scx"]["x86_64"] == {
        "oldest": "7.3",
        "kernel_spec": "debian:7.3",
        "tried": ["6.12", "7.3"],
        "failing": {"6.12": "unsupported"},
        "not_tried": [],
    }
    assert data["unverified"] == []
    assert report_from_json(format_json(report)).objects[0].kernel_spec == "debian:6.12"


@pytest.mark.parametrize(
    ("verdicts", "unverified"),
    [
        ([{"a": P, "b": U}, {"a": U, "b": U}], ["o/b"]),
        ([{"a": S, "b": U}, {"a": U, "b": P}], ["o/a"]),
        ([{"a": R, "b": U}, {"a": U, "b": P}], []),  # a rejection verified it
        ([{"a": U, "b": S}], ["o/a", "o/b"]),
    ],
)
def test_programs_verified_on_no_kernel(
    verdicts: list[dict[str, Verdict]], unverified: list[str]
) -> None:
    specs = ["debian:6.12", "debian:7.3"]
    report = VerifyReport(
        [cell(spec, "x86_64", "o", v) for spec, v in zip(specs, verdicts, strict=False)]
    )
    assert unverified_programs(report) == unverified
    line = unverified_line(report)
    assert (line is None) == (not unverified)
    problems = failures(report, require=True)
    assert any("verified on no kernel at all" in p for p in problems) == bool(unverified)
    assert not any("no kernel" in p for p in failures(report, require=False))


def test_one_note_per_object_and_reason() -> None:
    reason = "this kernel has no struct sched_ext_ops (sched_ext is not enabled in it)"
    report = cell("debian:6.12", "x86_64", "scx", {"enqueue": U, "dispatch": U, "x": P})
    for result in report.results[:2]:
        result.error = reason
    report.notes = [reason, "map 'm' has max_entries 0 ..."]
    assert object_notes(report, "debian:6.12 (x86_64)") == [
        f"note: scx (2 programs: enqueue, dispatch): not supported by debian:6.12 (x86_64): "
        f"{reason}",
        "note: scx on debian:6.12 (x86_64): map 'm' has max_entries 0 ...",
    ]


@pytest.mark.parametrize(
    ("type_name", "in_kernel", "wrapper", "reason", "hint_word"),
    [
        (
            "sched_ext_ops",
            False,
            False,
            "this kernel has no struct sched_ext_ops (sched_ext is not enabled in it)",
            "CONFIG_SCHED_CLASS_EXT",
        ),
        (
            "hid_bpf_ops",
            False,
            False,
            "this kernel has no struct hid_bpf_ops (HID-BPF is not enabled in it)",
            "CONFIG_HID_BPF",
        ),
        (
            "tcp_congestion_ops",
            True,
            False,
            "this kernel's struct tcp_congestion_ops cannot be implemented in BPF "
            "(it has no struct bpf_struct_ops_tcp_congestion_ops)",
            "CONFIG_BPF_JIT",
        ),
        (
            "my_ops",
            False,
            False,
            "this kernel has no struct my_ops (it is older, or built without it)",
            "struct my_ops",
        ),
        ("sched_ext_ops", True, True, None, None),
        ("sched_ext_ops", None, None, None, None),  # no BTF to tell: the load will say
    ],
)
def test_missing_struct_ops(
    type_name: str,
    in_kernel: bool | None,
    wrapper: bool | None,
    reason: str | None,
    hint_word: str | None,
) -> None:
    found = missing_struct_ops(type_name, in_kernel, wrapper)
    if reason is None:
        assert found is None
        return
    assert found is not None and found.verdict is Verdict.UNSUPPORTED
    assert found.reason == reason
    assert hint_word in (found.hint or "")
    assert "__weak" not in (found.hint or "") and "kfunc" not in found.reason
