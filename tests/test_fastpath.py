"""The no-op fast path (bpfbuild/pipeline/fastpath.py, bpfbuild/launcher.py): a second
build is answered from the stamp, without doit; every change the full graph must see
falls through to it (BPFBUILD_TRACE=1 says which path a build took, and why)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from buildutil import ARCH, Run, bpfbuild, build, copy_project, steps_of

from bpfbuild.pipeline import fastpath, timestamps

TRACED = dict(os.environ, BPFBUILD_TRACE="1")


def traced(root: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`bpfbuild build ARGS` with the fast path's trace on stderr; must succeed."""
    return build(root, *args, env=dict(env or os.environ, BPFBUILD_TRACE="1"))


def assert_fast(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    run = traced(root, *args, env=env)
    assert "fastpath: hit" in run.stderr, run.describe()
    assert run.stdout == "", run.describe()


def assert_missed(run: Run, reason: str) -> None:
    assert "fastpath: miss" in run.stderr, run.describe()
    assert reason in run.stderr, run.describe()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_second_build_takes_the_fast_path(multi: Path, tmp_path: Path) -> None:
    assert_fast(multi)
    assert_fast(multi, "-j1", "-v")  # jobs and verbosity change nothing
    # from another folder, naming the root
    run = build(tmp_path, "-C", str(multi), env=TRACED)
    assert "fastpath: hit" in run.stderr and run.stdout == "", run.describe()
    # a subfolder is not the root: the full graph finds the root, and runs nothing
    run = build(multi / "src", env=TRACED)
    assert_missed(run, "no build state here")
    assert run.steps == []


def test_source_edit_falls_through(multi: Path) -> None:
    edit(multi / "src/gamma.bpf.c", "return skb->len;\n}", "return skb->len ? skb->len : 1;\n}")
    run = traced(multi)
    assert_missed(run, "src/gamma.bpf.c changed")
    assert steps_of(run, "BPF") == {"src/gamma.bpf.c"}
    assert_fast(multi)


def test_header_edit_falls_through(multi: Path) -> None:
    edit(multi / "src/common.h", "#define COMMON_SLOTS 4", "#define COMMON_SLOTS 8")
    run = traced(multi)
    assert_missed(run, "src/common.h changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c"}
    assert_fast(multi)


def test_config_edit_falls_through(multi: Path) -> None:
    config = multi / "bpfbuild.toml"
    config.write_text(config.read_text().replace("[build]", '[build]\nbpf_cflags = ["-DFOO"]', 1))
    run = traced(multi)
    assert_missed(run, "bpfbuild.toml changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}
    assert_fast(multi)


def test_new_source_falls_through(multi: Path) -> None:
    """Discovery: a new src/*.c is linked into every app; src/ itself is stamped."""
    (multi / "src/extra.c").write_text("int extra_value(void) { return 1; }\n")
    run = traced(multi)
    assert_missed(run, "src changed")
    assert steps_of(run, "CC") == {"src/extra.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert_fast(multi)


def test_command_line_selection_is_part_of_the_key(multi: Path) -> None:
    run = traced(multi, "gamma")
    assert_missed(run, "other apps or arches")
    assert run.steps == []
    assert_fast(multi, "gamma")
    run = traced(multi, "--arch", ARCH)
    assert_missed(run, "other apps or arches")
    assert_fast(multi, f"--arch={ARCH}")


def test_environment_override_falls_through(multi: Path) -> None:
    env = dict(os.environ, CFLAGS="-DFASTPATH_TEST")
    run = traced(multi, env=env)
    assert_missed(run, "the environment changed")
    assert steps_of(run, "CC") == {"src/alpha.c", "src/gamma.c", "src/util.c"}
    assert_fast(multi, env=env)
    assert "fastpath: miss" in traced(multi).stderr  # and back


def _fake_clang(path: Path, version: str) -> None:
    """A clang that reports another version and otherwise runs the real one."""
    real = shutil.which("clang")
    path.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = --version ]; then echo "clang version {version}"; exit 0; fi
        exec {real} "$@"
        """)
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_tool_version_change_falls_through(tmp_path: Path) -> None:
    """A clang that appears first in PATH (PATH is the same), then a new version of it."""
    root = copy_project("multi", tmp_path)
    tools = tmp_path / "tools"
    tools.mkdir()
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}")
    build(root, env=env)
    assert_fast(root, env=env)

    _fake_clang(tools / "clang", "14.0.99")
    run = traced(root, env=env)
    assert_missed(run, f"{tools} changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}
    assert_fast(root, env=env)

    _fake_clang(tools / "clang", "14.0.100")  # the same binary, rewritten in place
    run = traced(root, env=env)
    assert_missed(run, f"{tools / 'clang'} changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}


def test_deleted_output_falls_through(multi: Path) -> None:
    (multi / f"output/{ARCH}/gamma").unlink()
    run = traced(multi)
    assert_missed(run, f"output/{ARCH}/gamma changed")
    assert steps_of(run, "LD") == {f"output/{ARCH}/gamma"}
    assert_fast(multi)


def test_modified_output_with_its_old_size_and_mtime_is_seen(multi: Path) -> None:
    """Rewritten in place, same size, mtime put back with os.utime: the ctime, which
    nobody can set, still changes, so the full graph decides."""
    obj = multi / f"output/{ARCH}/bpf/gamma.bpf.o"
    before = obj.stat()
    original = obj.read_bytes()
    data = bytearray(original)
    data[-1] ^= 0xFF
    obj.write_bytes(data)
    os.utime(obj, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (obj.stat().st_size, obj.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    run = traced(multi)
    assert_missed(run, f"output/{ARCH}/bpf/gamma.bpf.o changed")
    assert obj.read_bytes() == original, run.describe()  # the full graph made it again


def test_touch_is_answered_by_content(multi: Path) -> None:
    """A touched source or header has its recorded size: the check reads it, finds the
    recorded content, answers, and records the new stat for the next no-op."""
    (multi / "src/alpha.bpf.c").touch()
    (multi / "src/common.h").touch()
    (multi / "bpfbuild.toml").touch()
    time.sleep(0.1)  # older than a clock tick: the new stats can be recorded
    run = traced(multi)
    assert "fastpath: 3 touched, same content" in run.stderr, run.describe()
    assert "fastpath: hit" in run.stderr and run.stdout == "", run.describe()
    run = traced(multi)
    assert run.stderr == "fastpath: hit\n", run.describe()  # nothing read this time


def test_same_size_edit_with_its_mtime_put_back_falls_through(multi: Path) -> None:
    """`touch -r`, `tar x`, `cp -p` of another version: the size and mtime are the old
    ones, the ctime is not, and the digest differs: the graph runs, and rebuilds."""
    source = multi / "src/alpha.bpf.c"
    before = source.stat()
    edit(source, "__sync_fetch_and_add(count, 1);", "__sync_fetch_and_add(count, 2);")
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = source.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    run = traced(multi)
    assert_missed(run, "src/alpha.bpf.c changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c"}, run.describe()
    assert_fast(multi)


def test_a_tree_whose_files_all_have_one_mtime_falls_through(tmp_path: Path) -> None:
    """A Nix-style tree: every file at mtime 1, a new version of a header too."""
    root = copy_project("multi", tmp_path)
    epoch = (10**9, 10**9)
    for path in (root / "src").iterdir():
        os.utime(path, ns=epoch)
    traced(root)
    header = root / "src/common.h"
    edit(header, "#define COMMON_SLOTS 4", "#define COMMON_SLOTS 8")
    os.utime(header, ns=epoch)
    run = traced(root)
    assert_missed(run, "src/common.h changed")
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c"}, run.describe()
    assert_fast(root)


def test_the_outputs_are_recorded_once_older_than_a_clock_tick(tmp_path: Path) -> None:
    """The racy rule for the stamp's outputs: their stats are taken once the newest is
    older than the clock's granularity, so that no rewrite can keep a recorded stat."""
    output = tmp_path / "just-written.o"
    output.write_bytes(b"\x7fELF")
    recorded = fastpath._settled_outputs([str(output)])
    taken = time.time_ns()
    (sig,) = recorded.values()
    assert sig == fastpath.signature(str(output))
    assert sig is not None and not timestamps.is_racy(max(sig[4], sig[5]), taken)


def test_outputs_with_whole_second_times_just_written_leave_no_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where file times are whole seconds (FAT), waiting for the margin would take up
    to two seconds: the build writes no stamp, and the next one writes it."""
    output = tmp_path / "just-written.o"
    output.write_bytes(b"\x7fELF")
    whole = time.time_ns() // 10**9 * 10**9
    real_signature = fastpath.signature

    def whole_seconds(path: str):
        sig = real_signature(path)
        return sig and (*sig[:4], whole, whole)

    monkeypatch.setattr(fastpath, "signature", whole_seconds)
    with pytest.raises(fastpath._NoStamp, match="clock granularity"):
        fastpath._settled_outputs([str(output)])


def test_a_file_touched_in_the_current_clock_tick_is_read_again(
    multi: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A touched source whose new stat is racy is answered by its content, but its new
    stat is not recorded: the next check reads it again."""
    monkeypatch.setenv(fastpath.TRACE_ENV, "1")
    (multi / "src/alpha.bpf.c").touch()
    assert fastpath.check(["build", "-C", str(multi)]) is None
    assert fastpath.check(["build", "-C", str(multi)]) is None
    assert capsys.readouterr().err.count("1 touched, same content") == 2
    time.sleep(2 * timestamps.RACE_MARGIN_NS / 1e9)
    assert fastpath.check(["build", "-C", str(multi)]) is None  # records it now
    assert fastpath.check(["build", "-C", str(multi)]) is None
    assert capsys.readouterr().err.count("1 touched, same content") == 1


def test_touch_of_an_output_falls_through_and_rebuilds_nothing(multi: Path) -> None:
    """Outputs have no digest in the stamp: the full graph decides, runs nothing
    (it compares contents), and writes a new stamp."""
    (multi / f"output/{ARCH}/bpf/gamma.bpf.o").touch()
    run = traced(multi)
    assert_missed(run, f"output/{ARCH}/bpf/gamma.bpf.o changed")
    assert run.steps == [] and run.stdout == "", run.describe()
    assert "fastpath: recorded" in run.stderr, run.describe()
    assert_fast(multi)


def test_failed_build_leaves_no_stamp(multi: Path) -> None:
    """The stamp goes before any task runs and comes back only after a success."""
    stamp = multi / ".bpfbuild" / fastpath.STAMP_NAME
    assert stamp.is_file()
    edit(multi / "src/util.c", "{", "{ this is not C;")
    run = bpfbuild(multi, "build", env=TRACED)
    assert run.returncode == 1, run.describe()
    assert not stamp.exists()
    edit(multi / "src/util.c", "{ this is not C;", "{")
    run = traced(multi)
    assert_missed(run, "no stamp")
    assert_fast(multi)


def test_corrupt_stamp_falls_through(multi: Path) -> None:
    stamp = multi / ".bpfbuild" / fastpath.STAMP_NAME
    stamp.write_bytes(b"\x00not a stamp" * 10)
    run = traced(multi)
    assert_missed(run, "no stamp")
    assert run.steps == [], run.describe()
    assert_fast(multi)


def test_input_changed_during_the_build_leaves_no_stamp(tmp_path: Path) -> None:
    """A cc that edits a header the build already read: the stamp cannot vouch for it."""
    root = copy_project("multi", tmp_path)
    real_cc = shutil.which("cc")
    cc = tmp_path / "cc-that-edits"
    cc.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        {real_cc} "$@" || exit $?
        case "$*" in *"-c src/util.c"*) echo '/* edited */' >> {root}/src/util.h ;; esac
        """)
    )
    cc.chmod(0o755)
    env = dict(os.environ, CC=str(cc))
    run = traced(root, "-j1", env=env)
    assert "fastpath: not recorded: " in run.stderr, run.describe()
    assert "src/util.h changed while the build ran" in run.stderr, run.describe()
    assert not (root / ".bpfbuild" / fastpath.STAMP_NAME).exists()


def test_project_with_its_own_dodo_never_takes_the_fast_path(tmp_path: Path) -> None:
    root = copy_project("withdodo", tmp_path)
    run = traced(root)
    assert "fastpath: not recorded: the project has its own dodo.py" in run.stderr, run.describe()
    run = traced(root)
    assert_missed(run, "no stamp")


def test_new_dodo_falls_through(multi: Path) -> None:
    (multi / "dodo.py").write_text("from bpfbuild import task_bpfbuild  # noqa: F401\n")
    run = traced(multi)
    assert_missed(run, "dodo.py changed")


def test_lock_held_by_another_build_falls_through(multi: Path) -> None:
    fd = os.open(multi / ".bpfbuild" / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert fastpath.check(["build", "-C", str(multi)]) == "another build holds the lock"
    finally:
        os.close(fd)
    assert fastpath.check(["build", "-C", str(multi)]) is None


def test_launcher_imports_neither_click_nor_doit(multi: Path) -> None:
    """The point of the fast path: a no-op costs a Python start-up and some stats."""
    probe = (
        "import sys; sys.argv = ['bpfbuild', 'build']\n"
        "from bpfbuild import launcher\n"
        "from bpfbuild.pipeline import fastpath\n"
        "assert fastpath.check(['build']) is None\n"
        "assert launcher.main() == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'doit', 'elftools')))"
    )
    done = subprocess.run(
        [os.sys.executable, "-c", probe], cwd=multi, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["build"], (None, (), ())),
        (["build", "-j", "4", "-v"], (None, (), ())),
        (["build", "-j4", "--jobs=2", "--verbose"], (None, (), ())),
        (["build", "-C", "dir", "b", "a", "a"], ("dir", ("a", "b"), ())),
        (["build", "-Cdir", "--directory=other"], ("other", (), ())),
        (["build", "--arch", "arm64", "--arch=x86_64"], (None, (), ("arm64", "x86_64"))),
        (["build", "-j", "0"], None),  # click's error, not a no-op
        (["build", "-j"], None),
        (["build", "-j", "x"], None),
        (["build", "--help"], None),
        (["build", "-h"], None),
        (["build", "-vj2"], None),
        (["build", "--", "app"], None),
        (["build", "--keep-going"], (None, (), ())),  # nothing to do: nothing fails
        (["build", "-j", "100000"], None),  # the CLI's usage error, not a no-op
        (["build", "--directory="], None),
        (["verify"], None),
        ([], None),
        (["--version"], None),
    ],
)
def test_parse_build_args(args: list[str], parsed) -> None:
    assert fastpath.parse_build_args(args) == parsed


_PROBE = {"stamp": [["/usr/bin/clang", 1, 2]], "value": {"version": "14", "stamp_paths": []}}
_PKG_CONFIG = {
    "stamp": [["/usr/bin/pkg-config", 1, 2]],
    "value": {"cflags": [], "stamp_paths": ["/usr/lib/pkgconfig", "/usr/lib/pkgconfig/z.pc"]},
}


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            {"clang:/usr/bin/clang": _PROBE, "libbpf": _PKG_CONFIG},
            {"/usr/bin/clang", "/usr/bin/pkg-config", "/usr/lib/pkgconfig"}
            | {"/usr/lib/pkgconfig/z.pc"},
        ),
        ({"a": {"stamp": "not a list", "value": {}}, "b": _PROBE}, {"/usr/bin/clang"}),
        ({"a": {"stamp": [[1, 2, 3]], "value": {}}, "b": [1]}, set()),
        ({"a": {"stamp": [], "value": {"stamp_paths": [7]}}}, set()),
        ("not a table", set()),
    ],
)
def test_the_stamp_watches_what_the_version_cache_probed(
    tmp_path: Path, entries: object, expected: set[str]
) -> None:
    """The writer reads toolchain.json through the version cache's own reader
    (toolchain.probed_paths): every binary and pkg-config file a cached version was
    keyed by; a malformed entry is a miss there, so it keys nothing."""
    from bpfbuild.pipeline.toolchain import _VersionCache, probed_paths

    path = tmp_path / "toolchain.json"
    path.write_text(json.dumps({"format": _VersionCache.FORMAT, "entries": entries}))
    assert probed_paths(str(path)) == expected
    path.write_text(json.dumps({"format": _VersionCache.FORMAT - 1, "entries": entries}))
    assert probed_paths(str(path)) == set()  # another format: none of its entries count
    path.write_text("{")
    assert probed_paths(str(path)) == set()
