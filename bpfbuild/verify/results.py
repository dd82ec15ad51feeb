"""The results of verification: one program's verdict and statistics, an object's report
(where it was verified), several objects' report, and their JSON documents (the report
file a verify step writes, and `bpfbuild verify --format json`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VerifyError
from ..kernels.abi import ENOSYS_REASON
from .log import NOT_ROOT_HINT, Verdict

DEFAULT_INSN_LIMIT = 1_000_000
"""The verifier's limit on processed instructions (BPF_COMPLEXITY_LIMIT_INSNS)."""


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

    def to_dict(self) -> dict[str, Any]:  # not `object`: a field of this class is named so
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
    notes: list[str] = field(default_factory=list)
    """What holds for the object as a whole on this kernel, said once: a subsystem the
    kernel lacks, a map the runner sized because the object left it at 0."""
    maps: dict[str, int] = field(default_factory=dict)
    """Each map's max_entries as loaded ([verify.maps], 1 for a map left at 0)."""


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
        return skip_message(reason)

    @property
    def skip_hint(self) -> str:
        """What to do when verification was skipped."""
        return next((o.skip_hint for o in self.objects if o.skip_hint), NOT_ROOT_HINT)


def skip_message(reason: str | None = None) -> str:
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


def format_json(report: VerifyReport, tools: Mapping[str, Sequence[str]] | None = None) -> str:
    """Machine-readable: every object with its kernel and every program's fields; the
    programs no kernel verified; per tool (tools: app -> objects) and arch, the oldest
    kernel from which all its programs pass."""
    from .summary import kernel_support, support_json, unverified_programs

    data = {
        "status": report.status,
        "unverified": unverified_programs(report),
        "kernel_support": support_json(kernel_support(report, tools)),
        "objects": [
            {
                "object": o.object,
                "path": str(o.path),
                "arch": o.arch,
                "kernel": o.kernel,
                "kernel_spec": o.kernel_spec,
                "privileged": o.privileged,
                "notes": o.notes,
                "maps": o.maps,
                "programs": [r.to_dict() for r in o.results],
            }
            for o in report.objects
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True)


def report_from_json(text: str, origin: str = "<json>") -> VerifyReport:
    """Read back a document printed by format_json (e.g. one CI job's result); every
    value of the type its field takes, else a VerifyError naming the file and field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _not_a_result(origin, f"not JSON: {exc}") from None
    document = _typed(data, dict, origin, "the document")
    objects = []
    for i, o in enumerate(_field(document, "objects", list, origin, "")):
        where = f"objects[{i}]"
        o = _typed(o, dict, origin, where)
        results = []
        for j, entry in enumerate(_field(o, "programs", list, origin, where)):
            results.append(
                _program(
                    _typed(entry, dict, origin, f"{where}.programs[{j}]"),
                    origin,
                    f"{where}.programs[{j}]",
                )
            )
        notes = _field(o, "notes", list, origin, where, [])
        maps = _field(o, "maps", dict, origin, where, {})
        for k, note in enumerate(notes):
            _typed(note, str, origin, f"{where}.notes[{k}]")
        for name, size in maps.items():
            _typed(size, int, origin, f"{where}.maps.{name}")
        objects.append(
            ObjectReport(
                object=_field(o, "object", str, origin, where),
                path=Path(_field(o, "path", str, origin, where)),
                arch=_field(o, "arch", str, origin, where),
                kernel=_field(o, "kernel", str, origin, where),
                privileged=_field(o, "privileged", bool, origin, where),
                results=results,
                kernel_spec=_field(o, "kernel_spec", str, origin, where, "host"),
                notes=list(notes),
                maps=dict(maps),
            )
        )
    return VerifyReport(objects)


_MISSING: Any = object()
"""A required key that is absent."""
_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "arch": (str,),
    "object": (str,),
    "program": (str,),
    "section": (str,),
    "prog_type": (str,),
    "verdict": (str,),
    "log_truncated": (bool,),
    **{
        name: (int, type(None))
        for name in (
            "insns_processed",
            "insn_limit",
            "total_states",
            "peak_states",
            "max_states_per_insn",
            "stack_depth",
            "verification_time_usec",
            "xlated_insns",
            "jited_bytes",
            "source_line",
        )
    },
    **{
        name: (str, type(None))
        for name in ("error", "failing_insn", "source_file", "source_text", "hint", "log_path")
    },
}
"""The JSON types of each field of a ProgramResult (verdict: one of Verdict's words)."""
_REQUIRED = ("arch", "object", "program", "section", "prog_type", "verdict")


def _program(entry: dict, origin: str, where: str) -> ProgramResult:
    for key, value in entry.items():
        if key not in _RESULT_TYPES:
            raise _not_a_result(origin, f"{where} has an unknown key '{key}'")
        _typed(value, _RESULT_TYPES[key], origin, f"{where}.{key}")
    for key in _REQUIRED:
        if key not in entry:
            raise _not_a_result(origin, f"{where} has no '{key}'")
    values = dict(entry)
    if values["verdict"] not in set(Verdict):
        raise _not_a_result(
            origin,
            f"{where}.verdict is '{values['verdict']}', not one of "
            + ", ".join(v.value for v in Verdict),
        )
    values["verdict"] = Verdict(values["verdict"])
    values["log_path"] = Path(values["log_path"]) if values.get("log_path") else None
    return ProgramResult(**values)


def _field(data: dict, key: str, kind: type, origin: str, where: str, default: Any = _MISSING):
    """data[key] of type kind (where: the path of data in the document, "" at its top)."""
    named = f"{where}.{key}" if where else key
    if key not in data:
        if default is _MISSING:
            raise _not_a_result(origin, f"{where or 'the document'} has no '{key}'")
        return default
    return _typed(data[key], kind, origin, named)


def _typed(value: Any, kinds: type | tuple[type, ...], origin: str, where: str) -> Any:
    """value when it is of one of kinds (true/false is no integer); else the VerifyError."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return value
    shown = json.dumps(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    if value is not None and not isinstance(value, bool):
        shown += f" ({_JSON_NAMES.get(type(value), type(value).__name__)})"
    wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
    raise _not_a_result(origin, f"{where} is {shown}, not {wanted}")


_JSON_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _not_a_result(origin: str, why: str) -> VerifyError:
    return VerifyError(
        f"{origin}: not a result of `bpfbuild verify --format json`: {why}",
        hint="give the files that each matrix job wrote with --format json",
    )
