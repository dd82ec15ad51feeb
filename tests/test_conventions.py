"""The kernel tree's conventions (issue 19): skeleton names, objects of several sources,
BPF libraries, exclusions, generated headers, the PCH through a project header, the
clang of choice and its probes, and the bpftool checked for what an object needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import ARCH, REPO, bpfbuild, build, copy_project, make_project, skip_when_unreachable

from bpfbuild.arch import get_arch, host_arch
from bpfbuild.errors import BpfBuildError, ConfigError, ProjectError
from bpfbuild.kernels.tools import backports_bpftool
from bpfbuild.pipeline.bpfcheck import (
    bpftool_libbpf,
    program_sections,
    read_sections,
    sections_named,
    skipped_sections,
    unreadable_sections,
    unreadable_sections_error,
)
from bpfbuild.pipeline.config import load_config
from bpfbuild.pipeline.includes import IncludeScanner, logical_lines
from bpfbuild.pipeline.project import load_project
from bpfbuild.pipeline.tasks import StepBuilder
from bpfbuild.pipeline.toolchain import (
    BPF_CPU,
    Bpftool,
    _VersionCache,
    clang_features,
    find_bpftool,
    find_toolchain,
)

CLANG_19 = shutil.which("clang-19")
NEEDS_CLANG_19 = pytest.mark.skipif(
    CLANG_19 is None, reason="needs clang-19: scripts/setup --clang 19 installs it"
)
KCONV = REPO / "examples" / "kconv"
PROGRAM_SECTIONS = {
    "execcount": "tp/sched/sched_process_exec",
    "forkcount": "raw_tp/sched_process_fork",
}
"""The program of each object of examples/kconv (the library's function is .text)."""


HELLO_BPF = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("tp/syscalls/sys_enter_getpid") int on_getpid(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


# ------------------------------------------------------------ configuration

# (id, bpfbuild.toml, "LINE: message" the error starts with, a part of its hint)
CONFIG_ERRORS = [
    (
        "build-skel-header-without-name",
        '[build]\nskel_header = "all.skel.h"\n',
        "2: 'build.skel_header' = 'all.skel.h' has no {name}",
        'e.g. "{name}.skel.h"',
    ),
    (
        "build-skel-name-without-name",
        '[build]\nskel_name = "skel"\n',
        "2: 'build.skel_name' = 'skel' has no {name}",
        'e.g. "{name}_bpf"',
    ),
    (
        "unknown-placeholder",
        '[build]\nskel_name = "{obj}_bpf"\n',
        "2: 'build.skel_name' = '{obj}_bpf': unknown placeholder {obj}",
        "the only placeholder is {name}",
    ),
    (
        "placeholder-with-a-format",
        '[build]\n\nskel_header = "{name:>9}.h"\n',
        "3: 'build.skel_header' = '{name:>9}.h': unknown placeholder {name:>9}",
        "the only placeholder is {name}",
    ),
    (
        "unbalanced-brace",
        '[build]\nskel_name = "{name"\n',
        "2: 'build.skel_name' = '{name': expected '}'",
        "write {name} for the object's name",
    ),
    (
        "skel-header-in-a-folder",
        '[build]\nskel_header = "skel/{name}.h"\n',
        "2: 'build.skel_header' = 'skel/{name}.h' is not a header file name",
        "output/<arch>/include/",
    ),
    (
        "skel-header-not-a-header",
        '[object.a]\nskel_header = "a.skel"\n',
        "2: 'object.a.skel_header' = 'a.skel' is not a header file name",
        "ending in .h",
    ),
    (
        "skel-name-not-an-identifier",
        '[build]\nskel_name = "{name}-bpf"\n',
        "2: 'build.skel_name' = '{name}-bpf' is not a C identifier",
        "struct NAME",
    ),
    (
        "skel-name-wrong-type",
        "[object.a]\nskel_name = 3\n",
        "2: 'object.a.skel_name' must be a string",
        "change the value",
    ),
    (
        "exclude-not-a-list",
        '[build]\nexclude = "src/old.c"\n',
        "2: 'build.exclude' must be an array",
        "change the value of 'build.exclude'",
    ),
    (
        "exclude-outside",
        '[build]\nexclude = ["../other/*.c"]\n',
        "2: 'build.exclude': '../other/*.c' is outside the project folder",
        "only inside the project folder",
    ),
    (
        "generated-glob",
        '[build]\ngenerated = ["include/*.autogen.h"]\n',
        "2: 'build.generated': 'include/*.autogen.h' is a glob",
        "list each file of 'build.generated' by its path",
    ),
    (
        "generated-twice",
        '[build]\ngenerated = ["include/x.h", "./include/x.h"]\n',
        "2: 'build.generated' lists './include/x.h' twice",
        "list each file once",
    ),
    (
        "bpflib-without-sources",
        "[bpflib.util]\n",
        "1: [bpflib.util] has no sources",
        'sources = ["src/lib/util.bpf.c"]',
    ),
    (
        "bpflib-bad-name",
        '[bpflib."my-lib"]\nsources = ["x.c"]\n',
        "1: 'my-lib' is not a valid BPF library name",
        "letters, digits and underscores",
    ),
    (
        "bpflib-unknown-key",
        '[bpflib.util]\nsources = ["x.c"]\nsrc = []\n',
        "3: unknown key 'bpflib.util.src'",
        "valid keys: sources",
    ),
    (
        "object-empty-sources",
        "[object.a]\nsources = []\n",
        "2: 'object.a.sources' is empty",
        "remove `sources` from [object.a]",
    ),
    (
        "object-source-twice",
        '[object.a]\nsources = ["src/x.bpf.c", "src/./x.bpf.c"]\n',
        "2: 'object.a.sources' lists 'src/./x.bpf.c' twice",
        "list each file once",
    ),
    (
        "object-source-outside",
        '[object.a]\nsources = ["/tmp/x.bpf.c"]\n',
        "2: 'object.a.sources': '/tmp/x.bpf.c' is outside the project folder",
        "only inside the project folder",
    ),
    (
        "object-bad-name",
        '[object."a.b"]\nsources = ["x.c"]\n',
        "1: 'a.b' is not a valid BPF object name",
        "letters, digits and underscores",
    ),
    (
        "object-unknown-lib",
        '[bpflib.util]\nsources = ["x.c"]\n\n[object.a]\nlibs = ["utils"]\n',
        "5: 'object.a.libs' names 'utils', which is no [bpflib] of this file",
        "BPF libraries: util; define [bpflib.utils]",
    ),
    (
        "object-lib-twice",
        '[bpflib.util]\nsources = ["x.c"]\n\n[object.a]\nlibs = ["util", "util"]\n',
        "5: 'object.a.libs' lists 'util' twice",
        "list each library once",
    ),
    (
        "object-named-as-a-bpflib",
        '[bpflib.a]\nsources = ["x.c"]\n\n[object.a]\nbpf_cflags = []\n',
        "4: [object.a] and [bpflib.a] have the same name",
        "share one namespace",
    ),
    (
        "toolchain-clang-not-a-string",
        "[toolchain]\nclang = 19\n",
        "2: 'toolchain.clang' must be a string",
        "change the value of 'toolchain.clang'",
    ),
]


@pytest.mark.parametrize(
    "text, message, hint",
    [case[1:] for case in CONFIG_ERRORS],
    ids=[case[0] for case in CONFIG_ERRORS],
)
def test_config_error(tmp_path: Path, text: str, message: str, hint: str) -> None:
    path = tmp_path / "bpfbuild.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}:{message}"), caught.value.message
    assert caught.value.hint and hint in caught.value.hint, caught.value.hint
    assert "\n" not in caught.value.message


def test_new_keys_are_read(tmp_path: Path) -> None:
    path = tmp_path / "bpfbuild.toml"
    path.write_text(
        "[build]\n"
        'skel_header = "{name}.bpf.skel.h"\nskel_name = "{name}"\n'
        'exclude = ["src/old_*.c"]\ngenerated = ["include/gen.h"]\n\n'
        '[bpflib.util]\nsources = ["src/lib/*.bpf.c"]\n\n'
        '[object.a]\nsources = ["src/a/*.bpf.c"]\nlibs = ["util"]\n'
        'skel_header = "alpha.skel.h"\nskel_name = "alpha"\n\n'
        '[toolchain]\nclang = "clang-19"\n'
    )
    config = load_config(path)
    assert (config.build.skel_header, config.build.skel_name) == ("{name}.bpf.skel.h", "{name}")
    assert config.build.exclude == ["src/old_*.c"]
    assert config.build.generated == ["include/gen.h"]
    assert config.bpflibs["util"].sources == ["src/lib/*.bpf.c"]
    a = config.objects["a"]
    assert (a.sources, a.libs, a.skel_header, a.skel_name) == (
        ["src/a/*.bpf.c"],
        ["util"],
        "alpha.skel.h",
        "alpha",
    )
    assert config.toolchain.clang == "clang-19"


# ------------------------------------------------------------ the project model

MODELS = [
    (
        "defaults-are-libbpf-bootstraps",
        {"src/a.bpf.c": "", "src/a.c": ""},
        "",
        {"a": (("src/a.bpf.c",), (), "a.skel.h", "a_bpf")},
    ),
    (
        "kernel-naming-from-build",
        {"src/a.bpf.c": "", "src/a.c": ""},
        '[build]\nskel_header = "{name}.bpf.skel.h"\nskel_name = "{name}"\n',
        {"a": (("src/a.bpf.c",), (), "a.bpf.skel.h", "a")},
    ),
    (
        "object-overrides-build",
        {"src/a.bpf.c": "", "src/b.bpf.c": ""},
        '[build]\nskel_name = "{name}"\n\n[object.b]\nskel_name = "beta_skel"\n'
        'skel_header = "beta.h"\n',
        {
            "a": (("src/a.bpf.c",), (), "a.skel.h", "a"),
            "b": (("src/b.bpf.c",), (), "beta.h", "beta_skel"),
        },
    ),
    (
        "object-defined-by-its-table-only",
        {"src/layered/main.bpf.c": "", "src/layered/util.bpf.c": "", "src/other.bpf.c": ""},
        '[object.layered]\nsources = ["src/layered/*.bpf.c"]\n',
        {
            "layered": (("src/layered/main.bpf.c", "src/layered/util.bpf.c"), (), None, None),
            "other": (("src/other.bpf.c",), (), None, None),
        },
    ),
    (
        "own-source-first-then-the-tables",
        {"src/a.bpf.c": "", "src/helper.bpf.c": "", "bpf/z.bpf.c": "", "bpf/y.bpf.c": ""},
        '[object.a]\nsources = ["src/helper.bpf.c", "bpf/*.bpf.c", "src/a.bpf.c"]\n',
        {"a": (("src/a.bpf.c", "src/helper.bpf.c", "bpf/y.bpf.c", "bpf/z.bpf.c"), (), None, None)},
    ),
    (
        "library-sources-make-no-object",
        {"src/a.bpf.c": "", "src/b.bpf.c": "", "src/util.bpf.c": "", "src/lib/x.bpf.c": ""},
        '[bpflib.util]\nsources = ["src/util.bpf.c", "src/lib/**/*.bpf.c"]\n\n'
        '[object.a]\nlibs = ["util"]\n\n[object.b]\nlibs = ["util"]\n',
        {
            "a": (("src/a.bpf.c",), ("util",), None, None),
            "b": (("src/b.bpf.c",), ("util",), None, None),
        },
    ),
    (
        "excluded-sources-make-nothing",
        {"src/a.bpf.c": "", "src/old_a.bpf.c": "#error old", "src/old_tool.c": ""},
        '[build]\nexclude = ["src/old_*.c"]\n',
        {"a": (("src/a.bpf.c",), (), None, None)},
    ),
    (
        "excluded-from-a-glob-of-sources",
        {"src/a.bpf.c": "", "bpf/x.bpf.c": "", "bpf/x_test.bpf.c": ""},
        '[build]\nexclude = ["bpf/*_test.bpf.c"]\n\n[object.a]\nsources = ["bpf/*.bpf.c"]\n',
        {"a": (("src/a.bpf.c", "bpf/x.bpf.c"), (), None, None)},
    ),
]


@pytest.mark.parametrize(
    "files, config, objects",
    [case[1:] for case in MODELS],
    ids=[case[0] for case in MODELS],
)
def test_model(tmp_path: Path, files: dict[str, str], config: str, objects: dict) -> None:
    """Each object as (sources, libs, skeleton header, skeleton name); None: not checked."""
    project = load_project(make_project(tmp_path / "p", files, config))
    assert set(project.bpf_objects) == set(objects)
    for name, (sources, libs, header, skeleton) in objects.items():
        obj = project.bpf_objects[name]
        assert (obj.sources, obj.libs) == (sources, libs)
        assert obj.source == sources[0]
        if header is not None:
            assert (obj.skeleton_header, obj.skeleton_name) == (header, skeleton)


def test_model_libraries_exclusions_and_generated(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": "",
            "src/a.c": "",
            "src/lib/y.bpf.c": "",
            "src/lib/x.bpf.c": "",
            "src/old_probe.bpf.c": "",
            "src/attic/one.c": "",
            "src/attic/two.c": "",
        },
        "[build]\n"
        'exclude = ["src/old_*.c", "src/attic"]\n'
        'generated = ["include/./gen.h"]\n\n'
        '[bpflib.util]\nsources = ["src/lib/*.bpf.c"]\n\n'
        '[object.a]\nlibs = ["util"]\n',
    )
    project = load_project(root)
    assert project.bpf_libs["util"].sources == ("src/lib/x.bpf.c", "src/lib/y.bpf.c")
    assert project.excluded == {
        "src/old_probe.bpf.c": "src/old_*.c",
        "src/attic/one.c": "src/attic",
        "src/attic/two.c": "src/attic",
    }
    assert project.generated == ("include/gen.h",)
    assert project.listed_folders == ("src", "src/lib")
    assert project.bpf_sources == ["src/a.bpf.c", "src/lib/x.bpf.c", "src/lib/y.bpf.c"]
    assert project.user_sources == ["src/a.c"]


