"""Project discovery (apps, objects, shared sources, include/, vmlinux sources) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from buildutil import make_project

from bpfbuild.arch import ARCHES, host_arch
from bpfbuild.errors import BpfBuildError, ConfigError, ProjectError
from bpfbuild.pipeline.project import KERNEL_BTF, find_root, load_project

HOST = host_arch().name
OTHER_ARCH = next(name for name in ARCHES if name != HOST)


def apps_of(root: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each app as (bpf objects, sources)."""
    return {name: (app.bpf_objects, app.sources) for name, app in load_project(root).apps.items()}


# (id, files, bpfbuild.toml, apps as {name: (objects, sources)}, objects as {name: source})
DISCOVERY = [
    (
        "app-from-pair",
        ["src/hello.bpf.c", "src/hello.c", "src/hello.h"],
        "",
        {"hello": (("hello",), ("src/hello.c",))},
        {"hello": "src/hello.bpf.c"},
    ),
    (
        "shared-sources-in-every-app",
        ["src/a.bpf.c", "src/a.c", "src/b.bpf.c", "src/b.c", "src/util.c", "src/log.c"],
        "",
        {
            "a": (("a",), ("src/a.c", "src/log.c", "src/util.c")),
            "b": (("b",), ("src/b.c", "src/log.c", "src/util.c")),
        },
        {"a": "src/a.bpf.c", "b": "src/b.bpf.c"},
    ),
    (
        "object-only",
        ["src/probe.bpf.c", "src/tool.bpf.c", "src/tool.c"],
        "",
        {"tool": (("tool",), ("src/tool.c",))},
        {"probe": "src/probe.bpf.c", "tool": "src/tool.bpf.c"},
    ),
    ("only-objects-no-app", ["src/probe.bpf.c"], "", {}, {"probe": "src/probe.bpf.c"}),
    (
        "app-table-overrides-sources",
        ["src/a.bpf.c", "src/a.c", "src/main.c", "src/util.c"],
        '[app.tool]\nbpf = ["src/a.bpf.c"]\nsources = ["src/main.c", "src/util.c"]\n',
        {"a": (("a",), ("src/a.c", "src/util.c")), "tool": (("a",), ("src/main.c", "src/util.c"))},
        {"a": "src/a.bpf.c"},
    ),
    (
        "app-table-replaces-a-discovered-app",
        ["src/a.bpf.c", "src/a.c", "src/other_main.c"],
        '[app.a]\nsources = ["src/other_main.c"]\n',
        {"a": (("a",), ("src/other_main.c",))},
        {"a": "src/a.bpf.c"},
    ),
    # A shared source listed by an [app] table stays shared: only the table's first
    # source is its main, kept out of the other apps.
    (
        "app-table-lists-a-shared-source",
        ["src/a.bpf.c", "src/a.c", "src/b.bpf.c", "src/b.c", "src/util.c", "src/extra.c"],
        '[app.extra]\nbpf = ["src/a.bpf.c"]\nsources = ["src/extra.c", "src/util.c"]\n',
        {
            "a": (("a",), ("src/a.c", "src/util.c")),
            "b": (("b",), ("src/b.c", "src/util.c")),
            "extra": (("a",), ("src/extra.c", "src/util.c")),
        },
        {"a": "src/a.bpf.c", "b": "src/b.bpf.c"},
    ),
    (
        "vmlinux-keyed-by-uname-spelling",
        ["src/a.bpf.c", "src/a.c", "btf/x.h"],
        f'[vmlinux]\n{ARCHES[HOST].machines[-1]} = "btf/x.h"\n',
        {"a": (("a",), ("src/a.c",))},
        {"a": "src/a.bpf.c"},
    ),
    (
        "app-table-adds-objects-from-elsewhere",
        ["src/a.bpf.c", "src/a.c", "bpf/extra.bpf.c"],
        '[app.a]\nbpf = ["src/a.bpf.c", "bpf/extra.bpf.c"]\n',
        {"a": (("a", "extra"), ("src/a.c",))},
        {"a": "src/a.bpf.c", "extra": "bpf/extra.bpf.c"},
    ),
]


