"""Helpers for the tests: copy a test project, run `bpfbuild` as a subprocess, read the
kbuild lines it prints, hash outputs; and the one place that skips, with the reason, a
test whose needs this machine lacks (BPF loading, tools, cross toolchains, qemu, kernel
BTF, tracefs, Debian's servers)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bpfbuild.arch import LIBRARIES, Arch, get_arch, host_arch
from bpfbuild.errors import BpfBuildError
from bpfbuild.kernels.host import KERNEL_BTF, can_load_bpf, tracefs_mounted

PROJECTS = Path(__file__).resolve().parent / "projects"
"""Test projects, each copied into a temporary folder before use."""
REPO = Path(__file__).resolve().parent.parent
ARCH = host_arch().name


def bpfbuild_command() -> list[str]:
    """The installed console script of the interpreter running the tests (a venv's
    own `bpfbuild`), so that a subprocess uses the same bpfbuild and doit."""
    script = Path(sys.executable).parent / "bpfbuild"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "bpfbuild.cli"]


def copy_project(name: str, destination: Path) -> Path:
    """Copy tests/projects/<name> to destination/<name>; return the copy's root."""
    root = destination / name
    shutil.copytree(PROJECTS / name, root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    return root


@dataclass
class Run:
    """One finished `bpfbuild` invocation."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def steps(self) -> list[tuple[str, str]]:
        return parse_steps(self.stdout)

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def bpfbuild(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> Run:
    """Run `bpfbuild ARGS` in root and capture everything."""
    done = subprocess.run(
        [*bpfbuild_command(), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def build(root: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`bpfbuild build ARGS` that must succeed."""
    run = bpfbuild(root, "build", *args, env=env)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output, run.describe()
    return run


_STEP = re.compile(r"^  (?P<kind>[A-Z]+) +(?P<what>\S+)$")


def parse_steps(stdout: str) -> list[tuple[str, str]]:
    """The steps a build ran, from its kbuild lines: [("BPF", "src/x.bpf.c"), ...].
    `BIN` lines report on a linked binary; they are not steps."""
    steps = []
    for line in stdout.splitlines():
        match = _STEP.match(line)
        if match and match["kind"] != "BIN":
            steps.append((match["kind"], match["what"]))
    return steps


def steps_of(run: Run, kind: str) -> set[str]:
    """What the build ran for one kind of step, e.g. {"src/a.bpf.c"} for "BPF"."""
    return {what for step_kind, what in run.steps if step_kind == kind}


def assert_build_is_noop(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """As meson's assertBuildIsNoop: a build that runs no command at all. The no-op
    stamp is removed first, so that the build graph and its recorded state answer, not
    the fast path (which tests/test_fastpath.py covers)."""
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    run = build(root, *args, env=dict(env or os.environ, BPFBUILD_TRACE="1"))
    assert "fastpath: miss" in run.stderr, run.describe()
    assert run.steps == [], run.describe()
    assert run.stdout == "", run.describe()


NOT_REPRODUCIBLE = (".pch", ".bpf.d")
"""Outputs whose bytes differ between two clean builds: clang's precompiled vmlinux.h
records the header's mtime; a BPF depfile names vmlinux.h once more (by its absolute
path) when the compile took the PCH, which depends on how the jobs raced it. Both are
intermediates; the objects built with them do not differ."""


def output_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under output/ (but NOT_REPRODUCIBLE ones), by relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((root / "output").rglob("*"))
        if path.is_file() and not path.name.endswith(NOT_REPRODUCIBLE)
    }


def partial_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "output").rglob("*.partial"))


# -- skips: what a test needs, checked once and said with the reason ----------------

BPF_TOOLS = {"clang": "clang", "bpftool": "bpftool", "gcc": "gcc", "pkg-config": "pkg-config"}
"""Tools a test that builds and loads BPF programs runs, and their Debian packages."""


def _bpf_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    loadable, how = can_load_bpf()
    if not loadable:
        return f"this process cannot load BPF programs: {how}"
    if not Path(KERNEL_BTF).exists():
        return f"the kernel has no BTF ({KERNEL_BTF})"
    for tool, package in BPF_TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    return None


BPF_SKIP_REASON = _bpf_skip_reason()
"""Why tests that build and load BPF programs cannot run here, or None."""
needs_bpf = pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON))
"""Skips a test (or, as pytestmark, a module) where BPF cannot be loaded."""


def needs_root(test: Any) -> Any:
    """Mark a test `root`, and skip it with the reason where BPF cannot be loaded."""
    return needs_bpf(pytest.mark.root(test))


def require_bpf() -> None:
    """In a fixture: skip unless BPF programs can be built and loaded here."""
    if BPF_SKIP_REASON is not None:
        pytest.skip(BPF_SKIP_REASON)


def require_tool(tool: str, package: str | None = None, install: str | None = None) -> str:
    """The path of tool, or skip naming how to install it: the Debian package (default:
    the tool's name), or the install command."""
    path = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{tool} is not installed ({install or f'apt-get install {package or tool}'})")
    return path


def needs_tool(tool: str, package: str | None = None) -> pytest.MarkDecorator:
    """A mark that skips a test where tool is not installed."""
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"{tool} is not installed (apt-get install {package or tool})",
    )


