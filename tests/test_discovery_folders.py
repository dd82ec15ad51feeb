"""[build] src: the folders discovery reads, for layouts other than src/ (the project
folder itself as in libbpf-bootstrap's examples/c, scheds/c as in sched_ext, src/bpf as
with libbpf-cargo). Config errors with their line and hint, the project model, real
builds, and the fast path noticing a source added to a configured folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    make_project,
    skip_when_unreachable,
    steps_of,
)

from bpfbuild.arch import get_arch
from bpfbuild.errors import ConfigError, ProjectError
from bpfbuild.pipeline.config import load_config
from bpfbuild.pipeline.project import load_project

TRACED = dict(os.environ, BPFBUILD_TRACE="1")

HELLO_BPF = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("tp/syscalls/sys_enter_getpid") int on_getpid(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def loader(name: str, skeleton: str = "{name}.skel.h", struct: str = "{name}_bpf") -> str:
    """A user-space main that opens and destroys object name's skeleton."""
    header = skeleton.replace("{name}", name)
    skel = struct.replace("{name}", name)
    return (
        f'#include "{header}"\nint util(void);\n'
        f"int main(void) {{ struct {skel} *s = {skel}__open(); {skel}__destroy(s); "
        "return util(); }\n"
    )


UTIL = "int util(void) { return 0; }\n"


# ------------------------------------------------------------ configuration errors

# (id, bpfbuild.toml, files, "LINE: message" the error starts with, a part of its hint)
SRC_ERRORS = [
    (
        "a-string",
        '[build]\nsrc = "scheds/c"\n',
        {},
        "2: 'build.src' must be an array of folders, not the string 'scheds/c'",
        'write it as a list: src = ["scheds/c"]',
    ),
    (
        "empty",
        "[build]\nstatic = true\nsrc = []\n",
        {},
        "3: 'build.src' is empty",
        'list the folders of the sources, e.g. src = ["src"]',
    ),
    (
        "not-strings",
        "[build]\nsrc = [1]\n",
        {},
        "2: 'build.src' must be a string, not int 1",
        "change the value of 'build.src'",
    ),
    (
        "empty-path",
        '[build]\nsrc = [""]\n',
        {},
        "2: 'build.src' holds an empty path",
        "give a path relative to the project folder",
    ),
    (
        "absolute",
        '[build]\nsrc = ["/usr/src"]\n',
        {},
        "2: 'build.src': '/usr/src' is outside the project folder",
        "bpfbuild reads and writes only inside the project folder",
    ),
    (
        "parent",
        '[build]\nsrc = ["../elsewhere"]\n',
        {},
        "2: 'build.src': '../elsewhere' is outside the project folder (it resolves to",
        "bpfbuild reads and writes only inside the project folder",
    ),
    (
        "glob",
        '[build]\nsrc = ["scheds/*"]\n',
        {},
        "2: 'build.src': 'scheds/*' is a glob",
        "list each folder by its path",
    ),
    (
        "twice",
        '[build]\nsrc = [\n  "src",\n  "./src/",\n]\n',
        {},
        "2: 'build.src' lists 'src' twice",
        "list each folder once in 'build.src'",
    ),
    (
        "in-output",
        '[build]\nsrc = ["output/x86_64"]\n',
        {},
        "2: 'build.src': 'output/x86_64' is in output/, which bpfbuild writes",
        "keep the sources out of output/ and .bpfbuild/",
    ),
    (
        "the-state-folder",
        '[build]\nsrc = ["./.bpfbuild"]\n',
        {},
        "2: 'build.src': '.bpfbuild' is in .bpfbuild/, which bpfbuild writes",
        "keep the sources out of output/ and .bpfbuild/",
    ),
    (
        "missing",
        '[build]\nsrc = ["src", "bpf"]\n',
        {"src/a.bpf.c": HELLO_BPF},
        "2: 'build.src': 'bpf' does not exist",
        "give the folders that hold the sources",
    ),
    (
        "missing-though-tables-name-the-sources",
        '[build]\nsrc = ["src"]\n\n[object.a]\nsources = ["bpf/a.bpf.c"]\n',
        {"bpf/a.bpf.c": HELLO_BPF},
        "2: 'build.src': 'src' does not exist",
        "give the folders that hold the sources",
    ),
    (
        "a-file",
        '[build]\nsrc = ["bpf"]\n',
        {"bpf": "not a folder"},
        "2: 'build.src': 'bpf' is a file, not a folder",
        '("." for the project folder itself)',
    ),
    (
        "one-name-in-two-folders",
        '[build]\nsrc = ["a", "b"]\n',
        {"a/x.bpf.c": HELLO_BPF, "b/x.bpf.c": HELLO_BPF},
        "2: x.bpf.c is in two source folders: a/x.bpf.c and b/x.bpf.c",
        "rename one of them, or leave one out with [build] exclude",
    ),
    (
        "one-user-source-in-two-folders",
        '[build]\nsrc = ["b", "a"]\n',
        {"a/x.bpf.c": HELLO_BPF, "a/util.c": UTIL, "b/util.c": UTIL},
        "2: util.c is in two source folders: b/util.c and a/util.c",
        "discovery pairs NAME.bpf.c with NAME.c by name",
    ),
]