def test_globs_match_no_hidden_name(tmp_path: Path) -> None:
    """Editors' leftovers and hidden folders are not sources, as in a shell."""
    root = make_project(
        tmp_path / "p",
        {"src/a.bpf.c": "", "bpf/x.bpf.c": "", "bpf/.x.bpf.c": "", "bpf/.git/y.bpf.c": ""},
        '[object.a]\nsources = ["bpf/**/*.bpf.c"]\n',
    )
    (root / "bpf" / ".#x.bpf.c").symlink_to("root@host.1234")
    assert load_project(root).bpf_objects["a"].sources == ("src/a.bpf.c", "bpf/x.bpf.c")


def test_the_folders_globs_read(tmp_path: Path) -> None:
    """What the no-op fast path must stat, beside src/: a file added there changes
    the model."""
    root = make_project(
        tmp_path / "p",
        {"src/a.bpf.c": "", "bpf/x/y.bpf.c": "", "bpf/z.bpf.c": "", "bpf/.cache/w.c": ""},
        '[object.a]\nsources = ["bpf/**/*.bpf.c", "./src/a.bpf.c"]\n',
    )
    assert load_project(root).listed_folders == ("bpf", "bpf/x", "src")


def test_an_excluded_dangling_link_is_no_error(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, '[build]\nexclude = ["src/gone.c"]\n')
    (root / "src" / "gone.c").symlink_to(root / "nowhere.c")
    assert load_project(root).excluded == {"src/gone.c": "src/gone.c"}


def test_an_app_table_finds_the_object_that_lists_its_source(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {"bpf/main.bpf.c": "", "bpf/more.bpf.c": "", "src/tool.c": ""},
        '[object.layered]\nsources = ["bpf/main.bpf.c", "bpf/more.bpf.c"]\n\n'
        '[app.tool]\nbpf = ["bpf/more.bpf.c"]\nsources = ["src/tool.c"]\n',
    )
    project = load_project(root)
    assert project.apps["tool"].bpf_objects == ("layered",)
    assert list(project.bpf_objects) == ["layered"]


def test_an_app_pairs_with_an_object_defined_by_its_table(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {"src/scx_layered/main.bpf.c": "", "src/scx_layered.c": ""},
        '[object.scx_layered]\nsources = ["src/scx_layered/main.bpf.c"]\n',
    )
    app = load_project(root).apps["scx_layered"]
    assert (app.bpf_objects, app.sources) == (("scx_layered",), ("src/scx_layered.c",))


