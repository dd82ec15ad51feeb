"""The CI workflow `bpfbuild init` writes: it installs the bpfbuild that made it from the
source pip recorded (never a package of bpfbuild's name from an index), or asks for
BPFBUILD_SOURCE, which overrides either way; it runs with read-only permissions, keeps
no credentials, pins every action by commit, caches bpfbuild's cache and build state,
and zizmor finds nothing of medium or high severity in it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from buildutil import bpfbuild_command, require_tool

from bpfbuild import __version__
from bpfbuild.kernels.spec import is_kernel_spec
from bpfbuild.scaffold import (
    available_templates,
    create_project,
    source_from_direct_url,
    templates_root,
)

TEMPLATES = sorted(t.name for t in available_templates())


def zizmor() -> str:
    found = Path(sys.executable).parent / "zizmor"
    if found.is_file():
        return str(found)
    return require_tool("zizmor", install="pip install zizmor; it is in the test extras")


SOURCES = {"no source": None, "git": f"bpfbuild @ git+https://github.com/o/bpfbuild@{'0' * 40}"}
"""The two shapes of the workflows: BPFBUILD_SOURCE asked for, or a recorded source."""


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("workflows")
    made = {}
    for template in TEMPLATES:
        create_project(folder / template, f"my_{template}", template, force=False)
        made[template] = folder / template / ".github" / "workflows" / "ci.yml"
    return made


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_zizmor_finds_nothing_medium_or_high(tmp_path: Path, template: str, source: str) -> None:
    tool = zizmor()
    create_project(tmp_path / template, f"my_{template}", template, False, SOURCES[source])
    every = sorted(str(p) for p in (tmp_path / template / ".github" / "workflows").glob("*.yml"))
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


COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "ab" * 32
DIRECT_URLS = [
    # (case, direct_url.json or None when pip recorded none, the requirement CI installs)
    (
        "git",
        {"url": "https://github.com/o/bpfbuild", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
        f"bpfbuild @ git+https://github.com/o/bpfbuild@{COMMIT}",
    ),
    (
        "git at a tag",
        {
            "url": "https://example.org/bpfbuild.git",
            "vcs_info": {"vcs": "git", "commit_id": COMMIT, "requested_revision": "v0.1"},
        },
        f"bpfbuild @ git+https://example.org/bpfbuild.git@{COMMIT}",
    ),
    (
        "git in a subfolder",
        {
            "url": "https://github.com/o/tools",
            "vcs_info": {"vcs": "git", "commit_id": COMMIT},
            "subdirectory": "bpfbuild",
        },
        f"bpfbuild @ git+https://github.com/o/tools@{COMMIT}#subdirectory=bpfbuild",
    ),
    (
        "archive with its hash",
        {
            "url": "https://example.org/dl/bpfbuild-0.1.0-py3-none-any.whl",
            "archive_info": {"hashes": {"sha256": SHA256}, "hash": f"sha256={SHA256}"},
        },
        f"bpfbuild @ https://example.org/dl/bpfbuild-0.1.0-py3-none-any.whl#sha256={SHA256}",
    ),
    (
        "archive with the old hash key",
        {"url": "https://example.org/b.tar.gz", "archive_info": {"hash": f"sha256={SHA256}"}},
        f"bpfbuild @ https://example.org/b.tar.gz#sha256={SHA256}",
    ),
    ("archive without a hash", {"url": "https://example.org/b.whl", "archive_info": {}}, None),
    (
        "archive of md5 only",
        {"url": "https://example.org/b.whl", "archive_info": {"hashes": {"md5": "ab" * 16}}},
        None,
    ),
    (
        "wheel file on the machine",
        {"url": "file:///tmp/bpfbuild.whl", "archive_info": {"hashes": {"sha256": SHA256}}},
        None,
    ),
    (
        "clone on the machine",
        {"url": "file:///src/bpfbuild", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
        None,
    ),
    (
        "plain http",
        {"url": "http://example.org/b.whl", "archive_info": {"hashes": {"sha256": SHA256}}},
        None,
    ),
    (
        "git over ssh",
        {"url": "ssh://git@github.com/o/b", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
        None,
    ),
    (
        "git without its commit",
        {"url": "https://github.com/o/b", "vcs_info": {"vcs": "git", "commit_id": "main"}},
        None,
    ),
    (
        "a quote in the URL",
        {"url": "https://x.org/a'b", "vcs_info": {"vcs": "git", "commit_id": COMMIT}},
        None,
    ),
    ("folder", {"url": "file:///src/bpfbuild", "dir_info": {}}, None),
    ("editable", {"url": "file:///src/bpfbuild", "dir_info": {"editable": True}}, None),
    ("not JSON", "{", None),
    ("absent", None, None),
]


def installed_from(tmp_path: Path, direct_url: object) -> dict[str, str]:
    """The environment of a `bpfbuild` whose distribution metadata (a dist-info found
    first on PYTHONPATH) has this direct_url.json (None: none, as pip writes for an
    install from an index)."""
    dist_info = tmp_path / "metadata" / f"bpfbuild-{__version__}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: bpfbuild\nVersion: {__version__}\n"
    )
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (dist_info / "direct_url.json").write_text(text)
    return {**os.environ, "PYTHONPATH": str(dist_info.parent)}


@pytest.mark.parametrize(
    ("direct_url", "requirement"),
    [case[1:] for case in DIRECT_URLS],
    ids=[case[0] for case in DIRECT_URLS],
)
def test_init_installs_the_source_bpfbuild_came_from(
    tmp_path: Path, direct_url: object, requirement: str | None
) -> None:
    """`bpfbuild init` writes the source pip recorded for the running bpfbuild (PEP 610),
    when CI can fetch those very bytes; else the workflows' first step asks for
    BPFBUILD_SOURCE, which overrides the recorded source either way."""
    env = installed_from(tmp_path, direct_url)
    done = subprocess.run(
        [*bpfbuild_command(), "init", "--name", "mine", "mine"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    default = f"'{requirement or ''}'"
    for name in ("ci.yml", "verify-kernels.yml"):
        text = (tmp_path / "mine" / ".github" / "workflows" / name).read_text()
        assert (
            f"BPFBUILD_SOURCE: ${{{{ vars.BPFBUILD_SOURCE || secrets.BPFBUILD_SOURCE || {default} }}}}"
            in text
        )
        assert "bpfbuild==" not in text
        first_step = re.search(r"    steps:\n      - name: (.*)\n        if: (.*)\n", text)
        assert first_step, text
        assert first_step[2] == "env.BPFBUILD_SOURCE == ''"
        assert "set the repository variable (or secret) BPFBUILD_SOURCE" in text
    note = "note: its CI installs bpfbuild from the repository variable BPFBUILD_SOURCE"
    assert (note in done.stdout) == (requirement is None), done.stdout


def test_the_check_of_bpfbuild_source_fails_the_first_step() -> None:
    """The step that asks for BPFBUILD_SOURCE, run as GitHub's runner would (bash -e),
    fails with the message GitHub shows as an error."""
    text = (templates_root() / "_common" / "dot-github" / "workflows" / "ci.yml.tmpl").read_text()
    script = re.search(
        r"if: env.BPFBUILD_SOURCE == ''\n        run: \|\n((?:          .*\n)+)", text
    )
    assert script, text
    done = subprocess.run(
        ["bash", "-e", "-c", textwrap.dedent(script[1])], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stdout.startswith("::error title=Set BPFBUILD_SOURCE::bpfbuild is not on PyPI")


RECORDED = [case for case in DIRECT_URLS if case[1] is not None]


@pytest.mark.parametrize(
    ("direct_url", "requirement"), [c[1:] for c in RECORDED], ids=[c[0] for c in RECORDED]
)
def test_source_from_direct_url(direct_url: object, requirement: str | None) -> None:
    text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
    assert source_from_direct_url(text) == requirement


def test_installs_what_bpfbuild_source_names(workflows: dict[str, Path]) -> None:
    text = workflows["tracepoint"].read_text()
    assert "BPFBUILD_SOURCE: ${{ vars.BPFBUILD_SOURCE || secrets.BPFBUILD_SOURCE || " in text
    assert 'pip install "$BPFBUILD_SOURCE" pytest' in text
    assert "{{" + "bpfbuild_source}}" not in text and "{{" + "name}}" not in text


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


def test_each_template_verifies_on_its_kernels(tmp_path: Path) -> None:
    """The kernel matrix of verify-kernels.yml: Debian's stable and LTS kernels, but for
    sched_ext one kernel that has it and one that has not."""
    expected = {"sched_ext": ("debian:7.3", "debian:6.12")}
    for template in available_templates():
        kernels = expected.get(template.name, ("debian:5.10", "debian:6.1", "debian:6.12"))
        assert template.kernels == kernels
        assert all(is_kernel_spec(kernel) for kernel in kernels)
        create_project(tmp_path / template.name, f"my_{template.name}", template.name, False)
        workflow = tmp_path / template.name / ".github" / "workflows" / "verify-kernels.yml"
        options = " ".join(f"--kernel {kernel}" for kernel in kernels)
        assert f"\n  KERNELS: {options}\n" in workflow.read_text()