@pytest.mark.parametrize(
    "text, files, message, hint",
    [case[1:] for case in SRC_ERRORS],
    ids=[case[0] for case in SRC_ERRORS],
)
def test_src_error(
    tmp_path: Path, text: str, files: dict[str, str], message: str, hint: str
) -> None:
    root = make_project(tmp_path / "p", files, text)
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    assert caught.value.message.startswith(f"{root / 'bpfbuild.toml'}:{message}"), (
        caught.value.message
    )
    assert hint in (caught.value.hint or ""), caught.value.hint
    assert "\n" not in caught.value.message


def test_a_src_folder_linked_out_of_the_project_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    root = make_project(tmp_path / "p", {}, '[build]\nsrc = ["bpf"]\n')
    (root / "bpf").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    assert caught.value.message == (
        f"{root}/bpfbuild.toml:2: 'build.src': 'bpf' is outside the project folder "
        f"(it resolves to {(tmp_path / 'elsewhere').resolve()})"
    )


# (id, files, bpfbuild.toml, the error's message, a part of its hint): what names the folders
PROJECT_ERRORS = [
    (
        "no-bpf-source-in-one-folder",
        {"scheds/c/tool.c": UTIL},
        '[build]\nsrc = ["scheds/c"]\n',
        "{root}/scheds/c: no *.bpf.c source",
        "add scheds/c/NAME.bpf.c (and scheds/c/NAME.c for an app)",
    ),
    (
        "no-bpf-source-in-two-folders",
        {"a/tool.c": UTIL, "b/.keep": ""},
        '[build]\nsrc = ["a", "b"]\n',
        "{root}: no *.bpf.c source in a/, b/",
        "add a/NAME.bpf.c",
    ),
    (
        "no-bpf-source-at-the-root",
        {"tool.c": UTIL},
        '[build]\nsrc = ["."]\n',
        "{root}: no *.bpf.c source",
        "add NAME.bpf.c (and NAME.c for an app)",
    ),
    (
        "a-source-that-is-a-folder",
        {"a.bpf.c": HELLO_BPF, "odd.c/x": ""},
        '[build]\nsrc = ["."]\n',
        "odd.c is a folder, not a source file",
        "remove or rename odd.c: every ./*.c is compiled",
    ),
    (
        "an-app-named-badly",
        {"bpf/include.bpf.c": HELLO_BPF, "user/include.c": UTIL},
        '[build]\nsrc = ["user", "bpf"]\n',
        "user/include.c: 'include' is not a valid app name",
        "rename user/include.c and bpf/include.bpf.c",
    ),
]


@pytest.mark.parametrize(
    "files, text, message, hint",
    [case[1:] for case in PROJECT_ERRORS],
    ids=[case[0] for case in PROJECT_ERRORS],
)
def test_errors_name_the_configured_folders(
    tmp_path: Path, files: dict[str, str], text: str, message: str, hint: str
) -> None:
    root = make_project(tmp_path / "p", files, text)
    with pytest.raises(ProjectError) as caught:
        load_project(root)
    assert caught.value.message.startswith(message.format(root=root)), caught.value.message
    assert hint in (caught.value.hint or ""), caught.value.hint


def test_the_default_src_is_unchanged(tmp_path: Path) -> None:
    """Without [build] src: src/, whose absence says so as before; tables that name
    every source need no src/ folder."""
    root = make_project(tmp_path / "p", {"README.md": ""}, "")
    with pytest.raises(ProjectError) as caught:
        load_project(root)
    assert caught.value.message == f"{root}: no src/ folder"
    assert "name the folders of the sources with [build] src" in (caught.value.hint or "")
    make_project(root, {"bpf/a.bpf.c": HELLO_BPF}, '[object.a]\nsources = ["bpf/a.bpf.c"]\n')
    project = load_project(root)
    assert list(project.bpf_objects) == ["a"] and project.src_folders == ()