# (id, files, bpfbuild.toml, the key whose line the error names, message part, hint part)
PROJECT_ERRORS = [
    (
        "exclude-matches-nothing",
        {"src/a.bpf.c": ""},
        '[build]\nexclude = ["src/old_*.c"]\n',
        2,
        "'build.exclude': 'src/old_*.c' matches no file",
        "fix the glob",
    ),
    (
        "sources-glob-matches-nothing",
        {"src/a.bpf.c": ""},
        '[object.a]\nsources = ["bpf/*.bpf.c"]\n',
        2,
        "'object.a.sources': 'bpf/*.bpf.c' matches no file",
        "relative to the project folder",
    ),
    (
        "library-source-missing",
        {"src/a.bpf.c": ""},
        '[bpflib.util]\n\nsources = ["src/util.bpf.c"]\n',
        3,
        "'bpflib.util.sources': 'src/util.bpf.c' matches no file",
        "fix the path",
    ),
    (
        "source-is-a-folder",
        {"src/a.bpf.c": "", "bpf/x.bpf.c": ""},
        '[object.a]\nsources = ["bpf"]\n',
        2,
        "'object.a.sources': 'bpf' is a folder",
        '"bpf/*.bpf.c"',
    ),
    (
        "source-not-c",
        {"src/a.bpf.c": "", "src/a.h": ""},
        '[object.a]\nsources = ["src/a.h"]\n',
        2,
        "'object.a.sources': 'src/a.h' is not a C source (.c)",
        "headers are found through include_dirs",
    ),
    (
        "excluded-source-listed-by-an-object",
        {"src/a.bpf.c": "", "src/old.bpf.c": ""},
        '[build]\nexclude = ["src/old*"]\n\n[object.a]\nsources = ["src/old.bpf.c"]\n',
        5,
        "'object.a.sources' lists 'src/old.bpf.c', which build.exclude leaves out "
        "(pattern 'src/old*')",
        "remove it from one of the two",
    ),
    (
        "excluded-source-listed-by-an-app",
        {"src/a.bpf.c": "", "src/a.c": "", "src/old.c": ""},
        '[build]\nexclude = ["src/old.c"]\n\n[app.a]\nsources = ["src/a.c", "src/old.c"]\n',
        5,
        "'app.a.sources' lists 'src/old.c', which build.exclude leaves out",
        "remove it from one of the two",
    ),
    (
        "glob-whose-files-are-all-excluded",
        {"src/a.bpf.c": "", "bpf/old.bpf.c": ""},
        '[build]\nexclude = ["bpf/old*"]\n\n[object.a]\nsources = ["bpf/*.bpf.c"]\n',
        5,
        "'object.a.sources': every file 'bpf/*.bpf.c' matches is excluded by build.exclude",
        "fix the glob",
    ),
    (
        "source-in-two-objects",
        {"src/a.bpf.c": "", "src/b.bpf.c": "", "src/common.bpf.c": ""},
        '[object.a]\nsources = ["src/common.bpf.c"]\n\n[object.b]\nsources = ["src/*.bpf.c"]\n',
        5,
        "'src/common.bpf.c' is a source of both [object.a] and [object.b]",
        "share it through a [bpflib]",
    ),
    (
        "library-source-listed-by-an-object",
        {"src/a.bpf.c": "", "src/lib/u.bpf.c": ""},
        '[bpflib.util]\nsources = ["src/lib/u.bpf.c"]\n\n[object.a]\nsources = ["src/lib/*.c"]\n',
        5,
        "'src/lib/u.bpf.c' is a source of both [bpflib.util] and [object.a]",
        'remove it from [object.a] sources and add "util" to its libs',
    ),
    (
        "app-lists-a-library-source",
        {"src/a.bpf.c": "", "src/a.c": "", "src/lib/u.bpf.c": ""},
        '[bpflib.util]\nsources = ["src/lib/u.bpf.c"]\n\n[app.a]\nbpf = ["src/lib/u.bpf.c"]\n',
        5,
        "'app.a.bpf' lists 'src/lib/u.bpf.c', a source of [bpflib.util]",
        "a library is linked into the objects whose libs name it",
    ),
    (
        "two-objects-one-skeleton-header",
        {"src/a.bpf.c": "", "src/b.bpf.c": ""},
        '[object.a]\nskel_header = "skel.h"\n\n[object.b]\nskel_header = "skel.h"\n',
        5,
        "objects 'a' and 'b' have the same skeleton header 'skel.h'",
        "[object.a] or [object.b]",
    ),
    (
        "two-objects-one-skeleton-name",
        {"src/a.bpf.c": "", "src/b.bpf.c": ""},
        '[build]\nskel_name = "{name}"\n\n[object.b]\nskel_name = "a"\n',
        5,
        "objects 'a' and 'b' have the same skeleton name",
        "give one of them its own skel_name",
    ),
    (
        "skeleton-names-differing-in-case",
        {"src/a.bpf.c": "", "src/b.bpf.c": ""},
        '[build]\nskel_name = "{name}"\n\n[object.b]\nskel_name = "A"\n',
        5,
        "objects 'a' and 'b' have the same skeleton header guard __A_SKEL_H__ ('a')",
        "give one of them its own skel_name",
    ),
    (
        "skeleton-name-too-long",
        {"src/" + "x" * 60 + ".bpf.c": ""},
        '[build]\nskel_name = "{name}_skel"\n',
        2,
        "longer than the 63 characters bpftool keeps",
        "shorter skel_name",
    ),
    (
        "skeleton-header-named-vmlinux",
        {"src/vmlinux.bpf.c": ""},
        '[build]\nskel_header = "{name}.h"\n',
        2,
        "the skeleton of object 'vmlinux' would be vmlinux.h",
        "choose another skel_header",
    ),
    (
        "discovered-object-named-as-a-library",
        {"src/util.bpf.c": "", "src/lib/u.bpf.c": ""},
        '[bpflib.util]\nsources = ["src/lib/u.bpf.c"]\n',
        1,
        "BPF object 'util' (src/util.bpf.c) and [bpflib.util] have the same name",
        "rename the library",
    ),
    (
        "object-table-naming-nothing",
        {"src/a.bpf.c": ""},
        "[object.b]\nbpf_cflags = []\n",
        1,
        "[object.b]: no BPF object named 'b'",
        "or give it `sources = [...]`",
    ),
]


@pytest.mark.parametrize(
    "files, config, line, message, hint",
    [case[1:] for case in PROJECT_ERRORS],
    ids=[case[0] for case in PROJECT_ERRORS],
)
def test_project_error(
    tmp_path: Path, files: dict[str, str], config: str, line: int, message: str, hint: str
) -> None:
    root = make_project(tmp_path / "p", files, config)
    with pytest.raises(BpfBuildError) as caught:
        load_project(root)
    assert caught.value.message.startswith(f"{root / 'bpfbuild.toml'}:{line}: "), (
        caught.value.message
    )
    assert message in caught.value.message
    assert caught.value.hint and hint in caught.value.hint, caught.value.hint


def test_a_source_glob_through_a_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.bpf.c").write_text("")
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, '[bpflib.u]\nsources = ["lib/*.c"]\n')
    (root / "lib").mkdir()
    (root / "lib" / "x.bpf.c").symlink_to(tmp_path / "elsewhere" / "x.bpf.c")
    with pytest.raises(ProjectError, match="is a symbolic link out of the project"):
        load_project(root)


def test_a_project_of_tables_needs_no_src_folder(tmp_path: Path) -> None:
    """A tree in the kernel's layout names its sources in the tables, wherever they are."""
    root = make_project(
        tmp_path / "p",
        {"scheds/c/scx_simple.bpf.c": "", "scheds/c/scx_simple.c": "", "lib/sdt.bpf.c": ""},
        '[bpflib.sdt]\nsources = ["lib/*.bpf.c"]\n\n'
        '[object.scx_simple]\nsources = ["scheds/c/scx_simple.bpf.c"]\nlibs = ["sdt"]\n\n'
        '[app.scx_simple]\nsources = ["scheds/c/scx_simple.c"]\n',
    )
    project = load_project(root)
    assert project.bpf_objects["scx_simple"].sources == ("scheds/c/scx_simple.bpf.c",)
    app = project.apps["scx_simple"]
    assert (app.bpf_objects, app.sources) == (("scx_simple",), ("scheds/c/scx_simple.c",))
    (root / "bpfbuild.toml").write_text("")
    with pytest.raises(ProjectError, match="no src/ folder"):
        load_project(root)


