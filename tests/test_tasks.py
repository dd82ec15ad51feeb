"""The steps of a project and their doit task dicts: paths, compiler flags per arch,
depfile deps, link flags, environment overrides and what each step's config covers."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import copy_project, require_host
from doit.task import Task

from bpfbuild.arch import ARCHES, Arch, get_arch, host_arch
from bpfbuild.pipeline.actions import LinkArgs
from bpfbuild.pipeline.layout import Layout
from bpfbuild.pipeline.project import load_project
from bpfbuild.pipeline.search import NothingShadows
from bpfbuild.pipeline.state import ConfigChanged, TargetsAsRecorded
from bpfbuild.pipeline.steps import Step, step_line
from bpfbuild.pipeline.tasks import StepBuilder, project_steps, project_tasks, to_doit
from bpfbuild.pipeline.toolchain import Libbpf, Tool, Toolchain, find_toolchain

HOST = host_arch()


def fake_toolchain(arch: Arch) -> Toolchain:
    """A toolchain that is never run: for pure checks of the commands."""
    return Toolchain(
        arch=arch,
        clang=Tool("clang", "/opt/llvm/bin/clang", "14.0.6"),
        bpftool=Tool("bpftool", "/opt/bin/bpftool", "7.3.0"),
        cc=Tool("cc", f"/usr/bin/{arch.gnu_triplet}-gcc", "12.2"),
        libbpf=Libbpf("1.3.0", ["-I/opt/libbpf/include"], ["-lbpf"], ["-lbpf", "-lelf", "-lz"]),
        strip=None,
    )


def steps_by_id(builder: StepBuilder) -> dict[str, Step]:
    return {step.id: step for step in builder.steps()}


def argv_of(step: Step) -> list[str]:
    """The (first) command a step runs."""
    return list(step.commands[0].argv)


def contains_run(argv: list[str], run: list[str]) -> bool:
    """True when run appears in argv as consecutive items."""
    return any(argv[i : i + len(run)] == run for i in range(len(argv) - len(run) + 1))


@pytest.fixture(scope="module")
def host_toolchain(tmp_path_factory: pytest.TempPathFactory) -> Toolchain:
    return find_toolchain(HOST, tmp_path_factory.mktemp("state"))


def test_every_path_is_absolute(multi_source: Path, host_toolchain: Toolchain) -> None:
    steps = list(project_steps(load_project(multi_source), [host_toolchain]))
    assert steps
    for step in steps:
        for path in [*step.outputs, *step.inputs]:
            assert Path(path).is_absolute(), (step.id, path)


def test_no_target_is_a_partial_file(multi_source: Path, host_toolchain: Toolchain) -> None:
    """Tools write OUTPUT.partial, renamed on success: doit must never track a .partial."""
    for step in project_steps(load_project(multi_source), [host_toolchain]):
        for target in step.outputs:
            assert not target.endswith(".partial"), target
        for command in step.every_command:
            argv = command.argv
            outputs = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word in ("-o", "-MF")]
            assert all(o.endswith(".partial") for o in outputs), command


def test_a_step_as_a_doit_task(multi_source: Path, host_toolchain: Toolchain) -> None:
    """to_doit: doit's group and name from the id, the step's parts under doit's keys,
    its config first among the up-to-date checks, then for a compile the check of the
    paths that would hide its headers, and the outputs' check last."""
    project = load_project(multi_source)
    builder = StepBuilder(project, host_toolchain)
    step = builder.bpf_compile(project.bpf_objects["alpha"])
    task = to_doit(step)
    assert (task["basename"], task["name"]) == ("bpf", f"{HOST.name}/alpha")
    assert task["file_dep"] == list(step.inputs) and task["targets"] == list(step.outputs)
    assert task["task_dep"] == list(step.order_only)
    config, shadows, recorded = task["uptodate"]
    assert isinstance(config, ConfigChanged) and config.config == step.config
    assert isinstance(shadows, NothingShadows)
    assert shadows.source == str(multi_source / "src/alpha.bpf.c")
    assert isinstance(recorded, TargetsAsRecorded)
    assert task["title"](Task(step.id, None, meta=task["meta"])) == "  BPF     src/alpha.bpf.c"
    group = to_doit(next(s for s in project_steps(project, [host_toolchain]) if s.kind == "app"))
    assert group["actions"] is None and group["uptodate"] == []  # runs nothing, records nothing


