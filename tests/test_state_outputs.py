"""Outputs of steps that no longer exist are removed (ninja's dead outputs), at the start
of a build, each said in one kbuild line; a build of some apps or arches removes
nothing of the others; nothing is removed through a link or outside output/; a kill at
any moment of it, then a build, gives a clean build's bytes. And the compile database
is checked like every other output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    REPO,
    Run,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    output_hashes,
    steps_of,
)

from bpfbuild.pipeline.names import OUTPUTS_NAME

OUT = f"output/{ARCH}"


def removed(run: Run) -> set[str]:
    """What a build says it removed (`  RM      PATH` lines)."""
    return steps_of(run, "RM")


def clean_build(root: Path) -> Run:
    assert bpfbuild(root, "clean").returncode == 0
    return bpfbuild(root, "build")


def assert_clean_build_bytes(root: Path) -> None:
    built = output_hashes(root)
    assert_build_is_noop(root)
    run = clean_build(root)
    assert run.returncode == 0, run.describe()
    assert built == output_hashes(root)


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    root = copy_project("multi", tmp_path)
    build(root)
    return root


BETA_OUTPUTS = {
    f"{OUT}/bpf/beta.tmp.bpf.o",
    f"{OUT}/bpf/beta.bpf.d",
    f"{OUT}/bpf/beta.bpf.o",
    f"{OUT}/include/beta.skel.h",
}


def test_a_removed_bpf_source_takes_its_object_and_skeleton(multi: Path) -> None:
    (multi / "src/beta.bpf.c").unlink()
    run = build(multi)
    assert removed(run) == BETA_OUTPUTS, run.describe()
    assert f"  RM      {OUT}/include/beta.skel.h\n" in run.stdout
    assert not any((multi / path).exists() for path in BETA_OUTPUTS)
    assert_clean_build_bytes(multi)


def test_a_skeleton_still_included_after_its_source_is_removed(tmp_path: Path) -> None:
    """The reported case: alpha.c includes beta.skel.h; src/beta.bpf.c is removed. The
    old skeleton used to stay in output/ and alpha linked against it, where a clean
    build fails. Now the build fails as a clean build does."""
    root = copy_project("multi", tmp_path)
    loader = root / "src/alpha.c"
    loader.write_text(
        loader.read_text().replace(
            '#include "alpha.skel.h"', '#include "alpha.skel.h"\n#include "beta.skel.h"'
        )
    )
    build(root)
    (root / "src/beta.bpf.c").unlink()
    run = bpfbuild(root, "build")
    assert run.returncode == 1, run.describe()
    assert f"  RM      {OUT}/include/beta.skel.h" in run.stdout, run.describe()
    assert "beta.skel.h: No such file or directory" in run.stdout, run.describe()
    clean = clean_build(root)
    assert clean.returncode == 1 and "beta.skel.h: No such file or directory" in clean.stdout


def test_a_removed_app_takes_its_executable_and_objects(multi: Path) -> None:
    """Without src/gamma.c, gamma is an object with no app: its executable and its
    loader's object go; its BPF object and skeleton stay (their steps still exist)."""
    (multi / "src/gamma.c").unlink()
    run = build(multi)
    assert removed(run) == {
        f"{OUT}/gamma",
        f"{OUT}/user/src__gamma.c.o",
        f"{OUT}/user/src__gamma.c.d",
    }, run.describe()
    assert (multi / f"{OUT}/include/gamma.skel.h").is_file()
    assert_clean_build_bytes(multi)


