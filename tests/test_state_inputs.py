"""Inputs are snapshotted, not trusted: a step's record holds the content its tools read
(an input changed while its step ran makes the next build redo the step), and the
change check never trusts an mtime alone (size, mtime, ctime and inode must match a
record older than the file, else the content is compared). Each case is first the
user's story, built for real, with the bytes of a clean build compared."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    output_hashes,
    steps_of,
)

from bpfbuild.pipeline import content, timestamps
from bpfbuild.pipeline.state import (
    CHANGED_WHILE_ITS_STEP_RAN,
    InputContentChecker,
    input_state,
)

ALPHA = "src/alpha.bpf.c"
ALPHA_OLD = "__sync_fetch_and_add(count, 1);"
ALPHA_NEW = "__sync_fetch_and_add(count, 2);"  # the same size: only the content differs


def clean_build_hashes(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The outputs of a clean build of root's current sources (state and outputs go)."""
    clean = bpfbuild(root, "clean", env=env)
    assert clean.returncode == 0, clean.describe()
    build(root, env=env)
    return output_hashes(root)


def assert_clean_build_bytes(root: Path, env: dict[str, str] | None = None) -> None:
    """Every output is what a clean build of the same sources makes, and the build graph
    (not only the no-op stamp) then has nothing to do."""
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    again = build(root, env=env)
    assert again.stdout == "", again.describe()
    built = output_hashes(root)
    assert built == clean_build_hashes(root, env=env)


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the text"
    return text.replace(old, new)


def wrapper(tmp_path: Path, tool: str, name: str, body: str) -> Path:
    """A shell script standing for a compiler ($CLANG, $CC): body runs around the real
    one, "$real"."""
    real = shutil.which(tool)
    assert real, f"{tool} is not installed"
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\nreal="{real}"\n{body}')
    script.chmod(0o755)
    return script


# -- an edit saved while its step runs --------------------------------------------


def test_an_edit_saved_while_its_compile_runs_is_compiled_by_the_next_build(
    tmp_path: Path,
) -> None:
    """The reported case: the editor saves src/alpha.bpf.c after clang read it and
    before its step ended. doit used to record the source as it was after the step
    (the new text), so the next build ran nothing and kept the old text's object."""
    root = copy_project("multi", tmp_path)
    source = root / ALPHA
    new_text = tmp_path / "alpha.new"
    new_text.write_text(edited(source.read_text(), ALPHA_OLD, ALPHA_NEW))
    trigger = tmp_path / "save-now"
    clang = wrapper(
        tmp_path,
        "clang",
        "clang-then-save",
        f"""\"$real" "$@" || exit $?
case "$*" in *"-c {ALPHA}"*)
    if [ -e "{trigger}" ]; then rm "{trigger}"; cat "{new_text}" > "{source}"; fi;;
esac
""",
    )
    env = dict(os.environ, CLANG=str(clang))
    trigger.touch()
    run = build(root, "-j1", env=dict(env, BPFBUILD_TRACE="1"))
    assert not trigger.exists(), "the wrapper never saved the edit"
    assert f"{ALPHA} changed while the build ran" in run.stderr, run.describe()

    run = build(root, env=env)
    assert steps_of(run, "BPF") == {ALPHA}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha"}, run.describe()
    assert_clean_build_bytes(root, env=env)


def test_an_edit_read_by_the_compiler_then_undone_is_compiled_again(tmp_path: Path) -> None:
    """The compiler reads an edit that is undone before its step ends: the source then
    has its recorded content again, but the object holds the edit. The record says
    what the tool may have read: the next build compiles the source again."""
    root = copy_project("multi", tmp_path)
    source = root / ALPHA
    old_text, new_text = tmp_path / "alpha.old", tmp_path / "alpha.new"
    old_text.write_text(source.read_text())
    new_text.write_text(edited(source.read_text(), ALPHA_OLD, ALPHA_NEW))
    trigger = tmp_path / "edit-now"
    clang = wrapper(
        tmp_path,
        "clang",
        "clang-reads-an-edit",
        f"""case "$*" in *"-c {ALPHA}"*)
    if [ -e "{trigger}" ]; then
        rm "{trigger}"; cat "{new_text}" > "{source}"
        "$real" "$@"; status=$?
        cat "{old_text}" > "{source}"; exit $status
    fi;;
esac
exec "$real" "$@"
""",
    )
    env = dict(os.environ, CLANG=str(clang))
    build(root, env=env)
    # a comment: the object is the same, so only this step runs (with the wrapper)
    source.write_text(source.read_text() + "/* one more line */\n")
    trigger.touch()
    run = build(root, "-j1", env=env)
    assert steps_of(run, "BPF") == {ALPHA} and not trigger.exists(), run.describe()
    assert source.read_text() != new_text.read_text()

    run = build(root, env=env)
    assert steps_of(run, "BPF") == {ALPHA}, run.describe()
    assert_clean_build_bytes(root, env=env)


