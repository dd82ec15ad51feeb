"""Hostile build state and outputs, built for real: a damaged state database, state files
of the wrong shape, links, folders, FIFOs and read-only mounts where bpfbuild writes.

Each case builds `multi` clean (its bytes are the reference), plants one thing, builds
again and asserts the exit code, the `error:`/`hint:` or `note:` line, that nothing
outside the project changed, and, after the fix the hint names, a clean build's bytes.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    Run,
    bpfbuild,
    bpfbuild_command,
    build,
    copy_project,
    output_hashes,
    snapshot,
)

OUT = f"output/{ARCH}"
ALL_BPF = {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}


@dataclass
class Project:
    root: Path
    outside: Path
    reference: dict[str, str]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """multi built clean (reference bytes), its no-op stamp removed so that the next build
    takes the full path, and a folder outside with files that must survive."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "data.txt").write_text("keep me\n")
    (outside / "deep" / "more.txt").write_text("me too\n")
    root = copy_project("multi", tmp_path)
    build(root)
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    return Project(root, outside, output_hashes(root))


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.output, run.describe()
    assert "internal error" not in run.output, run.describe()


def assert_clean_bytes(project: Project) -> None:
    run = build(project.root)
    no_traceback(run)
    assert output_hashes(project.root) == project.reference


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    make(path)


# -- a damaged state database: moved aside, said in one line, everything rebuilt ----

Damage = Callable[[Path, Path], None]
DB = ".bpfbuild/doit.sqlite"


def _garbage(db: Path, outside: Path) -> None:
    db.write_bytes(os.urandom(8192))