def test_a_removed_alias_and_objects_of_an_app_that_lost_its_flags(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    config = root / "bpfbuild.toml"
    original = config.read_text()
    config.write_text(original + '\n[app.alpha]\naliases = ["alpha2"]\ncflags = ["-DALPHA_OWN"]\n')
    build(root)
    assert (root / f"{OUT}/alpha2").is_symlink()
    assert (root / f"{OUT}/user/alpha/src__alpha.c.o").is_file()
    config.write_text(original)
    run = build(root)
    assert removed(run) == {
        f"{OUT}/alpha2",
        f"{OUT}/user/alpha/src__alpha.c.o",
        f"{OUT}/user/alpha/src__alpha.c.d",
        f"{OUT}/user/alpha/src__util.c.o",
        f"{OUT}/user/alpha/src__util.c.d",
    }, run.describe()
    assert not (root / f"{OUT}/alpha2").is_symlink()
    assert_clean_build_bytes(root)


def test_building_one_app_removes_nothing_of_the_others(multi: Path) -> None:
    run = build(multi, "alpha")
    assert removed(run) == set()
    (multi / "src/beta.bpf.c").unlink()
    run = build(multi, "gamma")  # beta's outputs are dead: no step makes them
    assert removed(run) == BETA_OUTPUTS, run.describe()
    assert (multi / f"{OUT}/alpha").is_file()
    run = build(multi)  # the compile database, which no app needs, is written now
    assert run.steps == [("GEN", "compile_commands.json")], run.describe()
    assert_clean_build_bytes(multi)


def _two_arches(root: Path, arches: list[str]) -> None:
    config = root / "bpfbuild.toml"
    line = "arches = [" + ", ".join(f'"{a}"' for a in arches) + "]"
    config.write_text(
        f'[project]\nname = "bpfonly"\n\n[build]\n{line}\n\n[vmlinux]\narm64 = "debian:6.1"\n'
    )


@pytest.fixture
def two_arches(tmp_path: Path) -> Path:
    """tests/projects/bpfonly built for the host and arm64 (vmlinux.h of Debian 6.1)."""
    if ARCH != "x86_64":
        pytest.skip("builds arm64 as the other arch, from an x86_64 host")
    root = copy_project("bpfonly", tmp_path)
    _two_arches(root, [ARCH, "arm64"])
    run = bpfbuild(root, "build")
    if run.returncode != 0 and "debian:6.1" in run.output:
        pytest.skip(f"no Debian 6.1 kernel for arm64: {run.output.strip()}")
    assert run.returncode == 0, run.describe()
    return root


def test_a_build_of_one_arch_keeps_the_other_arches_outputs(two_arches: Path) -> None:
    arm64 = output_hashes(two_arches)
    (two_arches / "src/probe.bpf.c").rename(two_arches / "src/renamed.bpf.c")
    run = build(two_arches, "--arch", ARCH)
    assert removed(run) == {
        f"{OUT}/bpf/probe.tmp.bpf.o",
        f"{OUT}/bpf/probe.bpf.d",
        f"{OUT}/bpf/probe.bpf.o",
        f"{OUT}/include/probe.skel.h",
    }, run.describe()
    kept = {path: digest for path, digest in arm64.items() if path.startswith("output/arm64/")}
    assert {p: d for p, d in output_hashes(two_arches).items() if p in kept} == kept
    run = build(two_arches)  # now arm64's probe goes too
    assert removed(run) == {
        "output/arm64/bpf/probe.tmp.bpf.o",
        "output/arm64/bpf/probe.bpf.d",
        "output/arm64/bpf/probe.bpf.o",
        "output/arm64/include/probe.skel.h",
    }, run.describe()


def test_a_removed_arch_leaves_its_folder_but_not_its_outputs(two_arches: Path) -> None:
    _two_arches(two_arches, [ARCH])
    run = build(two_arches)
    gone = removed(run)
    assert gone and all(path.startswith("output/arm64/") for path in gone), run.describe()
    assert (two_arches / "output/arm64").is_dir()
    assert not [p for p in (two_arches / "output/arm64").rglob("*") if not p.is_dir()]
    assert_clean_build_bytes(two_arches)


# -- never through a link, never outside output/ -------------------------------------


def _record(root: Path) -> dict:
    return json.loads((root / ".bpfbuild" / OUTPUTS_NAME).read_text())


def _write_record(root: Path, record: dict) -> None:
    (root / ".bpfbuild" / OUTPUTS_NAME).write_text(json.dumps(record))


def test_the_record_names_what_the_build_steps_make(multi: Path) -> None:
    outputs = _record(multi)["outputs"]
    assert outputs[f"{OUT}/include/beta.skel.h"] == f"skel:{ARCH}/beta"
    assert outputs["compile_commands.json"] == "compdb:compile_commands.json"
    assert set(outputs) == set(output_hashes(multi)) | {
        f"{OUT}/include/vmlinux.h.pch",
        f"{OUT}/bpf/alpha.bpf.d",
        f"{OUT}/bpf/beta.bpf.d",
        f"{OUT}/bpf/gamma.bpf.d",
        "compile_commands.json",
    }


def test_a_dead_output_is_never_removed_through_a_link(multi: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.o").write_text("not bpfbuild's")
    (outside / "linked.o").write_text("not bpfbuild's either")
    (multi / f"{OUT}/elsewhere").symlink_to(outside)
    (multi / f"{OUT}/linked.o").symlink_to(outside / "linked.o")
    (multi / f"{OUT}/was_a_file").mkdir()
    record = _record(multi)
    record["outputs"].update(
        {
            f"{OUT}/elsewhere/kept.o": "bpf:x/old",  # through a linked folder
            f"{OUT}/linked.o": "bpf:x/old",  # a link: removed as a link
            f"{OUT}/was_a_file": "bpf:x/old",  # a folder now: left alone
            "../outside/kept.o": "bpf:x/old",  # outside the project
            str(outside / "kept.o"): "bpf:x/old",
            "src/alpha.bpf.c": "bpf:x/old",  # not an output folder
            f"{OUT}/../../src/util.c": "bpf:x/old",
        }
    )
    _write_record(multi, record)
    (multi / ".bpfbuild/fastpath.stamp").unlink()
    run = build(multi)
    assert removed(run) == {f"{OUT}/linked.o"}, run.describe()
    assert (outside / "kept.o").read_text() == "not bpfbuild's"
    assert (outside / "linked.o").read_text() == "not bpfbuild's either"
    assert (multi / f"{OUT}/was_a_file").is_dir()
    assert (multi / "src/alpha.bpf.c").is_file() and (multi / "src/util.c").is_file()
    assert set(_record(multi)["outputs"]) == set(json.loads(json.dumps(record))["outputs"]) - {
        f"{OUT}/elsewhere/kept.o",
        f"{OUT}/linked.o",
        f"{OUT}/was_a_file",
        "../outside/kept.o",
        str(outside / "kept.o"),
        "src/alpha.bpf.c",
        f"{OUT}/../../src/util.c",
    }


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"[1, 2]", b'{"format": 1, "outputs": [1, 2]}', b"\xff\xfe"],
)
def test_a_damaged_record_removes_nothing_and_is_rewritten(multi: Path, damage: bytes) -> None:
    (multi / ".bpfbuild" / OUTPUTS_NAME).write_bytes(damage)
    (multi / ".bpfbuild/fastpath.stamp").unlink()
    run = build(multi)
    assert run.steps == [], run.describe()
    assert f"{OUT}/include/beta.skel.h" in _record(multi)["outputs"]


