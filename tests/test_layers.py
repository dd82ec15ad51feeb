"""The one-way flow the folders show: a stage imports only the stages below it (checked
on the source: imports inside functions and under TYPE_CHECKING count too)."""

from __future__ import annotations

import ast

import pytest
from buildutil import REPO

PACKAGE = REPO / "bpfbuild"

ABOVE = {
    "pipeline": ("bpfbuild.verify", "bpfbuild.vm"),
    "kernels": ("bpfbuild.pipeline", "bpfbuild.verify", "bpfbuild.vm"),
}
"""Per stage (a folder of bpfbuild), the stages above it: it imports none of them."""


def imported_modules(text: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the source of a module of
    package; `from MODULE import NAME` counts as MODULE and as MODULE.NAME (NAME may be
    a module)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def is_within(module: str, stages: tuple[str, ...]) -> bool:
    return any(module == stage or module.startswith(stage + ".") for stage in stages)


@pytest.mark.parametrize("stage", sorted(ABOVE))
def test_a_stage_imports_no_stage_above_it(stage: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / stage).rglob("*.py")):
        package = ".".join(path.relative_to(REPO).parts[:-1])
        for line, module in imported_modules(path.read_text(), package):
            if is_within(module, ABOVE[stage]):
                wrong.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    assert wrong == []


def test_every_kind_of_import_is_seen() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import bpfbuild.vm.qemu\n"
        "from .. import verify\n"
        "if TYPE_CHECKING:\n"
        "    from ..vm.targets import VerifyPlan\n"
        "def f():\n"
        "    from ..verify.run import run_verifier\n"
        "from . import tasks\n"
    )
    modules = {module for _, module in imported_modules(source, "bpfbuild.pipeline")}
    assert {
        "bpfbuild.vm.qemu",
        "bpfbuild.verify",
        "bpfbuild.vm.targets",
        "bpfbuild.verify.run",
        "bpfbuild.pipeline.tasks",
    } <= modules
    assert {m for m in modules if is_within(m, ABOVE["pipeline"])} == {
        "bpfbuild.vm.qemu",
        "bpfbuild.verify",
        "bpfbuild.vm.targets",
        "bpfbuild.vm.targets.VerifyPlan",
        "bpfbuild.verify.run",
        "bpfbuild.verify.run.run_verifier",
    }
    assert not is_within("bpfbuild.vmlinux", ABOVE["pipeline"])  # a name, not the stage
