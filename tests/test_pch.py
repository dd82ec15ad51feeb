"""The precompiled vmlinux.h: objects byte-identical to a build without it, used only
by sources whose first directive includes vmlinux.h."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import ARCH, REPO, build

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.config import PCH_AUTO_MIN
from bpfbuild.pipeline.includes import IncludeScanner
from bpfbuild.pipeline.tasks import PCH_NOT_READY
from bpfbuild.pipeline.toolchain import Tool, pch_keeps_bytes

FALLBACK_NOTE = PCH_NOT_READY
"""What `-v` prints under a compile that does not take the PCH because it is not built yet."""
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/bpfbuild.toml"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n', True),
        ("#include <vmlinux.h>\n", True),
        ('// SPDX\n/* a\n   comment */\n  #  include "vmlinux.h"\n', True),
        ('#define BPF_NO_PRESERVE_ACCESS_INDEX\n#include "vmlinux.h"\n', False),
        ("#include <linux/bpf.h>\n", False),
        ('#include "common.h"\n#include "vmlinux.h"\n', False),
        ("", False),
    ],
)
def test_includes_vmlinux_first(tmp_path: Path, source: str, expected: bool) -> None:
    (tmp_path / "x.bpf.c").write_text(source)
    verdict = IncludeScanner(tmp_path, []).why_not_vmlinux_first("x.bpf.c")
    assert (verdict is None) is expected, verdict


def _set_pch(config: Path, original: str, value: str) -> None:
    if "[build]" in original:
        config.write_text(original.replace("[build]", f"[build]\npch = {value}", 1))
    else:
        config.write_text(original + f"\n[build]\npch = {value}\n")


def _bpf_objects(root: Path) -> dict[str, bytes]:
    folder = root / "output" / ARCH / "bpf"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.o"))}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_pch_objects_are_byte_identical(tmp_path: Path, example: str) -> None:
    root = tmp_path / example
    shutil.copytree(
        REPO / "examples" / example, root, ignore=shutil.ignore_patterns("output", ".bpfbuild")
    )
    config = root / "bpfbuild.toml"
    original = config.read_text()
    _set_pch(config, original, "true")  # the examples have fewer objects than "auto" needs
    # One job: the PCH is ready before any compile, so every object takes it (with
    # more jobs, a compile may run beside the PCH, without it).
    with_pch = build(root, "-v", "-j1")
    if 'clang = "clang-19"' in original:  # toolchain.PCH_SAME_BYTES_CLANG: no PCH
        assert "-include-pch" not in with_pch.stdout, with_pch.describe()
    else:
        assert "-include-pch" in with_pch.stdout, with_pch.describe()
    assert FALLBACK_NOTE not in with_pch.stdout, with_pch.describe()
    objects_with_pch = _bpf_objects(root)

    _set_pch(config, original, "false")
    without_pch = build(root, "-v")
    assert "-include-pch" not in without_pch.stdout, without_pch.describe()
    assert _bpf_objects(root) == objects_with_pch
    assert objects_with_pch, "the example has BPF objects"


def test_source_defining_macros_first_builds_without_pch(tmp_path: Path) -> None:
    root = tmp_path / "macro_first"
    (root / "src").mkdir(parents=True)
    (root / "bpfbuild.toml").write_text('[project]\nname = "macro_first"\n[build]\npch = true\n')
    (root / "src" / "early.bpf.c").write_text(
        "#define BPF_NO_PRESERVE_ACCESS_INDEX\n"
        '#include "vmlinux.h"\n'
        "#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    (root / "src" / "late.bpf.c").write_text(
        '#include "vmlinux.h"\n'
        "#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    run = build(root, "-v", "-j1")  # one job: the PCH is built before any compile
    commands = {
        line.split(" -c ")[1].split()[0]: line
        for line in run.stdout.splitlines()
        if " -c src/" in line
    }
    assert "-include-pch" not in commands["src/early.bpf.c"]
    assert "-include-pch" in commands["src/late.bpf.c"]
    assert (root / "output" / ARCH / "bpf" / "early.bpf.o").is_file()
    # one source takes the PCH: nothing to say during the build (`bpfbuild list` says it)
    assert "note: pch = true" not in run.stderr, run.describe()
    (root / "src" / "late.bpf.c").unlink()
    run = build(root)
    notes = [line for line in run.stderr.splitlines() if line.startswith("note: pch = true")]
    assert len(notes) == 1, run.describe()
    assert notes[0].startswith(
        "note: pch = true, but no source takes the precompiled vmlinux.h: src/early.bpf.c:"
    ), notes


def test_pch_true_with_a_clang_whose_bytes_differ_says_so(tmp_path: Path) -> None:
    clang = shutil.which("clang-19")
    if clang is None:
        pytest.skip("no clang-19 (scripts/setup --clang 19)")
    root = tmp_path / "p"
    (root / "src").mkdir(parents=True)
    (root / "bpfbuild.toml").write_text('[build]\npch = true\n[toolchain]\nclang = "clang-19"\n')
    (root / "src" / "late.bpf.c").write_text(
        '#include "vmlinux.h"\n'
        "#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    run = build(root, "-v")
    assert "-include-pch" not in run.stdout, run.describe()
    assert "note: pch = true: no precompiled vmlinux.h with clang 19" in run.stderr, run.describe()


_TASK_READER = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
char LICENSE[] SEC("license") = "GPL";
__u64 seen_{k};
SEC("tracepoint/sched/sched_process_exec")
int on_exec_{k}(void *ctx)
{{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	seen_{k} = BPF_CORE_READ(task, real_parent, tgid) + {k};
	return 0;
}}
"""


