"""Negative dependencies: a header that would now be found earlier in the search path (a
new file, a new search folder) rebuilds what includes that name, through the build
graph and through the no-op fast path; each case compared with a clean build's bytes.
Then the pure parts: the compiler's `-v` search list, and the paths before a header."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, build, copy_project, output_hashes, steps_of

from bpfbuild.pipeline import search
from bpfbuild.pipeline.search import SearchPath, parse_search, paths_before, search_flags

TRACED = dict(os.environ, BPFBUILD_TRACE="1")


def assert_clean_build_bytes(root: Path) -> None:
    """The graph has nothing left to do, and every output is a clean build's."""
    (root / ".bpfbuild" / "fastpath.stamp").unlink(missing_ok=True)
    again = build(root)
    assert again.stdout == "", again.describe()
    built = output_hashes(root)
    assert bpfbuild(root, "clean").returncode == 0
    build(root)
    assert built == output_hashes(root)


def version_of(root: Path) -> str:
    done = subprocess.run(
        [str(root / "output" / ARCH / "alpha"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    root = copy_project("multi", tmp_path)
    build(root)
    return root


def test_a_header_created_earlier_in_the_search_path_rebuilds_its_includers(
    multi: Path,
) -> None:
    """The reported case: src/alpha.c includes <version.h>, found in include/. A
    src/version.h is created: src/ comes first (-Isrc before -Iinclude). Nothing
    changed among alpha.c's inputs, yet it must be compiled again."""
    assert "alpha 1.2.3" in version_of(multi)
    (multi / "src/version.h").write_text('#define MULTI_VERSION "9.9.9"\n')
    run = build(multi, env=TRACED)
    assert "fastpath: miss" in run.stderr, run.describe()
    assert steps_of(run, "CC") == {"src/alpha.c"}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha"}, run.describe()
    assert "alpha 9.9.9" in version_of(multi)
    assert_clean_build_bytes(multi)


def test_a_quoted_include_is_hidden_by_the_including_files_folder(multi: Path) -> None:
    """A BPF source's `#include "vmlinux.h"` is found in output/<arch>/include/; a
    src/vmlinux.h beside the source comes first for a quoted include."""
    header = multi / f"output/{ARCH}/include/vmlinux.h"
    (multi / "src/vmlinux.h").write_text(header.read_text() + "\n#define SHADOWED_VMLINUX 1\n")
    run = build(multi)
    # beta.bpf.c includes <vmlinux.h>, which src/ does not hide; the depfile does not
    # say which form an include had, so beta is compiled again too (the same object)
    assert steps_of(run, "BPF") == {"src/alpha.bpf.c", "src/beta.bpf.c"}, run.describe()
    assert steps_of(run, "GENOBJ") <= {f"output/{ARCH}/bpf/alpha.bpf.o"}, run.describe()
    assert_clean_build_bytes(multi)


def test_a_project_header_hiding_a_system_header(multi: Path) -> None:
    """gamma.bpf.c includes <bpf/bpf_endian.h> from the system; include/bpf/bpf_endian.h
    (a vendored copy, say) comes first. The object's bytes decide what follows."""
    vendored = multi / "include/bpf/bpf_endian.h"
    vendored.parent.mkdir()
    shutil.copy("/usr/include/bpf/bpf_endian.h", vendored)
    with vendored.open("a") as f:
        f.write("/* vendored */\n")
    run = build(multi, env=TRACED)
    assert "fastpath: miss" in run.stderr, run.describe()
    assert steps_of(run, "BPF") == {"src/gamma.bpf.c"}, run.describe()
    assert_clean_build_bytes(multi)


def test_a_search_folder_that_did_not_exist_appears(tmp_path: Path) -> None:
    """cflags name -Ivendor, which does not exist, so the compiler skipped it. It
    appears with a stdio.h (that adds a string, then includes the system's with
    #include_next): every compile that searched vendor/ runs again (what a new folder
    holds could answer any include, a `__has_include` too), the fast path (which
    stamped vendor/ as absent) does not answer, and the apps whose objects changed
    are relinked."""
    root = copy_project("multi", tmp_path)
    config = root / "bpfbuild.toml"
    config.write_text(config.read_text().replace("[build]", '[build]\ncflags = ["-Ivendor"]', 1))
    build(root)
    (root / "vendor").mkdir()
    (root / "vendor/stdio.h").write_text(
        "#include_next <stdio.h>\n#ifndef VENDOR_STDIO\n#define VENDOR_STDIO\n"
        '__attribute__((used)) static const char vendor_marker[] = "VENDORED-STDIO";\n'
        "#endif\n"
    )
    run = build(root, env=TRACED)
    assert "fastpath: miss" in run.stderr and "vendor changed" in run.stderr, run.describe()
    assert steps_of(run, "CC") == {"src/alpha.c", "src/gamma.c", "src/util.c"}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert b"VENDORED-STDIO" in (root / "output" / ARCH / "alpha").read_bytes()
    assert_clean_build_bytes(root)


def test_a_configured_include_folder_that_appears(tmp_path: Path) -> None:
    """include_dirs names third_party/ first, which does not exist yet: it is not passed
    to the compilers. When it appears, every compile gets its -I (a new command) and
    finds its headers first."""
    root = copy_project("multi", tmp_path)
    config = root / "bpfbuild.toml"
    config.write_text(
        config.read_text().replace(
            "[build]", '[build]\ninclude_dirs = ["third_party", "src", "include"]', 1
        )
    )
    build(root)
    (root / "third_party").mkdir()
    (root / "third_party/version.h").write_text('#define MULTI_VERSION "7.0.0"\n')
    run = build(root, env=TRACED)
    assert "fastpath: miss" in run.stderr, run.describe()
    assert "src/alpha.c" in steps_of(run, "CC"), run.describe()
    assert "alpha 7.0.0" in version_of(root)
    assert_clean_build_bytes(root)


def test_a_system_folder_earlier_in_the_chain(tmp_path: Path) -> None:
    """Two -isystem folders outside the project (as /usr/local/include before
    /usr/include): a header added to the first hides the one in the second."""
    root = copy_project("multi", tmp_path / "project")
    first, second = tmp_path / "sys1", tmp_path / "sys2"
    first.mkdir()
    second.mkdir()
    (second / "extra_limits.h").write_text("#define EXTRA_LIMIT 1\n")
    config = root / "bpfbuild.toml"
    config.write_text(
        config.read_text().replace(
            "[build]", f'[build]\ncflags = ["-isystem", "{first}", "-isystem", "{second}"]', 1
        )
    )
    util = root / "src/util.c"
    util.write_text('#include <extra_limits.h>\n#include "util.h"\n' + util.read_text())
    build(root)
    (first / "extra_limits.h").write_text("#define EXTRA_LIMIT 2\nint extra_declared;\n")
    run = build(root, env=TRACED)
    assert f"fastpath: miss ({first} changed)" in run.stderr, run.describe()
    assert steps_of(run, "CC") == {"src/util.c"}, run.describe()
    assert_clean_build_bytes(root)


def test_a_header_that_hides_nothing_rebuilds_nothing(multi: Path) -> None:
    """A new header in src/ whose name no compile used: the fast path misses (src/
    changed), the graph finds nothing hidden."""
    (multi / "src/unrelated.h").write_text("#define UNRELATED 1\n")
    run = build(multi, env=TRACED)
    assert "fastpath: miss" in run.stderr, run.describe()
    assert run.steps == [], run.describe()


# -- the pure parts ---------------------------------------------------------------

GCC_VERBOSE = """\
ignoring nonexistent directory "/usr/local/include/x86_64-linux-gnu"
ignoring nonexistent directory "vendor"
ignoring duplicate directory "/usr/include"
#include "..." search starts here:
 quoted
#include <...> search starts here:
 output/x86_64/include
 src
 /usr/lib/gcc/x86_64-linux-gnu/12/include
 /usr/include
End of search list.
"""


@pytest.mark.parametrize(
    ("verbose", "expected"),
    [
        (
            GCC_VERBOSE,
            SearchPath(
                quote=("/p/quoted",),
                angle=(
                    "/p/output/x86_64/include",
                    "/p/src",
                    "/usr/lib/gcc/x86_64-linux-gnu/12/include",
                    "/usr/include",
                ),
                missing=("/usr/local/include/x86_64-linux-gnu", "/p/vendor"),
            ),
        ),
        ("no search list here\n", None),
        ("#include <...> search starts here:\n /usr/include\n", None),  # no end: cut short
        (
            "#include <...> search starts here:\n /Library/Frameworks (framework directory)\n"
            "End of search list.\n",
            SearchPath((), ("/Library/Frameworks",), ()),
        ),
    ],
)
def test_parse_search(verbose: str, expected: SearchPath | None) -> None:
    assert parse_search(verbose, "/p") == expected


@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        (
            ["cc", "-g", "-I", "a", "-Ib", "-c", "x.c", "-o", "x.o", "-MF", "x.d"],
            ["-I", "a", "-Ib"],
        ),
        (
            ["clang", "-target", "bpfel", "-isysroot", "/r", "-isystem", "/u", "-include-pch"]
            + ["p.pch", "-idirafter", "/i", "-Xclang", "-fno-validate-pch", "-nostdinc"],
            ["-target", "bpfel", "-isysroot", "/r", "-isystem", "/u", "-idirafter", "/i"]
            + ["-nostdinc"],
        ),
        (
            ["cc", "--sysroot=/s", "-iquote", "q", "-DX=1", "-m32"],
            ["--sysroot=/s", "-iquote", "q"] + ["-m32"],
        ),
    ],
)
def test_search_flags_keep_only_what_decides_the_search(argv: list[str], flags: list[str]) -> None:
    assert search_flags(argv) == flags


CHAIN = SearchPath(
    quote=("/p/quoted",),
    angle=("/p/out/include", "/p/src", "/p/include", "/usr/local/include", "/usr/include"),
    missing=("/p/vendor",),
)


@pytest.mark.parametrize(
    ("header", "includers", "before"),
    [
        # <version.h> found in include/: every folder before it, and the includer's
        (
            "/p/include/version.h",
            ("/p/src",),
            ["/p/src/version.h", "/p/quoted/version.h", "/p/out/include/version.h"],
        ),
        # a system header: the project's folders and /usr/local/include come first
        (
            "/usr/include/bpf/bpf_helpers.h",
            ("/p/src",),
            [
                "/p/src/bpf/bpf_helpers.h",
                "/p/quoted/bpf/bpf_helpers.h",
                "/p/out/include/bpf/bpf_helpers.h",
                "/p/include/bpf/bpf_helpers.h",
                "/usr/local/include/bpf/bpf_helpers.h",
            ],
        ),
        # found beside its includer (quoted): nothing before that; as <common.h>
        # through -I/p/src, the folders before src/ in the chain
        (
            "/p/src/common.h",
            ("/p/src",),
            ["/p/quoted/common.h", "/p/out/include/common.h"],
        ),
        # found nowhere on the chain (an absolute #include): nothing is known
        ("/elsewhere/x.h", ("/p/src",), []),
        # an unnormalized path from the depfile
        (
            "/usr/lib/../include/stdio.h",
            (),
            [
                "/p/quoted/stdio.h",
                "/p/out/include/stdio.h",
                "/p/src/stdio.h",
                "/p/include/stdio.h",
                "/usr/local/include/stdio.h",
            ],
        ),
    ],
)
def test_paths_before_a_header(header: str, includers: tuple[str, ...], before: list[str]) -> None:
    assert sorted(paths_before(header, CHAIN, includers)) == sorted(before)


def test_search_path_of_a_real_compiler(tmp_path: Path) -> None:
    """The probe runs the compiler with the command's search options only."""
    (tmp_path / "src").mkdir()
    argv = ["cc", "-Isrc", "-Imissing", "-c", "nothing.c", "-o", "nothing.o", "-MD"]
    found = search.search_path(argv, str(tmp_path))
    assert found is not None
    assert found.angle[0] == str(tmp_path / "src")
    assert str(tmp_path / "missing") in found.missing
    assert "/usr/include" in found.angle
