"""Regression baselines: a committed file of each program's verifier statistics, and a
run compared with it as veristat's compare mode shows it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import VerifyError
from ..pipeline.config import VerifyConfig
from ..pipeline.files import kind_problem
from .formats import aligned_columns, cell_text
from .log import NOT_ROOT_HINT, Verdict
from .results import ProgramResult

BASELINE_FORMAT = 1


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
    what = kind_problem(path)
    if what and what != "missing":  # never opened: a FIFO would block
        raise VerifyError(
            f"{path} is {what}, not a verifier baseline",
            hint="remove it, then write the baseline with `bpfbuild verify --update-baseline`",
        )
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
    programs = load_baseline(path) if os.path.lexists(path) else {}
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
        before, diff = self.before, self.diff
        if before is None or diff is None:
            return None
        if before == 0:
            return 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return 100.0 * diff / before


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
        return aligned_columns(headers, rows, numeric=range(3, 11))


def _change_cells(change: Change) -> tuple[str, str, str, str]:
    diff, pct = change.diff, change.percent
    return (
        cell_text(change.before),
        cell_text(change.after),
        "-" if diff is None else f"{diff:+,}",
        "-" if pct is None else ("+inf%" if pct == math.inf else f"{pct:+.2f}%"),
    )


def compare_baseline(
    path: Path,
    results: Iterable[ProgramResult],
    max_growth_pct: float = VerifyConfig.max_growth,
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
