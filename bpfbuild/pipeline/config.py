"""bpfbuild.toml: a typed, validated model whose errors name the file, line and key."""

from __future__ import annotations

import os
import re
import string
import tomllib
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from ..arch import get_arch
from ..errors import ConfigError
from ..kernels.spec import is_kernel_spec
from .layout import NAME_HINT, name_problem
from .linker import LINKERS
from .names import OUTPUT_DIR, STATE_DIR

DEFAULT_SKEL_HEADER = "{name}.skel.h"
"""libbpf-bootstrap's skeleton header: output/<arch>/include/NAME.skel.h."""
DEFAULT_SKEL_NAME = "{name}_bpf"
"""libbpf-bootstrap's skeleton name: struct NAME_bpf, NAME_bpf__open()."""
SKEL_NAME_MAX = 63
"""bpftool gen skeleton cuts a longer name (its MAX_OBJ_NAME_LEN, 64 with the NUL):
the struct would not be the one the loader names."""
GLOB_CHARS = frozenset("*?[")
"""What makes a path of sources a glob (pathlib's syntax, ** for any folder depth)."""
PCH_AUTO_MIN = 4
"""With pch = "auto": fewer sources do not pay back the ~0.4 s the PCH takes to build
(each saves 0.1-0.2 s), and the other jobs compile them meanwhile anyway."""


@dataclass
class BuildConfig:
    """[build]: how every app is compiled and linked."""

    arches: list[str] = field(default_factory=list)
    """Target arches (x86_64, arm64, ...); empty means the host's arch."""
    static: bool = True
    """Link each app into one static executable with no runtime dependency."""
    strip: bool = False
    """Strip the final executables with binutils strip (smaller, no symbols)."""
    bpf_cflags: list[str] = field(default_factory=list)
    """Extra clang flags for every BPF object."""
    cflags: list[str] = field(default_factory=list)
    """Extra C compiler flags for user-space sources (after $CFLAGS)."""
    ldflags: list[str] = field(default_factory=list)
    """Extra linker flags for every app (after $LDFLAGS)."""
    pch: bool | str = "auto"
    """Precompile vmlinux.h once per arch (objects are byte-identical without it):
    true, false, or "auto": when at least PCH_AUTO_MIN sources of an arch can take it."""
    src: list[str] = field(default_factory=lambda: ["src"])
    """The folders discovery reads, relative to the project: the *.c files directly in
    each (not in subfolders) make the apps, BPF-only objects and shared user sources,
    the folders read as one. "." is the project folder itself; a folder given here
    must exist (the default src/ may be missing when tables name the sources)."""
    include_dirs: list[str] = field(default_factory=lambda: ["src", "include"])
    """Header folders, relative to the project; missing ones are ignored. Default: the
    src folders, then "include"."""
    linker: str = "auto"
    """Linker of the apps: "auto" (mold, then lld, when they link for the arch, else the
    compiler's default), "mold", "lld", "bfd", "gold" or "default"."""
    skel_header: str = DEFAULT_SKEL_HEADER
    """File name of each object's skeleton in output/<arch>/include/, with {name} for
    the object's name: "{name}.bpf.skel.h" is the kernel tree's convention."""
    skel_name: str = DEFAULT_SKEL_NAME
    """Name of each object's skeleton (`bpftool gen skeleton ... name NAME`: struct
    NAME, NAME__open()), with {name} for the object's name: "{name}" is the kernel's."""
    exclude: list[str] = field(default_factory=list)
    """Globs relative to the project (e.g. "src/old_*.c"): the sources they match are
    left out of discovery and out of the globs of [object] and [bpflib] sources."""
    generated: list[str] = field(default_factory=list)
    """Headers that sources include and that are made during the build (by a task of
    the project's dodo.py) or by hand: paths relative to the project."""


@dataclass
class AppConfig:
    """[app.NAME]: the sources of one app, overriding discovery."""

    bpf: list[str] = field(default_factory=list)
    """BPF sources (*.bpf.c) whose skeletons the app includes."""
    sources: list[str] = field(default_factory=list)
    """User-space C sources linked into the app's executable."""
    cflags: list[str] = field(default_factory=list)
    """Extra C flags for this app's own sources (after [build] cflags). An app with
    flags compiles its shared sources too, into objects of its own."""
    ldflags: list[str] = field(default_factory=list)
    """Extra link flags for this app (after [build] ldflags)."""
    libs: list[str] = field(default_factory=list)
    """Extra libraries for this app, after libbpf's (e.g. ["-lm"])."""
    aliases: list[str] = field(default_factory=list)
    """Other names of the app: links output/<arch>/ALIAS -> the app's executable."""


