"""What fails a verification: rejections, programs over their share of the instruction
limit, and regressions against the baseline."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import VerifyError
from ..pipeline.config import VerifyConfig
from .baseline import Comparison
from .log import Verdict
from .results import DEFAULT_INSN_LIMIT, ObjectReport, ProgramResult, VerifyReport


def check_budget(
    results: Iterable[ProgramResult], max_share: float = VerifyConfig.max_insn_share
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
    max_share: float = VerifyConfig.max_insn_share,
    comparison: Comparison | None = None,
) -> list[str]:
    """Every reason to fail: rejections, budget overruns, baseline regressions.
    Unsupported and skipped programs are not failures."""
    problems = [
        f"{r.name}{on_kernel(o)}: rejected by the verifier: {headline(r.error)}"
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
    max_share: float = VerifyConfig.max_insn_share,
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


def on_kernel(report: ObjectReport) -> str:
    """` on debian:6.1 (arm64)` for a result from a VM; empty for the host's."""
    return "" if report.kernel_spec == "host" else f" on {report.kernel_spec} ({report.arch})"


def headline(error: str | None) -> str:
    return error.splitlines()[0] if error else ""