@pytest.mark.parametrize(
    "files, config, apps, objects",
    [case[1:] for case in DISCOVERY],
    ids=[case[0] for case in DISCOVERY],
)
def test_discovery(
    tmp_path: Path, files: list[str], config: str, apps: dict, objects: dict
) -> None:
    root = make_project(tmp_path / "p", dict.fromkeys(files, ""), config)
    project = load_project(root)
    assert apps_of(root) == apps
    assert {name: obj.source for name, obj in project.bpf_objects.items()} == objects


def test_object_names_its_skeleton() -> None:
    from bpfbuild.pipeline.project import BpfObject

    hello = BpfObject("hello", ("src/hello.bpf.c",))
    assert (hello.skeleton_header, hello.skeleton_name) == ("hello.skel.h", "hello_bpf")


@pytest.mark.parametrize(
    "folders, include_dirs",
    [
        ([], ["src"]),
        (["include"], ["src", "include"]),
    ],
)
def test_include_folder_used_when_present(
    tmp_path: Path, folders: list[str], include_dirs: list[str]
) -> None:
    root = make_project(tmp_path / "p", {"src/a.bpf.c": ""})
    for folder in folders:
        (root / folder).mkdir()
    assert load_project(root).include_dirs == include_dirs


def test_host_arch_takes_the_running_kernels_types(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path / "p", {"src/a.bpf.c": ""}))
    assert [a.name for a in project.arches] == [HOST]
    assert project.vmlinux[HOST].path == KERNEL_BTF
    assert not project.vmlinux[HOST].is_header


def test_cross_arch_takes_its_vmlinux_entry(tmp_path: Path) -> None:
    config = (
        f'[build]\narches = ["{HOST}", "{OTHER_ARCH}"]\n'
        f'[vmlinux]\n{OTHER_ARCH} = "btf/vmlinux-{OTHER_ARCH}.h"\n'
    )
    files = {"src/a.bpf.c": "", f"btf/vmlinux-{OTHER_ARCH}.h": ""}
    project = load_project(make_project(tmp_path / "p", files, config))
    assert [a.name for a in project.arches] == [HOST, OTHER_ARCH]
    assert project.vmlinux[OTHER_ARCH].path == f"btf/vmlinux-{OTHER_ARCH}.h"
    assert project.vmlinux[OTHER_ARCH].is_header
    assert project.vmlinux[HOST].path == KERNEL_BTF


def test_find_root_from_a_subfolder(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"src/deep/x.h": ""})
    assert find_root(root / "src" / "deep") == root.resolve()


def test_find_root_outside_any_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        find_root(tmp_path)
    assert "no bpfbuild.toml" in caught.value.message
    assert "bpfbuild init" in caught.value.hint