@dataclass
class ObjectConfig:
    """[object.NAME]: settings of one BPF object."""

    bpf_cflags: list[str] = field(default_factory=list)
    """Extra clang flags for this object only, after [build] bpf_cflags (e.g.
    ["-mcpu=v4"]). Such an object compiles without the shared precompiled vmlinux.h."""
    sources: list[str] = field(default_factory=list)
    """BPF sources compiled one by one and linked into this object (globs allowed,
    relative to the project). Its own src/NAME.bpf.c, when there is one, comes first
    without being listed; with no such file, the table alone defines the object."""
    libs: list[str] = field(default_factory=list)
    """[bpflib] names whose sources are linked into this object."""
    skel_header: str = ""
    """This object's skeleton file name, overriding [build] skel_header ({name} allowed)."""
    skel_name: str = ""
    """This object's skeleton name, overriding [build] skel_name ({name} allowed)."""


@dataclass
class BpflibConfig:
    """[bpflib.NAME]: BPF sources shared by several objects, linked into each."""

    sources: list[str] = field(default_factory=list)
    """The library's BPF sources (globs allowed, relative to the project)."""


@dataclass
class LibbpfConfig:
    """[libbpf]: where libbpf comes from."""

    source: str = ""
    """A libbpf source tree inside the project (typically a git submodule), built into
    output/<arch>/libbpf/; empty: the system's libbpf through pkg-config."""


@dataclass
class ToolchainConfig:
    """[toolchain]: tools chosen by the project ($BPFTOOL still wins)."""

    bpftool: str = ""
    """bpftool to run: a path relative to the project, or a name looked up in PATH."""
    clang: str = ""
    """clang for BPF objects ($CLANG still wins): a name looked up in PATH, such as
    "clang-19", or a path (relative to the project); empty: the first clang found."""