def test_task_names_and_the_app_group(multi_source: Path, host_toolchain: Toolchain) -> None:
    tasks = {
        f"{t['basename']}:{t['name']}": t
        for t in project_tasks(load_project(multi_source), [host_toolchain])
    }
    arch = HOST.name
    for name in ("alpha", "beta", "gamma"):
        assert f"bpf:{arch}/{name}" in tasks
        assert f"bpfobj:{arch}/{name}" in tasks
        assert f"skel:{arch}/{name}" in tasks
    assert f"vmlinux:{arch}/vmlinux.h" in tasks
    for source in ("src/alpha.c", "src/gamma.c", "src/util.c"):
        assert f"cc:{arch}/{source}" in tasks
    assert f"link:{arch}/beta" not in tasks
    # No compile waits for the PCH, so building one app names it, first.
    pch = f"pch:{arch}/vmlinux.h.pch"
    assert tasks["app:alpha"]["task_dep"] == [pch, f"link:{arch}/alpha"]
    assert tasks["app:gamma"]["task_dep"] == [pch, f"link:{arch}/gamma"]
    # The compiles wait for vmlinux.h through a task that queues them after the PCH.
    assert tasks[f"bpf:{arch}/alpha"]["task_dep"] == [f"order:{arch}/pch-first"]
    assert tasks[f"order:{arch}/pch-first"]["task_dep"] == [f"vmlinux:{arch}/vmlinux.h"]
    assert tasks[f"order:{arch}/pch-first"]["actions"] is None
    link = tasks[f"link:{arch}/alpha"]
    assert link["targets"] == [str(multi_source / "output" / arch / "alpha")]
    archives = host_toolchain.link_libraries(True, [])[1]
    assert any(path.endswith("/libbpf.a") for path in archives), archives
    assert set(link["file_dep"]) == {
        str(Layout(multi_source, arch).user_object(s)) for s in ("src/alpha.c", "src/util.c")
    } | set(archives)


@pytest.mark.parametrize("arch_name", list(ARCHES))
def test_bpf_compile_flags_per_arch(multi_source: Path, arch_name: str) -> None:
    arch = get_arch(arch_name)
    builder = StepBuilder(load_project(multi_source), fake_toolchain(arch))
    argv = builder.bpf_compile_argv(builder.project.bpf_objects["gamma"])
    assert argv[0] == "/opt/llvm/bin/clang"
    assert "-g" in argv  # BTF for CO-RE
    assert "-O2" in argv
    assert contains_run(argv, ["-target", arch.bpf_target])
    assert f"-D__TARGET_ARCH_{arch.target_arch}" in argv
    assert contains_run(argv, ["-idirafter", f"/usr/include/{arch.gnu_triplet}"])
    assert contains_run(argv, ["-idirafter", "/usr/include"])
    assert contains_run(argv, ["-I", f"output/{arch_name}/include"])
    assert "-Isrc" in argv and "-Iinclude" in argv
    assert "-I/opt/libbpf/include" in argv
    assert contains_run(argv, ["-c", "src/gamma.bpf.c"])
    assert contains_run(argv, ["-o", f"output/{arch_name}/bpf/gamma.tmp.bpf.o.partial"])
    assert contains_run(argv, ["-MD", "-MP", "-MF", f"output/{arch_name}/bpf/gamma.bpf.d.partial"])


def test_x86_bpf_argv_on_this_host(multi_source: Path, host_toolchain: Toolchain) -> None:
    """The real command on the host, as the issue spells it."""
    require_host("x86_64", "the command is spelled for x86_64")
    builder = StepBuilder(load_project(multi_source), host_toolchain)
    argv = builder.bpf_compile_argv(builder.project.bpf_objects["alpha"])
    words = shlex.join(argv)
    for flag in (
        "-g",
        "-O2",
        "-target bpfel",
        "-D__TARGET_ARCH_x86",
        "-idirafter /usr/include/x86_64-linux-gnu",
    ):
        assert f" {flag} " in f" {words} ", words


