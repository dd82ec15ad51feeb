"""A hostile environment: an output that goes away (`| head -1`), is closed or full;
closed standard input or error; a working folder deleted under bpfbuild; Ctrl-C at
any moment; a pkg-config that does not work; a project path that is not UTF-8;
`bpfbuild test` whose pytest collects nothing. Each stops with its exit code and one
`error:` + `hint:` (a broken pipe and Ctrl-C: quietly, 141 and 130), never a
traceback; a build after it gives the bytes of a clean build."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import BPF_SKIP_REASON, bpfbuild_command
from hostileutil import KEPT, Lab, assert_error, make_lab, shell


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    cache = tmp_path_factory.mktemp("cache")
    return make_lab(tmp_path_factory.mktemp("lab"), dict(os.environ, BPFBUILD_CACHE_DIR=str(cache)))


def unbuilt(lab: Lab) -> None:
    for name in KEPT:
        shutil.rmtree(lab.root / name, ignore_errors=True)


def quiet(stderr: str) -> None:
    """No traceback, no Python complaint at exit, no internal error."""
    for word in ("Traceback", "Exception ignored", "internal error", "BrokenPipe"):
        assert word not in stderr, stderr


# -- standard output: gone, closed, full ------------------------------------------------

COMMANDS = {
    "build-from-nothing": ["build"],
    "list": ["list"],
    "help": ["--help"],
    "build-help": ["build", "--help"],
    "version": ["--version"],
    "cache-info": ["cache", "info"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_reader_that_goes_away_stops_bpfbuild_quietly(lab: Lab, command: str) -> None:
    """`bpfbuild ... | head -1`: the reader is gone before bpfbuild writes."""
    if command == "build-from-nothing":
        unbuilt(lab)
    process = subprocess.Popen(
        [*bpfbuild_command(), *COMMANDS[command]],
        cwd=lab.root,
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # as `head` does once it has its line
    _, stderr = process.communicate(timeout=120)
    # click's own help and version stop with 1 (its handling of EPIPE), commands with 141
    assert process.returncode == (1 if "help" in command or command == "version" else 141), stderr
    quiet(stderr)
    assert "error:" not in stderr, stderr
    lab.assert_clean_build()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_closed_output_is_an_error(lab: Lab, command: str) -> None:
    if command == "build-from-nothing":
        unbuilt(lab)
    done = shell([*bpfbuild_command(), *COMMANDS[command]], ">&-", lab.root, lab.env)
    assert_error(
        done.stderr,
        done.returncode,
        1,
        "standard output is closed",
        "give bpfbuild somewhere to write: `>/dev/null` drops its output",
    )
    if command == "build-from-nothing":
        assert not (lab.root / "output").exists()  # stopped before anything was done
    lab.assert_clean_build()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_output_is_an_error(lab: Lab, command: str) -> None:
    if command == "build-from-nothing":
        unbuilt(lab)
    done = shell([*bpfbuild_command(), *COMMANDS[command]], ">/dev/full", lab.root, lab.env)
    assert_error(
        done.stderr,
        done.returncode,
        1,
        "cannot write bpfbuild's output: No space left on device",
        "free space where its standard output goes",
    )
    lab.assert_clean_build()


@pytest.mark.parametrize("redirect", ["<&-", "2>&-", "<&- 2>&-", "2>/dev/full"])
def test_a_build_with_closed_input_or_error_works(lab: Lab, redirect: str) -> None:
    """Closed standard input or error: /dev/null takes their place (no file bpfbuild
    opens takes their number), and the build is a clean build."""
    unbuilt(lab)
    done = shell([*bpfbuild_command(), "build"], redirect, lab.root, lab.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LD" in done.stdout
    lab.assert_clean_build()


def test_a_no_op_build_into_a_full_or_gone_output_writes_nothing_and_succeeds(lab: Lab) -> None:
    """The fast path answers a no-op build without a word: nothing to fail on."""
    lab.assert_clean_build()
    done = shell([*bpfbuild_command(), "build"], ">/dev/full", lab.root, lab.env)
    assert done.returncode == 0 and done.stderr == "", done.stderr


# -- the working folder deleted under bpfbuild ------------------------------------------

GONE = [
    ["build"],
    ["list"],
    ["verify"],
    ["clean"],
    ["test"],
    ["init"],
    ["doctor"],
    ["build", "-C", "."],
]


@pytest.mark.parametrize("args", GONE, ids=[" ".join(a) for a in GONE])
def test_a_deleted_working_folder_is_an_error(lab: Lab, tmp_path: Path, args: list[str]) -> None:
    doomed = tmp_path / "doomed"
    shutil.copytree(lab.root, doomed, symlinks=True)
    done = subprocess.run(
        [
            "sh",
            "-c",
            'cd "$0" && rm -rf "$0" && exec "$@"',
            str(doomed),
            *bpfbuild_command(),
            *args,
        ],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_error(
        done.stderr,
        done.returncode,
        1,
        "the current folder no longer exists (it was deleted or moved)",
        "cd into the project again, or give its folder with -C DIR",
    )


def test_a_deleted_working_folder_does_not_stop_a_build_of_another(
    lab: Lab, tmp_path: Path
) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    done = subprocess.run(
        ["sh", "-c", 'cd "$0" && rmdir "$0" && exec "$@"', str(doomed), *bpfbuild_command()]
        + ["build", "-C", str(lab.root)],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lab.assert_clean_build()


# -- Ctrl-C (SIGINT to the process group) at any moment ---------------------------------


@dataclass(frozen=True)
class Interrupt:
    after_miss: bool
    """Count the delay from the fast path's miss (traced), not from the start."""
    delay: float
    times: int = 1
    """Ctrl-C this many times (a user who insists), gap seconds apart."""
    gap: float = 0.0
    command: str = "build"


