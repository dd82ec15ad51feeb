"""Every `bpfbuild init` template makes a project that builds, verifies and passes its
own tests in the running kernel: `bpfbuild init --template T`, then `bpfbuild test`.

The projects' tests skip what this kernel lacks (kprobes, fentry): here we check that
they do so with the reason, rather than pass without testing anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import ARCH, BPF_SKIP_REASON, REPO, bpfbuild_command, require_template_kernels

from bpfbuild.pipeline.layout import Layout
from bpfbuild.scaffold import available_templates, create_project
from bpfbuild.testing.libbpf import BpfObject, BpfUnsupportedError

pytestmark = pytest.mark.slow

REQUIRED_TEMPLATES = {
    "tracepoint",
    "xdp",
    "tc",
    "socket",
    "uprobe",
    "iter",
    "perf",
    "kprobe",
    "fentry",
    "sched_ext",
}
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")
SCHED_EXT = Path("/sys/kernel/sched_ext")
ENVIRONMENT_SKIPS = re.compile(
    "|".join(
        map(
            re.escape,
            (
                "kernel has no",  # kprobes, uprobes, BTF, the cpu-clock perf event
                "despite privileges",  # fentry refused with EPERM as root
                "not supported",  # ENOTSUPP, EOPNOTSUPP
                "nothing to explain",  # a test of the loader's message when a feature is missing
                "tracefs",
                "perf_event_open",
                "network namespace",
                "unshare",
                "maps no shared libc",
            ),
        )
    )
)
"""Skip reasons that name a missing kernel feature or sandbox limit, not a broken test."""


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bpfbuild_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"


def skip_reasons(pytest_output: str) -> list[str]:
    """The `SKIPPED [n] where: reason` lines of pytest's -ra summary."""
    return [line for line in pytest_output.splitlines() if line.startswith("SKIPPED [")]


def fentry_refusal(root: Path, name: str) -> str | None:
    """Why this kernel refuses the fentry project's programs, or None if it loads them."""
    with BpfObject.open(Layout(root, ARCH).bpf_object(name)) as obj:
        try:
            obj.load()
        except BpfUnsupportedError as exc:
            return exc.message
    return None


def test_init_list_shows_every_template(tmp_path: Path) -> None:
    done = run("init", "--list", cwd=tmp_path)
    assert done.returncode == 0, describe(done)
    listed = {line.split()[0]: line.split(maxsplit=1)[1] for line in done.stdout.splitlines()}
    assert REQUIRED_TEMPLATES <= listed.keys()
    assert listed.keys() == {template.name for template in available_templates()}
    assert all(listed.values()), "every template has a description"