def test_depfile_deps_and_a_deleted_header(multi_source: Path, host_toolchain: Toolchain) -> None:
    """A previous .d names the headers a compile read: they become file_dep, except
    one deleted since, which is dropped rather than breaking the build."""
    layout = Layout(multi_source, HOST.name)
    depfile = layout.bpf_depfile("alpha")
    depfile.parent.mkdir(parents=True)
    depfile.write_text(
        "output/x.tmp.bpf.o.partial: src/alpha.bpf.c src/common.h \\\n"
        "  src/deleted.h /usr/include/bpf/bpf_helpers.h\n\nsrc/common.h:\n\n"
        "src/deleted.h:\n"
    )
    user_depfile = layout.user_depfile("src/alpha.c")
    user_depfile.parent.mkdir(parents=True)
    user_depfile.write_text("x.o: src/alpha.c src/util.h include/version.h src/gone.h\n")
    builder = StepBuilder(load_project(multi_source), host_toolchain)

    bpf = builder.bpf_compile(builder.project.bpf_objects["alpha"])
    assert str(multi_source / "src/alpha.bpf.c") in bpf.inputs
    assert str(multi_source / "src/common.h") in bpf.inputs
    assert "/usr/include/bpf/bpf_helpers.h" in bpf.inputs
    assert not any("deleted.h" in dep for dep in bpf.inputs)
    assert bpf.depfile == str(depfile) and str(depfile) in bpf.outputs

    cc = builder.user_compile("src/alpha.c")
    assert {
        str(multi_source / p) for p in ("src/alpha.c", "src/util.h", "include/version.h")
    } <= set(cc.inputs)
    assert not any("gone.h" in dep for dep in cc.inputs)
    assert cc.depfile == str(user_depfile)

    beta = builder.bpf_compile(builder.project.bpf_objects["beta"])
    assert str(multi_source / "src/common.h") not in beta.inputs  # no .d yet: source only


def pkg_config_libs(*args: str) -> list[str]:
    done = subprocess.run(
        ["pkg-config", *args, "--libs", "libbpf"], capture_output=True, text=True, check=True
    )
    return shlex.split(done.stdout)


def test_static_link_uses_pkg_config_static_libs(
    multi_source: Path, host_toolchain: Toolchain
) -> None:
    builder = StepBuilder(load_project(multi_source), host_toolchain)
    argv = argv_of(builder.link("alpha"))
    assert host_toolchain.cc and argv[0] == host_toolchain.cc.path
    assert "-static" in argv
    static_libs = pkg_config_libs("--static")
    assert contains_run(argv, static_libs), (argv, static_libs)
    assert "-lelf" in static_libs and "-lz" in static_libs
    assert contains_run(argv, ["-o", f"output/{HOST.name}/alpha.partial"])


def test_static_false_links_dynamically(multi_source: Path, host_toolchain: Toolchain) -> None:
    (multi_source / "bpfbuild.toml").write_text("[build]\nstatic = false\n")
    builder = StepBuilder(load_project(multi_source), host_toolchain)
    link = builder.link("alpha")
    argv = argv_of(link)
    assert "-static" not in argv
    assert contains_run(argv, pkg_config_libs())
    assert "-lelf" not in argv  # libbpf's private deps come in through libbpf.so
    assert isinstance(link.args, LinkArgs)
    assert link.args.static is False  # NEEDED entries allowed


