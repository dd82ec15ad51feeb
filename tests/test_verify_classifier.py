"""A saved verification report is keyed by the code that classified it: a bpfbuild whose
verdict rules changed verifies again instead of showing the old code's reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import copy_project

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.project import load_project
from bpfbuild.pipeline.tasks import project_steps
from bpfbuild.pipeline.toolchain import find_toolchain
from bpfbuild.verify import steps as verify_steps

PACKAGE = Path(verify_steps.__file__).resolve().parent.parent


@pytest.fixture
def classifier_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the classifying packages (verify/, vm/), read by classifier_key."""
    for folder in ("verify", "vm"):
        shutil.copytree(PACKAGE / folder, tmp_path / folder)
    monkeypatch.setattr(verify_steps, "_CLASSIFIER_FOLDERS", (tmp_path / "verify", tmp_path / "vm"))
    verify_steps.classifier_key.cache_clear()
    yield tmp_path
    verify_steps.classifier_key.cache_clear()


@pytest.mark.parametrize("source", ["verify/log.py", "verify/results.py", "vm/console.py"])
def test_a_changed_classifier_changes_the_key(classifier_copy: Path, source: str) -> None:
    before = verify_steps.classifier_key()
    with (classifier_copy / source).open("a") as file:
        file.write("\n# a rule changed\n")
    verify_steps.classifier_key.cache_clear()
    assert verify_steps.classifier_key() != before


def test_an_unchanged_classifier_keeps_the_key(classifier_copy: Path) -> None:
    before = verify_steps.classifier_key()
    verify_steps.classifier_key.cache_clear()
    assert verify_steps.classifier_key() == before


def test_every_verification_step_is_keyed_by_the_classifier(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    project = load_project(root)
    toolchain = find_toolchain(host_arch(), root / ".bpfbuild", project)
    steps = project_steps(project, [toolchain], sources=[verify_steps.verification_steps()])
    verifying = [step for step in steps if step.kind == verify_steps.HOST_KIND]
    assert verifying
    for step in verifying:
        assert step.config is not None
        assert step.config["classifier"] == verify_steps.classifier_key(), step.id
