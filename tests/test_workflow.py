"""The CI workflow `bpfbuild init` writes: it installs the bpfbuild that made it (or the
project's own source), runs with read-only permissions, keeps no credentials, pins
every action by commit, caches bpfbuild's cache and build state, and zizmor finds
nothing of medium or high severity in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import require_tool

from bpfbuild import __version__
from bpfbuild.scaffold import available_templates, create_project

TEMPLATES = sorted(t.name for t in available_templates())


def zizmor() -> str:
    found = Path(sys.executable).parent / "zizmor"
    if found.is_file():
        return str(found)
    return require_tool("zizmor", install="pip install zizmor; it is in the test extras")


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("workflows")
    made = {}
    for template in TEMPLATES:
        create_project(folder / template, f"my_{template}", template, force=False)
        made[template] = folder / template / ".github" / "workflows" / "ci.yml"
    return made


@pytest.mark.parametrize("template", TEMPLATES)
def test_zizmor_finds_nothing_medium_or_high(workflows: dict[str, Path], template: str) -> None:
    tool = zizmor()
    every = sorted(str(p) for p in workflows[template].parent.glob("*.yml"))
    assert len(every) == 2, every  # ci.yml and verify-kernels.yml
    done = subprocess.run(
        [tool, "--offline", "--persona=auditor", "--format=json", *every],
        capture_output=True,
        text=True,
    )
    findings = json.loads(done.stdout or "[]")
    serious = [f for f in findings if f["determinations"]["severity"] in ("Medium", "High")]
    assert serious == [], json.dumps(serious, indent=1)
    assert done.returncode == 0, done.stdout + done.stderr


def test_installs_the_version_that_made_it_or_the_projects_own(workflows: dict[str, Path]) -> None:
    text = workflows["tracepoint"].read_text()
    assert f"'bpfbuild=={__version__}'" in text
    assert "BPFBUILD_SOURCE: ${{ vars.BPFBUILD_SOURCE || " in text
    assert 'pip install "$BPFBUILD_SOURCE" pytest' in text
    assert "{{" + "bpfbuild_version}}" not in text and "{{" + "name}}" not in text


@pytest.mark.parametrize("name", ["ci.yml", "verify-kernels.yml"])
def test_safe_defaults(workflows: dict[str, Path], name: str) -> None:
    text = (workflows["xdp"].parent / name).read_text()
    assert 'pip install "$BPFBUILD_SOURCE"' in text and "pip install bpfbuild" not in text
    assert re.search(r"^permissions:\n  contents: read\n", text, re.M)
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert len(uses) >= 4
    for action, comment in uses:
        assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+(\.\d+)*", comment), f"{action}: no version comment"
    checkout = text.index("actions/checkout@")
    assert "persist-credentials: false" in text[checkout : checkout + 200]


def test_caches_the_user_cache_and_the_build_state(workflows: dict[str, Path]) -> None:
    text = workflows["iter"].read_text()
    assert text.count("actions/cache@") == 2
    assert "path: ~/.cache/bpfbuild" in text
    assert "BPFBUILD_CACHE_DIR=$HOME/.cache/bpfbuild" in text  # the same folder under sudo
    assert re.search(r"path: \|\n\s+\.bpfbuild\n\s+output\n", text)
    assert "restore-keys:" in text


def test_every_template_gets_the_same_workflow(workflows: dict[str, Path]) -> None:
    texts = {t: path.read_text().replace(f"my_{t}", "NAME") for t, path in workflows.items()}
    assert len(set(texts.values())) == 1