def test_list_shows_sources_libs_skeletons_libraries_and_exclusions(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": "",
            "src/a.c": "",
            "src/a_extra.bpf.c": "",
            "src/lib/u.bpf.c": "",
            "src/old_b.bpf.c": "",
        },
        '[build]\nskel_header = "{name}.bpf.skel.h"\nskel_name = "{name}"\n'
        'exclude = ["src/old_*.c"]\ngenerated = ["include/gen.h"]\n\n'
        '[bpflib.util]\nsources = ["src/lib/*.bpf.c"]\n\n'
        '[object.a]\nsources = ["src/a_extra.bpf.c"]\nlibs = ["util"]\n',
    )
    listing = bpfbuild(root, "list")
    assert listing.returncode == 0, listing.describe()
    lines = listing.stdout.splitlines()
    for expected in (
        "bpf object a: src/a.bpf.c, src/a_extra.bpf.c -> skeleton a.bpf.skel.h (a)",
        "  libs:        util",
        "bpf lib util: src/lib/u.bpf.c -> linked into a",
        'excluded src/old_b.bpf.c (by "src/old_*.c" in [build] exclude)',
        "generated include/gen.h ([build] generated)",
    ):
        assert expected in lines, listing.stdout


# ------------------------------------------------------------ what sources include


def test_logical_lines_drop_comments_and_join_continued_lines() -> None:
    text = (
        "// a comment\n"
        '/* a block\n   over lines */ #include "a.h"\n'
        'char *s = "/* no comment */";\n'
        "#define TWO(x) \\\n  (x + x)\n"
        "  #  include <b.h> // trailing\n"
        "#\n"
    )
    assert [(line.number, line.directive, line.argument) for line in logical_lines(text)] == [
        (3, "include", '"a.h"'),
        (4, None, 'char *s = "/* no comment */";'),
        (5, "define", "TWO(x)   (x + x)"),
        (7, "include", "<b.h>"),
    ]


GUARDED = "#ifndef __{0}_H\n#define __{0}_H\n"

# (id, files, source, None when it can take the PCH, else the reason it cannot)
PCH_CASES = [
    ("direct", {"src/a.bpf.c": '#include "vmlinux.h"\n'}, None),
    ("angled", {"src/a.bpf.c": "// SPDX\n#include <vmlinux.h>\n"}, None),
    (
        "through-a-project-header",
        {
            "src/a.bpf.c": "/* x */\n#include <scx/common.bpf.h>\n#include <bpf/bpf_helpers.h>\n",
            "include/scx/common.bpf.h": GUARDED.format("SCX_COMMON_BPF")
            + '\n#include "vmlinux.h"\n',
        },
        None,
    ),
    (
        "through-two-headers",
        {
            "src/a.bpf.c": '#include "common.h"\n',
            "src/common.h": '#pragma once\n#include "inner.h"\n',
            "include/inner.h": GUARDED.format("INNER") + "#include <vmlinux.h>\n",
        },
        None,
    ),
    (
        "a-define-first",
        {"src/a.bpf.c": '#define BPF_NO_PRESERVE_ACCESS_INDEX\n#include "vmlinux.h"\n'},
        "src/a.bpf.c:1: #define BPF_NO_PRESERVE_ACCESS_INDEX before vmlinux.h",
    ),
    (
        "a-header-defines-first",  # sched_ext's common.bpf.h does so
        {
            "src/a.bpf.c": "#include <scx/common.bpf.h>\n",
            "include/scx/common.bpf.h": GUARDED.format("SCX_COMMON_BPF")
            + '\n#define BPF_NO_KFUNC_PROTOTYPES\n#include "vmlinux.h"\n',
        },
        "include/scx/common.bpf.h:4: #define BPF_NO_KFUNC_PROTOTYPES before vmlinux.h",
    ),
    (
        "a-conditional-first",
        {
            "src/a.bpf.c": '#include "common.h"\n',
            "src/common.h": '#ifdef LSP\n#include "../vmlinux.h"\n#else\n#include "vmlinux.h"\n#endif\n',
        },
        "src/common.h:1: #ifdef LSP before vmlinux.h",
    ),
    (
        "a-guard-named-as-a-vmlinux-macro",
        {"src/a.bpf.c": "#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n#include <vmlinux.h>\n"},
        "src/a.bpf.c:1: #ifndef __VMLINUX_H__, a macro of vmlinux.h",
    ),
    (
        "an-ifndef-that-is-no-guard",
        {"src/a.bpf.c": "#ifndef DEBUG_H\n#define VERBOSE\n#endif\n#include <vmlinux.h>\n"},
        "src/a.bpf.c:1: #ifndef DEBUG_H before vmlinux.h",
    ),
    (
        "code-first",
        {"src/a.bpf.c": 'typedef int s32;\n#include "vmlinux.h"\n'},
        "src/a.bpf.c:1: code before vmlinux.h",
    ),
    (
        "uapi-headers",
        {"src/a.bpf.c": "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"},
        "src/a.bpf.c:1: its first include <linux/bpf.h> is no project header",
    ),
    (
        "a-generated-header-first",
        {"src/a.bpf.c": '#include "gen.h"\n'},
        'src/a.bpf.c:1: its first include "gen.h" is generated by the build',
    ),
    (
        "the-projects-own-vmlinux",
        {"src/a.bpf.c": '#include "vmlinux.h"\n', "src/vmlinux.h": ""},
        "src/a.bpf.c:1: includes src/vmlinux.h, a vmlinux.h of the project, not bpfbuild's",
    ),
    (
        "headers-including-each-other",
        {
            "src/a.bpf.c": '#include "x.h"\n',
            "src/x.h": '#include "y.h"\n',
            "src/y.h": '#include "x.h"\n',
        },
        'src/y.h:1: its first include "x.h" includes itself again',
    ),
    (
        "a-header-with-no-include",
        {"src/a.bpf.c": '#include "x.h"\n', "src/x.h": GUARDED.format("X") + "#endif\n"},
        "src/x.h:3: #endif before vmlinux.h",
    ),
    (
        "an-empty-header",
        {"src/a.bpf.c": '#include "x.h"\n', "src/x.h": "/* nothing */\n"},
        "src/x.h: ends before any #include",
    ),
    ("an-empty-source", {"src/a.bpf.c": "\n"}, "src/a.bpf.c: includes no header"),
    (
        "a-computed-include",
        {"src/a.bpf.c": "#include HEADER\n"},
        "src/a.bpf.c:1: #include HEADER (a macro) comes first",
    ),
]


@pytest.mark.parametrize(
    "files, reason", [case[1:] for case in PCH_CASES], ids=[case[0] for case in PCH_CASES]
)
def test_vmlinux_first_through_project_headers(
    tmp_path: Path, files: dict[str, str], reason: str | None
) -> None:
    root = make_project(tmp_path / "p", files)
    scanner = IncludeScanner(root, ["src", "include"])
    assert scanner.why_not_vmlinux_first("src/a.bpf.c", generated=["src/gen.h"]) == reason


def test_pch_verdicts_cover_every_bpf_source(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": '#include "common.bpf.h"\n',
            "src/b.bpf.c": "#define X 1\n#include <vmlinux.h>\n",
            "src/lib/u.bpf.c": '#include "../common.bpf.h"\n',
            "src/common.bpf.h": GUARDED.format("COMMON") + '#include "vmlinux.h"\n',
        },
        '[bpflib.u]\nsources = ["src/lib/u.bpf.c"]\n',
    )
    assert load_project(root).pch_verdicts() == {
        "src/a.bpf.c": None,
        "src/b.bpf.c": "src/b.bpf.c:1: #define X before vmlinux.h",
        "src/lib/u.bpf.c": None,
    }


@pytest.mark.parametrize(
    "config, includes, expected",
    [
        ("", '#include "a.skel.h"\n#include <b.skel.h>\n#include "c.skel.h"\n', ["a", "b"]),
        ("", '#include "a.bpf.skel.h"\n', []),
        ('[build]\nskel_header = "{name}.bpf.skel.h"\n', '#include "b.bpf.skel.h"\n', ["b"]),
        ('[build]\nskel_header = "{name}.bpf.skel.h"\n', '#include "b.skel.h"\n', []),
        ('[object.a]\nskel_header = "alpha.h"\n', '#include "alpha.h"\n#include "a.skel.h"', ["a"]),
        ("", '/* #include "a.skel.h" */\n#include "b.skel.h"\n', ["b"]),
    ],
)
def test_skeletons_a_source_includes(
    tmp_path: Path, config: str, includes: str, expected: list[str]
) -> None:
    root = make_project(
        tmp_path / "p", {"src/a.bpf.c": "", "src/b.bpf.c": "", "src/tool.c": includes}, config
    )
    assert load_project(root).skeletons_included("src/tool.c") == expected


