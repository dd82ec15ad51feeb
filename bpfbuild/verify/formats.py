"""The report for humans and tools: aligned tables, the program x kernel matrix, CSV, and
a rejection with its source line and hint."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import fields

from .log import Verdict
from .results import ObjectReport, ProgramResult, VerifyReport

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
                cells.append(cell_text(value))
        rows.append(tuple(cells))
    return aligned_columns(
        tuple(h for h, _ in TABLE_COLUMNS), rows, numeric=range(3, len(TABLE_COLUMNS))
    )


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
    return aligned_columns(("Program", *(columns[c] for c in order)), rows, numeric=())


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
    rows: list[tuple[ObjectReport | None, ProgramResult]] = [(None, r) for r in results]
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


def cell_text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def aligned_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int]
) -> str:
    """Aligned columns with a dashed rule under the headers; numbers right-aligned."""
    numeric = set(numeric)
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])