# ------------------------------------------------------------ the model


def test_include_dirs_default_to_the_src_folders_and_include(tmp_path: Path) -> None:
    path = make_project(tmp_path / "a", {}, '[build]\nsrc = ["scheds/c", "lib"]\n')
    assert load_config(path / "bpfbuild.toml").build.include_dirs == ["scheds/c", "lib", "include"]
    path = make_project(tmp_path / "b", {}, '[build]\nsrc = ["./"]\n')
    config = load_config(path / "bpfbuild.toml")
    assert (config.build.src, config.build.include_dirs) == (["."], [".", "include"])
    path = make_project(
        tmp_path / "c", {}, '[build]\nsrc = ["scheds/c"]\ninclude_dirs = ["scheds/include"]\n'
    )
    assert load_config(path / "bpfbuild.toml").build.include_dirs == ["scheds/include"]
    path = make_project(tmp_path / "d", {}, "")
    assert load_config(path / "bpfbuild.toml").build.include_dirs == ["src", "include"]


def test_the_project_folder_as_src_reads_only_its_own_c_files(tmp_path: Path) -> None:
    """libbpf-bootstrap's examples/c: sources at the root. Only the *.c directly there
    are discovered: not output/, .bpfbuild/, tests/ or any other folder, nor editors'
    leftovers or excluded files; headers of output/ and hidden folders are not the
    project's."""
    root = make_project(
        tmp_path / "p",
        {
            "minimal.bpf.c": HELLO_BPF,
            "minimal.c": loader("minimal"),
            "bootstrap.bpf.c": HELLO_BPF,
            "bootstrap.c": loader("bootstrap"),
            "util.c": UTIL,
            "old.c": UTIL,
            "bootstrap.h": "",
            "output/x86_64/stale.c": "",
            "output/x86_64/include/minimal.skel.h": "",
            ".bpfbuild/x.c": "",
            ".git/x.h": "",
            "tests/test_x.c": "",
            "tests/test.h": "",
            "blazesym/src/b.bpf.c": "",
            ".#minimal.c": "",
            "minimal.c~": "",
            "Makefile": "",
        },
        '[build]\nsrc = ["."]\nexclude = ["old.c"]\n',
    )
    project = load_project(root)
    assert project.src_folders == (".",)
    assert {name: obj.sources for name, obj in project.bpf_objects.items()} == {
        "bootstrap": ("bootstrap.bpf.c",),
        "minimal": ("minimal.bpf.c",),
    }
    assert {name: app.sources for name, app in project.apps.items()} == {
        "bootstrap": ("bootstrap.c", "util.c"),
        "minimal": ("minimal.c", "util.c"),
    }
    assert project.excluded == {"old.c": "old.c"}
    assert project.include_dirs == ["."]
    assert [h.relative_to(root).as_posix() for h in project.headers] == [
        "bootstrap.h",
        "tests/test.h",
    ]


def test_folders_are_read_as_one(tmp_path: Path) -> None:
    """A NAME.bpf.c in one folder pairs with NAME.c in another; shared sources of every
    folder are linked into every app; an [object] table's own source comes first."""
    root = make_project(
        tmp_path / "p",
        {
            "bpf/tool.bpf.c": HELLO_BPF,
            "bpf/extra.bpf.c": HELLO_BPF.replace("on_getpid", "on_other"),
            "bpf/solo.bpf.c": HELLO_BPF,
            "user/tool.c": loader("tool"),
            "user/util.c": UTIL,
            "more/log.c": UTIL,
        },
        '[build]\nsrc = ["bpf", "user", "more"]\n\n'
        '[object.tool]\nsources = ["bpf/extra.bpf.c", "bpf/tool.bpf.c"]\n',
    )
    project = load_project(root)
    assert project.bpf_objects["tool"].sources == ("bpf/tool.bpf.c", "bpf/extra.bpf.c")
    assert project.bpf_objects["solo"].sources == ("bpf/solo.bpf.c",)
    assert project.apps["tool"].sources == ("user/tool.c", "user/util.c", "more/log.c")
    assert list(project.apps) == ["tool"]


