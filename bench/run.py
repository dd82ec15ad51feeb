#!/usr/bin/env python3
"""Build-speed benchmark: bpfbuild against a libbpf-bootstrap style Makefile.

Both build one generated workload in the same run; prints a markdown table (and
JSON with --json).

    python3 bench/run.py [--apps N] [--jobs J] [--repeat R] [--clean-repeat C]
                         [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402 - the folder of this script is not a package

BENCH_DIR = Path(__file__).resolve().parent
MAKEFILE = BENCH_DIR / "Makefile.ref"
HEADER_EDIT = "\n#define BENCH_HEADER_EDIT 1\n"
"""Appended to the shared header: the objects come out the same, the sources must
still be recompiled to know that."""

TOOL_ENV = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
                # no user cache of vmlinux.h and PCHs: every clean build makes them
                BPFBUILD_CACHE_SIZE="0")
"""bpftool lives in /usr/sbin on Debian, which a user's PATH may lack."""
COMPILE_KINDS = ("BPF", "PCH", "CC")
"""Steps that run a compiler (clang or cc on a source); LD links, the rest is bpftool."""


@dataclass
class Step:
    """One command a build ran: its kind (kbuild's word) and the file it names."""

    kind: str
    path: str


@dataclass
class Run:
    """One build invocation."""

    seconds: float
    cpu_seconds: float
    """User + system time of the build's whole process tree."""
    max_rss_kib: int
    """ru_maxrss of the build's process tree: the largest single process (wait4)."""
    steps: list[Step]

    @property
    def commands(self) -> int:
        return len(self.steps)

    @property
    def compiles(self) -> int:
        return sum(step.kind in COMPILE_KINDS for step in self.steps)

    def compiled_sources(self) -> set[str]:
        return {step.path for step in self.steps if step.kind in ("BPF", "CC")}

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 4), "cpu_seconds": round(self.cpu_seconds, 4),
                "max_rss_kib": self.max_rss_kib,
                "commands": self.commands, "compiles": self.compiles,
                "steps": [f"{s.kind} {s.path}" for s in self.steps]}


class BuildFailed(Exception):
    pass


# -- the two build tools -----------------------------------------------------------

class Tool:
    """A build tool under test: how to run it, how to read which commands it ran."""

    name: str

    def argv(self, jobs: int) -> list[str]:
        raise NotImplementedError

    def parse_steps(self, stdout: str) -> list[Step]:
        raise NotImplementedError

    def prepare(self, root: Path) -> None:
        """Make root, a copy of the workload, ready for this tool."""

    def executable(self, root: Path, app: str) -> Path:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class Make(Tool):
    """The reference Makefile, with V=1 so that make echoes each command it runs."""

    name = "make"

    def __init__(self, make: str) -> None:
        self.make = make

    def argv(self, jobs: int) -> list[str]:
        return [self.make, f"-j{jobs}", "V=1"]

    def prepare(self, root: Path) -> None:
        shutil.copyfile(MAKEFILE, root / "Makefile")

    def parse_steps(self, stdout: str) -> list[Step]:
        steps = []
        # A recipe line continued with backslashes is echoed over several lines.
        for line in re.sub(r"\\\n", " ", stdout).splitlines():
            words = line.split()
            if not words:
                continue
            tool = Path(words[0]).name
            if tool.startswith("clang") and "-c" in words:
                steps.append(Step("BPF", words[words.index("-c") + 1]))
            elif tool.startswith("bpftool") and words[1:3] == ["btf", "dump"]:
                steps.append(Step("GEN", words[-1]))
            elif tool.startswith("bpftool") and words[1:3] == ["gen", "object"]:
                steps.append(Step("GENOBJ", words[3]))
            elif tool.startswith("bpftool") and words[1:3] == ["gen", "skeleton"]:
                steps.append(Step("SKEL", words[-1]))
            elif tool in ("cc", "gcc", Path(os.environ.get("CC", "cc")).name):
                if "-c" in words:
                    steps.append(Step("CC", words[words.index("-c") + 1]))
                elif "-o" in words:
                    steps.append(Step("LD", words[words.index("-o") + 1]))
        return steps

    def executable(self, root: Path, app: str) -> Path:
        return root / app

    def version(self) -> str:
        return _first_line([self.make, "--version"])