def host_skip_reason(arch: str, why: str) -> str | None:
    """Why a test spelled for one host arch cannot run on this host, or None."""
    return None if ARCH == arch else f"{why}: needs a {arch} host, this is {ARCH}"


def require_host(arch: str, why: str) -> None:
    """Skip unless the host's arch is arch (a test spelled for that host)."""
    reason = host_skip_reason(arch, why)
    if reason is not None:
        pytest.skip(reason)


def needs_host(arch: str, why: str) -> pytest.MarkDecorator:
    """A mark that skips a test (or, as pytestmark, a module) unless the host is arch."""
    reason = host_skip_reason(arch, why)
    return pytest.mark.skipif(reason is not None, reason=str(reason))


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


def require_kernel_btf() -> Path:
    """The running kernel's BTF, or skip."""
    if not Path(KERNEL_BTF).is_file():
        pytest.skip(f"the kernel has no BTF ({KERNEL_BTF})")
    return Path(KERNEL_BTF)


def cross_skip_reason(arch: Arch | str, libraries: bool = False) -> str | None:
    """Why arch's cross toolchain (its gcc; with libraries, the static libraries an app
    links) is not here, or None; the hint is scripts/setup --arch."""
    arch = get_arch(arch) if isinstance(arch, str) else arch
    missing = [] if shutil.which(arch.cross_cc) else [arch.cc_package]
    if libraries:
        lib = Path(arch.multiarch_lib_dir)
        missing += [arch.library_package(x) for x in LIBRARIES if not (lib / x.archive).is_file()]
    if not missing:
        return None
    return f"no {arch.name} cross toolchain ({', '.join(missing)}): run scripts/setup --arch {arch.name}"


def require_cross(arch: Arch | str, libraries: bool = False) -> str:
    """The cross compiler of arch (and, with libraries, its static libraries), or skip."""
    reason = cross_skip_reason(arch, libraries)
    if reason is not None:
        pytest.skip(reason)
    return get_arch(arch).cross_cc if isinstance(arch, str) else arch.cross_cc


def require_qemu_user(arch: Arch | str) -> str:
    """The static qemu-user binary that runs arch's executables, or skip."""
    arch = get_arch(arch) if isinstance(arch, str) else arch
    return require_tool(arch.qemu_user, arch.qemu_user_package)


@contextmanager
def skip_when_unreachable(what: str) -> Iterator[None]:
    """Skip a test whose fetch from Debian (apt, kernels, sources) fails: the machine
    does not reach Debian's servers (or $BPFBUILD_DEBIAN_MIRROR)."""
    try:
        yield
    except BpfBuildError as err:
        if not _unreachable(err):
            raise  # a bug of bpfbuild's, not the network: the test fails
        pytest.skip(f"cannot fetch {what} from Debian: {err.message}")


def _unreachable(err: BpfBuildError) -> bool:
    """Whether err says that Debian could not be reached (apt's errors, and the kernel
    errors that wrap them), rather than any other failure to resolve or read."""
    from bpfbuild.kernels.apt import AptError

    return isinstance(err, AptError) or err.message.startswith(("cannot fetch ", "cannot resolve "))


def require_vm(spec: str, arch: str = "x86_64") -> Any:
    """The kernel spec names for arch, or skip saying why it cannot be booted here."""
    from bpfbuild.kernels import get_kernel
    from bpfbuild.vm.qemu import machine_for

    machine = machine_for(arch)
    require_tool(machine.qemu, machine.facts.qemu_package)
    with skip_when_unreachable(f"{spec} for {arch}"):
        return get_kernel(spec, get_arch(arch))


def require_tracefs() -> None:
    """Mount tracefs if it is not mounted (tracepoints attach through it), or skip."""
    if tracefs_mounted():  # where libbpf looks for tracepoint ids
        return
    done = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"tracefs is not mounted and mounting it failed: {done.stderr.strip()}")


# -- templates of struct_ops schedulers -----------------------------------------------

STRUCT_OPS_TEMPLATES = frozenset({"sched_ext"})
"""Templates whose BPF object is a sched_ext scheduler: they build only against the
vmlinux.h of a kernel with sched_ext; tests/test_template_sched_ext.py builds them for
every arch and verifies them in VMs."""


def require_template_kernels(template: str, arches: tuple[str, ...] = (ARCH,)) -> None:
    """The Debian kernels whose BTF a struct_ops template's vmlinux.h comes from
    ([vmlinux] debian:7.3), fetched into the cache, or skip when Debian is unreachable."""
    if template not in STRUCT_OPS_TEMPLATES:
        return
    from bpfbuild.kernels import get_kernel

    for arch in arches:
        with skip_when_unreachable(f"debian:7.3 for {arch}, whose BTF makes its vmlinux.h"):
            get_kernel("debian:7.3", get_arch(arch))


def make_project(root: Path, files: dict[str, str], config: str = "") -> Path:
    """A project folder with bpfbuild.toml and the given files ("" for empty ones)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bpfbuild.toml").write_text(config)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under folder, to compare before and after: a link's target, "dir", a
    regular file's sha256, or the kind of anything else (never opened: a FIFO)."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = "-> " + str(path.readlink())
        elif path.is_dir():
            entries[key] = "dir"
        elif path.is_file():
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[key] = "fifo" if path.is_fifo() else "special"
    return entries