# -- killed at any moment ---------------------------------------------------------

KILLED_AT = """
import os, signal, sys
from bpfbuild.pipeline import state

where, count = sys.argv[1], int(sys.argv[2])
calls = 0

def kill_after(function):
    def wrapped(*args, **kwargs):
        global calls
        result = function(*args, **kwargs)
        calls += 1
        if calls == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped

def kill_before(function):
    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    return wrapped

def kill_at_rename(replace):
    def wrapped(source, destination, *args, **kwargs):
        if str(destination).endswith(state.OUTPUTS_NAME):
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(source, destination, *args, **kwargs)
    return wrapped

if where == "removal":
    state.remove_output = kill_after(state.remove_output)
elif where == "record":
    state.replace_record = kill_before(state.replace_record)
else:
    os.replace = kill_at_rename(os.replace)
sys.argv = ["bpfbuild", "build"]
from bpfbuild.cli import main
main()
"""


@pytest.mark.parametrize(
    ("where", "count"),
    [("removal", 1), ("removal", 3), ("removal", 4), ("record", 4), ("rename", 4)],
    ids=[
        "after the first removal",
        "after the third",
        "after the last",
        "before the record",
        "before its rename",
    ],
)
def test_killed_while_removing_dead_outputs(multi: Path, where: str, count: int) -> None:
    """SIGKILL of a real build, in the middle of the removals, before the new record is
    written, or written but not yet renamed over the old one: the next build removes
    what is left (and no temporary stays), and the outputs are a clean build's."""
    (multi / "src/beta.bpf.c").unlink()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT, where, str(count)],
        cwd=multi,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert f"{OUT}/include/beta.skel.h" in _record(multi)["outputs"]  # not yet forgotten
    left = {path for path in BETA_OUTPUTS if (multi / path).exists()}
    assert len(left) == len(BETA_OUTPUTS) - count
    run = build(multi)
    assert removed(run) == left, run.describe()
    assert not any((multi / path).exists() for path in BETA_OUTPUTS)
    assert not [p for p in (multi / ".bpfbuild").iterdir() if p.name.endswith(".partial")]
    assert_clean_build_bytes(multi)