@dataclass
class VerifyConfig:
    """[verify]: verifier budgets and regression baselines. The defaults here are the
    verifier's defaults everywhere (verify.budgets, verify.baseline)."""

    max_insn_share: float = 0.5
    """Fail when a program processes more than this share of the 1M-insn limit."""
    max_growth: float = 10.0
    """Fail when processed insns or states grow by more than this percent."""
    baseline: str = "verify-baseline.json"
    """Baseline file, relative to the project; meant to be committed."""
    rodata: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per object: .rodata globals to set before verification."""
    maps: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """Per object, per map: `{ max_entries = N }`, the size its loader gives it at run
    time (bpf_map__set_max_entries); a map left at 0 is verified with 1."""
    kernels: list[str] = field(default_factory=list)
    """Kernels to verify on (`bpfbuild verify --kernel`): "host", "debian:6.1", a Debian
    kernel package, or a bootable image; empty: the running kernel only."""
    arches: list[str] = field(default_factory=list)
    """Arches to verify in VMs (`--arch`); empty: every arch of the project a VM can boot."""
    timeout: float = 300.0
    """Seconds a verification VM may run before it is killed and reported."""

    def max_entries(self, obj: str) -> dict[str, int]:
        """[verify.maps.OBJECT]: map name -> the max_entries to verify it with."""
        return {name: settings["max_entries"] for name, settings in self.maps.get(obj, {}).items()}


@dataclass
class ProjectConfig:
    """The whole bpfbuild.toml."""

    path: Path
    name: str
    build: BuildConfig
    vmlinux: dict[str, str]
    """Per arch: where vmlinux.h comes from (a BTF file, or a ready *.h)."""
    apps: dict[str, AppConfig]
    verify: VerifyConfig
    libbpf: LibbpfConfig = field(default_factory=LibbpfConfig)
    toolchain: ToolchainConfig = field(default_factory=ToolchainConfig)
    objects: dict[str, ObjectConfig] = field(default_factory=dict)
    """[object.NAME] tables, by object name (checked against the project's objects)."""
    bpflibs: dict[str, BpflibConfig] = field(default_factory=dict)
    """[bpflib.NAME] tables, by library name."""
    src_given: bool = False
    """[build] src is in the file: each of its folders must exist."""

    def fail_at(self, table: tuple[str, ...], key: str, message: str, hint: str) -> None:
        """Raise a ConfigError naming the line of table.key in this file."""
        _Locator(self.path, self.path.read_text()).fail(table, key, message, hint)


_TOP_KEYS = {
    "project",
    "build",
    "vmlinux",
    "app",
    "verify",
    "libbpf",
    "toolchain",
    "object",
    "bpflib",
}


def load_config(path: Path) -> ProjectConfig:
    """Read and validate bpfbuild.toml."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found", hint="run `bpfbuild init` to create a project"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"{path}: cannot read: {err.strerror}", hint="check the file's permissions"
        ) from None
    try:
        text = raw.decode()
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x})",
            hint="TOML files are UTF-8: save the file as UTF-8",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib puts the position only in its message: "(at line 3, column 7)"
        # or "(at end of document)".
        match = re.search(r"at line (\d+)", str(err))
        line = int(match.group(1)) if match else max(len(text.splitlines()), 1)
        raise ConfigError(
            f"{path}:{line}: invalid TOML: {err}", hint="fix the TOML syntax at that line"
        ) from None
    locate = _Locator(path, text)
    for key in data:
        if key not in _TOP_KEYS:
            locate.fail(
                (),
                key,
                f"unknown table or key '{key}'",
                "valid top-level tables: " + ", ".join(sorted(_TOP_KEYS)),
            )
    project = _expect(locate, (), "project", data.get("project", {}), dict)
    for key in project:
        if key != "name":
            locate.fail(("project",), key, f"unknown key 'project.{key}'", "valid keys: name")
    name = _expect(locate, ("project",), "name", project.get("name", path.parent.name), str)
    given = _expect(locate, (), "build", data.get("build", {}), dict)
    if isinstance(given.get("src"), str):
        locate.fail(
            ("build",),
            "src",
            f"'build.src' must be an array of folders, not the string {given['src']!r}",
            f'write it as a list: src = ["{given["src"]}"]',
        )
    build = _dataclass_from(locate, ("build",), given, BuildConfig)
    seen: dict[str, str] = {}
    for arch in build.arches:
        _check_arch(locate, ("build",), "arches", arch)
        canonical = get_arch(arch).name
        if canonical in seen:
            same = "" if seen[canonical] == arch else f" (as '{seen[canonical]}')"
            locate.fail(
                ("build",),
                "arches",
                f"arch '{arch}' is listed twice in 'build.arches'{same}",
                "list each arch once in 'build.arches'",
            )
        seen[canonical] = arch
    src_given = "src" in given
    if src_given:
        build.src = _check_src(locate, build.src)
    if "include_dirs" in given:
        for folder in build.include_dirs:
            _check_path(locate, ("build",), "include_dirs", folder)
    else:
        build.include_dirs = list(dict.fromkeys([*build.src, "include"]))
    if isinstance(build.pch, str) and build.pch != "auto":
        locate.fail(
            ("build",),
            "pch",
            f"'build.pch' must be true, false or \"auto\", not {build.pch!r}",
            "change the value of 'build.pch'",
        )
    if build.linker not in LINKERS:
        locate.fail(
            ("build",),
            "linker",
            "'build.linker' must be one of "
            + ", ".join(f'"{v}"' for v in LINKERS)
            + f", not {build.linker!r}",
            "change the value of 'build.linker'",
        )
    vmlinux_table = _expect(locate, (), "vmlinux", data.get("vmlinux", {}), dict)
    vmlinux = {
        arch: _expect(locate, ("vmlinux",), arch, source, str)
        for arch, source in vmlinux_table.items()
    }
    canonical_vmlinux: dict[str, str] = {}
    for arch, source in vmlinux.items():
        _check_arch(locate, ("vmlinux",), arch, arch)
        canonical = get_arch(arch).name
        if canonical in canonical_vmlinux:
            locate.fail(
                ("vmlinux",),
                arch,
                f"arch '{arch}' is given twice in [vmlinux] (as '{canonical_vmlinux[canonical]}')",
                "keep one entry per arch",
            )
        canonical_vmlinux[canonical] = arch
        if not is_kernel_spec(source) and not os.path.normpath(source).startswith(KERNEL_BTF_DIR):
            _check_path(locate, ("vmlinux",), arch, source)
    apps_table = _expect(locate, (), "app", data.get("app", {}), dict)
    apps = {}
    for app, table in apps_table.items():
        problem = name_problem(app)
        if problem:
            locate.fail(("app",), app, problem, NAME_HINT)
        apps[app] = _dataclass_from(locate, ("app", app), table, AppConfig)
        for key in ("bpf", "sources"):
            listed = getattr(apps[app], key)
            for source in listed:
                _check_path(locate, ("app", app), key, source)
            twice = sorted({source for source in listed if listed.count(source) > 1})
            if twice:
                locate.fail(
                    ("app", app),
                    key,
                    f"'app.{app}.{key}' lists '{twice[0]}' twice",
                    f"list each file once in 'app.{app}.{key}'",
                )
    verify = _dataclass_from(locate, ("verify",), data.get("verify", {}), VerifyConfig)
    _check_verify(locate, verify)
    _check_verify_maps(locate, verify)
    for arch in verify.arches:
        _check_arch(locate, ("verify",), "arches", arch)
    if verify.timeout <= 0:
        locate.fail(
            ("verify",),
            "timeout",
            "'verify.timeout' must be a positive number of seconds",
            "change the value of 'verify.timeout'",
        )
    libbpf = _dataclass_from(locate, ("libbpf",), data.get("libbpf", {}), LibbpfConfig)
    toolchain = _dataclass_from(locate, ("toolchain",), data.get("toolchain", {}), ToolchainConfig)
    objects, bpflibs = _check_conventions(locate, data, build)
    for app, table in apps.items():
        for alias in table.aliases:
            if not alias.isidentifier():
                locate.fail(
                    ("app", app),
                    "aliases",
                    f"alias '{alias}' of app '{app}' is not a C identifier",
                    "use letters, digits and underscores (it becomes a file name)",
                )
    return ProjectConfig(
        path, name, build, vmlinux, apps, verify, libbpf, toolchain, objects, bpflibs, src_given
    )


KERNEL_BTF_DIR = "/sys/kernel/btf/"
"""The running kernel's BTF: the one place outside the project [vmlinux] may read."""


def _check_conventions(
    locate: _Locator, data: dict, build: BuildConfig
) -> tuple[dict[str, ObjectConfig], dict[str, BpflibConfig]]:
    """[build] skeleton names, exclude and generated; [object.NAME] and [bpflib.NAME]
    tables: names, sources, libs, and the clashes that need no file to be found."""
    given = data.get("build", {})
    for key in ("skel_header", "skel_name"):
        if key in given:
            _check_template(locate, ("build",), key, getattr(build, key), needs_name=True)
    for key in ("exclude", "generated"):
        _check_sources(locate, ("build",), key, getattr(build, key), globs=key == "exclude")
    bpflibs_table = _expect(locate, (), "bpflib", data.get("bpflib", {}), dict)
    bpflibs = {}
    for lib, table in bpflibs_table.items():
        problem = name_problem(lib, "BPF library")
        if problem:
            locate.fail(("bpflib",), lib, problem, NAME_HINT)
        bpflibs[lib] = _dataclass_from(locate, ("bpflib", lib), table, BpflibConfig)
        if not bpflibs[lib].sources:
            locate.fail(
                ("bpflib",),
                lib,
                f"[bpflib.{lib}] has no sources",
                f'list its BPF sources: `sources = ["src/lib/{lib}.bpf.c"]` under [bpflib.{lib}]',
            )
        _check_sources(locate, ("bpflib", lib), "sources", bpflibs[lib].sources)
    objects_table = _expect(locate, (), "object", data.get("object", {}), dict)
    objects = {}
    for obj, table in objects_table.items():
        problem = name_problem(obj, "BPF object")
        if problem:
            locate.fail(("object",), obj, problem, NAME_HINT)
        if obj in bpflibs:
            locate.fail(
                ("object",),
                obj,
                f"[object.{obj}] and [bpflib.{obj}] have the same name",
                "rename one: objects and BPF libraries share one namespace "
                "(their outputs are output/<arch>/bpf/NAME*)",
            )
        settings = _dataclass_from(locate, ("object", obj), table, ObjectConfig)
        objects[obj] = settings
        for key in ("skel_header", "skel_name"):
            if key in table:
                _check_template(
                    locate, ("object", obj), key, getattr(settings, key), needs_name=False
                )
        if "sources" in table and not settings.sources:
            locate.fail(
                ("object", obj),
                "sources",
                f"'object.{obj}.sources' is empty",
                f"list the object's BPF sources, or remove `sources` from [object.{obj}]",
            )
        _check_sources(locate, ("object", obj), "sources", settings.sources)
        for lib in settings.libs:
            if lib not in bpflibs:
                locate.fail(
                    ("object", obj),
                    "libs",
                    f"'object.{obj}.libs' names '{lib}', which is no [bpflib] of this file",
                    "BPF libraries: "
                    + (", ".join(sorted(bpflibs)) or "none")
                    + f"; define [bpflib.{lib}] with its sources, or fix the name",
                )
        twice = sorted({lib for lib in settings.libs if settings.libs.count(lib) > 1})
        if twice:
            locate.fail(
                ("object", obj),
                "libs",
                f"'object.{obj}.libs' lists '{twice[0]}' twice",
                f"list each library once in 'object.{obj}.libs'",
            )
    return objects, bpflibs


def _check_template(
    locate: _Locator, table: tuple[str, ...], key: str, value: str, needs_name: bool
) -> None:
    """A skeleton header or name: {name} is its only placeholder (required in [build],
    where it tells the objects apart); a header is a file name ending in .h, a name
    is a C identifier once {name} is replaced."""
    dotted = ".".join(table + (key,))
    try:
        fields = [part[1:] for part in string.Formatter().parse(value) if part[1] is not None]
    except ValueError as err:
        locate.fail(
            table,
            key,
            f"'{dotted}' = {value!r}: {err}",
            "write {name} for the object's name; a brace is otherwise not allowed",
        )
    for field_name, spec, conversion in fields:
        if field_name != "name" or spec or conversion:
            shown = "{" + str(field_name) + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            locate.fail(
                table,
                key,
                f"'{dotted}' = {value!r}: unknown placeholder {shown}",
                "the only placeholder is {name}, the object's name",
            )
    if needs_name and not fields:
        locate.fail(
            table,
            key,
            f"'{dotted}' = {value!r} has no {{name}}: every object would get the same one",
            f'put {{name}} where the object\'s name goes, e.g. "{DEFAULT_SKEL_HEADER}"'
            if key == "skel_header"
            else f'put {{name}} where the object\'s name goes, e.g. "{DEFAULT_SKEL_NAME}"',
        )
    sample = value.replace("{name}", "x")
    if key == "skel_header" and (
        "/" in sample or "\0" in sample or sample.startswith(".") or not sample.endswith(".h")
    ):
        locate.fail(
            table,
            key,
            f"'{dotted}' = {value!r} is not a header file name",
            "a file name ending in .h, with no folder (skeletons are written to "
            'output/<arch>/include/), e.g. "{name}.bpf.skel.h"',
        )
    if key == "skel_name" and not (sample.isascii() and sample.isidentifier()):
        locate.fail(
            table,
            key,
            f"'{dotted}' = {value!r} is not a C identifier",
            "the skeleton's name becomes `struct NAME` and NAME__open(): use letters, "
            'digits and underscores, e.g. "{name}" or "{name}_bpf"',
        )


def _check_sources(
    locate: _Locator, table: tuple[str, ...], key: str, paths: list[str], globs: bool = True
) -> None:
    """Paths (or globs) of sources: each in the project and listed once; with
    globs=False, plain paths (files that need not exist yet)."""
    dotted = ".".join(table + (key,))
    for path in paths:
        _check_path(locate, table, key, path)
        if not globs and GLOB_CHARS & set(path):
            locate.fail(
                table,
                key,
                f"'{dotted}': '{path}' is a glob",
                f"list each file of '{dotted}' by its path: the files may not exist "
                "until the build makes them",
            )
    normal = [os.path.normpath(path) for path in paths]
    twice = sorted({path for path, n in zip(paths, normal, strict=True) if normal.count(n) > 1})
    if twice:
        locate.fail(
            table,
            key,
            f"'{dotted}' lists '{twice[0]}' twice",
            f"list each file once in '{dotted}'",
        )


def _check_src(locate: _Locator, folders: list[str]) -> list[str]:
    """[build] src: at least one folder, each a plain path (no glob) in the project,
    outside bpfbuild's own folders, listed once. Returns them normalized ("./src/" is
    "src"; the project folder is "."): their existence is checked with the project."""
    if not folders:
        locate.fail(
            ("build",),
            "src",
            "'build.src' is empty",
            'list the folders of the sources, e.g. src = ["src"], or remove the key for '
            "that default",
        )
    normal = []
    for folder in folders:
        _check_path(locate, ("build",), "src", folder)
        if GLOB_CHARS & set(folder):
            locate.fail(
                ("build",),
                "src",
                f"'build.src': '{folder}' is a glob",
                "list each folder by its path: discovery reads the *.c files directly in "
                "each folder, and [object] or [bpflib] sources take globs",
            )
        folder = Path(os.path.normpath(folder)).as_posix()
        if folder.split("/")[0] in (OUTPUT_DIR, STATE_DIR):
            locate.fail(
                ("build",),
                "src",
                f"'build.src': '{folder}' is in {folder.split('/')[0]}/, which bpfbuild writes",
                "keep the sources out of output/ and .bpfbuild/",
            )
        if folder in normal:
            locate.fail(
                ("build",),
                "src",
                f"'build.src' lists '{folder}' twice",
                "list each folder once in 'build.src'",
            )
        normal.append(folder)
    return normal


def _check_path(locate: _Locator, table: tuple[str, ...], key: str, value: str) -> None:
    """A path from the configuration is relative to the project and stays in it, also
    through symlinks: bpfbuild reads and writes nothing outside the project."""
    dotted = ".".join(table + (key,))
    if not value:
        locate.fail(
            table,
            key,
            f"'{dotted}' holds an empty path",
            f"give a path relative to the project folder in '{dotted}'",
        )
    root = locate.path.parent.resolve()
    resolved = (root / value).resolve()
    if Path(value).is_absolute() or not resolved.is_relative_to(root):
        via = "" if Path(value).is_absolute() else f" (it resolves to {resolved})"
        locate.fail(
            table,
            key,
            f"'{dotted}': '{value}' is outside the project folder{via}",
            "bpfbuild reads and writes only inside the project folder: "
            "copy or move the file into it and give its relative path",
        )


def _check_verify(locate: _Locator, verify: VerifyConfig) -> None:
    """Budgets within their ranges, rodata keyed by C identifiers, baseline in the project."""
    if not 0 < verify.max_insn_share <= 1:
        locate.fail(
            ("verify",),
            "max_insn_share",
            f"'verify.max_insn_share' must be more than 0 and at most 1, not "
            f"{verify.max_insn_share}",
            "a share of the 1M-instruction limit, e.g. 0.5",
        )
    if not verify.max_growth >= 0:
        locate.fail(
            ("verify",),
            "max_growth",
            f"'verify.max_growth' must be 0 or more, not {verify.max_growth}",
            "a percent of growth allowed over the baseline, e.g. 10",
        )
    _check_path(locate, ("verify",), "baseline", verify.baseline)
    for obj, values in verify.rodata.items():
        for name in (obj, *values):
            if not (name.isascii() and name.isidentifier()):
                locate.fail(
                    ("verify", "rodata"),
                    obj,
                    f"'verify.rodata.{obj}': '{name}' is not a C identifier",
                    "key [verify.rodata.OBJECT] by object name, then global = integer",
                )
        for name, value in values.items():
            if not -(2**63) <= value < 2**64:
                locate.fail(
                    ("verify", "rodata", obj),
                    name,
                    f"'verify.rodata.{obj}.{name}' = {value} does not fit in 64 bits",
                    "give a value of at most 64 bits",
                )


MAP_SETTINGS = ("max_entries",)
"""What [verify.maps.OBJECT] MAP = { ... } may set."""
MAX_ENTRIES_LIMIT = 2**32 - 1
"""max_entries is a u32 in the bpf() syscall."""


def _check_verify_maps(locate: _Locator, verify: VerifyConfig) -> None:
    """[verify.maps.OBJECT] MAP = { max_entries = N }: C identifiers, known settings,
    sizes the kernel takes."""
    for obj, maps in verify.maps.items():
        for name in (obj, *maps):
            if not (name.isascii() and name.isidentifier()):
                locate.fail(
                    ("verify", "maps") if name == obj else ("verify", "maps", obj),
                    name,
                    f"'verify.maps.{obj}': '{name}' is not a C identifier",
                    "key [verify.maps.OBJECT] by object name, then MAP = { max_entries = N }",
                )
        for name, settings in maps.items():
            for key, value in settings.items():
                if key not in MAP_SETTINGS:
                    locate.fail(
                        ("verify", "maps", obj),
                        name,
                        f"unknown setting '{key}' in 'verify.maps.{obj}.{name}'",
                        "valid settings: " + ", ".join(MAP_SETTINGS),
                    )
                if not 1 <= value <= MAX_ENTRIES_LIMIT:
                    locate.fail(
                        ("verify", "maps", obj),
                        name,
                        f"'verify.maps.{obj}.{name}.{key}' = {value} is not between 1 and "
                        f"{MAX_ENTRIES_LIMIT}",
                        "give the size the loader sets with bpf_map__set_max_entries()",
                    )
            if not settings:
                locate.fail(
                    ("verify", "maps", obj),
                    name,
                    f"'verify.maps.{obj}.{name}' sets nothing",
                    f"write `{name} = {{ max_entries = N }}`",
                )


def _check_arch(locate: _Locator, table: tuple[str, ...], key: str, name: str) -> None:
    """An arch name must be in the arch table; the error names the line that uses it."""
    try:
        get_arch(name)
    except ConfigError as err:
        locate.fail(table, key, err.message, err.hint or "")


def _dataclass_from(locate: _Locator, table: tuple[str, ...], data: Any, cls: type) -> Any:
    """Build a config dataclass from a TOML table, checking keys and types."""
    data = _expect(locate, table[:-1], table[-1], data, dict)
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            locate.fail(
                table,
                key,
                f"unknown key '{'.'.join(table + (key,))}'",
                "valid keys: " + ", ".join(sorted(known)),
            )
        values[key] = _check_type(locate, table, key, value, hints[key])
    return cls(**values)


def _check_type(locate: _Locator, table: tuple[str, ...], key: str, value: Any, hint: Any) -> Any:
    """Check a value against a field's annotation (bool, int, float, str, list, dict)."""
    origin = getattr(hint, "__origin__", hint)
    if origin is list:
        (item_type,) = hint.__args__
        _expect(locate, table, key, value, list)
        for item in value:
            _expect(locate, table, key, item, item_type)
        return value
    if origin is dict:
        _, value_type = hint.__args__
        _expect(locate, table, key, value, dict)
        return {k: _check_type(locate, table + (key,), k, v, value_type) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, types.UnionType):  # bool | str: one of them
        if any(isinstance(value, option) for option in hint.__args__):
            return value
        dotted = ".".join(table + (key,))
        locate.fail(
            table,
            key,
            f"'{dotted}' must be "
            + " or ".join(_TYPE_NAMES[option] for option in hint.__args__)
            + f", not {type(value).__name__} {value!r}",
            f"change the value of '{dotted}'",
        )
    return _expect(locate, table, key, value, hint)


_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "a table",
}