class Bpfbuild(Tool):
    """`bpfbuild build -j J`; each command is one kbuild line (`  BPF     src/x.bpf.c`)."""

    name = "bpfbuild"
    KBUILD_LINE = re.compile(r"^  ([A-Z][A-Z-]*)\s+(\S+)")
    NOT_COMMANDS = {"BIN"}
    """Lines that report on an output rather than run a command."""

    def __init__(self, command: list[str]) -> None:
        self.command = command

    def argv(self, jobs: int) -> list[str]:
        return [*self.command, "build", "-j", str(jobs)]

    def parse_steps(self, stdout: str) -> list[Step]:
        steps = []
        for line in stdout.splitlines():
            match = self.KBUILD_LINE.match(line)
            if match and match.group(1) not in self.NOT_COMMANDS:
                steps.append(Step(match.group(1), match.group(2)))
        return steps

    def executable(self, root: Path, app: str) -> Path:
        found = sorted((root / "output").glob(f"*/{app}"))
        return found[0] if found else root / "output" / "<arch>" / app

    def version(self) -> str:
        return _first_line([*self.command, "--version"])


def default_bpfbuild() -> list[str]:
    """The console script next to this Python (a venv's), else the one in PATH.
    Not `python -m`: the no-op time must include what a user's command pays."""
    beside = Path(sys.executable).parent / "bpfbuild"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("bpfbuild")
    if not found:
        sys.exit("error: bpfbuild not found; install it (pip install -e .) or pass --bpfbuild")
    return [found]


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return (out.splitlines() or ["?"])[0].strip()


# -- running and measuring ---------------------------------------------------------

def run_build(tool: Tool, root: Path, jobs: int, logs: Path, label: str,
              env: dict[str, str] | None = None) -> Run:
    """Run one build of root; time it, take its max RSS from wait4, parse its commands."""
    out_path = logs / f"{tool.name}-{label}.out"
    err_path = logs / f"{tool.name}-{label}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(tool.argv(jobs), cwd=root, stdout=out, stderr=err,
                                env=env or TOOL_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BuildFailed(
            f"{tool.name} ({label}) failed with exit code {proc.returncode} in {root}:\n"
            + err_path.read_text(errors="replace")[-4000:]
            + out_path.read_text(errors="replace")[-2000:])
    steps = tool.parse_steps(out_path.read_text(errors="replace"))
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, steps)


@dataclass
class ToolResult:
    tool: str
    version: str
    clean: list[Run]
    noop: list[Run]
    touch: Run
    header_edit: Run
    header_expected: list[str]
    header_missed: list[str] = field(default_factory=list)
    header_extra: list[str] = field(default_factory=list)

    @property
    def clean_median(self) -> float:
        return statistics.median(run.seconds for run in self.clean)

    @property
    def clean_cpu_median(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.clean)

    @property
    def clean_commands(self) -> int:
        return self.clean[-1].commands

    @property
    def clean_max_rss_kib(self) -> int:
        return max(run.max_rss_kib for run in self.clean)

    @property
    def noop_median(self) -> float:
        return statistics.median(run.seconds for run in self.noop)

    @property
    def header_exact(self) -> bool:
        return not self.header_missed and not self.header_extra

    def as_dict(self) -> dict:
        return {
            "tool": self.tool, "version": self.version,
            "clean": {"median_seconds": round(self.clean_median, 4),
                      "median_cpu_seconds": round(self.clean_cpu_median, 4),
                      "max_rss_kib": self.clean_max_rss_kib,
                      "runs": [r.summary() for r in self.clean]},
            "noop": {"median_seconds": round(self.noop_median, 4),
                     "runs": [r.summary() for r in self.noop]},
            "touch": {**self.touch.summary(), "file": workload.TOUCHED_SOURCE},
            "header_edit": {**self.header_edit.summary(), "file": workload.SHARED_HEADER,
                            "expected": self.header_expected, "missed": self.header_missed,
                            "extra": self.header_extra, "exact": self.header_exact},
        }


def clean_build(tool: Tool, source: Path, root: Path, apps: list[str], jobs: int,
                logs: Path, label: str, env: dict[str, str] | None = None) -> Run:
    """Build a fresh copy of the workload in root (deleted first if it exists)."""
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(source, root)
    tool.prepare(root)
    run = run_build(tool, root, jobs, logs, label, env)
    missing = [app for app in apps if not tool.executable(root, app).is_file()]
    if missing:
        raise BuildFailed(f"{tool.name}: no executable for {', '.join(missing)} after a clean build")
    return run