@pytest.mark.parametrize("template", sorted(t.name for t in available_templates()))
def test_template_builds_verifies_and_passes_its_tests(template: str, tmp_path: Path) -> None:
    name = f"my_{template}"  # not the template's name: the files must use {{name}} throughout
    root = tmp_path / name
    done = run("init", "--template", template, str(root), cwd=tmp_path)
    assert done.returncode == 0, describe(done)
    for path in (
        f"src/{name}.bpf.c",
        f"src/{name}.c",
        f"tests/test_{name}.py",
        "README.md",
        "bpfbuild.toml",
        ".gitignore",
        ".github/workflows/ci.yml",
    ):
        assert (root / path).is_file(), f"{template}: {path} is missing"
    for path in root.rglob("*"):
        assert "{{name}}" not in path.name and not path.name.endswith(".tmpl"), path
        if path.is_file():
            assert "{{name}}" not in path.read_text(), f"{path} keeps a placeholder"
    require_template_kernels(template)

    if BPF_SKIP_REASON is not None:
        done = run("build", cwd=root)
        assert done.returncode == 0, describe(done)
        pytest.skip(f"{BPF_SKIP_REASON} (verify and the project's tests load programs)")

    done = run("test", "--", "-v", cwd=root)  # -v: one line per test, with its outcome
    output = done.stdout + done.stderr
    assert done.returncode == 0, describe(done)
    outcomes = dict(
        re.findall(r"^tests/test_\w+\.py::(\S+) (PASSED|SKIPPED|FAILED|ERROR)", output, re.M)
    )
    assert "PASSED" in outcomes.values(), describe(done)
    assert set(outcomes.values()) <= {"PASSED", "SKIPPED"}, describe(done)
    reasons = skip_reasons(output)
    unexplained = [line for line in reasons if not ENVIRONMENT_SKIPS.search(line)]
    assert not unexplained, describe(done)

    if template == "kprobe" and not KPROBE_PMU.exists():
        assert outcomes["test_programs_load"] == "PASSED", describe(done)
        assert outcomes["test_reports_unlinks_with_their_result"] == "SKIPPED", describe(done)
        assert any("kernel has no kprobe support" in line for line in reasons), describe(done)
    if template == "sched_ext" and not SCHED_EXT.exists():
        # What can be checked without sched_ext is, from the object's ELF and BTF.
        for test in (
            "test_every_callback_is_a_struct_ops_program",
            "test_the_ops_struct_points_each_callback_at_its_program",
            "test_what_the_loader_reads_and_sets",
            "test_loader_says_when_the_kernel_has_no_sched_ext",
        ):
            assert outcomes[test] == "PASSED", describe(done)
        assert outcomes["test_loader_schedules_until_interrupted"] == "SKIPPED", describe(done)
        assert any("this kernel has no sched_ext" in line for line in reasons), describe(done)
        assert "5 of 5 programs verified on no kernel at all" in output, describe(done)
    if template == "fentry":
        refusal = fentry_refusal(root, name)
        if refusal is not None:
            assert outcomes["test_reports_unlinks_with_their_result"] == "SKIPPED", describe(done)
            assert any(refusal in line for line in reasons), describe(done)


PYTHON_CACHES = {"__pycache__", ".pytest_cache"}
"""Left by running a project's tests (the repository's own .gitignore ignores them)."""
REGENERATE = (
    "regenerate it: rm -rf examples/execsnoop && bpfbuild init examples/execsnoop --name execsnoop"
)


def built_names(project: Path) -> set[str]:
    """What the project's .gitignore ignores, which is what a build makes there: the
    template's .gitignore names folders and files at the project's top."""
    names = set()
    for line in (project / ".gitignore").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"/[\w.-]+/?", line), f"{line!r}: this test reads /NAME lines only"
            names.add(line.strip("/"))
    return names


def project_files(root: Path) -> dict[str, bytes]:
    """Every file of a project but what a build or its tests make."""
    ignored = built_names(root)
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.relative_to(root).parts[0] not in ignored
        and not PYTHON_CACHES & set(path.relative_to(root).parts)
    }


def test_execsnoop_example_is_the_init_output(tmp_path: Path) -> None:
    """examples/execsnoop is `bpfbuild init --name execsnoop`, kept in sync."""
    create_project(tmp_path / "execsnoop", "execsnoop", "tracepoint", force=False)
    example = project_files(REPO / "examples" / "execsnoop")
    assert example == project_files(tmp_path / "execsnoop"), REGENERATE


def test_a_built_example_is_still_the_init_output(tmp_path: Path) -> None:
    """The README's first command builds the example where it is; what the build leaves
    (output/, .bpfbuild/, compile_commands.json) is what the template's .gitignore
    ignores, so the example still compares equal to the init output."""
    built = tmp_path / "built"
    shutil.copytree(REPO / "examples" / "execsnoop", built)
    done = run("build", cwd=built)
    assert done.returncode == 0, describe(done)
    assert {"output", ".bpfbuild", "compile_commands.json"} <= {p.name for p in built.iterdir()}
    assert built_names(built) == {"output", ".bpfbuild", "compile_commands.json"}
    create_project(tmp_path / "execsnoop", "execsnoop", "tracepoint", force=False)
    assert project_files(built) == project_files(tmp_path / "execsnoop"), REGENERATE
