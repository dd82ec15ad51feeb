"""Incremental builds, as meson's assertBuildIsNoop / assertRebuiltTarget: exactly the
steps an edit affects run, read from the kbuild lines `bpfbuild build` prints."""

from __future__ import annotations

import os
from pathlib import Path

from buildutil import ARCH, assert_build_is_noop, bpfbuild, build, steps_of

ALL_BPF = {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}
ALL_USER = {"src/alpha.c", "src/gamma.c", "src/util.c"}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_shared_header_edit_rebuilds_exactly_its_includers(multi: Path) -> None:
    edit(multi / "src/common.h", "#define COMMON_SLOTS 4", "#define COMMON_SLOTS 8")
    run = build(multi)
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c"}
    assert steps_of(run, "GENOBJ") == {
        f"output/{ARCH}/bpf/alpha.bpf.o",
        f"output/{ARCH}/bpf/beta.bpf.o",
    }
    # alpha's skeleton changed, so its loader is recompiled and relinked; gamma is untouched
    assert steps_of(run, "CC") == {"src/alpha.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha"}
    assert "gamma" not in run.stdout
    assert_build_is_noop(multi)


def test_header_edit_that_changes_no_object_stops_there(multi: Path) -> None:
    """Content hashes end the cascade: the objects come out identical, so no later step runs."""
    with (multi / "src/common.h").open("a") as f:
        f.write("/* a comment at the end changes no line of code */\n")
    run = build(multi)
    assert sorted(run.steps) == [("BPF", "src/alpha.bpf.c"), ("BPF", "src/beta.bpf.c")], (
        run.describe()
    )


def test_user_header_edit_rebuilds_user_objects_only(multi: Path) -> None:
    edit(multi / "include/version.h", '"1.2.3"', '"1.2.4"')
    run = build(multi)
    assert sorted(run.steps) == [("CC", "src/alpha.c"), ("LD", f"output/{ARCH}/alpha")], (
        run.describe()
    )
    edit(
        multi / "src/util.h",
        "const char *util_greeting(void);",
        "const char *util_greeting(void);\nint util_unused(void);",
    )
    run = build(multi)
    assert steps_of(run, "CC") == ALL_USER
    assert steps_of(run, "BPF") == set()


def test_bpf_source_edit_rebuilds_its_object_chain(multi: Path) -> None:
    edit(multi / "src/gamma.bpf.c", "return skb->len;\n}", "return skb->len ? skb->len : 1;\n}")
    run = build(multi)
    assert steps_of(run, "BPF") == {"src/gamma.bpf.c"}
    assert steps_of(run, "SKEL") == {f"output/{ARCH}/include/gamma.skel.h"}
    assert steps_of(run, "CC") == {"src/gamma.c"}
    assert steps_of(run, "LD") == {f"output/{ARCH}/gamma"}


def test_bpf_cflag_change_rebuilds_bpf_objects_not_user_objects(multi: Path) -> None:
    config = multi / "bpfbuild.toml"
    config.write_text(config.read_text().replace("[build]", '[build]\nbpf_cflags = ["-DFOO"]', 1))
    run = build(multi)
    assert steps_of(run, "BPF") == ALL_BPF
    assert steps_of(run, "CC") == set()
    assert steps_of(run, "LD") == set()
    assert_build_is_noop(multi)

    edit(config, 'bpf_cflags = ["-DFOO"]', 'bpf_cflags = ["-DFOO"]\ncflags = ["-DBAR"]')
    run = build(multi)
    assert steps_of(run, "CC") == ALL_USER
    assert steps_of(run, "BPF") == set()
    assert_build_is_noop(multi)


def test_deleted_header_no_longer_included(multi: Path) -> None:
    (multi / "src/extra.h").write_text("#define EXTRA_FLAG 1\n")
    edit(
        multi / "src/gamma.bpf.c",
        "#include <bpf/bpf_endian.h>",
        '#include <bpf/bpf_endian.h>\n#include "extra.h"',
    )
    assert steps_of(build(multi), "BPF") == {"src/gamma.bpf.c"}
    # the previous depfile still names extra.h: it must be dropped, not break the build
    edit(multi / "src/gamma.bpf.c", '\n#include "extra.h"', "")
    (multi / "src/extra.h").unlink()
    run = build(multi)
    assert steps_of(run, "BPF") == {"src/gamma.bpf.c"}
    assert_build_is_noop(multi)


def test_deleted_header_still_included_is_the_compilers_error(multi: Path) -> None:
    (multi / "src/common.h").rename(multi / "common.h.saved")
    run = bpfbuild(multi, "build", "-j1")
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.output
    assert "error: BPF src/alpha.bpf.c failed" in run.stdout
    assert "src/alpha.bpf.c:5:10: fatal error: 'common.h' file not found" in run.stdout
    (multi / "common.h.saved").rename(multi / "src/common.h")
    run = build(multi)
    assert steps_of(run, "BPF") <= {"src/alpha.bpf.c", "src/beta.bpf.c"}
    assert_build_is_noop(multi)


def test_header_no_longer_included_but_kept_is_no_longer_an_input(multi: Path) -> None:
    """The new depfile replaces the old one's headers: a header the source stopped
    including (the file stays) is not an input of the next build, which runs nothing
    (it used to run the compile once more), and an edit of it rebuilds nothing."""
    (multi / "src/extra.h").write_text("#define EXTRA_FLAG 1\n")
    edit(
        multi / "src/gamma.bpf.c",
        "#include <bpf/bpf_endian.h>",
        '#include <bpf/bpf_endian.h>\n#include "extra.h"',
    )
    assert steps_of(build(multi), "BPF") == {"src/gamma.bpf.c"}
    edit(multi / "src/gamma.bpf.c", '\n#include "extra.h"', "")
    assert steps_of(build(multi), "BPF") == {"src/gamma.bpf.c"}
    assert_build_is_noop(multi)
    (multi / "src/extra.h").write_text("#define EXTRA_FLAG 2\n")
    assert_build_is_noop(multi)


def test_a_compiler_search_path_variable_rebuilds_what_it_changes(
    multi: Path, tmp_path: Path
) -> None:
    """CPATH (and the other variables clang and cc read besides their argv) is part of
    every compile's key: pointing it at another folder rebuilds, with the other header."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, value in ((first, 1), (second, 2)):
        folder.mkdir()
        (folder / "picked.h").write_text(f"#define PICKED {value}\n")
    edit(
        multi / "src/util.c",
        '#include "util.h"',
        '#include "util.h"\n#include <picked.h>\nint util_picked(void) { return PICKED; }',
    )
    build(multi, env={**os.environ, "CPATH": str(first)})
    assert_build_is_noop(multi, env={**os.environ, "CPATH": str(first)})
    run = build(multi, env={**os.environ, "CPATH": str(second)})
    assert steps_of(run, "CC") == ALL_USER, run.describe()
    assert steps_of(run, "BPF") == ALL_BPF  # clang reads CPATH for BPF objects too
    assert_build_is_noop(multi, env={**os.environ, "CPATH": str(second)})