# (id, files, bpfbuild.toml, error class, part of the message, part of the hint)
PROJECT_ERRORS = [
    (
        "no-src-folder",
        {"README.md": ""},
        "",
        ProjectError,
        "no src/ folder",
        "put NAME.bpf.c and NAME.c in src/",
    ),
    (
        "no-bpf-source",
        {"src/tool.c": ""},
        "",
        ProjectError,
        "no *.bpf.c source",
        "add src/NAME.bpf.c",
    ),
    (
        "app-lists-missing-file",
        {"src/a.bpf.c": ""},
        '[app.tool]\nbpf = ["src/a.bpf.c"]\nsources = ["src/missing.c"]\n',
        ConfigError,
        "app 'tool' lists 'src/missing.c', which does not exist",
        "fix [app.tool] or create src/missing.c",
    ),
    (
        "non-host-arch-without-vmlinux",
        {"src/a.bpf.c": ""},
        f'[build]\narches = ["{OTHER_ARCH}"]\n',
        ConfigError,
        f"no vmlinux source for arch '{OTHER_ARCH}'",
        "under [vmlinux]",
    ),
    (
        "object-name-not-an-identifier",
        {"src/1bad.bpf.c": ""},
        "",
        ProjectError,
        "'1bad' is not a valid C identifier",
        "rename the file",
    ),
    (
        "app-without-user-source",
        {"src/a.bpf.c": ""},
        '[app.tool]\nbpf = ["src/a.bpf.c"]\n',
        ConfigError,
        "app 'tool' has no user-space source",
        'sources = ["src/tool.c"]',
    ),
    (
        "bpf-entry-not-named-bpf-c",
        {"src/a.bpf.c": "", "src/probe.c": "", "src/main.c": ""},
        '[app.tool]\nbpf = ["src/probe.c"]\nsources = ["src/main.c"]\n',
        ConfigError,
        "BPF source 'src/probe.c' must be named NAME.bpf.c",
        "rename the file",
    ),
    (
        "two-sources-one-object",
        {"src/x.bpf.c": "", "other/x.bpf.c": "", "src/x.c": ""},
        '[app.x]\nbpf = ["other/x.bpf.c"]\n',
        ProjectError,
        "two BPF sources make object 'x'",
        "rename one of them",
    ),
]


@pytest.mark.parametrize(
    "files, config, error, message, hint",
    [case[1:] for case in PROJECT_ERRORS],
    ids=[case[0] for case in PROJECT_ERRORS],
)
def test_project_error(
    tmp_path: Path,
    files: dict[str, str],
    config: str,
    error: type[BpfBuildError],
    message: str,
    hint: str,
) -> None:
    root = make_project(tmp_path / "p", files, config)
    with pytest.raises(error) as caught:
        load_project(root)
    assert message in caught.value.message
    assert hint in caught.value.hint
    if error is ConfigError:
        assert str(root / "bpfbuild.toml") in caught.value.message


def test_an_app_table_listing_a_shared_source_keeps_it_in_the_discovered_apps(
    tmp_path: Path,
) -> None:
    """[app.extra] lists src/util.c, which alpha and gamma also use: all three link."""
    from buildutil import ARCH, build, copy_project

    root = copy_project("multi", tmp_path)
    (root / "src" / "extra.c").write_text(
        '#include <stdio.h>\n#include "util.h"\n'
        "int main(void) { puts(util_greeting()); return 0; }\n"
    )
    with open(root / "bpfbuild.toml", "a") as config:
        config.write(
            '\n[app.extra]\nbpf = ["src/beta.bpf.c"]\nsources = ["src/extra.c", "src/util.c"]\n'
        )
    build(root)
    for app in ("alpha", "gamma", "extra"):
        assert (root / "output" / ARCH / app).is_file(), app


@pytest.mark.parametrize(
    "name, kind, problem",
    [
        ("hello", "app", None),
        ("_tool2", "app", None),
        ("include", "BPF object", None),  # objects live in bpf/ and include/: no clash
        ("int", "app", None),  # a file name; the skeleton type is int_bpf
        ("include", "app", "output/<arch>/include/ is a folder bpfbuild writes"),
        ("libbpf", "app", "output/<arch>/libbpf/ is a folder bpfbuild writes"),
        ("../x", "app", "must be a C identifier"),
        ("a.b", "BPF object", "'a.b' is not a valid BPF object name"),
        ("my-tool", "app", "must be a C identifier"),
        ("1tool", "app", "must be a C identifier"),
        ("café", "app", "must be a C identifier"),
        ("", "app", "must be a C identifier"),
    ],
)
def test_name_problem(name: str, kind: str, problem: str | None) -> None:
    from bpfbuild.pipeline.layout import name_problem

    found = name_problem(name, kind)
    assert (found is None) if problem is None else (problem in (found or "")), found