def test_a_header_including_a_skeleton_makes_every_source_wait_for_all(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": "",
            "src/b.bpf.c": "",
            "src/tool.c": '#include "skels.h"\n',
            "include/skels.h": '#include "a.bpf.skel.h"\n',
        },
        '[build]\nskel_header = "{name}.bpf.skel.h"\n',
    )
    assert load_project(root).skeletons_included("src/tool.c") == ["a", "b"]


def test_sources_including_generated_headers(tmp_path: Path) -> None:
    """Through project headers too, whatever #if surrounds the include, and by the path
    each include would take: [build] generated, or the targets of dodo.py's tasks."""
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": '#include "common.bpf.h"\n',
            "src/b.bpf.c": '#ifdef VERSIONED\n#include "version.h"\n#endif\n',
            "src/c.bpf.c": '#include "vmlinux.h"\n',
            "src/a.c": '#include <enum_defs.autogen.h>\n#include "a.skel.h"\n',
            "include/common.bpf.h": '#include "vmlinux.h"\n#include "enum_defs.autogen.h"\n',
        },
        '[build]\ngenerated = ["include/enum_defs.autogen.h"]\n',
    )
    project = load_project(root)
    assert project.generated_includers() == {
        "src/a.bpf.c": ("include/enum_defs.autogen.h",),
        "src/a.c": ("include/enum_defs.autogen.h",),
    }
    made = [str(root / "src" / "version.h"), "include/enum_defs.autogen.h", "other.txt"]
    assert project.generated_includers(made) == {
        "src/a.bpf.c": ("include/enum_defs.autogen.h",),
        "src/b.bpf.c": ("src/version.h",),
        "src/a.c": ("include/enum_defs.autogen.h",),
    }


def test_generated_headers_from_the_targets_of_a_dodo_task(tmp_path: Path) -> None:
    """The targets of a project's dodo.py tasks, as doit loads them, name the headers
    whose compiles must wait (engine.wait_for_generated orders them after those tasks)."""
    from doit.loader import load_tasks

    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": '#include "vmlinux.h"\n#include "enum_defs.autogen.h"\n',
            "src/b.bpf.c": '#include "vmlinux.h"\n',
            "dodo.py": (
                "def task_enums():\n"
                "    return {'actions': ['true'], 'targets': ['src/enum_defs.autogen.h']}\n"
            ),
        },
    )
    namespace: dict = {}
    exec(compile((root / "dodo.py").read_text(), str(root / "dodo.py"), "exec"), namespace)
    tasks = load_tasks(namespace)
    made = {target: task.name for task in tasks for target in task.targets}
    includers = load_project(root).generated_includers(made)
    assert includers == {"src/a.bpf.c": ("src/enum_defs.autogen.h",)}
    assert {made[h] for h in includers["src/a.bpf.c"]} == {"enums"}


# ------------------------------------------------------------ bpftool and the sections


STRUCT_OPS_LINK = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";
SEC("struct_ops/ssthresh")
__u32 BPF_PROG(demo_ssthresh, struct sock *sk) { return 2; }
SEC("struct_ops/undo_cwnd")
__u32 BPF_PROG(demo_undo_cwnd, struct sock *sk) { return 2; }
SEC("struct_ops/cong_avoid")
void BPF_PROG(demo_cong_avoid, struct sock *sk, __u32 ack, __u32 acked) { }
SEC(".struct_ops.link")
struct tcp_congestion_ops demo = {
	.ssthresh = (void *)demo_ssthresh,
	.undo_cwnd = (void *)demo_undo_cwnd,
	.cong_avoid = (void *)demo_cong_avoid,
	.name = "bpfbuild_demo",
};
"""


@pytest.fixture
def struct_ops_project(tmp_path: Path) -> Path:
    if not Path("/sys/kernel/btf/vmlinux").is_file():
        pytest.skip("needs the kernel's BTF for struct tcp_congestion_ops")
    return make_project(
        tmp_path / "sops", {"src/demo.bpf.c": STRUCT_OPS_LINK}, "[build]\npch = false\n"
    )


def test_bpftools_libbpf(tmp_path: Path) -> None:
    """From `bpftool version` ("using libbpf v1.1"), else from bpftool's own version."""
    assert bpftool_libbpf(Bpftool("bpftool", "b", "7.1.0", "1.1")) == (1, 1)
    assert bpftool_libbpf(Bpftool("bpftool", "b", "7.5.0", "1.5.0")) == (1, 5)
    assert bpftool_libbpf(Bpftool("bpftool", "b", "7.3.0", "")) == (1, 3)
    assert bpftool_libbpf(Bpftool("bpftool", "b", "5.10.0", "")) == (0, 0)
    found = find_bpftool(_VersionCache(tmp_path / "toolchain.json"))
    done = subprocess.run([found.path, "version"], capture_output=True, text=True, check=True)
    assert f"using libbpf v{found.libbpf_version}" in done.stdout


@pytest.mark.parametrize(
    "libbpf, sections, dropped",
    [
        ("1.1", [".text", ".struct_ops", ".maps", "license"], []),
        ("1.1", [".struct_ops.link", ".rel.struct_ops.link"], [".struct_ops.link"]),
        ("1.2", [".struct_ops.link"], []),
        ("1.3", ["?.struct_ops", ".addr_space.1"], ["?.struct_ops", ".addr_space.1"]),
        ("1.4", ["?.struct_ops.link", ".addr_space.1"], []),
        ("1.5", [".jumptables"], [".jumptables"]),
        ("1.5", [".mysection"], []),  # no libbpf reads it: bpftool's warning says so
    ],
)
def test_sections_a_bpftool_drops(libbpf: str, sections: list[str], dropped: list[str]) -> None:
    bpftool = Bpftool("bpftool", "/usr/sbin/bpftool", "7.x", libbpf)
    assert [need.name for need in unreadable_sections(sections, bpftool)] == dropped


def test_the_error_names_bpftool_the_section_and_the_fix() -> None:
    bpftool = Bpftool("bpftool", "/usr/sbin/bpftool", "7.1.0", "1.1")
    error = unreadable_sections_error("output/x86_64/bpf/demo.bpf.o", [".struct_ops.link"], bpftool)
    assert error is not None
    assert error.message == (
        "output/x86_64/bpf/demo.bpf.o: bpftool 7.1.0 (libbpf 1.1, /usr/sbin/bpftool) would "
        "write its skeleton without section .struct_ops.link (struct_ops maps attached "
        "through a link): libbpf reads it from 1.2 on"
    )
    assert error.hint is not None
    assert "scripts/setup --backports installs bpftool 7.5" in error.hint
    assert "[toolchain] bpftool" in error.hint
    newer = Bpftool("bpftool", "/usr/sbin/bpftool", "7.5.0", "1.5")
    assert unreadable_sections_error("x.bpf.o", [".struct_ops.link"], newer) is None


def test_sections_of_a_struct_ops_object_and_bpftools_warning(
    struct_ops_project: Path, tmp_path: Path
) -> None:
    """The real object and the real bpftool: the section reader finds .struct_ops.link,
    and when bpftool skips it, the parser finds it in bpftool's warning."""
    bpfbuild(struct_ops_project, "build")  # the skeleton step may refuse it: see below
    linked = struct_ops_project / "output" / ARCH / "bpf" / "demo.bpf.o"
    names = [section.name for section in read_sections(str(linked))]
    assert ".struct_ops.link" in names
    assert sorted(program_sections(str(linked))) == ["struct_ops/cong_avoid"] + [
        "struct_ops/ssthresh",
        "struct_ops/undo_cwnd",
    ]
    bpftool = find_bpftool(_VersionCache(tmp_path / "toolchain.json"))
    done = subprocess.run(
        [bpftool.path, "gen", "skeleton", str(linked), "name", "demo"],
        capture_output=True,
        text=True,
        check=True,
    )
    error = unreadable_sections_error(str(linked), names, bpftool)
    if bpftool_libbpf(bpftool) >= (1, 2):
        assert skipped_sections(done.stderr) == [] and error is None
        assert "struct_ops" in done.stdout
    else:
        assert skipped_sections(done.stderr) == [".struct_ops.link"]
        assert error is not None and ".struct_ops.link" in error.message