def incremental_builds(tool: Tool, root: Path, jobs: int, repeat: int, logs: Path,
                       clean: list[Run]) -> ToolResult:
    """On a built tree: no-op builds, then a touch, then a shared header edit."""
    progress(f"{tool.name}: {repeat} no-op builds")
    noop = [run_build(tool, root, jobs, logs, f"noop{i + 1}") for i in range(repeat)]

    progress(f"{tool.name}: touch {workload.TOUCHED_SOURCE}")
    (root / workload.TOUCHED_SOURCE).touch()
    touch = run_build(tool, root, jobs, logs, "touch")

    progress(f"{tool.name}: edit {workload.SHARED_HEADER}")
    expected = workload.dependents(root, workload.SHARED_HEADER)
    with open(root / workload.SHARED_HEADER, "a") as header:
        header.write(HEADER_EDIT)
    edit = run_build(tool, root, jobs, logs, "header")
    compiled = edit.compiled_sources()
    return ToolResult(tool.name, tool.version(), clean, noop, touch, edit, sorted(expected),
                      sorted(expected - compiled), sorted(compiled - expected))


def bench(tools: list[Tool], source: Path, out: Path, apps: list[str], jobs: int,
          clean_repeat: int, repeat: int, logs: Path) -> list[ToolResult]:
    """Clean builds of both tools, alternating which goes first so that neither
    always gets the warmer caches or the quieter machine; then incremental builds."""
    cleans: dict[str, list[Run]] = {tool.name: [] for tool in tools}
    for i in range(clean_repeat):
        for tool in (tools if i % 2 == 0 else tools[::-1]):
            progress(f"{tool.name}: clean build {i + 1}/{clean_repeat}")
            cleans[tool.name].append(
                clean_build(tool, source, out / tool.name, apps, jobs, logs, f"clean{i + 1}"))
    return [incremental_builds(tool, out / tool.name, jobs, repeat, logs, cleans[tool.name])
            for tool in tools]


def warm_up(source: Path, scratch: Path) -> None:
    """Load the compilers and the headers into the page cache, so that the first
    timed build does not pay for it alone."""
    scratch.mkdir()
    for argv in (["clang", "-g", "-O2", "-target", "bpf", "-I", "src",
                  "-idirafter", f"/usr/include/{platform.machine()}-linux-gnu",
                  "-idirafter", "/usr/include",
                  "-c", f"src/{workload.XDP_APP}.bpf.c", "-o", str(scratch / "warm.o")],
                 ["cc", "-O2", "-c", "src/util.c", "-o", str(scratch / "util.o")],
                 ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"]):
        try:
            subprocess.run(argv, cwd=source, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=TOOL_ENV)
        except OSError:
            pass  # a missing tool fails the timed build, with its own message


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- where a clean build's time goes -------------------------------------------------

STEP_KINDS = {
    "vmlinux": "vmlinux.h (bpftool btf dump)",
    "pch": "precompiled vmlinux.h (clang)",
    "bpf": "BPF compiles (clang -c)",
    "bpftool": "bpftool gen object, gen skeleton",
    "cc": "user-space compiles (cc -c)",
    "ld": "links (cc -o)",
    "probe": "tool version probes",
}

_WRAPPER = """#!/bin/bash
start=$EPOCHREALTIME
{real} "$@"
status=$?
printf '%s %s {name} %s\\n' "$start" "$EPOCHREALTIME" "$*" >> {log}
exit $status
"""


def classify(tool: str, args: str) -> str:
    """The kind of one command a build ran (see STEP_KINDS)."""
    words = args.split()
    if tool == "clang":
        return "pch" if "c-header" in words else "bpf" if "-c" in words else "probe"
    if tool == "bpftool":
        return "vmlinux" if words[:2] == ["btf", "dump"] else \
            "bpftool" if words[:1] == ["gen"] else "probe"
    # bpfbuild's linker probe links a tiny program with -Wl,-v: not an app's link
    return "cc" if "-c" in words else "ld" if "-o" in words and "-Wl,-v" not in words else "probe"


@dataclass
class StepProfile:
    """One clean build at -j1 with every clang, bpftool and cc command timed."""

    tool: str
    seconds: float
    steps: dict[str, list[float]]
    """Kind -> the wall time of each command of that kind."""

    @property
    def commands_seconds(self) -> float:
        return sum(sum(times) for times in self.steps.values())

    @property
    def itself_seconds(self) -> float:
        """The build tool's own time: start-up, planning, between commands."""
        return max(self.seconds - self.commands_seconds, 0.0)

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 4), "itself_seconds": round(self.itself_seconds, 4),
                "steps": {kind: {"commands": len(times), "seconds": round(sum(times), 4)}
                          for kind, times in self.steps.items()}}


