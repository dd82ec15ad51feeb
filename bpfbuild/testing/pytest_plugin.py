"""pytest plugin: fixtures to open, load, run and inspect a project's built BPF objects.

Registered through the `pytest11` entry point, so a project's tests need no conftest:

    def test_drops_long_packets(bpf_object):
        obj = bpf_object("xdp_count", globals={"max_len": 64})
        result = obj.program("xdp_count").test_run(data_in=bytes(100))
        assert result.retval == XDP_DROP

A test that needs privileges this process lacks, or a kernel feature this kernel
lacks, is skipped with the reason instead of failing; an object that has not been
built is a failure that says to run `bpfbuild build`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..arch import host_arch
from ..errors import BpfBuildError
from ..kernels.host import KERNEL_BTF, MOUNT_TRACEFS, TRACEFS
from ..pipeline.layout import Layout
from ..pipeline.names import CONFIG_NAME
from .libbpf import (
    TRACEPOINT_SECTIONS,
    BpfError,
    BpfObject,
    BpfPrivilegeError,
    BpfUnsupportedError,
    has_bpf_privileges,
    tracefs_mounted,
)

PROJECT_ENV = "BPFBUILD_PROJECT"
"""Environment variable: the project root, if the tests run from elsewhere."""
ARCH_ENV = "BPFBUILD_ARCH"
"""Environment variable: which arch's objects to test (default: the host's)."""

FEATURES: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (has_bpf_privileges, "needs root or CAP_BPF to load BPF programs"),
    "btf": (
        lambda: Path(KERNEL_BTF).exists(),
        f"kernel has no BTF ({KERNEL_BTF}): CO-RE and tp_btf need it",
    ),
    "kprobes": (
        lambda: (
            Path("/sys/bus/event_source/devices/kprobe").exists()
            or Path(TRACEFS, "kprobe_events").exists()
        ),
        "kernel has no kprobe support",
    ),
    "uprobes": (
        lambda: Path("/sys/bus/event_source/devices/uprobe").exists(),
        "kernel has no uprobe support",
    ),
    "tracefs": (lambda: mount_tracefs() is None, "tracefs is not mounted and cannot be"),
}
"""Names accepted by the bpf_requires marker: a probe and the reason to skip."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bpf_requires(*features): skip unless the kernel and privileges provide every "
        "feature; features: " + ", ".join(FEATURES),
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("bpf_requires"):
        for feature in marker.args:
            if feature not in FEATURES:
                pytest.fail(
                    f"unknown bpf_requires feature '{feature}'; known: {', '.join(FEATURES)}",
                    pytrace=False,
                )
            probe, reason = FEATURES[feature]
            if not probe():
                pytest.skip(reason)


def skip_reason(exc: BaseException) -> str | None:
    """Why a test should be skipped rather than fail because of this error, if it should."""
    if isinstance(exc, (BpfPrivilegeError, BpfUnsupportedError)):
        return _missing_here(exc)
    return None