def test_skipped_sections_parser() -> None:
    stderr = (
        "libbpf: elf: skipping unrecognized data section(7) .struct_ops.link\n"
        "libbpf: elf: skipping relo section(8) .rel.struct_ops.link for section(7) "
        ".struct_ops.link\n"
        "libbpf: elf: skipping relo section(10) .rel.mydata for section(9) .mydata\n"
        "something else\n"
    )
    assert skipped_sections(stderr) == [".struct_ops.link", ".mydata"]


def test_bpftools_warning_reaches_the_user(tmp_path: Path) -> None:
    """bpftool's and libbpf's warnings on success are shown, not swallowed: a data
    section no libbpf reads is skipped with a warning, and the build goes on."""
    source = HELLO_BPF + 'int odd SEC(".mydata") = 1;\n'
    root = make_project(tmp_path / "p", {"src/demo.bpf.c": source}, "[build]\npch = false\n")
    run = build(root)
    assert "libbpf: elf: skipping unrecognized data section" in run.stderr, run.describe()
    assert ".mydata" in run.output


def test_the_skeleton_step_refuses_a_section_bpftool_drops(
    struct_ops_project: Path, tmp_path: Path
) -> None:
    bpftool = find_bpftool(_VersionCache(tmp_path / "toolchain.json"))
    if bpftool_libbpf(bpftool) >= (1, 2):
        pytest.skip(f"bpftool {bpftool.version} reads .struct_ops.link")
    offline = {
        **os.environ,
        "BPFBUILD_CACHE_DIR": str(tmp_path / "cache"),  # no fetched bpftool in it
        "BPFBUILD_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",  # and none to fetch
    }
    run = bpfbuild(struct_ops_project, "build", env=offline)
    assert run.returncode == 1, run.describe()
    assert f"bpftool {bpftool.version}" in run.output and ".struct_ops.link" in run.output
    assert "scripts/setup --backports" in run.output
    assert "bookworm-backports' bpftool cannot be fetched" in run.stderr
    assert not (struct_ops_project / "output" / ARCH / "include" / "demo.skel.h").exists()


def test_a_struct_ops_object_gets_bookworm_backports_bpftool(
    struct_ops_project: Path, tmp_path: Path
) -> None:
    """With no bpftool chosen and one that drops .struct_ops.link, bpftool 7.5 is
    fetched into the cache (said once) and writes the skeleton with the struct_ops map."""
    bpftool = find_bpftool(_VersionCache(tmp_path / "toolchain.json"))
    if bpftool_libbpf(bpftool) >= (1, 2):
        pytest.skip(f"bpftool {bpftool.version} reads .struct_ops.link")
    cache = tmp_path / "cache"
    with skip_when_unreachable("bookworm-backports' bpftool"):
        backports_bpftool(host_arch().debian_arch, cache)
    env = {**os.environ, "BPFBUILD_CACHE_DIR": str(cache)}
    env.pop("BPFTOOL", None)
    run = build(struct_ops_project, "-v", env=env)
    entry = cache / "tools" / f"bpftool-bookworm-backports-{host_arch().debian_arch}"
    assert f"{entry}/bpftool gen skeleton" in run.stdout, run.describe()
    skeleton = struct_ops_project / "output" / ARCH / "include" / "demo.skel.h"
    assert "struct_ops" in skeleton.read_text()
    again = build(struct_ops_project, env=env)
    assert again.stdout == "" and again.stderr == "", again.describe()
    shutil.rmtree(entry)
    (struct_ops_project / "bpfbuild.toml").write_text("[build]\npch = false\n# fetched again\n")
    fetched = build(struct_ops_project, env=env)
    assert f"bpftool {bpftool.version} drops .struct_ops.link" in fetched.stderr, fetched.describe()
    assert fetched.stderr.count("fetched into") == 1


# ------------------------------------------------------------ the clang of choice


def _toolchain(root: Path):
    return find_toolchain(host_arch(), None, load_project(root))


@NEEDS_CLANG_19
def test_toolchain_clang_is_honoured_and_clang_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLANG", raising=False)
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, '[toolchain]\nclang = "clang-19"\n')
    clang = _toolchain(root).clang
    assert (clang.path, clang.version.split(".")[0]) == (CLANG_19, "19")
    monkeypatch.setenv("CLANG", "clang-14" if shutil.which("clang-14") else "clang")
    assert _toolchain(root).clang.path != CLANG_19


def test_toolchain_clang_as_a_path_in_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLANG", raising=False)
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, '[toolchain]\nclang = "tools/cc"\n')
    wrapper = root / "tools" / "cc"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("clang")} "$@"\n')
    wrapper.chmod(0o755)
    assert _toolchain(root).clang.path == str(wrapper)


@pytest.mark.parametrize(
    "value, hint",
    [
        ("clang-99", "scripts/setup --clang 99 installs Debian's clang-99"),
        ("tools/clang", "apt-get install clang (or clang-NN)"),
    ],
)
def test_a_missing_clang_of_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, hint: str
) -> None:
    monkeypatch.delenv("CLANG", raising=False)
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, f'[toolchain]\nclang = "{value}"\n')
    with pytest.raises(BpfBuildError) as caught:
        _toolchain(root)
    assert caught.value.message == (
        f"[toolchain] clang = '{value}' in bpfbuild.toml is not an executable"
    )
    assert caught.value.hint and hint in caught.value.hint and "$CLANG" in caught.value.hint
    run = bpfbuild(root, "build")
    assert run.returncode != 0 and "Traceback" not in run.output, run.describe()
    assert f"error: [toolchain] clang = '{value}'" in run.output


def test_clang_features_probed_and_cached(tmp_path: Path) -> None:
    cache = _VersionCache(tmp_path / "toolchain.json")
    expected = {"clang-14": (False, False), "clang-19": (True, True)}
    probed = 0
    for name, (mcpu_v4, arena) in expected.items():
        path = shutil.which(name)
        if path is None:
            continue
        features = clang_features(path, cache)
        assert (features.mcpu_v4, features.arena) == (mcpu_v4, arena), name
        probed += 1
    if not probed:
        pytest.skip("neither clang-14 nor clang-19 is installed")
    cache.save()
    assert "clang-features:" in (tmp_path / "toolchain.json").read_text()


@NEEDS_CLANG_19
def test_doctor_lists_each_clang_with_its_features(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""}, '[toolchain]\nclang = "clang-19"\n')
    run = bpfbuild(root, "doctor")
    lines = run.stdout.splitlines()
    assert f"clang:      {CLANG_19} (19.1.7)" in lines or any(
        line.startswith(f"clang:      {CLANG_19} (19.") for line in lines
    ), run.stdout
    (line,) = [ln for ln in lines if ln.split()[:1] == ["clang-19"]]
    assert "-mcpu=v4: yes" in line and "arena: yes" in line
    if shutil.which("clang-14"):
        (line,) = [ln for ln in lines if ln.split()[:1] == ["clang-14"]]
        assert "-mcpu=v4: no" in line and "arena: no" in line


def test_setup_refuses_a_clang_that_is_no_version() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "setup"), "--clang", "nineteen"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--clang takes a major version such as 19, not 'nineteen'" in done.stderr


def test_default_mcpu_comes_before_the_projects_flags(tmp_path: Path) -> None:
    """-mcpu=v3 by default; a later -mcpu= in bpf_cflags wins, and the PCH key (and
    so the PCH) follows the flags."""
    root = make_project(tmp_path / "p", {"src/a.bpf.c": '#include "vmlinux.h"\n'})
    factory = StepBuilder(load_project(root), _toolchain(root))
    flags = factory.bpf_flags()
    assert flags.count(f"-mcpu={BPF_CPU}") == 1 and BPF_CPU == "v3"
    (root / "bpfbuild.toml").write_text('[build]\nbpf_cflags = ["-mcpu=v4"]\n')
    other = StepBuilder(load_project(root), _toolchain(root))
    flags_v4 = other.bpf_flags()
    assert flags_v4.index("-mcpu=v4") > flags_v4.index(f"-mcpu={BPF_CPU}")
    assert other.pch_key != factory.pch_key