def test_a_header_edited_while_a_compile_that_read_it_runs(tmp_path: Path) -> None:
    """cc compiles src/util.c, then src/util.h is edited before the step ends. The
    compiles that ran before read the old header, and so did util.c's; one that starts
    later reads the new one. The next build compiles exactly those that read the old
    header, util.c's included."""
    root = copy_project("multi", tmp_path)
    header = root / "src/util.h"
    trigger = tmp_path / "edit-now"
    cc = wrapper(
        tmp_path,
        "cc",
        "cc-then-edit",
        f"""\"$real" "$@" || exit $?
case "$*" in *"-c src/util.c"*)
    if [ -e "{trigger}" ]; then rm "{trigger}"; echo "int util_more(void);" >> "{header}"; fi;;
esac
""",
    )
    env = dict(os.environ, CC=str(cc))
    trigger.touch()
    first = build(root, "-j1", env=env)
    assert not trigger.exists()
    compiles = [what for kind, what in first.steps if kind == "CC"]
    read_the_old_header = set(compiles[: compiles.index("src/util.c") + 1])
    run = build(root, env=env)
    assert steps_of(run, "CC") == read_the_old_header, run.describe()
    assert_clean_build_bytes(root, env=env)


# -- the change check never trusts an mtime alone --------------------------------


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    root = copy_project("multi", tmp_path)
    build(root)
    return root


def put_back_with_touch_r(source: Path, new_text: str, work: Path) -> None:
    reference = work / "reference"
    shutil.copy2(source, reference)
    source.write_text(new_text)
    subprocess.run(["touch", "-r", str(reference), str(source)], check=True)


def put_back_with_cp_p(source: Path, new_text: str, work: Path) -> None:
    other = work / source.name
    other.write_text(new_text)
    st = source.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))  # another version, same mtime
    subprocess.run(["cp", "-p", str(other), str(source)], check=True)


def put_back_with_tar_x(source: Path, new_text: str, work: Path) -> None:
    staged = work / "staged"
    staged.mkdir()
    (staged / source.name).write_text(new_text)
    st = source.stat()
    os.utime(staged / source.name, ns=(st.st_atime_ns, st.st_mtime_ns))
    archive = work / "version.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(staged / source.name, arcname=source.name)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(source.parent)], check=True)
    assert source.stat().st_mtime == st.st_mtime


PUT_BACK = {
    "touch -r": put_back_with_touch_r,
    "cp -p": put_back_with_cp_p,
    "tar x": put_back_with_tar_x,
}


@pytest.mark.parametrize("how", PUT_BACK)
def test_a_same_size_edit_with_its_mtime_put_back_is_rebuilt(tmp_path: Path, how: str) -> None:
    multi = copy_project("multi", tmp_path)
    source = multi / ALPHA
    whole_second = (int(time.time()) - 60) * 10**9  # as a tar's member has
    os.utime(source, ns=(whole_second, whole_second))
    build(multi)
    before = source.stat()
    new_text = edited(source.read_text(), ALPHA_OLD, ALPHA_NEW)
    work = tmp_path / "work"
    work.mkdir()
    PUT_BACK[how](source, new_text, work)
    after = source.stat()
    assert source.read_text() == new_text
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    run = build(multi, env=dict(os.environ, BPFBUILD_TRACE="1"))
    assert f"{ALPHA} changed" in run.stderr, run.describe()  # the fast path saw it too
    assert steps_of(run, "BPF") == {ALPHA}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha"}, run.describe()
    assert_clean_build_bytes(multi)