def profile_steps(tool: Tool, source: Path, out: Path, apps: list[str], logs: Path) -> StepProfile:
    """A clean build at -j1 with clang, bpftool and cc wrapped by a script that logs
    each command's start and end. One job, so the commands do not slow each other."""
    wrappers = out / "profile" / tool.name
    wrappers.mkdir(parents=True)
    log = wrappers / "commands.log"
    env = dict(TOOL_ENV)
    for name, variable in (("clang", "CLANG"), ("bpftool", "BPFTOOL"), ("cc", "CC")):
        real = shutil.which(os.environ.get(variable, name), path=TOOL_ENV["PATH"])
        if not real:
            raise BuildFailed(f"{name} not found; the profile wraps it")
        wrapper = wrappers / name
        wrapper.write_text(_WRAPPER.format(real=shlex.quote(real), name=name,
                                           log=shlex.quote(str(log))))
        wrapper.chmod(0o755)
        env[variable] = str(wrapper)
    run = clean_build(tool, source, out / tool.name, apps, 1, logs, "profile", env)
    steps: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        start, end, name, *args = line.split(" ", 3) + [""] * 2
        try:
            seconds = float(end) - float(start)
        except ValueError:
            raise BuildFailed(f"cannot read the command log {log} (line {line!r})\n"
                              "hint: the wrappers need bash 5 ($EPOCHREALTIME); "
                              "or skip this part with --no-steps") from None
        steps.setdefault(classify(name, args[0]), []).append(seconds)
    return StepProfile(tool.name, run.seconds, steps)


def _steps_cell(times: list[float]) -> str:
    if not times:
        return "-"
    return f"{len(times)} × {sum(times) / len(times):.3f} s = {sum(times):.2f} s"


def steps_table(make: StepProfile, bpf: StepProfile, make_clean: float, jobs: int) -> str:
    """Where each tool's clean build goes, and the best ratio that work allows."""
    lines = ["| clean build at -j1, by step | make | bpfbuild |", "| --- | --- | --- |"]
    for kind, label in STEP_KINDS.items():
        if kind in make.steps or kind in bpf.steps:
            lines.append(f"| {label} | {_steps_cell(make.steps.get(kind, []))} | "
                         f"{_steps_cell(bpf.steps.get(kind, []))} |")
    lines.append(f"| the build tool itself | {make.itself_seconds:.2f} s | {bpf.itself_seconds:.2f} s |")
    lines.append(f"| total | {make.seconds:.2f} s | {bpf.seconds:.2f} s |")
    floor = bpf.seconds / jobs
    lines.append("")
    lines.append(f"With {jobs} jobs a build takes at least its work / {jobs}: bpfbuild "
                 f"{floor:.2f} s. Against make -j{jobs}'s measured {make_clean:.2f} s, no "
                 f"schedule of this work can make bpfbuild more than "
                 f"{make_clean / floor:.2f}x faster.")
    return "\n".join(lines)


# -- reporting ---------------------------------------------------------------------

def _ratio(make_seconds: float, bpfbuild_seconds: float) -> str:
    return f"{make_seconds / bpfbuild_seconds:.2f}x" if bpfbuild_seconds > 0 else "-"


def _run_cell(run: Run) -> str:
    return f"{run.seconds:.2f} s, {run.commands} commands ({run.compiles} compiles)"


def _header_cell(result: ToolResult) -> str:
    cell = f"{result.header_edit.seconds:.2f} s, {result.header_edit.commands} commands"
    verdicts = []
    if result.header_missed:
        verdicts.append(f"missed {len(result.header_missed)}")
    if result.header_extra:
        verdicts.append(f"{len(result.header_extra)} extra")
    return f"{cell}: {', '.join(verdicts) or 'exact'}"


