"""[object.NAME] bpf_cflags, [app.NAME] cflags/ldflags/libs/aliases and [toolchain]
bpftool: validated with file:line, applied to exactly their object or app, part of each
task's up-to-date key, and aliases made, kept and removed as links."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    needs_root,
    require_host,
    require_tool,
    skip_when_unreachable,
)

from bpfbuild.arch import host_arch
from bpfbuild.errors import BpfBuildError
from bpfbuild.pipeline.project import load_project
from bpfbuild.pipeline.tasks import StepBuilder
from bpfbuild.pipeline.toolchain import find_toolchain

V3_FLAGS = 'bpf_cflags = ["-mcpu=v3"]'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project("object_flags", tmp_path)


def _set_config(root: Path, old: str, new: str) -> None:
    path = root / "bpfbuild.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_object_flags_apply_to_that_object_only_and_it_takes_no_pch(project: Path) -> None:
    _set_config(project, "[object.softcount]", "[build]\npch = true\n\n[object.softcount]")
    loaded = load_project(project)
    builder = StepBuilder(loaded, find_toolchain(host_arch(), None, loaded))
    softcount = builder.bpf_compile_argv(loaded.bpf_objects["softcount"])
    hello = builder.bpf_compile_argv(loaded.bpf_objects["hello"])
    # The object's flags come after every common one (bpfbuild's default -mcpu=v3, the
    # [build] ones), so they win.
    common = builder.bpf_flags()
    assert softcount[: len(common) + 1] == [*common, "-mcpu=v3"]
    assert hello[: len(common) + 1] != [*common, "-mcpu=v3"]
    # The PCH was built with [build]'s flags only: an object with its own parses vmlinux.h.
    assert "-include-pch" in hello and "-include-pch" not in softcount


def test_changing_one_objects_flags_rebuilds_that_object_only(project: Path) -> None:
    build(project)
    assert_build_is_noop(project)
    _set_config(project, V3_FLAGS, 'bpf_cflags = ["-mcpu=v2"]')  # other code
    run = build(project)
    assert sorted(run.steps) == [
        ("BPF", "src/softcount.bpf.c"),
        ("GEN", "compile_commands.json"),  # its command changed
        ("GENOBJ", f"output/{ARCH}/bpf/softcount.bpf.o"),
        ("SKEL", f"output/{ARCH}/include/softcount.skel.h"),
    ], run.describe()
    assert_build_is_noop(project)


@needs_root
def test_verifier_rejects_the_object_without_mcpu_v3_and_passes_it_with(project: Path) -> None:
    passed = bpfbuild(project, "verify", "softcount")
    assert passed.returncode == 0, passed.describe()
    (line,) = [ln for ln in passed.stdout.splitlines() if "softcount/count_syscall" in ln]
    assert " passed" in line, passed.stdout
    # The object's -mcpu comes after bpfbuild's default -mcpu=v3, so it wins.
    _set_config(project, V3_FLAGS, 'bpf_cflags = ["-mcpu=v1"]')
    rejected = bpfbuild(project, "verify", "softcount")
    assert rejected.returncode != 0, rejected.describe()
    assert (
        "softcount/count_syscall: rejected by the verifier: invalid access to map value"
        in rejected.output
    ), rejected.describe()


def test_app_flags_compile_shared_sources_apart_and_link_the_apps_libs(project: Path) -> None:
    run = build(project)
    assert {"src/util.c", "loud:src/util.c", "loud:src/loud.c", "src/hello.c"} <= {
        what for kind, what in run.steps if kind == "CC"
    }, run.describe()
    out = project / "output" / ARCH
    assert subprocess.run([out / "hello"], capture_output=True, text=True).stdout == "hello\n"
    # -DSHOUT reaches loud's own util.c object; libm (libs = ["-lm"]) gives sqrt.
    assert subprocess.run([out / "loud"], capture_output=True, text=True).stdout == "HELLO 4\n"
    _set_config(project, 'cflags = ["-DSHOUT"]', 'cflags = ["-DSHOUT", "-O1"]')
    again = build(project)
    assert sorted(again.steps) == [
        ("CC", "loud:src/loud.c"),
        ("CC", "loud:src/util.c"),
        ("GEN", "compile_commands.json"),
        ("LD", f"output/{ARCH}/loud"),
    ], again.describe()


def test_aliases_point_at_their_app_follow_the_config_and_go_with_clean(project: Path) -> None:
    out = project / "output" / ARCH
    run = build(project)
    assert {("LN", f"output/{ARCH}/hi"), ("LN", f"output/{ARCH}/hey")} <= set(run.steps)
    for alias in ("hi", "hey"):
        assert os.readlink(out / alias) == "hello"  # relative, beside the app
        assert subprocess.run([out / alias], capture_output=True, text=True).stdout == "hello\n"
    assert not list(out.glob("*.partial"))
    # A link of the user's, pointing elsewhere, is never touched.
    (out / "mine").symlink_to("/etc/hostname")
    _set_config(project, 'aliases = ["hi", "hey"]', 'aliases = ["hi"]')
    run = build(project)  # the alias is a dead output: removed before any step runs
    assert run.steps == [("RM", f"output/{ARCH}/hey")], run.describe()
    assert not os.path.lexists(out / "hey") and os.readlink(out / "hi") == "hello"
    assert os.readlink(out / "mine") == "/etc/hostname"
    assert_build_is_noop(project)
    # A link replaced by hand is made again.
    (out / "hi").unlink()
    (out / "hi").symlink_to("loud")
    assert build(project).steps == [("LN", f"output/{ARCH}/hi")]
    assert os.readlink(out / "hi") == "hello"
    clean = bpfbuild(project, "clean")
    assert clean.returncode == 0, clean.describe()
    assert not os.path.lexists(out) and Path("/etc/hostname").is_file()


@pytest.mark.parametrize(
    "name, text, message, hint",
    [
        (
            "unknown-object",
            "[object.nothere]\nbpf_cflags = []\n",
            "bpfbuild.toml:1: [object.nothere]: no BPF object named 'nothere'",
            "objects: hello, softcount",
        ),
        (
            "object-flags-type",
            '[object.hello]\nbpf_cflags = "-mcpu=v3"\n',
            "bpfbuild.toml:2: 'object.hello.bpf_cflags' must be an array",
            "object.hello.bpf_cflags",
        ),
        (
            "object-unknown-key",
            "[object.hello]\ncflags = []\n",
            "bpfbuild.toml:2: unknown key 'object.hello.cflags'",
            "valid keys: bpf_cflags",
        ),
        (
            "app-libs-type",
            '[app.hello]\nlibs = ["-lm", 3]\n',
            "bpfbuild.toml:2: 'app.hello.libs' must be a string",
            "app.hello.libs",
        ),
        (
            "alias-not-identifier",
            '[app.hello]\naliases = ["../evil"]\n',
            "bpfbuild.toml:2: alias '../evil' of app 'hello' is not a C identifier",
            "letters, digits",
        ),
        (
            "alias-is-an-app",
            '[app.hello]\naliases = ["loud"]\n',
            "bpfbuild.toml:2: alias 'loud' of app 'hello' collides with app 'loud'",
            "aliases",
        ),
        (
            "alias-is-a-folder",
            '[app.hello]\naliases = ["bpf"]\n',
            "bpfbuild.toml:2: alias 'bpf' of app 'hello' collides with bpfbuild's output folder",
            "aliases",
        ),
        (
            "libbpf-outside",
            '[libbpf]\nsource = "../libbpf"\n',
            "bpfbuild.toml:2: [libbpf] source '../libbpf' is outside the project",
            "inside the project",
        ),
        (
            "libbpf-missing",
            '[libbpf]\nsource = "libbpf"\n',
            "bpfbuild.toml:2: [libbpf] source 'libbpf' is not a folder",
            "git submodule update",
        ),
        (
            "libbpf-not-libbpf",
            '[libbpf]\nsource = "src"\n',
            "bpfbuild.toml:2: [libbpf] source: ",
            "https://github.com/libbpf/libbpf",
        ),
        (
            "toolchain-type",
            "[toolchain]\nbpftool = 7\n",
            "bpfbuild.toml:2: 'toolchain.bpftool' must be a string",
            "toolchain.bpftool",
        ),
    ],
)
def test_bad_settings_are_errors_with_file_line_and_hint(
    tmp_path: Path, name: str, text: str, message: str, hint: str
) -> None:
    root = copy_project("object_flags", tmp_path)
    (root / "bpfbuild.toml").write_text(
        '[project]\nname = "x"\n\n[app.loud]\nbpf = ["src/hello.bpf.c"]\nsources = ["src/loud.c"]\n'
    )
    (root / "bpfbuild.toml").write_text(text + (root / "bpfbuild.toml").read_text())
    with pytest.raises(BpfBuildError) as caught:
        load_project(root)
    assert f"{root}/{message}" in caught.value.message, caught.value.message
    assert hint in (caught.value.hint or ""), caught.value.hint
    # The CLI prints it as one error line and one hint line.
    run = bpfbuild(root, "build")
    assert run.returncode != 0 and "Traceback" not in run.output
    assert run.stderr.startswith("error: ") and "\nhint: " in run.stderr, run.describe()


def test_a_libbpf_tree_too_old_for_core_is_an_error(tmp_path: Path) -> None:
    root = copy_project("object_flags", tmp_path)
    (root / "old/src").mkdir(parents=True)
    (root / "old/src/libbpf.c").write_text("")
    (root / "old/src/libbpf.map").write_text(
        "LIBBPF_0.0.1 {\n};\nLIBBPF_0.5.0 {\n} LIBBPF_0.0.1;\n"
    )
    (root / "bpfbuild.toml").write_text('[libbpf]\nsource = "old"\n')
    with pytest.raises(BpfBuildError) as caught:
        load_project(root)
    assert "bpfbuild.toml:2: [libbpf] source: libbpf 0.5.0" in caught.value.message
    assert "too old for CO-RE" in caught.value.message and "checkout" in caught.value.hint


def test_toolchain_bpftool_is_found_relative_to_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = require_tool("bpftool")
    monkeypatch.delenv("BPFTOOL", raising=False)
    (project / "tools").mkdir()
    wrapper = project / "tools" / "bpftool"
    wrapper.write_text(f'#!/bin/sh\nexec {system} "$@"\n')
    wrapper.chmod(0o755)
    _set_config(
        project,
        "[object.softcount]",
        '[toolchain]\nbpftool = "tools/bpftool"\n\n[object.softcount]',
    )
    loaded = load_project(project)
    assert find_toolchain(host_arch(), None, loaded).bpftool.path == str(wrapper)
    # $BPFTOOL still wins over the project's choice.
    monkeypatch.setenv("BPFTOOL", system)
    assert find_toolchain(host_arch(), None, loaded).bpftool.path == system
    monkeypatch.delenv("BPFTOOL")
    _set_config(project, '"tools/bpftool"', '"tools/none"')
    with pytest.raises(BpfBuildError, match=r"\[toolchain\] bpftool = 'tools/none'"):
        find_toolchain(host_arch(), None, load_project(project))


def test_doctor_warns_about_bpftool_before_7_3_and_not_after(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bpftool 7.5 from bookworm-backports, unpacked into the project (never installed),
    chosen with [toolchain] bpftool: no warning, and its vmlinux.h declares kfuncs."""
    from bpfbuild.kernels.apt import Apt, extract_deb

    monkeypatch.delenv("BPFTOOL", raising=False)
    doctor = bpfbuild(project, "doctor")
    system = next(line for line in doctor.stdout.splitlines() if line.startswith("bpftool:"))
    old = tuple(int(p) for p in system.rsplit("(", 1)[1].rstrip(")").split(".")[:2]) < (7, 3)
    assert ("older than 7.3" in doctor.stdout) == old, doctor.describe()
    require_host("x86_64", "runs bookworm-backports' amd64 bpftool")
    with skip_when_unreachable("bpftool from bookworm-backports"):
        apt = Apt(["bookworm-backports"], "amd64")
        version = apt.candidate("bpftool")
        assert version, "bookworm-backports has no bpftool for amd64"
        deb = apt.download("bpftool", version, tmp_path / "debs")
    extract_deb(deb, tmp_path / "bpftool", ["./usr/sbin/bpftool"])
    (project / "tools").mkdir()
    shutil.copy(tmp_path / "bpftool/usr/sbin/bpftool", project / "tools" / "bpftool")
    _set_config(
        project,
        "[object.softcount]",
        '[toolchain]\nbpftool = "tools/bpftool"\n\n[object.softcount]',
    )
    doctor = bpfbuild(project, "doctor")
    assert f"bpftool:    {project}/tools/bpftool (7." in doctor.stdout, doctor.describe()
    assert "older than 7.3" not in doctor.stdout
    if Path("/sys/kernel/btf/vmlinux").is_file():
        build(project)
        header = (project / "output" / ARCH / "include" / "vmlinux.h").read_text()
        assert "extern struct task_struct *bpf_task_from_pid(" in header


def test_list_shows_the_settings(project: Path) -> None:
    listing = bpfbuild(project, "list")
    assert listing.returncode == 0, listing.describe()
    for line in (
        "  aliases:     hi, hey",
        "  cflags:      -DSHOUT",
        "  libs:        -lm",
        "  bpf_cflags:  -mcpu=v3",
        "libbpf: the system's, through pkg-config",
    ):
        assert line in listing.stdout.splitlines(), listing.stdout