def _task_readers(root: Path, count: int, pch: str = '"auto"') -> Path:
    """A project of `count` BPF objects that read task_struct through CO-RE."""
    (root / "src").mkdir(parents=True)
    (root / "bpfbuild.toml").write_text(f'[project]\nname = "{root.name}"\n[build]\npch = {pch}\n')
    for k in range(count):
        (root / "src" / f"reader{k}.bpf.c").write_text(_TASK_READER.format(k=k))
    return root


@pytest.mark.slow
def test_compiles_run_beside_the_pch_with_identical_objects(tmp_path: Path) -> None:
    """No compile waits for the PCH: on a clean parallel build the first objects are
    compiled while it is built, the later ones with it (it starts first), and every
    object is the same as in a build where all of them took the PCH."""
    count = 4  # PCH_AUTO_MIN: "auto" takes the PCH
    root = _task_readers(tmp_path / "readers", count)
    sequential = build(root, "-j1", "-v")
    assert FALLBACK_NOTE not in sequential.stdout, sequential.describe()
    steps = [kind for kind, _ in sequential.steps]
    assert steps.index("PCH") < steps.index("BPF"), sequential.describe()
    all_with_pch = _bpf_objects(root)

    shutil.rmtree(root / "output")
    shutil.rmtree(root / ".bpfbuild")
    parallel = build(root, "-j2", "-v")
    fallbacks = parallel.stdout.count(FALLBACK_NOTE)
    assert 1 <= fallbacks < count, parallel.describe()
    # -v shows what ran: the compiles that did not wait parse vmlinux.h themselves
    compiles = [line for line in parallel.stdout.splitlines() if " -c src/reader" in line]
    assert len(compiles) == count, parallel.describe()
    assert sum("-include-pch" not in line for line in compiles) == fallbacks, parallel.describe()
    assert _bpf_objects(root) == all_with_pch