def test_list_shows_the_folders(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {"bpf/a.bpf.c": HELLO_BPF, "a.c": loader("a"), "util.c": UTIL},
        '[build]\nsrc = [".", "bpf"]\n',
    )
    listing = bpfbuild(root, "list")
    assert listing.returncode == 0, listing.describe()
    assert "sources discovered in: ./, bpf/ ([build] src)" in listing.stdout
    assert "  sources:     a.c, util.c" in listing.stdout


# ------------------------------------------------------------ builds


def test_a_root_layout_builds_and_sees_a_new_source(tmp_path: Path) -> None:
    """src = ["."]: the apps build, a no-op runs nothing (the fast path answers once a
    build left the root as it found it: the first one creates output/ there), and a
    user source added at the root is linked into every app."""
    root = make_project(
        tmp_path / "p",
        {
            "minimal.bpf.c": HELLO_BPF,
            "minimal.c": loader("minimal"),
            "util.c": UTIL,
            "tests/helper.c": "this is not C",
        },
        '[build]\nsrc = ["."]\n',
    )
    run = build(root)
    assert steps_of(run, "CC") == {"minimal.c", "util.c"}, run.describe()
    assert (root / "output" / ARCH / "minimal").is_file()
    assert_build_is_noop(root)
    assert "fastpath: hit" in build(root, env=TRACED).stderr
    (root / "more.c").write_text("int more(void) { return 2; }\n")
    run = build(root, env=TRACED)
    assert "fastpath: miss" in run.stderr, run.describe()
    assert steps_of(run, "CC") == {"more.c"}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/minimal"}, run.describe()
    assert_build_is_noop(root)


SDT_LIB = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
int total;
__noinline int sdt_bump(int by) { total += by; return 0; }
"""
SCHED = """#include <common.bpf.h>
extern int sdt_bump(int by);
SEC("tp/syscalls/sys_enter_getpid") int on_getpid(void *ctx) { return sdt_bump(1); }
char LICENSE[] SEC("license") = "GPL";
"""


def _scheds_project(root: Path) -> Path:
    """sched_ext's layout: schedulers and loaders in scheds/c, headers in
    scheds/include, a BPF library in lib/, the kernel tree's skeleton names."""
    return make_project(
        root,
        {
            "scheds/c/scx_simple.bpf.c": HELLO_BPF,
            "scheds/c/scx_simple.c": loader("scx_simple", "{name}.bpf.skel.h", "{name}"),
            "scheds/c/scx_sdt.bpf.c": SCHED,
            "scheds/c/scx_sdt.c": loader("scx_sdt", "{name}.bpf.skel.h", "{name}"),
            "scheds/c/util.c": UTIL,
            "scheds/c/README.md": "",
            "scheds/include/common.bpf.h": '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n',
            "lib/sdt_alloc.bpf.c": SDT_LIB,
        },
        "[build]\n"
        'src = ["scheds/c"]\n'
        'include_dirs = ["scheds/include", "scheds/c"]\n'
        'skel_header = "{name}.bpf.skel.h"\n'
        'skel_name = "{name}"\n'
        "pch = false\n\n"
        "[object.scx_sdt]\n"
        'libs = ["sdt"]\n\n'
        "[bpflib.sdt]\n"
        'sources = ["lib/sdt_*.bpf.c"]\n',
    )


def test_a_scheds_layout_with_a_library_builds(tmp_path: Path) -> None:
    """src = ["scheds/c"]: two schedulers and their loaders, one linked with a [bpflib],
    from a toml without [app] tables; a no-op; a scheduler added to scheds/c is built
    (the fast path notices it) with its app."""
    root = _scheds_project(tmp_path / "p")
    run = build(root)
    out = root / "output" / ARCH
    for name in ("scx_simple", "scx_sdt"):
        assert (out / name).is_file(), run.describe()
        assert f"struct {name} {{" in (out / "include" / f"{name}.bpf.skel.h").read_text()
    assert "total" in (out / "include" / "scx_sdt.bpf.skel.h").read_text()
    assert (out / "bpf" / "sources" / "lib" / "sdt_alloc.bpf.o").is_file()
    assert_build_is_noop(root)
    assert "fastpath: hit" in build(root, env=TRACED).stderr
    (root / "scheds/c/scx_new.bpf.c").write_text(HELLO_BPF)
    (root / "scheds/c/scx_new.c").write_text(loader("scx_new", "{name}.bpf.skel.h", "{name}"))
    run = build(root, env=TRACED)
    assert "fastpath: miss (" in run.stderr and "scheds/c changed" in run.stderr, run.describe()
    assert steps_of(run, "BPF") == {"scheds/c/scx_new.bpf.c"}, run.describe()
    assert steps_of(run, "LD") == {f"output/{ARCH}/scx_new"}, run.describe()
    assert_build_is_noop(root)