def set_all_mtimes(root: Path, seconds: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.utime(path, ns=(seconds * 10**9, seconds * 10**9), follow_symlinks=False)


def test_a_tree_whose_files_all_have_one_mtime(tmp_path: Path) -> None:
    """As in a Nix store, every file of the sources has mtime 1: a new version of a
    source or a header, of the same size, has that mtime too."""
    root = copy_project("multi", tmp_path)
    set_all_mtimes(root / "src", 1)
    build(root)
    source = root / ALPHA
    source.write_text(edited(source.read_text(), ALPHA_OLD, ALPHA_NEW))
    header = root / "src/common.h"
    header.write_text(edited(header.read_text(), "COMMON_SLOTS 4", "COMMON_SLOTS 8"))
    set_all_mtimes(root / "src", 1)

    run = build(root)
    assert steps_of(run, "BPF") == {ALPHA, "src/beta.bpf.c"}, run.describe()
    assert_clean_build_bytes(root)


def test_a_touch_still_rebuilds_nothing(multi: Path) -> None:
    """Stat mismatch, same content: the digest answers, no step runs."""
    time.sleep(0.05)
    (multi / ALPHA).touch()
    (multi / "src/common.h").touch()
    assert_build_is_noop(multi)


# -- the rule itself, on one file ------------------------------------------------


def test_a_record_older_than_the_file_is_trusted_by_its_stat(tmp_path: Path) -> None:
    """The digest is read only when the stat differs from the record, or when the file
    is not older than the record by the clock's granularity (git's racy rule)."""
    path = tmp_path / "input.h"
    path.write_text("#define A 1\n")
    st = path.stat()
    checker = InputContentChecker()
    well_after = max(st.st_mtime_ns, st.st_ctime_ns) + 10 * timestamps.RACE_MARGIN_NS
    lying = input_state(st, "0" * 64, well_after)  # a digest it would never match
    assert not checker.check_modified(str(path), path.stat(), lying)  # stat trusted
    racy = input_state(st, "0" * 64, st.st_ctime_ns + 1)  # taken in the file's tick
    assert checker.check_modified(str(path), path.stat(), racy)  # so it was read
    honest = input_state(st, content.content_digest(str(path)), st.st_ctime_ns + 1)
    assert not checker.check_modified(str(path), path.stat(), honest)


def test_any_stat_field_that_differs_makes_the_content_compared(tmp_path: Path) -> None:
    path = tmp_path / "input.h"
    path.write_text("#define A 1\n")
    st = path.stat()
    checker = InputContentChecker()
    later = max(st.st_mtime_ns, st.st_ctime_ns) + 10 * timestamps.RACE_MARGIN_NS
    recorded = input_state(st, "0" * 64, later)
    size, mtime_ns, ctime_ns, inode, digest, vouched = recorded
    for changed in (
        [size, mtime_ns, ctime_ns + 1, inode, digest, vouched],
        [size, mtime_ns + 1, ctime_ns, inode, digest, vouched],
        [size, mtime_ns, ctime_ns, inode + 1, digest, vouched],
    ):
        assert checker.check_modified(str(path), st, changed)  # the digest decided
    assert checker.check_modified(str(path), st, [size + 1, *recorded[1:]])
    assert checker.check_modified(str(path), st, [CHANGED_WHILE_ITS_STEP_RAN])


def test_whole_second_timestamps_take_a_wider_margin(tmp_path: Path) -> None:
    """A file system that keeps whole seconds (FAT keeps 2 s): a file whose times are
    whole seconds is racy for two seconds after them."""
    path = tmp_path / "input.h"
    path.write_text("x\n")
    os.utime(path, ns=(10**9 * 1000, 10**9 * 1000))
    st = path.stat()
    assert timestamps.is_racy(st.st_mtime_ns, 10**9 * 1000 + timestamps.RACE_MARGIN_NS * 2)
    assert not timestamps.is_racy(st.st_mtime_ns, 10**9 * 1003)
    fine = 10**9 * 1000 + 1234
    assert not timestamps.is_racy(fine, fine + timestamps.RACE_MARGIN_NS + 1)