def _expect(locate: _Locator, table: tuple[str, ...], key: str, value: Any, expected: type) -> Any:
    """Return value if it has the expected TOML type, else fail naming the key's line."""
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        dotted = ".".join(table + (key,))
        locate.fail(
            table,
            key,
            f"'{dotted}' must be {_TYPE_NAMES[expected]}, not {type(value).__name__} {value!r}",
            f"change the value of '{dotted}'",
        )
    return value


_DOTTED_PART = re.compile(r'"[^"]*"|\'[^\']*\'|[^."\'\s]+')
"""One part of a dotted TOML key: bare, or quoted (and then it may hold dots)."""


class _Locator:
    """Finds the line of a key in the TOML text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: tuple[str, ...], key: str) -> int | None:
        current: tuple[str, ...] = ()
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        for number, line in enumerate(self.lines, 1):
            match = header.match(line)
            if match:
                current = tuple(part.strip("\"'") for part in _DOTTED_PART.findall(match.group(1)))
                if current == table + (key,):
                    return number
                continue
            if re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
                if current == table:
                    return number
            dotted = (
                ".".join(table[len(current) :] + (key,))
                if table[: len(current)] == current
                else None
            )
            if dotted and re.match(rf"^\s*{re.escape(dotted)}\s*=", line):
                return number
        return None

    def fail(self, table: tuple[str, ...], key: str, message: str, hint: str) -> None:
        line = self.line_of(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        raise ConfigError(f"{where}: {message}", hint=hint)