def test_a_src_bpf_layout_builds_bpf_only_objects(tmp_path: Path) -> None:
    """libbpf-cargo's src/bpf/: BPF sources only (the user space is Rust): objects and
    skeletons, no app; src/main.rs and other files beside are not read."""
    root = make_project(
        tmp_path / "p",
        {
            "src/bpf/tracer.bpf.c": '#include "tracer.h"\n' + HELLO_BPF,
            "src/bpf/tracer.h": "#define TRACER 1\n",
            "src/main.rs": "fn main() {}\n",
            "Cargo.toml": "",
        },
        '[build]\nsrc = ["src/bpf"]\n',
    )
    run = build(root)
    out = root / "output" / ARCH
    assert steps_of(run, "BPF") == {"src/bpf/tracer.bpf.c"}, run.describe()
    assert (out / "bpf" / "tracer.bpf.o").is_file()
    assert (out / "include" / "tracer.skel.h").is_file()
    assert not steps_of(run, "LD")
    assert_build_is_noop(root)
    (root / "src/bpf/tracer.h").write_text("#define TRACER 2\n")
    run = build(root)
    assert steps_of(run, "BPF") == {"src/bpf/tracer.bpf.c"}, run.describe()


# ------------------------------------------------------------ the kernel tree's layout

SCX_TREE_SHORT = """[project]
name = "scx_tree"

[build]
arches = ["x86_64", "arm64"]
src = ["."]
skel_header = "{name}.bpf.skel.h"
skel_name = "{name}"

[bpflib.qstats]
sources = ["lib/qstats.bpf.c"]

[object.scx_qstat]
libs = ["qstats"]

[toolchain]
clang = "clang-19"

[vmlinux]
x86_64 = "debian:7.3"
arm64 = "debian:7.3"
"""
"""tests/projects/scx_tree's bpfbuild.toml without its [app] tables: src = ["."]."""


def _model(root: Path) -> tuple:
    project = load_project(root)
    headers = [h.relative_to(root) for h in project.headers]
    return project.apps, project.bpf_objects, project.bpf_libs, headers


def test_scx_tree_short_toml_gives_the_same_project(tmp_path: Path) -> None:
    """The scx_tree project with `src = ["."]` in place of its [app] tables: the same
    apps, objects, library and headers, the project folder an include folder too
    (kernels not fetched: the [vmlinux] entries are left out of both)."""
    verbose = copy_project("scx_tree", tmp_path / "verbose")
    short = copy_project("scx_tree", tmp_path / "short")
    for root in (verbose, short):
        toml = root / "bpfbuild.toml"
        text = SCX_TREE_SHORT if root == short else toml.read_text()
        text = text.replace('arches = ["x86_64", "arm64"]', "arches = []")
        toml.write_text(text.split("[vmlinux]")[0])
    assert _model(short) == _model(verbose)
    assert load_project(short).include_dirs == [".", "include"]


@pytest.mark.slow
def test_scx_tree_builds_from_a_short_toml(tmp_path: Path) -> None:
    """tests/projects/scx_tree built for x86_64 and arm64 from SCX_TREE_SHORT, then a
    no-op."""
    if shutil.which("clang-19") is None:
        pytest.skip("needs clang-19: scripts/setup --clang 19 installs it")
    root = copy_project("scx_tree", tmp_path)
    (root / "bpfbuild.toml").write_text(SCX_TREE_SHORT)
    with skip_when_unreachable("the 7.3 kernel, bpftool 7.5 or libbpf 1.5"):
        from bpfbuild.kernels.debian import get_kernel

        for arch in ("x86_64", "arm64"):
            get_kernel("debian:7.3", get_arch(arch))
    run = bpfbuild(root, "build", "-j2", timeout=900)
    assert run.returncode == 0, run.describe()
    for arch in ("x86_64", "arm64"):
        out = root / "output" / arch
        for name in ("scx_fifo", "scx_qstat"):
            assert (out / name).is_file(), run.describe()
        assert "struct bpf_map *qstats;" in (out / "include" / "scx_qstat.bpf.skel.h").read_text()
    assert_build_is_noop(root, "-j2")