def test_compile_takes_the_pch_only_when_its_key_matches(tmp_path: Path) -> None:
    """The key file written after the PCH names the flags, clang and vmlinux.h's
    content; without it, or with another vmlinux.h's, a compile's run takes its
    fallback, which parses vmlinux.h: the same object."""
    from bpfbuild.pipeline.layout import Layout, state_dir
    from bpfbuild.pipeline.project import load_project
    from bpfbuild.pipeline.steps import StepRun
    from bpfbuild.pipeline.tasks import StepBuilder
    from bpfbuild.pipeline.toolchain import find_toolchain

    root = _task_readers(tmp_path / "keyed", 1, pch="true")
    build(root, "-j1")
    layout = Layout(root, ARCH)
    built = layout.bpf_compiled("reader0").read_bytes()
    project = load_project(root)
    builder = StepBuilder(project, find_toolchain(host_arch(), state_dir(root)))
    step = builder.bpf_compile(project.bpf_objects["reader0"])
    assert step.action is not None

    def compile_now() -> bool:
        run = StepRun(step)
        args = run.start()
        assert ("-include-pch" in args.command.argv) is not run.fell_back
        assert step.action(args) is None
        assert layout.bpf_compiled("reader0").read_bytes() == built
        return not run.fell_back

    assert compile_now() is True
    key = layout.vmlinux_pch_key.read_text()
    layout.vmlinux_pch_key.unlink()
    assert compile_now() is False
    flags_key, _ = key.split()
    layout.vmlinux_pch_key.write_text(f"{flags_key} {'0' * 32}\n")
    assert compile_now() is False
    layout.vmlinux_pch_key.write_text(key)
    assert compile_now() is True


@pytest.mark.parametrize(
    ("count", "pch", "expected"),
    [
        (PCH_AUTO_MIN - 1, '"auto"', False),
        (PCH_AUTO_MIN, '"auto"', True),
        (1, "true", True),
        (PCH_AUTO_MIN, "false", False),
    ],
)
def test_pch_auto_needs_enough_sources(
    tmp_path: Path, count: int, pch: str, expected: bool
) -> None:
    """ "auto" builds no PCH for a few sources: it would cost more than it saves."""
    from bpfbuild.pipeline.project import load_project
    from bpfbuild.pipeline.tasks import StepBuilder
    from bpfbuild.pipeline.toolchain import find_toolchain

    root = _task_readers(tmp_path / "auto", count, pch=pch)
    project = load_project(root)
    builder = StepBuilder(project, find_toolchain(host_arch(), None))
    steps = list(builder.steps())
    assert any(s.kind == "pch" for s in steps) is expected
    assert all(builder.uses_pch(o.source) is expected for o in project.bpf_objects.values())
    compiles = [s for s in steps if s.kind == "bpf"]
    assert all((s.fallback is not None) is expected for s in compiles)


@pytest.mark.parametrize(
    ("version", "keeps"), [("14.0.6", True), ("11.0.1", True), ("19.1.7", False), ("", False)]
)
def test_pch_only_with_a_clang_whose_objects_keep_their_bytes(version: str, keeps: bool) -> None:
    """clang 19 orders BTF forward declarations differently with a PCH: no PCH with it."""
    assert pch_keeps_bytes(Tool("clang", "/usr/bin/clang", version)) is keeps


def test_sources_reaching_vmlinux_first_through_a_project_header_take_the_pch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<proj/common.bpf.h> whose first directive includes vmlinux.h (as sched_ext's
    <scx/common.bpf.h>): both sources of a linked object take the PCH (with clang 14),
    and the objects are the bytes of a build without it."""
    monkeypatch.delenv("CLANG", raising=False)
    root = tmp_path / "common_first"
    (root / "src").mkdir(parents=True)
    (root / "include" / "proj").mkdir(parents=True)
    (root / "include" / "proj" / "common.bpf.h").write_text(
        "#ifndef PROJ_COMMON_BPF_H\n#define PROJ_COMMON_BPF_H\n"
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#endif\n'
    )
    (root / "src" / "one.bpf.c").write_text(
        "#include <proj/common.bpf.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    (root / "src" / "two.bpf.c").write_text(
        "#include <proj/common.bpf.h>\n__noinline int helper(int x) { return x + 1; }\n"
    )
    config = root / "bpfbuild.toml"
    original = '[build]\n\n[object.one]\nsources = ["src/two.bpf.c"]\n'
    _set_pch(config, original, "true")
    clang = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout
    if "clang version 14" not in clang:
        pytest.skip("the PCH is taken with clang 14 only (toolchain.PCH_SAME_BYTES_CLANG)")
    with_pch = build(root, "-v", "-j1")
    compiles = [line for line in with_pch.stdout.splitlines() if " -c src/" in line]
    assert len(compiles) == 2 and all("-include-pch" in line for line in compiles), compiles
    objects = _bpf_objects(root)
    _set_pch(config, original, "false")
    build(root)
    assert _bpf_objects(root) == objects