def test_toolchain_environment_overrides(
    multi_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, real in (("my-clang", "clang"), ("my-bpftool", "bpftool"), ("my-cc", "cc")):
        target = shutil.which(real, path=os.environ["PATH"] + ":/usr/sbin:/sbin")
        assert target, f"{real} is not installed"
        (bin_dir / name).symlink_to(target)
    monkeypatch.setenv("CLANG", str(bin_dir / "my-clang"))
    monkeypatch.setenv("BPFTOOL", str(bin_dir / "my-bpftool"))
    monkeypatch.setenv("CC", str(bin_dir / "my-cc"))
    monkeypatch.setenv("CFLAGS", "-DFROM_CFLAGS '-DQUOTED=a b'")
    monkeypatch.setenv("LDFLAGS", "-Wl,-z,relro")
    (multi_source / "bpfbuild.toml").write_text('[build]\ncflags = ["-DFROM_TOML"]\n')
    toolchain = find_toolchain(HOST, tmp_path / "state")
    tasks = steps_by_id(StepBuilder(load_project(multi_source), toolchain))
    arch = HOST.name

    bpf = argv_of(tasks[f"bpf:{arch}/alpha"])
    assert bpf[0] == str(bin_dir / "my-clang")
    assert "-DFROM_CFLAGS" not in bpf  # $CFLAGS is for user space only
    assert argv_of(tasks[f"bpfobj:{arch}/alpha"])[0] == str(bin_dir / "my-bpftool")
    assert argv_of(tasks[f"skel:{arch}/alpha"])[0] == str(bin_dir / "my-bpftool")
    assert argv_of(tasks[f"vmlinux:{arch}/vmlinux.h"])[0] == str(bin_dir / "my-bpftool")

    cc = argv_of(tasks[f"cc:{arch}/src/alpha.c"])
    assert cc[0] == str(bin_dir / "my-cc")
    assert "-DQUOTED=a b" in cc
    assert cc.index("-DFROM_CFLAGS") < cc.index("-DFROM_TOML")  # the toml file wins
    link = argv_of(tasks[f"link:{arch}/alpha"])
    assert link[0] == str(bin_dir / "my-cc")
    assert "-Wl,-z,relro" in link


def changed_config(step: Step) -> dict:
    """What a step's config_changed compares between builds."""
    assert step.config is not None
    return dict(step.config)


def test_bpf_cflags_change_only_bpf_tasks(tmp_path: Path) -> None:
    """config_changed of BPF compiles holds bpf_cflags; that of user compiles does not."""
    root = copy_project("multi", tmp_path)  # one folder: the commands name it
    toolchain = fake_toolchain(HOST)
    old = steps_by_id(StepBuilder(load_project(root), toolchain))
    (root / "bpfbuild.toml").write_text('[build]\nbpf_cflags = ["-DFOO"]\n')
    new = steps_by_id(StepBuilder(load_project(root), toolchain))
    arch = HOST.name
    for name in ("alpha", "beta", "gamma"):
        assert changed_config(old[f"bpf:{arch}/{name}"]) != changed_config(
            new[f"bpf:{arch}/{name}"]
        )
        assert "-DFOO" in changed_config(new[f"bpf:{arch}/{name}"])["argv"]
    for kind in ("cc", "link", "bpfobj", "skel"):
        for name in [n for n in old if n.startswith(f"{kind}:")]:
            assert changed_config(old[name]) == changed_config(new[name]), name


def test_tool_version_is_part_of_config_changed(multi_source: Path) -> None:
    project = load_project(multi_source)
    toolchain = fake_toolchain(HOST)
    task = StepBuilder(project, toolchain).bpf_compile(project.bpf_objects["alpha"])
    newer = fake_toolchain(HOST)
    newer.clang = Tool("clang", "/opt/llvm/bin/clang", "18.1.0")
    newer_task = StepBuilder(project, newer).bpf_compile(project.bpf_objects["alpha"])
    assert changed_config(task)["version"] == "14.0.6"
    assert changed_config(task) != changed_config(newer_task)


def test_several_arches_name_the_arch_on_each_line(multi_source: Path) -> None:
    other = next(a for a in ARCHES.values() if a != HOST)
    (multi_source / "bpfbuild.toml").write_text(
        f'[build]\narches = ["{HOST.name}", "{other.name}"]\npch = true\n'
        f'[vmlinux]\n{other.name} = "vmlinux-{other.name}.h"\n'
    )
    (multi_source / f"vmlinux-{other.name}.h").write_text("")  # a [vmlinux] file must exist
    project = load_project(multi_source)
    steps = list(project_steps(project, [fake_toolchain(HOST), fake_toolchain(other)]))
    lines = [step_line(s) for s in steps if s.label]
    assert f"  BPF     src/alpha.bpf.c ({other.name})" in lines
    assert f"  BPF     src/alpha.bpf.c ({HOST.name})" in lines
    app = next(s for s in steps if s.id == "app:alpha")
    assert list(app.order_only) == [
        f"pch:{HOST.name}/vmlinux.h.pch",
        f"pch:{other.name}/vmlinux.h.pch",
        f"link:{HOST.name}/alpha",
        f"link:{other.name}/alpha",
    ]
    copy = next(s for s in steps if s.id == f"vmlinux:{other.name}/vmlinux.h")
    assert copy.inputs == (str(multi_source / f"vmlinux-{other.name}.h"),)  # a header is copied
