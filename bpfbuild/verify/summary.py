"""What a whole verification run says beyond each verdict: the programs verified on no
kernel at all, the notes to show once per object, and for each tool (an app, or an
object with no app) and arch the oldest kernel from which all its programs pass."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .log import Verdict
from .results import ObjectReport, VerifyReport

NOT_VERIFIED = (Verdict.SKIPPED, Verdict.UNSUPPORTED)
"""Verdicts that verified nothing: the program was never loaded through the verifier."""
WORST_FIRST = (Verdict.REJECTED, Verdict.UNSUPPORTED, Verdict.SKIPPED, Verdict.PASSED)
"""What a kernel says of a tool: the worst verdict among its programs there."""


def unverified_programs(report: VerifyReport) -> list[str]:
    """`object/program` of each program that no kernel verified: skipped or unsupported
    in every cell of the run (whatever the arch)."""
    verdicts: dict[str, set[Verdict]] = {}
    for result in report.results:
        verdicts.setdefault(result.name, set()).add(result.verdict)
    return sorted(name for name, seen in verdicts.items() if seen <= set(NOT_VERIFIED))


def unverified_line(report: VerifyReport) -> str | None:
    """The summary line for programs verified on no kernel at all, or None."""
    names = unverified_programs(report)
    if not names:
        return None
    total = len({r.name for r in report.results})
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    return (
        f"{len(names)} of {total} program{'s' if total > 1 else ''} verified on no kernel at "
        f"all (unsupported or skipped everywhere): {shown}"
    )


def object_notes(report: ObjectReport, where: str) -> list[str]:
    """The notes of one object on one kernel, once each: programs unsupported for the
    same reason in one line (a subsystem the kernel lacks names the object once), then
    what else holds for the object (a map the runner sized). where: `this kernel` or
    `debian:6.12 (x86_64)`."""
    lines = []
    by_reason: dict[str, list[str]] = {}
    for result in report.results:
        if result.verdict is Verdict.UNSUPPORTED:
            by_reason.setdefault(result.error or "", []).append(result.program)
    for reason, programs in by_reason.items():
        if len(programs) == 1:
            subject = f"{report.object}/{programs[0]}"
        else:
            subject = f"{report.object} ({len(programs)} programs: {', '.join(programs)})"
        lines.append(f"note: {subject}: not supported by {where}: {reason}")
    lines += [
        f"note: {report.object} on {where}: {note}"
        for note in report.notes
        if note not in by_reason
    ]
    return lines


@dataclass
class ToolSupport:
    """For one tool and arch: the oldest kernel from which every program passes."""

    tool: str
    arch: str
    oldest: str | None
    """`5.10` (major.minor of the release); None when the newest kernel tried fails."""
    kernel_spec: str | None = None
    """The spec of that kernel, as the user named it."""
    tried: list[str] = field(default_factory=list)
    """Every kernel tried on this arch, oldest first, as major.minor."""
    failing: dict[str, str] = field(default_factory=dict)
    """Kernels tried on this arch on which some program did not pass -> the worst
    verdict there (rejected, unsupported, skipped)."""
    not_tried: list[str] = field(default_factory=list)
    """Kernels older than `oldest` that other arches tried and this one did not."""

    def text(self) -> str:
        if self.oldest is None:
            failing = ", ".join(f"{k} {v}" for k, v in reversed(self.failing.items()))
            return f"{self.arch} none" + (f" ({failing})" if failing else "")
        tail = f" ({', '.join(self.not_tried)} not tried)" if self.not_tried else ""
        return f"{self.arch} {self.oldest}+{tail}"

    def to_dict(self) -> dict[str, object]:
        return {
            "oldest": self.oldest,
            "kernel_spec": self.kernel_spec,
            "tried": self.tried,
            "failing": self.failing,
            "not_tried": self.not_tried,
        }


def kernel_series(release: str) -> tuple[int, ...]:
    """(major, minor) of a `uname -r`; () when it is not a version."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m[1]), int(m[2])) if m else ()


def _label(release: str, spec: str) -> str:
    series = kernel_series(release)
    return ".".join(map(str, series)) if series else spec


def tools_of(report: VerifyReport, apps: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Tool name -> its objects: the apps (with the objects they load), then each object
    no app loads, under its own name."""
    tools = {app: list(objects) for app, objects in (apps or {}).items() if objects}
    taken = {o for objects in tools.values() for o in objects}
    for o in report.objects:
        if o.object not in taken:
            tools.setdefault(o.object, [o.object])
    return tools


def kernel_support(
    report: VerifyReport, apps: Mapping[str, Sequence[str]] | None = None
) -> list[ToolSupport]:
    """Per tool and arch, the oldest verified kernel from which all of its programs pass
    on every kernel tried (a regression on a newer kernel is not hidden)."""
    support = []
    for tool, objects in tools_of(report, apps).items():
        cells: dict[tuple[str, str], dict[str, ObjectReport]] = {}
        for o in report.objects:
            if o.object in objects:
                cells.setdefault((o.arch, o.kernel), {})[o.object] = o
        arches = list(dict.fromkeys(arch for arch, _ in cells))  # the run's order
        labels: dict[str, set[str]] = {arch: set() for arch in arches}
        rows: dict[str, list[tuple[tuple[int, ...], str, str, Verdict]]] = {a: [] for a in arches}
        for (arch, release), found in cells.items():
            if set(found) != set(objects):
                continue  # not every object of the tool was verified there
            spec = next(iter(found.values())).kernel_spec
            verdicts = {r.verdict for o in found.values() for r in o.results}
            worst = next((v for v in WORST_FIRST if v in verdicts), Verdict.SKIPPED)
            label = _label(release, spec)
            labels[arch].add(label)
            rows[arch].append((kernel_series(release), label, spec, worst))
        for arch in arches:
            tried = sorted(rows[arch])
            oldest = None
            for series, label, spec, worst in reversed(tried):
                if worst is not Verdict.PASSED:
                    break
                oldest = (series, label, spec)
            others = {
                (kernel_series(release), _label(release, spec))
                for (a, release), found in cells.items()
                if a != arch
                for spec in {o.kernel_spec for o in found.values()}
            }
            not_tried = sorted(
                (series, label)
                for series, label in others
                if oldest is not None and series < oldest[0] and label not in labels[arch]
            )
            support.append(
                ToolSupport(
                    tool,
                    arch,
                    oldest[1] if oldest else None,
                    oldest[2] if oldest else None,
                    tried=[label for _, label, _, _ in tried],
                    failing={
                        label: worst.value
                        for _, label, _, worst in tried
                        if worst is not Verdict.PASSED
                    },
                    not_tried=list(dict.fromkeys(label for _, label in not_tried)),
                )
            )
    return support


def support_lines(support: Sequence[ToolSupport]) -> list[str]:
    """One line per tool: `execsnoop: x86_64 5.10+, arm64 6.12+ (6.1 not tried)`."""
    by_tool: dict[str, list[ToolSupport]] = {}
    for entry in support:
        by_tool.setdefault(entry.tool, []).append(entry)
    return [f"{tool}: {', '.join(e.text() for e in entries)}" for tool, entries in by_tool.items()]


def support_json(support: Sequence[ToolSupport]) -> dict[str, dict[str, object]]:
    """{tool: {arch: {...}, "line": "x86_64 5.10+, ..."}} for --format json."""
    data: dict[str, dict[str, object]] = {}
    for entry in support:
        data.setdefault(entry.tool, {})[entry.arch] = entry.to_dict()
    for line in support_lines(support):
        tool, text = line.split(": ", 1)
        data[tool]["line"] = text
    return data
