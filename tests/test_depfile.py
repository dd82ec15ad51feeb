"""The Make-style depfile parser, table-driven, and the ninja-like dropping of deleted headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfbuild.pipeline.depfile import existing_deps, parse_depfile, read_depfile

# (id, depfile text, prerequisites in order)
DEPFILES = [
    ("empty", "", []),
    ("one-line", "a.o: a.c a.h\n", ["a.c", "a.h"]),
    ("no-prerequisites", "a.o:\n", []),
    (
        "continuations",
        "out/a.o: src/a.c \\\n  src/a.h \\\n  /usr/include/bpf/bpf_helpers.h\n",
        ["src/a.c", "src/a.h", "/usr/include/bpf/bpf_helpers.h"],
    ),
    ("continuation-without-space", "a.o: a.c\\\nb.h\n", ["a.c", "b.h"]),
    ("escaped-spaces", "a.o: my\\ dir/a.c other\\ file.h\n", ["my dir/a.c", "other file.h"]),
    ("escaped-hash", "a.o: a\\#1.h\n", ["a#1.h"]),
    ("dollar-dollar", "a.o: cost$$.h a.c\n", ["cost$.h", "a.c"]),
    ("phony-rules-from-MP", "a.o: a.c a.h b.h\n\na.h:\n\nb.h:\n", ["a.c", "a.h", "b.h"]),
    ("multiple-targets", "a.o a.d: a.c a.h\n", ["a.c", "a.h"]),
    (
        "several-rules-deduplicated",
        "a.o: a.c common.h\nb.o: b.c common.h\n",
        ["a.c", "common.h", "b.c"],
    ),
    ("tabs", "a.o:\ta.c\t\\\n\tb.h\n", ["a.c", "b.h"]),
    ("trailing-space", "a.o: a.c   \n", ["a.c"]),
    (
        "target-with-partial-suffix",
        "output/x86_64/bpf/a.tmp.bpf.o.partial: src/a.bpf.c \\\n"
        "  output/x86_64/include/vmlinux.h\n\noutput/x86_64/include/vmlinux.h:\n",
        ["src/a.bpf.c", "output/x86_64/include/vmlinux.h"],
    ),
    (
        "absolute-prerequisite",
        "a.o: /tmp/p/output/x86_64/include/vmlinux.h src/a.bpf.c\n",
        ["/tmp/p/output/x86_64/include/vmlinux.h", "src/a.bpf.c"],
    ),
]


@pytest.mark.parametrize(
    "text, expected", [case[1:] for case in DEPFILES], ids=[case[0] for case in DEPFILES]
)
def test_parse_depfile(text: str, expected: list[str]) -> None:
    assert parse_depfile(text) == expected


def test_real_clang_depfile(tmp_path: Path) -> None:
    """What clang -MD -MP writes for a path with a space, parsed back."""
    import subprocess

    folder = tmp_path / "my dir"
    folder.mkdir()
    (folder / "x y.h").write_text("#define X 1\n")
    (folder / "a.c").write_text('#include "x y.h"\nint a = X;\n')
    subprocess.run(
        ["clang", "-MD", "-MP", "-MF", "a.d", "-c", "my dir/a.c", "-o", "a.o"],
        cwd=tmp_path,
        check=True,
    )
    assert parse_depfile((tmp_path / "a.d").read_text()) == ["my dir/a.c", "my dir/x y.h"]


def test_read_depfile_that_does_not_exist_yet(tmp_path: Path) -> None:
    assert read_depfile(tmp_path / "never-built.d") == []


def test_existing_deps_drops_deleted_headers(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.bpf.c", "kept.h"):
        (tmp_path / "src" / name).write_text("")
    depfile = tmp_path / "a.d"
    depfile.write_text("a.o: src/a.bpf.c src/kept.h src/deleted.h /usr/include/stdio.h\n")
    assert existing_deps(tmp_path, depfile) == {
        str(tmp_path / "src/a.bpf.c"),
        str(tmp_path / "src/kept.h"),
        "/usr/include/stdio.h",
    }


def test_existing_deps_names_each_file_one_way(tmp_path: Path) -> None:
    """`./src/x.h` (from -I./src) and `src//x.h` are the same file_dep as `src/x.h`,
    and a dotfile keeps its name."""
    (tmp_path / "src").mkdir()
    for name in ("x.h", ".hidden.h"):
        (tmp_path / "src" / name).write_text("")
    depfile = tmp_path / "a.d"
    depfile.write_text("a.o: ./src/x.h src//x.h src/x.h src/.hidden.h\n")
    assert existing_deps(tmp_path, depfile) == {
        str(tmp_path / "src/x.h"),
        str(tmp_path / "src/.hidden.h"),
    }