INTERRUPTS = [
    *[Interrupt(True, d) for d in (0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2)],
    *[Interrupt(False, d) for d in (0.08, 0.1, 0.12, 0.15)],
    *[
        Interrupt(True, d, 3, g)
        for d, g in ((0.0, 0.001), (0.05, 0.01), (0.1, 0.005), (0.15, 0.03))
    ],
    *[Interrupt(False, d, command="verify") for d in (0.15, 0.3, 0.6)],
]


@pytest.mark.parametrize(
    "interrupt",
    INTERRUPTS,
    ids=[
        f"{i.command}-{'after-miss' if i.after_miss else 'from-start'}-{i.delay:.3f}s"
        + (f"-{i.times}-times-{i.gap:.3f}s-apart" if i.times > 1 else "")
        for i in INTERRUPTS
    ],
)
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(lab: Lab, interrupt: Interrupt) -> None:
    unbuilt(lab)
    process = subprocess.Popen(
        [*bpfbuild_command(), interrupt.command],
        cwd=lab.root,
        env=dict(lab.env, BPFBUILD_TRACE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    seen = ""
    if interrupt.after_miss:
        seen = process.stderr.readline()
        assert seen.startswith("fastpath: miss"), seen
    time.sleep(interrupt.delay)
    assert process.poll() is None, "the build ended before the interrupt"
    for _ in range(interrupt.times):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        time.sleep(interrupt.gap)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if not line.startswith("fastpath:")]
    assert process.returncode == 130, seen + stderr
    assert lines == ["interrupted"], seen + stderr
    lab.assert_clean_build()


# -- pkg-config that does not work ------------------------------------------------------


def fake(tmp_path: Path, script: str) -> str:
    tool = tmp_path / "pkg-config-fake"
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)
    return str(tool)


PKG_CONFIGS = [
    (
        "false",
        lambda tmp: "/bin/false",
        "pkg-config failed: `/bin/false --version` exited with 1, printing nothing",
        "$PKG_CONFIG is '/bin/false': set it to a working pkg-config, or unset it",
    ),
    (
        "fails-loudly",
        lambda tmp: fake(tmp, "echo 'pkg-config: broken install' >&2; exit 3"),
        "exited with 3, pkg-config: broken install",
        "set it to a working pkg-config, or unset it",
    ),
    (
        "silent-success",
        lambda tmp: "/bin/true",
        "/bin/true is not pkg-config: `/bin/true --modversion libbpf` printed nothing",
        "set $PKG_CONFIG to pkg-config's path, or unset it",
    ),
    (
        "missing",
        lambda tmp: str(tmp / "nowhere" / "pkg-config"),
        "which is not an executable",
        "fix or unset $PKG_CONFIG",
    ),
]


