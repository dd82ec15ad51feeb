#!/usr/bin/env python3
"""Build-speed benchmark: bpfbuild against a libbpf-bootstrap style Makefile.

Both build one generated workload in the same run; prints markdown tables (and
JSON with --json): clean builds with an empty and a warm cache, no-op, touch and
header-edit builds, and where a -j1 clean build of each tool spends its time.

    python3 bench/run.py [--apps N] [--jobs J] [--repeat R] [--clean-repeat C]
                         [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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

TOOL_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""The builds' environment. bpftool lives in /usr/sbin on Debian, which a user's PATH
may lack. PYTHONDONTWRITEBYTECODE is dropped: an installed bpfbuild has its bytecode
compiled (pip does it), and without it every run would compile bpfbuild's modules."""
TOOL_ENV["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
CACHE_ENV = "BPFBUILD_CACHE_DIR"
"""Where bpfbuild keeps its machine-wide cache (bpfbuild/cache.py): the benchmark
gives each build a folder of its own, empty ("cold") or filled by an earlier build
("warm"), and never touches the user's cache."""
TRACE_ENV = "BPFBUILD_TRACE"
"""Makes bpfbuild say on stderr whether a build took the no-op fast path."""
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
    fast_path: bool = False
    """bpfbuild said (BPFBUILD_TRACE=1) that its no-op fast path answered."""

    @property
    def commands(self) -> int:
        return len(self.steps)

    @property
    def compiles(self) -> int:
        return sum(step.kind in COMPILE_KINDS for step in self.steps)

    def compiled_sources(self) -> set[str]:
        return {step.path for step in self.steps if step.kind in ("BPF", "CC")}

    def summary(self) -> dict:
        return {
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "max_rss_kib": self.max_rss_kib,
            "commands": self.commands,
            "compiles": self.compiles,
            "fast_path": self.fast_path,
            "steps": [f"{s.kind} {s.path}" for s in self.steps],
        }


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


def interpreter_of(command: list[str]) -> str:
    """The Python that runs a console script (its #! line), else this one."""
    try:
        with open(command[0], "rb") as script:
            first = script.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    if first.startswith("#!") and "python" in first:
        return first[2:].split()[0]
    return sys.executable


# -- running and measuring ---------------------------------------------------------


def tool_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The builds' environment, with bpfbuild's cache in the folder given."""
    env = dict(TOOL_ENV, **extra)
    if cache is not None:
        env[CACHE_ENV] = str(cache)
    return env


def run_build(
    tool: Tool, root: Path, jobs: int, logs: Path, label: str, env: dict[str, str] | None = None
) -> Run:
    """Run one build of root; time it, take its max RSS from wait4, parse its commands."""
    out_path = logs / f"{tool.name}-{label}.out"
    err_path = logs / f"{tool.name}-{label}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            tool.argv(jobs), cwd=root, stdout=out, stderr=err, env=env or TOOL_ENV
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise BuildFailed(
            f"{tool.name} ({label}) failed with exit code {proc.returncode} in {root}:\n"
            + stderr[-4000:]
            + out_path.read_text(errors="replace")[-2000:]
        )
    steps = tool.parse_steps(out_path.read_text(errors="replace"))
    return Run(
        seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, steps, "fastpath: hit" in stderr
    )


def median_seconds(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of a command run repeat times (its output discarded)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or TOOL_ENV
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class ToolResult:
    tool: str
    version: str
    clean: list[Run]
    """Clean builds; for bpfbuild, each with an empty cache."""
    noop: list[Run]
    touch: Run
    header_edit: Run
    header_expected: list[str]
    header_missed: list[str] = field(default_factory=list)
    header_extra: list[str] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    """bpfbuild only: clean builds (empty output/ and .bpfbuild/) with a warm cache."""

    @property
    def clean_median(self) -> float:
        return statistics.median(run.seconds for run in self.clean)

    @property
    def warm_median(self) -> float:
        return statistics.median(run.seconds for run in self.warm) if self.warm else 0.0

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
        data = {
            "tool": self.tool,
            "version": self.version,
            "clean": {
                "median_seconds": round(self.clean_median, 4),
                "median_cpu_seconds": round(self.clean_cpu_median, 4),
                "max_rss_kib": self.clean_max_rss_kib,
                "runs": [r.summary() for r in self.clean],
            },
            "noop": {
                "median_seconds": round(self.noop_median, 4),
                "runs": [r.summary() for r in self.noop],
            },
            "touch": {**self.touch.summary(), "file": workload.TOUCHED_SOURCE},
            "header_edit": {
                **self.header_edit.summary(),
                "file": workload.SHARED_HEADER,
                "expected": self.header_expected,
                "missed": self.header_missed,
                "extra": self.header_extra,
                "exact": self.header_exact,
            },
        }
        if self.warm:
            data["warm"] = {
                "median_seconds": round(self.warm_median, 4),
                "runs": [r.summary() for r in self.warm],
            }
        return data


def clean_build(
    tool: Tool,
    source: Path,
    root: Path,
    apps: list[str],
    jobs: int,
    logs: Path,
    label: str,
    env: dict[str, str] | None = None,
) -> Run:
    """Build a fresh copy of the workload in root (deleted first if it exists)."""
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(source, root)
    tool.prepare(root)
    run = run_build(tool, root, jobs, logs, label, env)
    missing = [app for app in apps if not tool.executable(root, app).is_file()]
    if missing:
        raise BuildFailed(
            f"{tool.name}: no executable for {', '.join(missing)} after a clean build"
        )
    return run


def incremental_builds(
    tool: Tool,
    root: Path,
    jobs: int,
    repeat: int,
    logs: Path,
    clean: list[Run],
    env: dict[str, str],
    warm: list[Run],
) -> ToolResult:
    """On a built tree: no-op builds, then a touch, then a shared header edit; all in
    the environment of the build that made the tree (bpfbuild's no-op key holds it)."""
    progress(f"{tool.name}: {repeat} no-op builds")
    noop = [run_build(tool, root, jobs, logs, f"noop{i + 1}", env) for i in range(repeat)]

    progress(f"{tool.name}: touch {workload.TOUCHED_SOURCE}")
    (root / workload.TOUCHED_SOURCE).touch()
    touch = run_build(tool, root, jobs, logs, "touch", env)

    progress(f"{tool.name}: edit {workload.SHARED_HEADER}")
    expected = workload.dependents(root, workload.SHARED_HEADER)
    with open(root / workload.SHARED_HEADER, "a") as header:
        header.write(HEADER_EDIT)
    edit = run_build(tool, root, jobs, logs, "header", env)
    compiled = edit.compiled_sources()
    return ToolResult(
        tool.name,
        tool.version(),
        clean,
        noop,
        touch,
        edit,
        sorted(expected),
        sorted(expected - compiled),
        sorted(compiled - expected),
        warm,
    )


def bench(
    make: Tool,
    bpf: Tool,
    source: Path,
    out: Path,
    apps: list[str],
    jobs: int,
    clean_repeat: int,
    repeat: int,
    logs: Path,
) -> list[ToolResult]:
    """Clean builds: make's; bpfbuild's with an empty cache (a new folder each time)
    and with a warm one (the folder the first empty-cache build filled). The order
    alternates so that none always gets the warmer page cache or the quieter
    machine. Then the incremental builds."""
    runs: dict[str, list[Run]] = {"make": [], "cold": [], "warm": []}
    caches = out / "cache"
    warm_cache = caches / "cold1"
    cold_env = TOOL_ENV
    for i in range(clean_repeat):
        order = ("make", "cold", "warm") if i % 2 == 0 else ("warm", "cold", "make")
        for kind in order:
            n = f"{i + 1}/{clean_repeat}"
            if kind == "make":
                progress(f"make: clean build {n}")
                runs[kind].append(
                    clean_build(make, source, out / "make", apps, jobs, logs, f"clean{i + 1}")
                )
            elif kind == "cold":
                progress(f"bpfbuild: clean build {n}, empty cache")
                cold_env = tool_env(caches / f"cold{i + 1}", **{TRACE_ENV: "1"})
                runs[kind].append(
                    clean_build(
                        bpf, source, out / "bpfbuild", apps, jobs, logs, f"clean{i + 1}", cold_env
                    )
                )
            else:
                progress(f"bpfbuild: clean build {n}, warm cache")
                runs[kind].append(
                    clean_build(
                        bpf,
                        source,
                        out / "bpfbuild-warm",
                        apps,
                        jobs,
                        logs,
                        f"warm{i + 1}",
                        tool_env(warm_cache),
                    )
                )
    return [
        incremental_builds(make, out / "make", jobs, repeat, logs, runs["make"], TOOL_ENV, []),
        incremental_builds(
            bpf, out / "bpfbuild", jobs, repeat, logs, runs["cold"], cold_env, runs["warm"]
        ),
    ]


def warm_up(source: Path, scratch: Path) -> None:
    """Load the compilers and the headers into the page cache, so that the first
    timed build does not pay for it alone."""
    scratch.mkdir()
    for argv in (
        [
            "clang",
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-I",
            "src",
            "-idirafter",
            f"/usr/include/{platform.machine()}-linux-gnu",
            "-idirafter",
            "/usr/include",
            "-c",
            f"src/{workload.XDP_APP}.bpf.c",
            "-o",
            str(scratch / "warm.o"),
        ],
        ["cc", "-O2", "-c", "src/util.c", "-o", str(scratch / "util.o")],
        ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
    ):
        try:
            subprocess.run(
                argv, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=TOOL_ENV
            )
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
    "probe": "tool probes (versions, header search paths, pkg-config)",
}
LOGGED_TOOLS = (
    ("clang", "CLANG"),
    ("bpftool", "BPFTOOL"),
    ("cc", "CC"),
    ("pkg-config", "PKG_CONFIG"),
    ("strip", "STRIP"),
)
"""The tools a build runs, and the variable both tools take each one's path from."""
LOG_ENV = "BENCH_CMDLOG"
"""The command log the logger (cmdlog.c) appends to; as named there."""


def classify(tool: str, args: str) -> str:
    """The kind of one command a build ran (see STEP_KINDS)."""
    words = args.split()
    if "-E" in words:  # a compiler asked for its header search path (-E -v)
        return "probe"
    if tool == "clang":
        return "pch" if "c-header" in words else "bpf" if "-c" in words else "probe"
    if tool == "bpftool":
        return (
            "vmlinux"
            if words[:2] == ["btf", "dump"]
            else "bpftool"
            if words[:1] == ["gen"]
            else "probe"
        )
    if tool in ("pkg-config", "true"):
        return "probe"
    if tool == "strip":
        return "probe" if "--version" in words else "ld"
    # bpfbuild's linker probe links a tiny program with -Wl,-v: not an app's link
    return "cc" if "-c" in words else "ld" if "-o" in words and "-Wl,-v" not in words else "probe"


def build_logger(folder: Path, name: str, real: str) -> Path:
    """bench/cmdlog.c compiled to stand in for one tool (static when the C library
    allows: it starts faster)."""
    logger = folder / name
    defines = [f"-DREAL={json.dumps(real)}", f"-DNAME={json.dumps(name)}"]
    for static in (["-static"], []):
        done = subprocess.run(
            ["cc", "-O2", *static, *defines, "-o", str(logger), str(BENCH_DIR / "cmdlog.c")],
            capture_output=True,
            text=True,
            env=TOOL_ENV,
        )
        if done.returncode == 0:
            return logger
    raise BuildFailed(f"cannot build the command logger:\n{done.stderr}")


def build_loggers(folder: Path) -> dict[str, str]:
    """One logger per tool; the environment variables that make both tools use them."""
    folder.mkdir(parents=True)
    env = {}
    for name, variable in LOGGED_TOOLS:
        real = shutil.which(os.environ.get(variable, name), path=TOOL_ENV["PATH"])
        if not real:
            raise BuildFailed(f"{name} not found; the profile runs it through a logger")
        env[variable] = str(build_logger(folder, name, real))
    return env


def logger_overhead(folder: Path, repeat: int = 15) -> float:
    """How much longer a command takes through the logger than run directly: the
    logger's own start and exit, which are outside the time it logs. Subtracted
    from each command of a profile, so that it is not counted as the tool's time."""
    real = shutil.which("true") or "/bin/true"
    logger = build_logger(folder, "true", real)
    direct = median_seconds([real], repeat)
    logged = median_seconds([str(logger)], repeat, tool_env(**{LOG_ENV: str(folder / "true.log")}))
    return max(logged - direct, 0.0)


@dataclass
class StepProfile:
    """One clean build at -j1 with every command a tool ran logged and timed."""

    label: str
    seconds: float
    cpu_seconds: float
    """User + system time of the build's whole process tree."""
    steps: dict[str, list[float]]
    """Kind -> the wall time of each command of that kind."""
    commands_cpu_seconds: float
    """User + system time of the logged commands' trees, and of the loggers."""
    overhead: float
    """The logger's cost a command, outside what it logs (see logger_overhead)."""

    @property
    def commands(self) -> int:
        return sum(len(times) for times in self.steps.values())

    @property
    def commands_seconds(self) -> float:
        return sum(sum(times) for times in self.steps.values())

    @property
    def work_seconds(self) -> float:
        """The build's -j1 time without the loggers' own cost: its work."""
        return max(self.seconds - self.commands * self.overhead, 0.0)

    @property
    def itself_seconds(self) -> float:
        """The build tool's own wall time: start-up, planning, between commands."""
        return max(self.work_seconds - self.commands_seconds, 0.0)

    @property
    def own_cpu_seconds(self) -> float:
        """CPU the build tool itself used (its processes, not the tools it ran)."""
        return max(self.cpu_seconds - self.commands_cpu_seconds, 0.0)

    def as_dict(self) -> dict:
        return {
            "seconds": round(self.seconds, 4),
            "work_seconds": round(self.work_seconds, 4),
            "itself_seconds": round(self.itself_seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "own_cpu_seconds": round(self.own_cpu_seconds, 4),
            "own_cpu_share": round(self.own_cpu_seconds / self.work_seconds, 4)
            if self.work_seconds
            else None,
            "logger_overhead_seconds": round(self.overhead, 5),
            "steps": {
                kind: {"commands": len(times), "seconds": round(sum(times), 4)}
                for kind, times in self.steps.items()
            },
        }


def profile_steps(
    tool: Tool,
    source: Path,
    root: Path,
    apps: list[str],
    logs: Path,
    label: str,
    loggers: dict[str, str],
    overhead: float,
    cache: Path | None = None,
) -> StepProfile:
    """A clean build at -j1 with clang, bpftool, cc, pkg-config and strip run
    through the logger. One job, so the commands do not slow each other down."""
    log = logs / f"commands-{label}.log"
    env = tool_env(cache, **loggers, **{LOG_ENV: str(log)})
    run = clean_build(tool, source, root, apps, 1, logs, f"profile-{label}", env)
    steps: dict[str, list[float]] = {}
    commands_cpu = 0.0
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            start, end, child_us, self_us, name, *args = line.split(" ", 5)
            seconds = (int(end) - int(start)) / 1e9
            commands_cpu += (int(child_us) + int(self_us)) / 1e6
        except ValueError:
            raise BuildFailed(f"cannot read the command log {log} (line {line!r})") from None
        steps.setdefault(classify(name, args[0] if args else ""), []).append(seconds)
    return StepProfile(label, run.seconds, run.cpu_seconds, steps, commands_cpu, overhead)


def _steps_cell(times: list[float]) -> str:
    if not times:
        return "-"
    return f"{len(times)} × {sum(times) / len(times):.3f} s = {sum(times):.2f} s"


def steps_table(profiles: list[StepProfile], make_clean: float, jobs: int) -> str:
    """Where each clean build goes, what the tool itself costs, and the best ratio
    that each build's work allows against make's measured time."""
    names = {"make": "make", "cold": "bpfbuild, empty cache", "warm": "bpfbuild, warm cache"}
    lines = [
        "| clean build at -j1, by step | " + " | ".join(names[p.label] for p in profiles) + " |",
        "| --- |" + " --- |" * len(profiles),
    ]
    for kind, label in STEP_KINDS.items():
        if any(kind in p.steps for p in profiles):
            lines.append(
                f"| {label} | "
                + " | ".join(_steps_cell(p.steps.get(kind, [])) for p in profiles)
                + " |"
            )
    lines.append(
        "| the build tool itself: wall time between commands | "
        + " | ".join(f"{p.itself_seconds:.2f} s" for p in profiles)
        + " |"
    )
    lines.append(
        "| the build tool itself: its own CPU (user + sys) | "
        + " | ".join(
            f"{p.own_cpu_seconds:.2f} s = {100 * p.own_cpu_seconds / p.work_seconds:.1f}%"
            for p in profiles
        )
        + " |"
    )
    lines.append("| total | " + " | ".join(f"{p.work_seconds:.2f} s" for p in profiles) + " |")
    overhead = profiles[0].overhead
    lines.append("")
    lines.append(
        f"Each command ran through a logger (bench/cmdlog.c); its own cost, "
        f"{overhead * 1000:.1f} ms a command, is left out of every figure. "
        "The percentage is the tool's own CPU over its -j1 build time."
    )
    floors = [f"{names[p.label]} {p.work_seconds / jobs:.2f} s" for p in profiles]
    best = [
        f"{make_clean / (p.work_seconds / jobs):.2f}x ({names[p.label]})"
        for p in profiles
        if p.label != "make"
    ]
    lines.append(
        f"With {jobs} jobs a build takes at least its work / {jobs}: "
        + ", ".join(floors)
        + f". Against make -j{jobs}'s measured "
        f"{make_clean:.2f} s, no schedule of this work can make bpfbuild more than "
        + " or ".join(best)
        + " faster."
    )
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


def _clean_cell(seconds: float, commands: int, floor: float | None) -> str:
    cell = f"{seconds:.2f} s, {commands} commands"
    return cell + (f" (floor {floor:.2f} s)" if floor else "")


def markdown_table(
    make: ToolResult,
    bpf: ToolResult,
    jobs: int,
    clean_repeat: int,
    repeat: int,
    python_startup: float,
    floors: dict[str, float] | None = None,
) -> str:
    """The results side by side with make, with the floor (work / jobs, from the -j1
    profiles) next to each clean build and the issue's target for each row."""
    floors = floors or {}
    expected = len(bpf.header_expected)

    def best(label: str) -> str:
        floor = floors.get(label)
        return f" (at most {make.clean_median / floor:.2f}x)" if floor else ""

    noop_share = bpf.noop_median / python_startup if python_startup else 0.0
    rows = [
        (
            f"clean build, empty cache (median of {clean_repeat})",
            _clean_cell(make.clean_median, make.clean_commands, floors.get("make")),
            _clean_cell(bpf.clean_median, bpf.clean_commands, floors.get("cold")),
            _ratio(make.clean_median, bpf.clean_median) + best("cold"),
            "1.5x",
        ),
        (
            f"clean build, warm cache (median of {clean_repeat})",
            _clean_cell(make.clean_median, make.clean_commands, floors.get("make")),
            _clean_cell(
                bpf.warm_median, bpf.warm[-1].commands if bpf.warm else 0, floors.get("warm")
            ),
            _ratio(make.clean_median, bpf.warm_median) + best("warm"),
            "2x",
        ),
        (
            "CPU time (user + sys), clean build, empty cache",
            f"{make.clean_cpu_median:.2f} s",
            f"{bpf.clean_cpu_median:.2f} s",
            _ratio(make.clean_cpu_median, bpf.clean_cpu_median),
            "-",
        ),
        (
            f"no-op build (median of {repeat})",
            f"{make.noop_median:.3f} s",
            f"{bpf.noop_median:.3f} s = {noop_share:.1f}x `python -c pass`",
            _ratio(make.noop_median, bpf.noop_median),
            "under 4x `python -c pass`",
        ),
        (
            f"`python -c pass` (median of {max(repeat, 5)})",
            "-",
            f"{python_startup:.3f} s",
            "-",
            "-",
        ),
        (
            f"touch `{workload.TOUCHED_SOURCE}`",
            _run_cell(make.touch),
            _run_cell(bpf.touch),
            _ratio(make.touch.seconds, bpf.touch.seconds),
            "0 commands",
        ),
        (
            f"edit `{workload.SHARED_HEADER}` ({expected} sources include it)",
            _header_cell(make),
            _header_cell(bpf),
            "-",
            "exact",
        ),
        (
            "peak RSS, clean build (largest process)",
            f"{make.clean_max_rss_kib / 1024:.0f} MiB",
            f"{bpf.clean_max_rss_kib / 1024:.0f} MiB",
            "-",
            "-",
        ),
    ]
    lines = [
        f"| | make -j{jobs} | bpfbuild -j{jobs} | make / bpfbuild | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def machine_line(jobs: int, apps: list[str], load: float) -> str:
    clang = _first_line(["clang", "--version"])
    return (
        f"{len(apps)} apps ({len(apps) - 1} tracing + 1 XDP), {jobs} jobs, "
        f"{os.cpu_count()} CPUs, {clang}, kernel {platform.release()}, "
        f"load average {load:.2f} at start"
    )


# -- command line ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--apps",
        type=int,
        default=workload.DEFAULT_TRACING_APPS,
        help="tracing apps in the workload, plus one XDP app (default: %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel jobs for both tools (default: the number of CPUs, %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="no-op builds to take the median of (default: %(default)s)",
    )
    parser.add_argument(
        "--clean-repeat",
        type=int,
        default=3,
        help="clean builds of each kind to take the median of (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="keep the workload, the build trees, caches and logs here "
        "(default: a temporary folder, deleted)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results as JSON to FILE ('-': stdout, instead of the table)",
    )
    parser.add_argument(
        "--bpfbuild",
        help="the bpfbuild command (default: the console script "
        "beside this Python, else the one in PATH)",
    )
    parser.add_argument("--make", default="make", help="the make command (default: %(default)s)")
    parser.add_argument(
        "--no-steps",
        dest="steps",
        action="store_false",
        help="skip the -j1 clean builds that time every command",
    )
    args = parser.parse_args(argv)
    if min(args.apps, args.jobs, args.repeat, args.clean_repeat) < 1:
        parser.error("--apps, --jobs, --repeat and --clean-repeat must be at least 1")
    return args


OURS = {
    "workload",
    "make",
    "bpfbuild",
    "bpfbuild-warm",
    "cache",
    "logs",
    "loggers",
    "warm-up",
    "profile",
    "results.json",
}
"""What the benchmark writes in --out; anything else there is a stranger's."""


def prepare_out(out: Path) -> None:
    """Use out, an empty folder or one a previous run left; never delete anything else."""
    if out.exists():
        strangers = [p.name for p in out.iterdir() if p.name not in OURS]
        if strangers:
            sys.exit(
                f"error: {out} holds files this benchmark did not make "
                f"({', '.join(sorted(strangers)[:3])}); pick an empty folder"
            )
        for name in OURS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run_profiles(
    make: Tool, bpf: Tool, source: Path, out: Path, apps: list[str], logs: Path
) -> list[StepProfile]:
    """-j1 clean builds with every command logged: make, bpfbuild with an empty
    cache, then bpfbuild with the cache that build filled (same logged tool paths)."""
    loggers = build_loggers(out / "loggers")
    overhead = logger_overhead(out / "loggers")
    profile_cache = out / "cache" / "profile"
    profiles = []
    for tool, label, cache in (
        (make, "make", None),
        (bpf, "cold", profile_cache),
        (bpf, "warm", profile_cache),
    ):
        progress(f"{tool.name}: clean build at -j1, timing each command ({label})")
        profiles.append(
            profile_steps(
                tool, source, out / "profile" / label, apps, logs, label, loggers, overhead, cache
            )
        )
    return profiles


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
        make, bpf = Make(args.make), Bpfbuild(bpfbuild_command)
        python = interpreter_of(bpfbuild_command)
        python_startup = median_seconds([python, "-c", "pass"], max(args.repeat, 5))
        results = bench(
            make, bpf, source, out, apps, args.jobs, args.clean_repeat, args.repeat, logs
        )
        profiles = run_profiles(make, bpf, source, out, apps, logs) if args.steps else []
    except BuildFailed as err:
        print(f"error: {err}", file=sys.stderr)
        print(f"hint: the build trees and logs are in {out}", file=sys.stderr)
        return 1
    make_result, bpf_result = results
    floors = {p.label: p.work_seconds / args.jobs for p in profiles}
    table = markdown_table(
        make_result, bpf_result, args.jobs, args.clean_repeat, args.repeat, python_startup, floors
    )
    data = {
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "load_average": load,
            "clang": _first_line(["clang", "--version"]),
        },
        "apps": len(apps),
        "tracing_apps": args.apps,
        "jobs": args.jobs,
        "repeat": args.repeat,
        "clean_repeat": args.clean_repeat,
        "python": {"interpreter": python, "startup_seconds": round(python_startup, 4)},
        "make": make_result.as_dict(),
        "bpfbuild": bpf_result.as_dict(),
        "ratios": {
            "clean": make_result.clean_median / bpf_result.clean_median,
            "warm": make_result.clean_median / bpf_result.warm_median,
            "noop": make_result.noop_median / bpf_result.noop_median,
            "noop_over_python": bpf_result.noop_median / python_startup,
        },
        "floors": {label: round(floor, 4) for label, floor in floors.items()},
        "table": table,
    }
    if profiles:
        data["steps"] = {
            {"make": "make", "cold": "bpfbuild", "warm": "bpfbuild-warm"}[p.label]: p.as_dict()
            for p in profiles
        }
        data["steps_table"] = steps_table(profiles, make_result.clean_median, args.jobs)
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