def _missing_here(exc: BpfError) -> str:
    """The skip reason of an error that says what this kernel or process lacks."""
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A test calling load(), attach() or test_run() directly skips on a missing feature."""
    try:
        return (yield)
    except (BpfPrivilegeError, BpfUnsupportedError) as exc:
        pytest.skip(_missing_here(exc))


# ------------------------------------------------------------------- project


@dataclass(frozen=True)
class BpfProject:
    """The project under test: its root (where bpfbuild.toml is) and the arch tested."""

    root: Path
    arch: str

    @property
    def layout(self) -> Layout:
        return Layout(self.root, self.arch)

    def object_path(self, name: str) -> Path:
        """A built object by app or object name, or by a path (relative to the root)."""
        if "/" in name or name.endswith(".o"):
            return self.root / name
        return self.layout.bpf_object(name)


def find_project_root(starts: list[Path], environ: Mapping[str, str] = os.environ) -> Path | None:
    """$BPFBUILD_PROJECT, else the nearest folder holding bpfbuild.toml above a start."""
    if environ.get(PROJECT_ENV):
        return Path(environ[PROJECT_ENV]).resolve()
    for start in starts:
        for folder in [start.resolve(), *start.resolve().parents]:
            if os.path.lexists(folder / CONFIG_NAME):
                from ..pipeline.project import find_root  # strict: never skips a broken one

                return find_root(folder)
    return None


@pytest.fixture(scope="session")
def bpf_project(pytestconfig: pytest.Config) -> BpfProject:
    """The bpfbuild project whose objects the tests open."""
    try:
        root = find_project_root([Path.cwd(), pytestconfig.rootpath])
    except BpfBuildError as exc:
        pytest.fail(f"{exc.message} (hint: {exc.hint})", pytrace=False)
    if root is None:
        pytest.fail(
            f"no {CONFIG_NAME} found above {Path.cwd()} or {pytestconfig.rootpath}; "
            f"run the tests inside a bpfbuild project or set {PROJECT_ENV}",
            pytrace=False,
        )
    try:
        arch = os.environ.get(ARCH_ENV) or host_arch().name
    except BpfBuildError as exc:
        pytest.fail(f"{exc.message} (hint: {exc.hint})", pytrace=False)
    return BpfProject(root, arch)


@pytest.fixture(scope="session")
def bpf_object_path(bpf_project: BpfProject) -> Callable[[str], Path]:
    """name -> path of the built object; fails (not skips) if it has not been built."""

    def object_path(name: str) -> Path:
        path = bpf_project.object_path(name)
        if not path.is_file():
            pytest.fail(
                f"BPF object '{name}' is not built ({path} is missing): run `bpfbuild build`"
                + (f" for arch {bpf_project.arch}" if bpf_project.arch != host_arch().name else ""),
                pytrace=False,
            )
        return path

    return object_path


# ------------------------------------------------------------------- objects


def mount_tracefs() -> str | None:
    """Mount tracefs where libbpf reads tracepoint ids, if needed; why not, if it fails."""
    if tracefs_mounted():
        return None
    if not has_bpf_privileges():
        return "tracefs is not mounted and mounting it needs root"
    result = subprocess.run(
        list(MOUNT_TRACEFS),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not tracefs_mounted():
        return f"tracefs is not mounted and mounting it failed: {result.stderr.strip()}"
    return None


class BpfObjectFactory:
    """Opens objects for one test and closes them all at its teardown."""

    def __init__(self, object_path: Callable[[str], Path]) -> None:
        self._object_path = object_path
        self._opened: list[BpfObject] = []

    def __call__(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        load: bool = True,
        autoload: Mapping[str, bool] | None = None,
    ) -> BpfObject:
        """Open the built object `name`, set globals, choose programs, and load it.

        globals: .rodata/.bss/.data variables to set before load (name -> int, bytes,
        str or dict). autoload: program name -> False to leave a program out.
        load=False returns the object opened only, for the test to set up and load.
        """
        obj = BpfObject.open(self._object_path(name))
        self._opened.append(obj)
        try:
            for variable, value in (globals or {}).items():
                obj.set_global(variable, value)
            for program, enabled in (autoload or {}).items():
                obj.program(program).autoload = enabled
            if load:
                obj.load()
        except (BpfPrivilegeError, BpfUnsupportedError) as exc:
            pytest.skip(_missing_here(exc))
        if any(p.section.split("/", 1)[0] in TRACEPOINT_SECTIONS for p in obj.programs.values()):
            reason = mount_tracefs()
            if reason:
                pytest.skip(reason)
        return obj

    def close(self) -> None:
        while self._opened:
            self._opened.pop().close()


@pytest.fixture
def bpf_object(bpf_object_path: Callable[[str], Path]) -> Iterator[BpfObjectFactory]:
    """Factory: bpf_object(name, globals=None, load=True, autoload=None) -> BpfObject."""
    factory = BpfObjectFactory(bpf_object_path)
    yield factory
    factory.close()


class Trigger:
    """Ways for a test to make the kernel fire the probes it attached."""

    def exec(self, *argv: str, check: bool = True) -> int:
        """Run a program to completion (an execve, for sys_enter_execve); its pid."""
        process = subprocess.Popen(
            argv or ("/bin/true",), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _out, err = process.communicate(timeout=30)
        if check and process.returncode != 0:
            raise AssertionError(f"{argv} exited with {process.returncode}: {err.decode().strip()}")
        return process.pid

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a program (e.g. one with a uprobe attached) and return its output."""
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)


@pytest.fixture
def bpf_trigger() -> Trigger:
    """Helpers that cause events: bpf_trigger.exec("/bin/true") -> pid."""
    return Trigger()