@pytest.mark.parametrize("name,tool,error,hint", PKG_CONFIGS, ids=[p[0] for p in PKG_CONFIGS])
def test_a_pkg_config_that_does_not_work_is_named(
    lab: Lab, tmp_path: Path, name, tool, error, hint
) -> None:
    env = dict(lab.env, PKG_CONFIG=tool(tmp_path))
    run = lab.run("build", env=env)
    assert_error(run.output, run.returncode, 1, error, hint)
    assert "install libbpf-dev" not in run.stderr
    lab.assert_clean_build()


# -- a project path that is not UTF-8 ---------------------------------------------------


@pytest.mark.parametrize("args", [["build"], ["list"], ["verify"], ["test"]], ids=str)
def test_a_project_path_that_is_not_utf8_is_refused(
    lab: Lab, tmp_path: Path, args: list[str]
) -> None:
    folder = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9"))
    shutil.copytree(lab.root, folder / "hello", symlinks=True, ignore=shutil.ignore_patterns(*KEPT))
    done = subprocess.run(
        [*bpfbuild_command(), *args],
        cwd=folder / "hello",
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_error(
        done.stderr,
        done.returncode,
        1,
        "caf\\xe9/hello is not UTF-8 (byte 0xe9)",
        "move the project to a folder whose path is UTF-8 text",
    )
    assert not (folder / "hello" / "output").exists()


# -- bpfbuild test: pytest that collects nothing is no success --------------------------


@pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON))
@pytest.mark.parametrize(
    "setup,args,error",
    [
        (None, ["--", "-k", "no_such_test"], "pytest collected no tests (with -k no_such_test)"),
        ("empty-tests", [], "pytest collected no tests in tests/"),
        ("only-helpers", [], "pytest collected no tests in tests/"),
    ],
    ids=["-k-typo", "empty-tests-folder", "tests-without-test-files"],
)
def test_pytest_collecting_nothing_fails_bpfbuild_test(lab: Lab, setup, args, error) -> None:
    before = lab.snapshot()
    try:
        if setup:
            for test in (lab.root / "tests").iterdir():
                test.unlink()
        if setup == "only-helpers":
            (lab.root / "tests" / "helpers.py").write_text("X = 1\n")
        run = lab.run("test", *args, timeout=300)
        assert_error(run.output, run.returncode, 1, error, "check the arguments after --")
    finally:
        lab.restore(before)


TESTS_KINDS = [
    ("file", lambda p: p.write_text("x"), "a file"),
    ("fifo", lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
    ("dangling-link", lambda p: p.symlink_to("nowhere"), "a symbolic link to nothing"),
]


@pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON))
@pytest.mark.parametrize("kind,make,said", TESTS_KINDS, ids=[t[0] for t in TESTS_KINDS])
def test_a_tests_path_that_is_not_a_folder_fails_bpfbuild_test(lab: Lab, kind, make, said) -> None:
    before = lab.snapshot()
    try:
        shutil.rmtree(lab.root / "tests")
        make(lab.root / "tests")
        run = lab.run("test", timeout=300)
        assert_error(
            run.output, run.returncode, 1, f"tests is {said}, not a folder of tests", "move it away"
        )
    finally:
        lab.restore(before)


@pytest.mark.skipif(BPF_SKIP_REASON is not None, reason=str(BPF_SKIP_REASON))
def test_a_project_without_tests_folder_passes_bpfbuild_test(lab: Lab) -> None:
    before = lab.snapshot()
    try:
        shutil.rmtree(lab.root / "tests")
        run = lab.run("test", timeout=300)
        assert run.returncode == 0, run.describe()
        assert "no tests/ folder, nothing more to run" in run.stdout
    finally:
        lab.restore(before)


def test_the_tables_are_long() -> None:
    assert 3 * len(COMMANDS) + len(GONE) + len(INTERRUPTS) + len(PKG_CONFIGS) >= 40