def _half(db: Path, outside: Path) -> None:
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(max(size // 2, 4096) if size > 8192 else 4096)


def _header_only(db: Path, outside: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\0" * (len(data) - 100))


def _text(db: Path, outside: Path) -> None:
    db.write_text("hello, this is not sqlite\n")


def _folder(db: Path, outside: Path) -> None:
    _replace(db, lambda p: p.mkdir())


def _folder_with_files(db: Path, outside: Path) -> None:
    _replace(db, lambda p: p.mkdir())
    (db / "notes").write_text("x")


def _link_out(db: Path, outside: Path) -> None:
    _replace(db, lambda p: p.symlink_to(outside / "data.txt"))


def _link_to_nothing(db: Path, outside: Path) -> None:
    _replace(db, lambda p: p.symlink_to(outside / "new.sqlite"))


def _fifo(db: Path, outside: Path) -> None:
    _replace(db, lambda p: os.mkfifo(p))


def _read_only(db: Path, outside: Path) -> None:
    db.chmod(0o444)


def _wal_link(db: Path, outside: Path) -> None:
    _replace(db.with_name(db.name + "-wal"), lambda p: p.symlink_to(outside / "data.txt"))


def _shm_folder(db: Path, outside: Path) -> None:
    _replace(db.with_name(db.name + "-shm"), lambda p: p.mkdir())


DB_CASES: list[tuple[str, Damage, str, str]] = [
    # (name, damage, the reason named, where it went)
    ("garbage", _garbage, "file is not a database", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("half-truncated", _half, "malformed", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("zeroed-pages", _header_only, "", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("text", _text, "file is not a database", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("folder", _folder, "doit.sqlite is a folder", "moved to .bpfbuild/doit.sqlite.damaged"),
    (
        "folder-with-files",
        _folder_with_files,
        "doit.sqlite is a folder",
        "moved to .bpfbuild/doit.sqlite.damaged",
    ),
    ("link-out", _link_out, "doit.sqlite is a symbolic link", "the link removed"),
    ("link-to-nothing", _link_to_nothing, "doit.sqlite is a symbolic link", "the link removed"),
    ("fifo", _fifo, "not a regular file", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("read-only", _read_only, "doit.sqlite is read-only", "moved to .bpfbuild/doit.sqlite.damaged"),
    ("wal-a-link", _wal_link, "doit.sqlite-wal is a symbolic link", "moved to"),
    ("shm-a-folder", _shm_folder, "doit.sqlite-shm is a folder", "moved to"),
]


@pytest.mark.parametrize(
    ("name", "damage", "reason", "where"), DB_CASES, ids=[c[0] for c in DB_CASES]
)
def test_a_damaged_state_database_is_moved_aside_and_everything_rebuilt(
    project: Project, name: str, damage: Damage, reason: str, where: str
) -> None:
    damage(project.root / DB, project.outside)
    before = snapshot(project.outside)
    run = bpfbuild(project.root, "build")
    assert run.returncode == 0, run.describe()
    no_traceback(run)
    notes = [line for line in run.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, run.describe()
    assert notes[0].startswith("note: .bpfbuild/doit.sqlite: the build state was damaged ("), (
        run.describe()
    )
    assert reason in notes[0] and where in notes[0]
    assert notes[0].endswith("; everything is rebuilt")
    assert {what for kind, what in run.steps if kind == "BPF"} == ALL_BPF
    assert output_hashes(project.root) == project.reference
    assert snapshot(project.outside) == before
    again = bpfbuild(project.root, "build")  # and the new state is sound: no note again
    assert again.returncode == 0 and "note:" not in again.stderr, again.describe()


# -- state files of the wrong shape: treated as empty, probed again ------------------


def _write(relative: str, data: bytes) -> Callable[[Path, Path], None]:
    def make(root: Path, outside: Path) -> None:
        _replace(root / relative, lambda p: p.write_bytes(data))

    return make


def _marshal(relative: str, value: object) -> Callable[[Path, Path], None]:
    return _write(relative, marshal.dumps(value))


def _as(relative: str, how: str) -> Callable[[Path, Path], None]:
    def make(root: Path, outside: Path) -> None:
        path = root / relative
        if how == "fifo":
            _replace(path, lambda p: os.mkfifo(p))
        elif how == "folder":
            _replace(path, lambda p: p.mkdir())
        elif how == "link-out":
            _replace(path, lambda p: p.symlink_to(outside / "data.txt"))
        elif how == "link-to-nothing":
            _replace(path, lambda p: p.symlink_to(outside / "created.json"))

    return make


TC = ".bpfbuild/toolchain.json"
STAMP = ".bpfbuild/fastpath.stamp"
OUTPUTS = ".bpfbuild/outputs.json"

SHAPES: list[tuple[str, Callable[[Path, Path], None]]] = [
    ("toolchain-garbage", _write(TC, b"\x00\xff{{{")),
    ("toolchain-a-list", _write(TC, b"[1, 2]")),
    ("toolchain-other-format", _write(TC, b'{"format": 99, "entries": {}}')),
    ("toolchain-entries-a-list", _write(TC, b'{"format": 3, "entries": [1]}')),
    (
        "toolchain-entry-wrong-types",
        _write(TC, b'{"format": 3, "entries": {"x": {"stamp": 5, "value": "v"}}}'),
    ),
    ("toolchain-empty", _write(TC, b"")),
    ("toolchain-fifo", _as(TC, "fifo")),
    ("toolchain-folder", _as(TC, "folder")),
    ("toolchain-link-out", _as(TC, "link-out")),
    ("toolchain-link-to-nothing", _as(TC, "link-to-nothing")),
    ("stamp-garbage", _write(STAMP, b"\x00garbage")),
    ("stamp-a-list", _marshal(STAMP, [1, 2, 3])),
    ("stamp-files-a-list", _marshal(STAMP, {"running": None, "files": [1]})),
    ("stamp-empty", _write(STAMP, b"")),
    ("stamp-fifo", _as(STAMP, "fifo")),
    ("stamp-folder", _as(STAMP, "folder")),
    ("stamp-link-out", _as(STAMP, "link-out")),
    ("outputs-garbage", _write(OUTPUTS, b"\x00\xff")),
    ("outputs-a-list", _write(OUTPUTS, b"[]")),
    ("outputs-other-format", _write(OUTPUTS, b'{"format": 7, "outputs": {}}')),
    ("outputs-outputs-a-list", _write(OUTPUTS, b'{"format": 1, "outputs": ["x"]}')),
    ("outputs-non-strings", _write(OUTPUTS, b'{"format": 1, "outputs": {"output/x": 5}}')),
    ("outputs-fifo", _as(OUTPUTS, "fifo")),
    ("outputs-folder", _as(OUTPUTS, "folder")),
    ("outputs-link-out", _as(OUTPUTS, "link-out")),
    ("outputs-link-to-nothing", _as(OUTPUTS, "link-to-nothing")),
]


@pytest.mark.parametrize(("name", "make"), SHAPES, ids=[c[0] for c in SHAPES])
def test_a_state_file_of_the_wrong_shape_is_empty_never_a_traceback(
    project: Project, name: str, make: Callable[[Path, Path], None]
) -> None:
    make(project.root, project.outside)
    before = snapshot(project.outside)
    run = bpfbuild(project.root, "build")
    no_traceback(run)
    if name.endswith("-folder"):  # a folder is never replaced: the error says so
        assert run.returncode in (0, 1), run.describe()
        if run.returncode:
            assert "hint:" in run.stderr, run.describe()
            shutil.rmtree(project.root / name_to_path(name))
    else:
        assert run.returncode == 0, run.describe()
    assert snapshot(project.outside) == before
    assert_clean_bytes(project)
    assert snapshot(project.outside) == before


def name_to_path(name: str) -> str:
    return {"toolchain": TC, "stamp": STAMP, "outputs": OUTPUTS}[name.split("-")[0]]


@pytest.mark.parametrize(
    "named",
    [
        "../outside/data.txt",
        "output/../../outside/data.txt",
        "/etc/hostname",
        f"{OUT}/linked/data.txt",
        "src/alpha.c",
        "bpfbuild.toml",
    ],
)
def test_a_record_naming_what_is_not_an_output_removes_nothing(
    project: Project, named: str
) -> None:
    """outputs.json naming files outside output/ (or through a link in it) as dead
    outputs: none is removed, and nothing outside is touched."""
    (project.root / OUT / "linked").symlink_to(project.outside)
    record = json.loads((project.root / OUTPUTS).read_text())
    record["outputs"][named] = "a-step-that-is-gone"
    (project.root / OUTPUTS).write_text(json.dumps(record))
    before = snapshot(project.outside)
    sources = snapshot(project.root / "src")
    run = bpfbuild(project.root, "build")
    no_traceback(run)
    assert snapshot(project.outside) == before
    assert snapshot(project.root / "src") == sources
    assert (project.root / "bpfbuild.toml").is_file()
    (project.root / OUT / "linked").unlink()
    assert_clean_bytes(project)


# -- the lock ------------------------------------------------------------------------

LOCK = ".bpfbuild/lock"
LOCK_CASES: list[tuple[str, Callable[[Path, Path], None], str, str]] = [
    (
        "link-out",
        lambda root, out: _replace(root / LOCK, lambda p: p.symlink_to(out / "data.txt")),
        ".bpfbuild/lock is a symbolic link, where bpfbuild writes",
        "remove the link: rm .bpfbuild/lock",
    ),
    (
        "link-to-nothing",
        lambda root, out: _replace(root / LOCK, lambda p: p.symlink_to(out / "pid")),
        ".bpfbuild/lock is a symbolic link",
        "remove the link: rm .bpfbuild/lock",
    ),
    (
        "link-to-a-folder",
        lambda root, out: _replace(root / LOCK, lambda p: p.symlink_to(out)),
        ".bpfbuild/lock is a symbolic link",
        "remove the link: rm .bpfbuild/lock",
    ),
    (
        "folder",
        lambda root, out: _replace(root / LOCK, lambda p: p.mkdir()),
        ".bpfbuild/lock is a folder, where bpfbuild writes a file",
        "move the folder away (or delete it: rm -r .bpfbuild/lock)",
    ),
    (
        "fifo",
        lambda root, out: _replace(root / LOCK, lambda p: os.mkfifo(p)),
        ".bpfbuild/lock is not a file: bpfbuild keeps its lock there",
        "remove it: rm .bpfbuild/lock",
    ),
]


@pytest.mark.parametrize("command", ["build", "clean"])
@pytest.mark.parametrize(
    ("name", "plant", "error", "hint"), LOCK_CASES, ids=[c[0] for c in LOCK_CASES]
)
def test_the_lock_is_never_opened_through_a_link(
    project: Project, command: str, name: str, plant, error: str, hint: str
) -> None:
    plant(project.root, project.outside)
    before = snapshot(project.outside)
    run = bpfbuild(project.root, command)
    assert run.returncode == 1, run.describe()
    no_traceback(run)
    assert f"error: {error}" in run.stderr, run.describe()
    assert f"hint: {hint}" in run.stderr, run.describe()
    assert snapshot(project.outside) == before
    assert not (project.outside / "pid").exists()
    _replace(project.root / LOCK, lambda p: None)  # the fix the hint names
    if command == "clean":
        build(project.root)
    assert_clean_bytes(project)


# -- links in bpfbuild's own folders ---------------------------------------------------

OWN_LINKS: list[tuple[str, str]] = [
    # (where the link is planted, the error's wording)
    (f"{OUT}/user/alpha", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/user/alpha/deeper", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/verify/alpha", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/verify/6.1.0-test/alpha", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/bpf/stray", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/include/stray", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/tools/bpfverify", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/libbpf/obj", "is a symbolic link inside bpfbuild's own folder"),
    (f"{OUT}/verify", "is a symbolic link: bpfbuild writes nothing outside the project"),
    (f"{OUT}/user", "is a symbolic link: bpfbuild writes nothing outside the project"),
    (f"{OUT}/tools", "is a symbolic link: bpfbuild writes nothing outside the project"),
]


@pytest.mark.parametrize("command", ["build", "verify"])
@pytest.mark.parametrize(("planted", "error"), OWN_LINKS, ids=[c[0] for c in OWN_LINKS])
def test_a_link_in_our_own_folders_is_refused_before_any_step(
    project: Project, command: str, planted: str, error: str
) -> None:
    link = project.root / planted
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(project.outside)
    before = snapshot(project.outside)
    run = bpfbuild(project.root, command)
    assert run.returncode == 1, run.describe()
    no_traceback(run)
    assert error in run.stderr, run.describe()
    assert "hint: remove the link" in run.stderr, run.describe()
    assert run.steps == [], run.describe()
    assert snapshot(project.outside) == before
    link.unlink()  # the fix the hint names
    assert_clean_bytes(project)


PLANTED_FILES: list[str] = [
    f"{OUT}/alpha",
    f"{OUT}/alpha.partial",
    f"{OUT}/bpf/alpha.bpf.o",
    f"{OUT}/bpf/alpha.tmp.bpf.o.partial",
    f"{OUT}/bpf/alpha.bpf.o.partial",
    f"{OUT}/include/alpha.skel.h.partial",
    f"{OUT}/include/vmlinux.h.partial",
    f"{OUT}/include/vmlinux.h.pch.key",
    f"{OUT}/user/src__util.c.o.partial",
    "compile_commands.json.partial",
]


@pytest.mark.parametrize("target", ["file", "nothing"])
@pytest.mark.parametrize("planted", PLANTED_FILES)
def test_a_link_where_an_output_goes_is_never_written_through(
    project: Project, planted: str, target: str
) -> None:
    """A link planted at an output (or its temporary). Beside the apps (where an alias
    is a link) and at the root, the step writes a file in its place; inside bpfbuild's
    own folders (bpf/, include/, user/...) it is refused before any step, naming the
    `rm` that fixes it. Either way the target outside stays byte-identical (or absent),
    and the build after the fix gives a clean build's bytes."""
    for source in ("src/alpha.bpf.c", "src/util.c"):
        (project.root / source).write_text((project.root / source).read_text() + "\n")
    link = project.root / planted
    _replace(
        link,
        lambda p: p.symlink_to(project.outside / ("data.txt" if target == "file" else "made")),
    )
    before = snapshot(project.outside)
    run = bpfbuild(project.root, "build")
    no_traceback(run)
    inside = planted.startswith(OUT + "/") and planted.count("/") > 2
    if inside:
        assert run.returncode == 1, run.describe()
        assert f"error: {planted} is a symbolic link inside bpfbuild's own folder" in run.stderr
        assert f"hint: remove the link: rm {planted} (its target is left alone)" in run.stderr
        link.unlink()
    else:
        assert run.returncode == 0, run.describe()
        assert not link.is_symlink()
    assert snapshot(project.outside) == before
    for source in ("src/alpha.bpf.c", "src/util.c"):
        (project.root / source).write_text((project.root / source).read_text()[:-1])
    assert_clean_bytes(project)


FOLDER_OUTPUTS = [
    f"{OUT}/alpha",
    f"{OUT}/bpf/alpha.bpf.o",
    f"{OUT}/include/alpha.skel.h",
    f"{OUT}/user/src__util.c.o",
    "compile_commands.json",
]


@pytest.mark.parametrize("planted", FOLDER_OUTPUTS)
def test_a_folder_where_an_output_goes_is_an_error_naming_it(
    project: Project, planted: str
) -> None:
    (project.root / "src/alpha.bpf.c").write_text(
        (project.root / "src/alpha.bpf.c").read_text() + "\n"
    )
    (project.root / "src/util.c").write_text((project.root / "src/util.c").read_text() + "\n")
    _replace(project.root / planted, lambda p: p.mkdir())
    (project.root / planted / "users-file").write_text("mine\n")
    run = bpfbuild(project.root, "build")
    assert run.returncode == 1, run.describe()
    no_traceback(run)
    assert f"{planted} is a folder, where bpfbuild writes a file" in run.output, run.describe()
    assert f"hint: move the folder away (or delete it: rm -r {planted})" in run.output
    assert (project.root / planted / "users-file").read_text() == "mine\n"
    shutil.rmtree(project.root / planted)
    (project.root / "src/alpha.bpf.c").write_text(
        (project.root / "src/alpha.bpf.c").read_text()[:-1]
    )
    (project.root / "src/util.c").write_text((project.root / "src/util.c").read_text()[:-1])
    assert_clean_bytes(project)


# -- read-only folders (a read-only bind mount in a private mount namespace) ----------


def _read_only_build(root: Path, folder: str) -> subprocess.CompletedProcess:
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", folder, *bpfbuild_command(), "build"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def mounts() -> None:
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind / / && mount -o remount,bind,ro /"],
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip("needs unshare -m and bind mounts (root with CAP_SYS_ADMIN)")


READ_ONLY = {
    "output": f"{OUT}/alpha",
    OUT: f"{OUT}/alpha",
    f"{OUT}/bpf": f"{OUT}/bpf/alpha.bpf.o",
    f"{OUT}/include": f"{OUT}/include/alpha.skel.h",
    f"{OUT}/user": f"{OUT}/user/src__util.c.o",
    ".bpfbuild": ".bpfbuild/outputs.json",
}
"""Each read-only folder, and an output in it that the build must make again."""


@pytest.mark.parametrize("folder", sorted(READ_ONLY))
def test_a_read_only_folder_is_an_error_naming_it(
    project: Project, mounts: None, folder: str
) -> None:
    for source in ("src/alpha.bpf.c", "src/util.c"):
        (project.root / source).write_text((project.root / source).read_text() + "\n")
    (project.root / READ_ONLY[folder]).unlink()
    done = _read_only_build(project.root, folder)
    run = Run(done.returncode, done.stdout, done.stderr)
    assert run.returncode == 1, run.describe()
    no_traceback(run)
    assert "on a read-only file system" in run.output, run.describe()
    assert "hint: remount it read-write, or build a writable copy of the project" in run.output
    for source in ("src/alpha.bpf.c", "src/util.c"):
        (project.root / source).write_text((project.root / source).read_text()[:-1])
    assert_clean_bytes(project)


# -- a full file system: the step fails with a hint, and the next build is clean -------

FULL_SCRIPT = """
set -e
mount -t tmpfs -o size="$1" tmpfs "$2"
cp -a "$3" "$2/multi"
cd "$2/multi"
set +e
"$4" build > "$5/first.out" 2> "$5/first.err"
echo $? > "$5/first.rc"
set -e
mount -o remount,size=512m "$2"
"$4" build > "$5/second.out" 2> "$5/second.err"
cp -a "$2/multi/output" "$5/output"
"""


@pytest.mark.parametrize("size", ["64k", "200k", "1m", "3m", "3500k", "5m", "6m"])
def test_a_full_file_system_fails_the_step_and_the_next_build_is_clean(
    project: Project, mounts: None, tmp_path: Path, size: str
) -> None:
    """The project on a file system that fills up during its clean build: the failed
    step says so with a hint (never a traceback, never a truncated output renamed into
    place); once there is space, the next build gives a clean build's bytes."""
    source = tmp_path / "source"
    shutil.copytree(project.root, source / "multi", symlinks=True)
    for leftover in ("output", ".bpfbuild", "compile_commands.json"):
        path = source / "multi" / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    mount, result = tmp_path / "mnt", tmp_path / "result"
    mount.mkdir()
    result.mkdir()
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            FULL_SCRIPT,
            "sh",
            size,
            str(mount),
            str(source / "multi"),
            bpfbuild_command()[0],
            str(result),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    first = Run(
        int((result / "first.rc").read_text()),
        (result / "first.out").read_text(),
        (result / "first.err").read_text(),
    )
    assert first.returncode == 1, first.describe()
    no_traceback(first)
    assert "hint: free space on" in first.output, first.describe()
    second = Run(0, (result / "second.out").read_text(), (result / "second.err").read_text())
    no_traceback(second)
    assert output_hashes(result) == project.reference


@pytest.mark.parametrize("folder", ["we#ird?x", "per%20cent", "sp ace", "file:colon"])
def test_the_state_check_takes_any_project_path(tmp_path: Path, folder: str) -> None:
    """The state database's check opens it by its path, not as a URI: a project folder
    named with #, ?, % or a colon is not taken for a damaged state, and a second build
    runs nothing."""
    root = copy_project("multi", tmp_path / folder)
    build(root)
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    run = build(root)
    assert "note:" not in run.stderr, run.describe()
    assert run.steps == [], run.describe()