@NEEDS_CLANG_19
def test_switching_clang_rebuilds_bpf_and_the_pch_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[toolchain] clang is part of every BPF step's key: a switch recompiles every
    BPF object (clang 19 without the PCH, whose outputs go); user code recompiles only where it includes
    a skeleton whose object changed (src/util.c does not)."""
    monkeypatch.delenv("CLANG", raising=False)
    root = copy_project("multi", tmp_path)
    config = root / "bpfbuild.toml"
    assert "pch = true" in config.read_text()
    config.write_text(config.read_text() + '\n[toolchain]\nclang = "clang"\n')
    first = build(root, "-j1")
    assert ("PCH", f"output/{ARCH}/include/vmlinux.h.pch") in first.steps, first.describe()
    config.write_text(config.read_text().replace('clang = "clang"', 'clang = "clang-19"'))
    again = build(root, "-j1")
    kinds = {kind for kind, _ in again.steps}
    bpf = {what for kind, what in again.steps if kind == "BPF"}
    assert bpf == {"src/alpha.bpf.c", "src/beta.bpf.c", "src/gamma.bpf.c"}, again.describe()
    # clang 19 takes no PCH (toolchain.PCH_SAME_BYTES_CLANG): clang 14's is removed
    assert ("RM", f"output/{ARCH}/include/vmlinux.h.pch") in again.steps
    assert {"BPF", "GENOBJ", "SKEL"} <= kinds and "PCH" not in kinds
    compiled = {what for kind, what in again.steps if kind == "CC"}
    assert "src/util.c" not in compiled, again.describe()
    assert compiled <= {"src/alpha.c", "src/gamma.c"}


# ------------------------------------------------------------ examples/kconv


def test_kconv_model() -> None:
    listing = bpfbuild(KCONV, "list")
    assert listing.returncode == 0, listing.describe()
    lines = listing.stdout.splitlines()
    for expected in (
        "bpf object execcount: src/execcount.bpf.c -> skeleton execcount.bpf.skel.h (execcount)",
        "bpf object forkcount: src/forkcount.bpf.c -> skeleton forkcount.bpf.skel.h (forkcount)",
        "  libs:        tally",
        "bpf lib tally: src/lib/tally.bpf.c -> linked into execcount, forkcount",
        'excluded src/old_forkcount.bpf.c (by "src/old_*.c" in [build] exclude)',
        "app execcount",
        "  sources:     src/execcount.c, src/tally_print.c",
    ):
        assert expected in lines, listing.stdout
    project = load_project(KCONV)
    assert [a.name for a in project.arches] == ["x86_64", "arm64"]
    assert project.config.toolchain.clang == "clang-19"
    # Every source reads vmlinux.h first, through <kconv/common.bpf.h>.
    assert set(project.pch_verdicts().values()) == {None}


@NEEDS_CLANG_19
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_kconv_links_by_hand(tmp_path: Path, arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the build steps do, done here by hand with the project's own
    flags and clang-19: each source compiles, `bpftool gen object` resolves the externs
    of each object against the library, `gen skeleton ... name NAME` writes the
    skeleton the loaders compile against, and on the host the loaders run and the
    example's own tests pass (as root)."""
    from bpfbuild.arch import get_arch
    from bpfbuild.kernels import get_kernel

    monkeypatch.delenv("CLANG", raising=False)
    root = tmp_path / "kconv"
    shutil.copytree(KCONV, root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    project = load_project(root)
    target = get_arch(arch)
    toolchain = find_toolchain(target, None, project)
    assert toolchain.clang.path == CLANG_19
    factory = StepBuilder(project, toolchain)
    include, bpf = factory.layout.include_dir, factory.layout.arch_dir / "bpf"
    include.mkdir(parents=True)
    bpf.mkdir()
    btf = (
        "/sys/kernel/btf/vmlinux"
        if target == host_arch()
        else get_kernel("debian:6.12", target).btf
    )
    with open(include / "vmlinux.h", "w") as header:
        subprocess.run(
            [toolchain.bpftool.path, "btf", "dump", "file", str(btf), "format", "c"],
            stdout=header,
            check=True,
        )
    compiled = {}
    for source in project.bpf_sources:
        compiled[source] = bpf / (source.replace("/", "__") + ".o")
        argv = [*factory.bpf_flags(), "-c", source, "-o", str(compiled[source])]
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr, done.stderr
    for name, obj in project.bpf_objects.items():
        inputs = [compiled[s] for s in obj.sources]
        inputs += [compiled[s] for lib in obj.libs for s in project.bpf_libs[lib].sources]
        linked = bpf / f"{name}.bpf.o"
        subprocess.run(
            [toolchain.bpftool.path, "gen", "object", str(linked), *map(str, inputs)],
            check=True,
            capture_output=True,
        )
        assert program_sections(str(linked)) == [PROGRAM_SECTIONS[name]]
        with open(include / obj.skeleton_header, "w") as skeleton:
            subprocess.run(
                [toolchain.bpftool.path, "gen", "skeleton", str(linked), "name", obj.skeleton_name],
                stdout=skeleton,
                check=True,
            )
        text = (include / obj.skeleton_header).read_text()
        assert f"struct {name} {{" in text and f"{name}__open(" in text
        assert "struct bpf_map *tally;" in text  # the library's map, linked in
    if toolchain.cc is None:
        pytest.skip(f"no C compiler for {arch}")
    for app in project.apps.values():
        executable = factory.layout.executable(app.name)
        argv = [
            toolchain.cc.path,
            "-Wall",
            "-Werror",
            "-I",
            str(include),
            *[f"-I{d}" for d in project.include_dirs],
            *toolchain.libbpf.cflags,
            *app.sources,
            "-o",
            str(executable),
            "-static",
            *toolchain.libbpf.static_libs,
        ]
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if target == host_arch():
            usage = subprocess.run([executable, "--help"], capture_output=True, text=True)
            assert usage.returncode == 0 and usage.stdout.startswith("usage:")
    if target != host_arch() or os.geteuid() != 0:
        return  # the example's own tests load its objects in this kernel
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "7 passed" in tests.stdout, tests.stdout


@NEEDS_CLANG_19
def test_kconv_excluded_source_does_not_compile(tmp_path: Path) -> None:
    """What [build] exclude leaves out really is a source the build could not take."""
    if not Path("/sys/kernel/btf/vmlinux").is_file():
        pytest.skip("needs the running kernel's BTF for a vmlinux.h")
    root = tmp_path / "kconv"
    shutil.copytree(KCONV, root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    factory = StepBuilder(load_project(root), _toolchain(root))
    factory.layout.include_dir.mkdir(parents=True)
    with open(factory.layout.vmlinux_header, "w") as header:
        bpftool = factory.toolchain.bpftool.path
        dump = [bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"]
        subprocess.run(dump, stdout=header, check=True)
    argv = [*factory.bpf_flags(), "-fsyntax-only", "src/old_forkcount.bpf.c"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True)
    assert done.returncode != 0
    assert "fatal error: 'old_events.h' file not found" in done.stderr, done.stderr


@NEEDS_CLANG_19
@pytest.mark.slow
def test_kconv_builds_for_both_arches_and_its_tests_pass(tmp_path: Path) -> None:
    root = tmp_path / "kconv"
    shutil.copytree(KCONV, root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    run = build(root)
    for arch in ("x86_64", "arm64"):
        for name in ("execcount", "forkcount"):
            assert (root / "output" / arch / name).is_file(), run.describe()
            assert (root / "output" / arch / "include" / f"{name}.bpf.skel.h").is_file()
    assert not list((root / "output").rglob("old_forkcount*"))
    if os.geteuid() != 0:
        pytest.skip("the example's tests load BPF programs: they need root")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout


# ------------------------------------------------------------ the build steps


def test_skeletons_named_by_skel_header_and_skel_name(tmp_path: Path) -> None:
    """The kernel's convention: NAME.bpf.skel.h with struct NAME; the loader that
    includes it builds, and a renamed skeleton's old header is removed as dead."""
    loader = (
        '#include "hello.bpf.skel.h"\n'
        "int main(void) { struct hello *s = hello__open_and_load(); "
        "hello__destroy(s); return 0; }\n"
    )
    root = make_project(
        tmp_path / "p",
        {"src/hello.bpf.c": HELLO_BPF, "src/hello.c": loader},
        '[build]\nskel_header = "{name}.bpf.skel.h"\nskel_name = "{name}"\n',
    )
    run = build(root)
    include = root / "output" / ARCH / "include"
    assert (include / "hello.bpf.skel.h").is_file(), run.describe()
    assert "struct hello {" in (include / "hello.bpf.skel.h").read_text()
    assert not (include / "hello.skel.h").exists()
    assert (root / "output" / ARCH / "hello").is_file()
    (root / "bpfbuild.toml").write_text("")
    (root / "src/hello.c").write_text(
        loader.replace("hello.bpf.skel.h", "hello.skel.h")
        .replace("struct hello ", "struct hello_bpf ")
        .replace("hello__", "hello_bpf__")
    )
    run = build(root)
    assert (include / "hello.skel.h").is_file(), run.describe()
    assert not (include / "hello.bpf.skel.h").exists()


LINKED_MAIN = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
extern int bump(int by);
extern int missing_helper(void);
SEC("tp/syscalls/sys_enter_getpid") int on_getpid(void *ctx) { return bump(1)USE; }
char LICENSE[] SEC("license") = "GPL";
"""
LINKED_LIB = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
int total;
__noinline int bump(int by) { total += by; return 0; }
"""


def _linked_project(root: Path, use_missing: bool) -> Path:
    main = LINKED_MAIN.replace("USE", " + missing_helper()" if use_missing else "")
    return make_project(
        root,
        {
            "src/main.bpf.c": main,
            "src/extra.bpf.c": HELLO_BPF.replace("on_getpid", "on_other"),
            "lib/bump.bpf.c": LINKED_LIB,
        },
        '[build]\npch = false\n\n[bpflib.util]\nsources = ["lib/*.bpf.c"]\n\n'
        '[object.main]\nsources = ["src/extra.bpf.c"]\nlibs = ["util"]\n',
    )


def test_an_object_of_two_sources_and_a_library(tmp_path: Path) -> None:
    """Each source compiled once to its own object, linked by bpftool gen object; the
    skeleton has the programs of both sources and the library's global."""
    root = _linked_project(tmp_path / "p", use_missing=False)
    run = build(root)
    out = root / "output" / ARCH
    assert (out / "bpf" / "sources" / "src" / "extra.bpf.o").is_file(), run.describe()
    assert (out / "bpf" / "sources" / "lib" / "bump.bpf.o").is_file()
    skeleton = (out / "include" / "main.skel.h").read_text()
    assert "on_getpid" in skeleton and "on_other" in skeleton and "total" in skeleton
    link_line = [line for line in run.stdout.splitlines() if "GENOBJ" in line]
    assert link_line == [f"  GENOBJ  output/{ARCH}/bpf/main.bpf.o"], run.stdout
    compdb = (root / "compile_commands.json").read_text()
    for source in ("src/main.bpf.c", "src/extra.bpf.c", "lib/bump.bpf.c"):
        assert str(root / source) in compdb


def test_an_unresolved_extern_names_the_symbol_and_the_objects(tmp_path: Path) -> None:
    root = _linked_project(tmp_path / "p", use_missing=True)
    run = bpfbuild(root, "build")
    assert run.returncode == 1, run.describe()
    assert "object 'main': unresolved extern missing_helper: defined in none of " in run.output
    assert f"output/{ARCH}/bpf/main.tmp.bpf.o, output/{ARCH}/bpf/sources/src/extra.bpf.o" in (
        run.output
    )
    assert "hint: define it in one of the object's sources" in run.output
    assert "Traceback" not in run.output
    assert not (root / "output" / ARCH / "bpf" / "main.bpf.o").exists()


def test_generated_headers_are_made_before_the_compiles_that_include_them(
    tmp_path: Path,
) -> None:
    """tests/projects/gendodo: its dodo.py makes include/events.h (a target) and
    include/limits.h ([build] generated, no target), each after a pause; ten clean
    builds at -j2 all succeed, and the build after each runs nothing."""
    root = copy_project("gendodo", tmp_path)
    for _ in range(10):
        for path in ("output", ".bpfbuild"):
            shutil.rmtree(root / path, ignore_errors=True)
        for header in ("events.h", "limits.h"):
            (root / "include" / header).unlink(missing_ok=True)
        run = build(root, "-j2")
        assert (root / "output" / ARCH / "gen").is_file(), run.describe()
        again = build(root, "-j2")
        assert again.stdout == "", again.describe()
    (root / "include" / "limits.h").write_text("#define MAX_EVENTS 32\n")
    run = build(root, "-j2")
    assert "  BPF     src/gen.bpf.c" in run.stdout, run.describe()


@NEEDS_CLANG_19
@pytest.mark.slow
def test_scx_tree_builds_from_its_bpfbuild_toml_alone(tmp_path: Path) -> None:
    """tests/projects/scx_tree, in the kernel tree's tools/sched_ext layout: both
    schedulers and loaders for x86_64 and arm64, scx_qstat linked with the qstats
    library (its map in the skeleton), the struct_ops maps kept (a bpftool that reads
    .struct_ops.link, fetched when the found one drops it), then a no-op build."""
    root = copy_project("scx_tree", tmp_path)
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
            skeleton = (out / "include" / f"{name}.bpf.skel.h").read_text()
            assert f"struct {name} {{" in skeleton
            assert "struct_ops" in skeleton  # the .struct_ops.link map is there
        qstat = (out / "include" / "scx_qstat.bpf.skel.h").read_text()
        assert "struct bpf_map *qstats;" in qstat
        assert (out / "bpf" / "sources" / "lib" / "qstats.bpf.o").is_file()
    again = build(root, "-j2")
    assert again.stdout == "", again.describe()


def test_list_says_which_sources_take_no_pch_and_why(tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        {
            "src/a.bpf.c": HELLO_BPF,
            "src/b.bpf.c": "#define BPF_NO_PRESERVE_ACCESS_INDEX\n" + HELLO_BPF,
        },
        "[build]\npch = true\n",
    )
    listing = bpfbuild(root, "list")
    assert listing.returncode == 0, listing.describe()
    lines = [line for line in listing.stdout.splitlines() if line.startswith("no pch")]
    assert len(lines) == 1 and lines[0].startswith("no pch for src/b.bpf.c: src/b.bpf.c:1"), lines


def test_a_source_added_to_a_globbed_folder_is_seen_by_the_fast_path(tmp_path: Path) -> None:
    """A new file matching [bpflib] sources' glob, outside src/, joins the library."""
    root = _linked_project(tmp_path / "p", use_missing=False)
    build(root)
    assert build(root).stdout == ""
    (root / "lib" / "more.bpf.c").write_text(
        LINKED_LIB.replace("bump", "more").replace("total", "t2")
    )
    run = build(root)
    assert "  BPF     lib/more.bpf.c" in run.stdout, run.describe()
    assert "t2" in (root / "output" / ARCH / "include" / "main.skel.h").read_text()


def test_missing_libraries_of_a_fetched_tool(tmp_path: Path) -> None:
    """ldd's verdict on a fetched binary: none missing for one of this system, and
    something missing for what the loader cannot run."""
    from bpfbuild.kernels.tools import missing_libraries

    assert missing_libraries(Path(sys.executable).resolve()) == []
    text = tmp_path / "not-a-binary"
    text.write_text("#!/bin/sh\n")
    assert missing_libraries(text) != []


def test_doctor_names_the_sections_bpftool_drops(struct_ops_project: Path, tmp_path: Path) -> None:
    bpftool = find_bpftool(_VersionCache(tmp_path / "toolchain.json"))
    if bpftool_libbpf(bpftool) >= (1, 2):
        pytest.skip(f"bpftool {bpftool.version} reads .struct_ops.link")
    env = {**os.environ, "BPFBUILD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("BPFTOOL", None)
    run = bpfbuild(struct_ops_project, "doctor", env=env)
    assert (
        f"note: the sources name .struct_ops.link, which bpftool {bpftool.version} drops: "
        "the build fetches bookworm-backports' bpftool 7.5 for the skeletons"
    ) in run.stdout, run.describe()


@pytest.mark.parametrize(
    "text, sections",
    [
        ('SEC(".struct_ops.link") struct x y = {};', [".struct_ops.link"]),
        ('#define OPS SEC("?.struct_ops") struct', ["?.struct_ops"]),
        ("#define __arena __attribute__((address_space(1)))", [".addr_space.1"]),
        ('SEC(".struct_ops") struct x y = {};', []),  # every libbpf reads it
    ],
)
def test_sections_named_before_anything_is_compiled(
    tmp_path: Path, text: str, sections: list[str]
) -> None:
    root = make_project(
        tmp_path / "p", {"src/a.bpf.c": '#include "common.bpf.h"\n', "include/common.bpf.h": text}
    )
    assert sections_named(load_project(root)) == sections
