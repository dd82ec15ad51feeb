"""Helpers of the hostile suites (tests/test_hostile_*.py): a `bpfbuild init` project
built once per module (a "lab") that each case makes hostile, runs bpfbuild in, then
restores; the check of the one `error:` and `hint:` line; and the check that a build
after the case gives the bytes of a clean build."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildutil import Run, bpfbuild, bpfbuild_command, build, output_hashes

KEPT = ("output", ".bpfbuild")
"""What a case's restore leaves alone: the outputs and state of the lab's builds."""


def assert_error(output: str, code: int, expected_code: int, error: str, hint: str) -> None:
    """Exactly one `error:` line holding error, one `hint:` line holding hint, the exit
    code, and never a traceback nor an internal error."""
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert code == expected_code, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert len(errors) == 1 and error in errors[0], output
    assert len(hints) == 1 and hint in hints[0], output


@dataclass
class Lab:
    """A built project that cases make hostile one at a time, and its clean build."""

    root: Path
    clean: dict[str, str]
    """output_hashes of its first (clean) build."""
    env: dict[str, str]

    def snapshot(self) -> dict[str, bytes | str | None]:
        """The project's entries but outputs and state: a file's bytes, a link's text,
        None for a folder."""
        found: dict[str, bytes | str | None] = {}
        for current, dirs, files in os.walk(self.root):
            rel = os.path.relpath(current, self.root)
            if rel == ".":
                dirs[:] = [d for d in dirs if d not in KEPT]
            for name in dirs + files:
                path = os.path.join(current, name)
                key = os.path.relpath(path, self.root)
                if os.path.islink(path):
                    found[key] = os.readlink(path)
                elif os.path.isdir(path):
                    found[key] = None
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        found[key] = f.read()
                else:
                    found[key] = b"<special>"
        return found

    def restore(self, before: dict[str, bytes | str | None]) -> None:
        """Remove what a case added (deepest first, links as links) and put back the
        files it changed."""
        now = self.snapshot()
        for key in sorted(set(now) - set(before), key=len, reverse=True):
            path = self.root / key
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif os.path.lexists(path):
                path.unlink()
        for key, content in sorted(before.items()):
            path = self.root / key
            if content is None:
                if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
                    path.unlink()  # a folder the case replaced (by a file, a FIFO, a link)
                path.mkdir(parents=True, exist_ok=True)
            elif isinstance(content, str) and not os.path.lexists(path):
                path.symlink_to(content)
            elif isinstance(content, bytes) and now.get(key) != content:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
        return bpfbuild(self.root, *args, env=env or self.env, timeout=timeout)

    def assert_clean_build(self) -> None:
        """A build now succeeds and gives the bytes of the clean build."""
        build(self.root, env=self.env)
        assert output_hashes(self.root) == self.clean


def make_lab(folder: Path, env: dict[str, str] | None = None) -> Lab:
    """`bpfbuild init` in folder/hello, with an include/ folder holding a header in a
    sub-folder, built once."""
    env = env or dict(os.environ)
    root = folder / "hello"
    done = subprocess.run(
        [*bpfbuild_command(), "init", "--name", "hello", str(root)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    (root / "include" / "sub").mkdir(parents=True)
    (root / "include" / "sub" / "extra.h").write_text("#define EXTRA 1\n")
    build(root, env=env)
    return Lab(root, output_hashes(root), env)


def shell(argv: Sequence[str], redirect: str, cwd: Path, env: dict[str, str]):
    """argv run by sh with a redirection (">&-", ">/dev/full", "2>&-"...)."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
