"""Fault injection for builds: kill a real `bpfbuild build` of tests/projects/multi (its whole
process group, SIGKILL or SIGINT) at a chosen moment, after a clean, an edit, or an edit that
is then reverted; build again normally; compare every file of the project with a clean build
of the same sources. Used by tests/test_interrupted.py (fixed points) and bench/killtest.py
(random)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from buildutil import NOT_REPRODUCIBLE, bpfbuild, bpfbuild_command, copy_project

EDITS = {
    # name: (file, old text, new text); each changes some outputs
    "bpf": (
        "src/alpha.bpf.c",
        "__sync_fetch_and_add(count, 1);",
        "__sync_fetch_and_add(count, 2);",
    ),
    "header": ("src/common.h", "#define COMMON_SLOTS 4", "#define COMMON_SLOTS 8"),
    "user": ("src/util.c", '"util ok"', '"util OK"'),
}
SCENARIOS = ("clean", "edit", "revert")
"""clean: kill a build from nothing. edit: build, edit, kill the rebuild. revert: build,
edit, kill the rebuild, undo the edit. Each is followed by a normal build."""
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


@dataclass(frozen=True)
class Kill:
    """One fault: where the build starts from, and when and how it is killed."""

    scenario: str  # one of SCENARIOS
    edit: str  # a key of EDITS (unused for "clean")
    signal: str  # a key of SIGNALS
    after_line: str | None  # kill when a printed line starts with this ...
    delay: float  # ... or, with after_line None, this long after the start; then wait this much

    def describe(self) -> str:
        when = (
            f"after {self.after_line.strip()!r} + {self.delay:.3f} s"
            if self.after_line
            else f"at {self.delay:.3f} s"
        )
        edit = "" if self.scenario == "clean" else f" ({self.edit})"
        return f"{self.scenario}{edit}, {self.signal} {when}"


def project_tree(root: Path) -> dict[str, str]:
    """Every entry of the project, outputs and state included, whatever made it (a tool's
    temporary too), with what a build after a kill must reproduce: a file's sha256, a
    link's text, "folder". Only the names count of the files whose bytes differ between
    two clean builds: .bpfbuild/'s (times, the state database) and NOT_REPRODUCIBLE."""
    tree = {}
    for folder, dirs, files in os.walk(root):  # links to folders are listed, not entered
        for name in [*dirs, *files]:
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                tree[relative] = f"link to {os.readlink(path)}"
            elif path.is_dir():
                tree[relative] = "folder"
            elif relative.startswith(".bpfbuild/") or name.endswith(NOT_REPRODUCIBLE):
                tree[relative] = "file"
            else:
                tree[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def tree_differences(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    """What differs between two project_tree()s, one line per entry."""
    return [
        f"{path} differs from a clean build"
        if path in found and path in expected
        else f"{path} {'missing' if path in expected else 'extra'} ({found.get(path)})"
        for path in sorted(set(expected) | set(found))
        if expected.get(path) != found.get(path)
    ]


def edit_sources(root: Path, edit: str, undo: bool = False) -> None:
    path, old, new = EDITS[edit]
    source = root / path
    text = source.read_text()
    before, after = (new, old) if undo else (old, new)
    assert before in text, f"{before!r} not in {source}"
    source.write_text(text.replace(before, after))


def _must_build(root: Path, *args: str) -> None:
    run = bpfbuild(root, "build", *args)
    if run.returncode != 0:
        raise AssertionError(f"a normal build failed:\n{run.describe()}")


class KillLab:
    """A copy of tests/projects/multi in workdir, always at the same path (debug info
    names it), with the clean-build outputs of each source state to compare with."""

    def __init__(self, workdir: Path, edits: tuple[str, ...] = tuple(EDITS), jobs: int = 2) -> None:
        self.workdir = workdir
        self.edits = edits
        self.jobs = jobs
        self.root = workdir / "multi"
        self.snapshot = workdir / "built"  # output/ and .bpfbuild/ of a full build
        self.references: dict[str, dict[str, str]] = {}
        self.last_interrupted = False
        """Whether the last killed build ended by the kill rather than by finishing."""
        self.durations: dict[str, float] = {}
        self._reset_sources()
        for edit in (None, *edits):
            self._clean()
            if edit:
                edit_sources(self.root, edit)
            started = time.monotonic()
            _must_build(self.root, f"-j{jobs}")
            self.durations[edit or "original"] = time.monotonic() - started
            self.references[edit or "original"] = project_tree(self.root)
            if edit:
                edit_sources(self.root, edit, undo=True)
            else:
                self.snapshot.mkdir()
                for name in ("output", ".bpfbuild"):
                    shutil.copytree(self.root / name, self.snapshot / name, symlinks=True)

    def measure_rebuilds(self) -> None:
        """Also time the build after each edit (from a complete build): durations[edit]
        becomes that time, the window a random kill after an edit should fall in."""
        for edit in self.edits:
            self._reset_sources()
            self._restore_built()
            edit_sources(self.root, edit)
            started = time.monotonic()
            _must_build(self.root, f"-j{self.jobs}")
            self.durations[edit] = time.monotonic() - started

    def _reset_sources(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        copy_project("multi", self.workdir)

    def _clean(self) -> None:
        for name in ("output", ".bpfbuild"):
            shutil.rmtree(self.root / name, ignore_errors=True)

    def _restore_built(self) -> None:
        self._clean()
        for name in ("output", ".bpfbuild"):
            shutil.copytree(self.snapshot / name, self.root / name, symlinks=True)

    def run(self, kill: Kill) -> list[str]:
        """Inflict one kill, rebuild, and return what is wrong (empty: all good)."""
        self._reset_sources()
        if kill.scenario == "clean":
            self._clean()
        else:
            self._restore_built()
            edit_sources(self.root, kill.edit)
        notes = self._start_and_kill(kill)
        if kill.scenario == "revert":
            edit_sources(self.root, kill.edit, undo=True)
        expected = self.references["original" if kill.scenario != "edit" else kill.edit]

        problems = notes
        rebuild = bpfbuild(self.root, "build", f"-j{self.jobs}")
        if rebuild.returncode != 0 or "Traceback" in rebuild.output:
            return [f"the build after the kill failed:\n{rebuild.describe()}"]
        # every file, not only the outputs bpfbuild knows: a tool's temporary counts too
        problems += tree_differences(expected, project_tree(self.root))
        # the build graph's state must say "nothing to do", not only the no-op stamp
        (self.root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
        again = bpfbuild(self.root, "build", f"-j{self.jobs}")
        if again.returncode != 0 or again.stdout:
            problems.append(f"the next build was not a no-op:\n{again.describe()}")
        return problems

    def _start_and_kill(self, kill: Kill) -> list[str]:
        """Start the build in its own process group, kill the group as told; notes on
        how it ended (a SIGINT'ed bpfbuild that does not exit is a problem)."""
        process = subprocess.Popen(
            [*bpfbuild_command(), "build", f"-j{self.jobs}"],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        notes = []
        try:
            if kill.after_line is not None:
                seen = False
                for line in process.stdout:
                    if line.startswith(kill.after_line):
                        seen = True
                        break
                if not seen:
                    notes.append(
                        f"the build never printed {kill.after_line.strip()!r}: "
                        "nothing was killed there"
                    )
            time.sleep(kill.delay)
            try:
                os.killpg(process.pid, SIGNALS[kill.signal])
            except ProcessLookupError:
                pass  # the build was already over
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return [f"bpfbuild did not exit within 30 s of {kill.signal}"]
            self.last_interrupted = process.returncode != 0
            return notes
        finally:
            process.stdout.close()
            process.stderr.close()
            # a SIGINT leaves the tools it started to exit on their own: wait for the group
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.killpg(process.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