def markdown_table(make: ToolResult, bpf: ToolResult, jobs: int, clean_repeat: int,
                   repeat: int) -> str:
    expected = len(bpf.header_expected)
    rows = [
        (f"clean build (median of {clean_repeat})",
         f"{make.clean_median:.2f} s ({make.clean_commands} commands)",
         f"{bpf.clean_median:.2f} s ({bpf.clean_commands} commands)",
         _ratio(make.clean_median, bpf.clean_median)),
        ("CPU time (user + sys), clean build", f"{make.clean_cpu_median:.2f} s",
         f"{bpf.clean_cpu_median:.2f} s", _ratio(make.clean_cpu_median, bpf.clean_cpu_median)),
        (f"no-op build (median of {repeat})", f"{make.noop_median:.3f} s",
         f"{bpf.noop_median:.3f} s", _ratio(make.noop_median, bpf.noop_median)),
        (f"touch `{workload.TOUCHED_SOURCE}`", _run_cell(make.touch), _run_cell(bpf.touch),
         _ratio(make.touch.seconds, bpf.touch.seconds)),
        (f"edit `{workload.SHARED_HEADER}` ({expected} sources include it)",
         _header_cell(make), _header_cell(bpf), "-"),
        ("peak RSS, clean build (largest process)", f"{make.clean_max_rss_kib / 1024:.0f} MiB",
         f"{bpf.clean_max_rss_kib / 1024:.0f} MiB", "-"),
    ]
    lines = [f"| | make -j{jobs} | bpfbuild -j{jobs} | make / bpfbuild |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def machine_line(jobs: int, apps: list[str], load: float) -> str:
    clang = _first_line(["clang", "--version"])
    return (f"{len(apps)} apps ({len(apps) - 1} tracing + 1 XDP), {jobs} jobs, "
            f"{os.cpu_count()} CPUs, {clang}, kernel {platform.release()}, "
            f"load average {load:.2f} at start")


# -- command line ------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=workload.DEFAULT_TRACING_APPS,
                        help="tracing apps in the workload, plus one XDP app (default: %(default)s)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="parallel jobs for both tools (default: the number of CPUs, %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="no-op builds to take the median of (default: %(default)s)")
    parser.add_argument("--clean-repeat", type=int, default=3,
                        help="clean builds of each tool to take the median of (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep the workload, both build trees and logs here "
                        "(default: a temporary folder, deleted)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the results as JSON to FILE ('-': stdout, instead of the table)")
    parser.add_argument("--bpfbuild", help="the bpfbuild command (default: the console script "
                        "beside this Python, else the one in PATH)")
    parser.add_argument("--make", default="make", help="the make command (default: %(default)s)")
    parser.add_argument("--no-steps", dest="steps", action="store_false",
                        help="skip the -j1 clean build of each tool that times every command")
    args = parser.parse_args(argv)
    if min(args.apps, args.jobs, args.repeat, args.clean_repeat) < 1:
        parser.error("--apps, --jobs, --repeat and --clean-repeat must be at least 1")
    return args


def prepare_out(out: Path) -> None:
    """Use out, an empty folder or one a previous run left; never delete anything else."""
    ours = {"workload", "make", "bpfbuild", "logs", "warm-up", "profile", "results.json"}
    if out.exists():
        strangers = [p.name for p in out.iterdir() if p.name not in ours]
        if strangers:
            sys.exit(f"error: {out} holds files this benchmark did not make "
                     f"({', '.join(sorted(strangers)[:3])}); pick an empty folder")
        for name in ours:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="bpfbuild-bench-"))
    prepare_out(out)
    load = os.getloadavg()[0]
    if load > 0.5:
        progress(f"warning: load average is {load:.2f}; other work on this machine skews the times")
    try:
        logs = out / "logs"
        logs.mkdir()
        source = out / "workload"
        apps = workload.generate(source, args.apps)
        progress(f"workload: {len(apps)} apps in {source}")
        warm_up(source, out / "warm-up")
        bpfbuild_command = args.bpfbuild.split() if args.bpfbuild else default_bpfbuild()
        tools = [Make(args.make), Bpfbuild(bpfbuild_command)]
        results = bench(tools, source, out, apps, args.jobs, args.clean_repeat, args.repeat, logs)
        profiles = []
        if args.steps:
            for tool in tools:
                progress(f"{tool.name}: clean build at -j1, timing each command")
                profiles.append(profile_steps(tool, source, out, apps, logs))
    except BuildFailed as err:
        print(f"error: {err}", file=sys.stderr)
        print(f"hint: the build trees and logs are in {out}", file=sys.stderr)
        return 1
    make, bpf = results
    table = markdown_table(make, bpf, args.jobs, args.clean_repeat, args.repeat)
    data = {
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "load_average": load,
                    "clang": _first_line(["clang", "--version"])},
        "apps": len(apps), "tracing_apps": args.apps, "jobs": args.jobs,
        "repeat": args.repeat, "clean_repeat": args.clean_repeat,
        "make": make.as_dict(), "bpfbuild": bpf.as_dict(),
        "ratios": {"clean": make.clean_median / bpf.clean_median,
                   "noop": make.noop_median / bpf.noop_median},
        "table": table,
    }
    if profiles:
        data["steps"] = {p.tool: p.as_dict() for p in profiles}
        data["steps_table"] = steps_table(*profiles, make.clean_median, args.jobs)
    (out / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    if args.json and str(args.json) == "-":
        print(json.dumps(data, indent=1))
    else:
        print(machine_line(args.jobs, apps, load) + "\n")
        print(table)
        if profiles:
            print("\n" + data["steps_table"])
        if args.json:
            args.json.write_text(json.dumps(data, indent=1) + "\n")
    if args.out is None:
        shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
