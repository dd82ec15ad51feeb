"""The README is executable: its quick start's two commands, read from README.md, run in
order in a fresh clone of this repository's committed HEAD, as root, with what a fresh
machine has: the system's PATH (no pyenv, no ~/.cargo), an empty user cache, no
variable of a virtualenv or of the pytest running this test. The first prints execsnoop's
events, `ls` among them; the second, the whole suite, is green after the first.

What it costs, and why: the clone has no .venv and the cache is empty, so the first
command makes .venv (pip installs bpfbuild and its test tools) and `scripts/setup`
fetches from Debian what the suite uses (libbpf's source, busybox, the kernels of
debian:5.10, 6.1 and 6.12 for x86_64 and 6.12 for arm64: some hundreds of MB), then
builds the example; the second fetches arm64's BTF and runs the whole suite, VM tests
included, a second time inside this one: minutes alone, tens of minutes on shared cores.
So it is marked slow and each command has a timeout; whatever a command started (its
process group, a VM in a session of its own) is killed when it ends, passed or not. The
nested suite deselects this test (PYTEST_ADDOPTS, which the README's command inherits),
so that it does not run itself again."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from buildutil import REPO

README = REPO / "README.md"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH of a fresh Debian machine's root."""
THIS_TEST = "tests/test_readme.py::test_the_quick_start_runs_in_a_fresh_clone"
FIRST_TIMEOUT = 45 * 60
"""setup (a .venv, the fetches of an empty cache), then a build of the example."""
SECOND_TIMEOUT = 120 * 60
"""setup --arch arm64, then the whole suite on cores other sessions may share."""
EVENT = re.compile(r"^(\d+) +(\d+) +(\d+) +(\S+) +(\S+)$", re.M)
"""One line of execsnoop: PID PPID UID COMM FILENAME."""


def quick_start_commands(readme: str) -> list[str]:
    """The commands of the first sh block of the README's "Quick start" section."""
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```sh\n(.*?)^```", section[1], re.M | re.S)
    assert block, "the quick start has no ```sh block"
    return [line for line in block[1].splitlines() if line.strip() and not line.startswith("#")]


def test_the_quick_start_is_two_commands() -> None:
    commands = quick_start_commands(README.read_text())
    assert len(commands) == 2, commands
    assert "bpfbuild build -C examples/execsnoop" in commands[0], commands
    assert "pytest" in commands[1] and commands[1].endswith(" tests"), commands


def fresh_machine_environment(cache: Path, marker: str) -> dict[str, str]:
    """What root's login shell on a fresh machine has, with an empty user cache, the
    deselection of this test, and a marker that every process of the run inherits."""
    user = pwd.getpwuid(os.getuid())
    return {
        "PATH": SYSTEM_PATH,
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": user.pw_shell,
        "LANG": "C.UTF-8",
        "XDG_CACHE_HOME": str(cache),  # bpfbuild's and pip's caches, empty
        "PYTEST_ADDOPTS": f"--deselect {THIS_TEST}",
        "BPFBUILD_README_RUN": marker,
    }


def processes_of(marker: str, clone: Path) -> list[int]:
    """Live processes the run started: they carry the marker in their environment, or
    name the clone on their command line (a VM started with an environment of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if f"BPFBUILD_README_RUN={marker}".encode() in environ or str(clone).encode() in argv:
            found.append(int(entry.name))
    return found


def kill_everything(process: subprocess.Popen, marker: str, clone: Path) -> None:
    """SIGKILL the command's process group and every process the run started elsewhere."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in processes_of(marker, clone):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def run_command(
    command: str, clone: Path, env: dict[str, str], timeout: float, logs: Path
) -> tuple[int | None, str, str]:
    """Run one README command with sh in the clone: its exit code (None: it timed out),
    stdout and stderr (kept in logs.out and logs.err too). Nothing it started survives."""
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ["sh", "-c", command],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            kill_everything(process, env["BPFBUILD_README_RUN"], clone)
    return code, out.read_text(errors="replace"), err.read_text(errors="replace")


def describe(command: str, code: int | None, stdout: str, stderr: str) -> str:
    ended = "timed out" if code is None else f"exit {code}"
    return f"$ {command}\n{ended}\n--- stdout's end\n{stdout[-5000:]}\n--- stderr's end\n{stderr[-3000:]}"


def test_the_quick_start_runs_in_a_fresh_clone(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the quick start is run as root (it installs packages, loads BPF)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    commands = quick_start_commands(README.read_text())
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    clone, cache = tmp_path / "bpfbuild", tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", head], check=True)
    env = fresh_machine_environment(cache, marker=str(clone))
    try:
        first = run_command(commands[0], clone, env, FIRST_TIMEOUT, tmp_path / "first")
        code, stdout, _ = first
        assert code == 0, describe(commands[0], *first)
        assert re.search(r"^PID +PPID +UID +COMM +FILENAME$", stdout, re.M), describe(
            commands[0], *first
        )
        events = EVENT.findall(stdout)
        assert any(filename.endswith("/ls") for *_, filename in events), describe(
            commands[0], *first
        )

        second = run_command(commands[1], clone, env, SECOND_TIMEOUT, tmp_path / "second")
        code, stdout, _ = second
        assert code == 0, describe(commands[1], *second)
        summary = stdout.rstrip().splitlines()[-1]
        assert " passed" in summary and "1 deselected" in summary, describe(commands[1], *second)
    finally:
        # the clone's .venv and the cache's kernels: a few GB; the logs stay
        shutil.rmtree(clone, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