# -- the compile database is an output like the others -----------------------------


def test_a_compile_database_replaced_by_garbage_is_rewritten(multi: Path) -> None:
    database = multi / "compile_commands.json"
    good = database.read_text()
    database.write_text("garbage, not JSON\n")
    run = build(multi)
    assert steps_of(run, "GEN") == {"compile_commands.json"}, run.describe()
    assert database.read_text() == good


def test_a_read_only_compile_database_with_other_content_is_rewritten(multi: Path) -> None:
    database = multi / "compile_commands.json"
    good = database.read_text()
    database.write_text(good.replace('"arguments"', '"args"'))
    database.chmod(0o444)
    run = build(multi)
    assert steps_of(run, "GEN") == {"compile_commands.json"}, run.describe()
    assert database.read_text() == good


def test_a_folder_in_place_of_the_compile_database_is_an_error_with_a_hint(
    multi: Path,
) -> None:
    database = multi / "compile_commands.json"
    database.unlink()
    database.mkdir()
    (database / "kept").write_text("a user's file")
    run = bpfbuild(multi, "build")
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.output
    assert "compile_commands.json is a folder" in run.output, run.describe()
    assert "hint: " in run.output, run.describe()
    assert (database / "kept").read_text() == "a user's file"
    shutil.rmtree(database)
    run = build(multi)
    assert steps_of(run, "GEN") == {"compile_commands.json"}
    assert json.loads(database.read_text())


def test_every_kind_of_the_builds_own_steps_is_recorded(tmp_path: Path) -> None:
    """OWN_KINDS names every kind of step the build makes (a new kind left out would
    never have its dead outputs removed); the kinds verification adds are not among
    them (its reports belong to the runs that asked for them)."""
    from bpfbuild.arch import host_arch
    from bpfbuild.errors import BpfBuildError
    from bpfbuild.pipeline.libbpf_source import fetch_debian_libbpf
    from bpfbuild.pipeline.project import load_project
    from bpfbuild.pipeline.tasks import OWN_KINDS, project_steps
    from bpfbuild.pipeline.toolchain import find_toolchain
    from bpfbuild.verify.steps import HOST_KIND, RUNNER_KIND, VM_KIND, verification_steps

    try:
        tree = fetch_debian_libbpf()
    except BpfBuildError as err:
        pytest.skip(f"cannot fetch Debian's libbpf source package: {err.message}")
    with_tree = copy_project("libbpf_source", tmp_path)
    shutil.copytree(tree, with_tree / "libbpf")
    kinds: set[str] = set()
    for root in (copy_project("multi", tmp_path), with_tree):
        project = load_project(root)
        toolchain = find_toolchain(host_arch(), root / ".bpfbuild", project)
        kinds |= {step.kind for step in project_steps(project, [toolchain])}
        added = {
            step.kind
            for step in project_steps(project, [toolchain], sources=[verification_steps()])
        }
        assert added - kinds == {RUNNER_KIND, HOST_KIND}
    assert kinds == OWN_KINDS
    assert OWN_KINDS.isdisjoint({RUNNER_KIND, HOST_KIND, VM_KIND})
