"""The project model: apps, BPF objects, user sources and arches, from config and discovery."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..arch import Arch, get_arch, host_arch
from ..errors import ConfigError, ProjectError
from ..kernels.host import KERNEL_BTF
from ..kernels.spec import is_kernel_spec
from .config import (
    DEFAULT_SKEL_HEADER,
    DEFAULT_SKEL_NAME,
    GLOB_CHARS,
    SKEL_NAME_MAX,
    ProjectConfig,
    load_config,
)
from .files import (
    NOT_UTF8_HINT,
    include_tree,
    is_editor_leftover,
    kind_problem,
    non_utf8_byte,
    shown_name,
)
from .includes import IncludeScanner, include_target
from .layout import NAME_HINT, RESERVED_NAMES, Layout, name_problem
from .libbpf_source import LibbpfTree, load_tree
from .names import CONFIG_NAME, OUTPUT_DIR, STATE_DIR

if TYPE_CHECKING:
    from ..kernels.debian import Kernel

USER_SUFFIXES = (".c", ".S", ".s")
"""What the C compiler builds for user space: C and assembly."""


@dataclass(frozen=True)
class BpfObject:
    """One BPF object: its sources compiled one by one, linked with the sources of its
    libraries into output/<arch>/bpf/NAME.bpf.o, and its skeleton header."""

    name: str
    sources: tuple[str, ...]
    """Its own BPF sources, relative to the project root, in link order: the one that
    names it first (src/NAME.bpf.c, or the first its [object] table lists)."""
    bpf_cflags: tuple[str, ...] = ()
    """[object.NAME] bpf_cflags: clang flags of this object only, after [build]'s."""
    libs: tuple[str, ...] = ()
    """[object.NAME] libs: the [bpflib] libraries linked into it, in order."""
    skel_header_template: str = DEFAULT_SKEL_HEADER
    """skel_header of [object.NAME], else of [build], else libbpf-bootstrap's."""
    skel_name_template: str = DEFAULT_SKEL_NAME
    """skel_name of [object.NAME], else of [build], else libbpf-bootstrap's."""

    @property
    def source(self) -> str:
        """The source that names the object (the first of sources)."""
        return self.sources[0]

    @property
    def skeleton_header(self) -> str:
        """The skeleton's file name in output/<arch>/include/ (NAME.skel.h by default)."""
        return self.skel_header_template.replace("{name}", self.name)

    @property
    def skeleton_name(self) -> str:
        """`bpftool gen skeleton ... name` of it: struct NAME_bpf by default."""
        return self.skel_name_template.replace("{name}", self.name)


@dataclass(frozen=True)
class BpfLib:
    """[bpflib.NAME]: BPF sources compiled once per arch and linked into every object
    that lists the library in its libs."""

    name: str
    sources: tuple[str, ...]
    """Relative to the project root, in link order."""


@dataclass(frozen=True)
class App:
    """One deployable executable: user-space sources plus the skeletons they include."""

    name: str
    bpf_objects: tuple[str, ...]
    sources: tuple[str, ...]
    cflags: tuple[str, ...] = ()
    """[app.NAME] cflags, after [build] cflags; non-empty: the app's objects are its own."""
    ldflags: tuple[str, ...] = ()
    """[app.NAME] ldflags, after [build] ldflags."""
    libs: tuple[str, ...] = ()
    """[app.NAME] libs, after libbpf's libraries."""
    aliases: tuple[str, ...] = ()
    """Other names: links in output/<arch>/ to the app's executable."""


@dataclass(frozen=True)
class VmlinuxSource:
    """Where one arch's vmlinux.h comes from."""

    path: str
    """The [vmlinux] value: a BTF file (kernel /sys/kernel/btf/vmlinux or an ELF
    vmlinux), a header, or a Debian kernel ("debian:6.1", a package name)."""
    kernel: Kernel | None = None
    """The Debian kernel, fetched into the user's cache, when path names one."""

    @property
    def is_header(self) -> bool:
        return self.kernel is None and self.path.endswith(".h")

    def file(self, root: Path) -> Path:
        """The BTF file or header to read (a kernel's BTF lives in the cache)."""
        return self.kernel.btf if self.kernel else root / self.path

    def describe(self) -> str:
        if self.kernel:
            return f"Debian kernel {self.kernel.describe()}, BTF {self.kernel.btf}"
        kind = "header" if self.is_header else "BTF"
        return f"{kind} {self.path}"


@dataclass
class Project:
    root: Path
    config: ProjectConfig
    arches: list[Arch]
    bpf_objects: dict[str, BpfObject]
    apps: dict[str, App]
    include_dirs: list[str]
    """Header folders relative to the root that exist."""
    vmlinux: dict[str, VmlinuxSource]
    """Per arch name."""
    libbpf: LibbpfTree | None = None
    """[libbpf] source: the libbpf tree built per arch; None: pkg-config's libbpf."""
    bpf_libs: dict[str, BpfLib] = field(default_factory=dict)
    """[bpflib] libraries, by name."""
    excluded: dict[str, str] = field(default_factory=dict)
    """Sources left out by [build] exclude: path relative to the root -> its pattern."""
    generated: tuple[str, ...] = ()
    """[build] generated: headers made during the build, relative to the root."""
    listed_folders: tuple[str, ...] = ()
    """The folders the globs and paths of [build] exclude, [object] and [bpflib]
    sources read (relative to the root): a file added or removed there changes the
    model, as one in src/ does."""
    headers: tuple[Path, ...] = ()
    """Every *.h of the include folders (project_headers): regular files, editors'
    leftovers left out."""
    src_folders: tuple[str, ...] = ()
    """[build] src: the folders discovery read, relative to the root ("." is the root),
    those that exist."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def bpf_sources(self) -> list[str]:
        """Every BPF source once: the objects', then the libraries'."""
        sources = [s for obj in self.bpf_objects.values() for s in obj.sources]
        sources += [s for lib in self.bpf_libs.values() for s in lib.sources]
        return list(dict.fromkeys(sources))

    @property
    def user_sources(self) -> list[str]:
        """Every user-space source of an app, once."""
        return list(dict.fromkeys(s for app in self.apps.values() for s in app.sources))

    @functools.cached_property
    def include_scanner(self) -> IncludeScanner:
        """Reads the project's sources and headers once, for the functions below."""
        return IncludeScanner(self.root, self.include_dirs)

    @functools.cached_property
    def _headers_include_skeletons(self) -> bool:
        headers = {obj.skeleton_header for obj in self.bpf_objects.values()}
        scanner = self.include_scanner
        return any(
            target[0] in headers
            for header in self.headers
            for _, _, *target in scanner.includes(header)
        )

    def skeletons_included(self, source: str) -> list[str]:
        """The objects whose skeletons a user source must wait for: those whose
        skeleton header it includes by name (`#include "NAME.skel.h"`, or the file
        name skel_header gives); all of them when a project header includes one, as
        a source may reach it through that header. Waiting for fewer lets user code
        compile beside BPF; after a first build, the depfiles say what was read."""
        if self._headers_include_skeletons:
            return list(self.bpf_objects)
        owners = {obj.skeleton_header: name for name, obj in self.bpf_objects.items()}
        included: dict[str, None] = {}
        for line in self.include_scanner.include_lines(self.root / source):
            target = include_target(line.argument)
            if target and target[0] in owners:
                included[owners[target[0]]] = None
        return list(included)

    def pch_verdicts(self) -> dict[str, str | None]:
        """For every BPF source: None when it can take the precompiled vmlinux.h (the
        first thing it reads is vmlinux.h, directly or through project headers), else
        one line saying why not (includes.IncludeScanner.why_not_vmlinux_first)."""
        scanner = self.include_scanner
        return {
            source: scanner.why_not_vmlinux_first(source, self.generated)
            for source in self.bpf_sources
        }

    def generated_includers(self, made: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
        """Sources (BPF and user space) that include a generated header, directly or
        through project headers, whatever #if surrounds the include: source -> those
        headers. Generated: [build] generated, and made (the targets of the project's
        own dodo.py tasks, absolute or relative to the root). Their compiles must wait
        for the tasks that make them."""
        generated = set(self.generated)
        for path in made:
            absolute = Path(os.path.normpath(self.root / path))
            if absolute.is_relative_to(self.root):
                generated.add(absolute.relative_to(self.root).as_posix())
        scanner = self.include_scanner
        includers: dict[str, tuple[str, ...]] = {}
        for source in [*self.bpf_sources, *self.user_sources]:
            found = [
                header
                for file, _, name, quoted in scanner.includes(self.root / source)
                for header in (scanner.rel(c) for c in scanner.candidates(name, quoted, file))
                if header in generated
            ]
            if found:
                includers[source] = tuple(dict.fromkeys(found))
        return includers


def find_root(start: Path) -> Path:
    """The nearest folder at or above start that holds bpfbuild.toml. A bpfbuild.toml
    that is there but cannot be read (a link to nothing or out of its folder, a folder,
    a FIFO, unreadable) is an error at that folder: never skipped for a parent's
    project, which `build` or `clean` would then act on."""
    start = start.resolve()
    for folder in (start, *start.parents):
        config = folder / CONFIG_NAME
        if not os.path.lexists(config):
            continue
        problem = config_problem(config)
        if problem:
            raise ProjectError(
                f"{config} is {problem}",
                hint=f"make {config} the project's configuration file, or remove it "
                "(bpfbuild does not look above a folder that has one)",
            )
        return folder
    raise ProjectError(
        f"no {CONFIG_NAME} in {start} or any parent folder",
        hint="run `bpfbuild init` to create a project, or cd into one",
    )


def config_problem(config: Path) -> str | None:
    """Why the bpfbuild.toml at config cannot be the project's configuration, or None:
    it must be a readable regular file, and a link to one in its own folder."""
    if config.is_symlink():
        target = os.path.realpath(config)
        if not os.path.exists(target):
            return f"a symbolic link to nothing (to {os.readlink(config)})"
        if not Path(target).is_relative_to(os.path.realpath(config.parent)):
            return f"a symbolic link out of its project (to {target})"
    try:
        mode = os.stat(config).st_mode
    except OSError as err:
        return f"not readable ({err.strerror})"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        )
        return f"not a regular file ({kind})"
    try:
        os.close(os.open(config, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError as err:
        return f"not readable ({err.strerror})"
    return None


def load_project(root: Path) -> Project:
    """Read bpfbuild.toml and discover the project's sources."""
    byte = non_utf8_byte(str(root))
    if byte is not None:
        raise ProjectError(
            f"the project's path {shown_name(str(root))} is not UTF-8 (byte 0x{byte:02x})",
            hint="move the project to a folder whose path is UTF-8 text (rename the folder "
            "that holds that byte): paths go to the compilers' command lines, depfiles and "
            "the build state as text",
        )
    config = load_config(root / CONFIG_NAME)
    arches = [get_arch(name) for name in config.build.arches] or [host_arch()]
    check_own_folders(root, arches)
    tables_name_sources = bool(
        config.apps or any(table.sources for table in config.objects.values())
    )
    src_folders = _source_folders(root, config, tables_name_sources)
    excluded = _excluded_sources(root, config)
    bpf_libs = {
        name: BpfLib(name, _expand_sources(root, config, ("bpflib", name), lib.sources, excluded))
        for name, lib in config.bpflibs.items()
    }
    table_sources = {
        name: _own_first(
            name,
            _expand_sources(root, config, ("object", name), table.sources, excluded),
            src_folders,
        )
        for name, table in config.objects.items()
        if table.sources
    }
    claimed = _claimed_sources(config, bpf_libs, table_sources)
    found = _discover(root, config, src_folders, excluded, claimed)
    bpf_sources = [s for s in found if s.endswith(".bpf.c")]
    user_sources = [s for s in found if not s.endswith(".bpf.c")]
    objects: dict[str, BpfObject] = {}
    for source in bpf_sources:
        _add_object(objects, source, config.path)
    for name, sources in table_sources.items():
        objects.setdefault(name, BpfObject(name, sources))  # defined by its table alone

    apps: dict[str, App] = {}
    mains: set[str] = set()  # sources that hold an app's main(): never shared
    for source in user_sources:
        stem = Path(source).name[: -len(".c")]
        if stem in objects:
            problem = name_problem(stem)
            if problem:
                raise ProjectError(
                    f"{source}: {problem}",
                    hint=f"rename {source} and {objects[stem].source}; {NAME_HINT}",
                )
            apps[stem] = App(stem, (stem,), (source,))
            mains.add(source)
    for app_name, table in config.apps.items():
        for key, paths in (("bpf", table.bpf), ("sources", table.sources)):
            for listed in paths:
                _check_listed_file(root, config.path, app_name, key, listed)
                _check_not_excluded(config, ("app", app_name), key, listed, excluded)
        # The first source of an [app] table is its main; the others may be shared
        # sources, which stay linked into the discovered apps too.
        mains.update(table.sources[:1])
        bpf = tuple(
            _object_of_listed(objects, path, claimed, config, app_name) for path in table.bpf
        )
        default = apps.get(app_name)
        apps[app_name] = App(
            app_name,
            # without `bpf`: the discovered app's objects, else the object of its name
            bpf or (default.bpf_objects if default else (app_name,) if app_name in objects else ()),
            tuple(table.sources) or (default.sources if default else ()),
        )
    shared = tuple(source for source in user_sources if source not in mains)
    for app_name, app in apps.items():
        if not app.sources:
            main = (Path(config.build.src[0]) / f"{app_name}.c").as_posix()
            raise ConfigError(
                f"{config.path}: app '{app_name}' has no user-space source",
                hint=f'add `sources = ["{main}"]` to [app.{app_name}]',
            )
        explicit = app_name in config.apps and config.apps[app_name].sources
        if not explicit:
            apps[app_name] = App(app_name, app.bpf_objects, app.sources + shared)
    if not objects:
        _no_bpf_source(root, config)
    for obj in config.verify.rodata:
        if obj not in objects:
            raise ConfigError(
                f"{config.path}: [verify.rodata.{obj}] names no BPF object of this project",
                hint="BPF objects: " + ", ".join(objects),
            )
    for obj in config.verify.maps:
        if obj not in objects:
            config.fail_at(
                ("verify", "maps"),
                obj,
                f"[verify.maps.{obj}] names no BPF object of this project",
                "BPF objects: " + ", ".join(sorted(objects)),
            )

    vmlinux = {}
    host = host_arch().name
    configured = {get_arch(name).name: source for name, source in config.vmlinux.items()}
    for arch in arches:
        value = configured.get(arch.name)
        if value is not None and is_kernel_spec(value):
            vmlinux[arch.name] = VmlinuxSource(value, _kernel(config, root, value, arch))
        elif value is not None:
            what = kind_problem(root / value)
            if what is None and not value.endswith(".h") and (root / value).stat().st_size == 0:
                what = "an empty file, not BTF"
            if what:
                what = "not found" if what == "missing" else what
                raise ConfigError(
                    f'{config.path}: [vmlinux] {arch.name} = "{value}": {what}',
                    hint="give a BTF file (an ELF vmlinux or raw BTF), a ready vmlinux.h, "
                    'relative to the project folder, or a Debian kernel such as "debian:6.12"',
                )
            vmlinux[arch.name] = VmlinuxSource(value)
        elif arch.name == host:
            vmlinux[arch.name] = VmlinuxSource(KERNEL_BTF)
        else:
            raise ConfigError(
                f"{config.path}: no vmlinux source for arch '{arch.name}'",
                hint=f'add `{arch.name} = "path/to/BTF-or-vmlinux.h"`, or `{arch.name} = '
                '"debian:6.12"` for a Debian kernel\'s BTF (fetched once), under [vmlinux]; '
                "the host's kernel BTF is only right for the host arch",
            )
    if (root / config.verify.baseline).is_dir():
        raise ConfigError(
            f'{config.path}: [verify] baseline = "{config.verify.baseline}" is a folder',
            hint='name a file, e.g. "verify-baseline.json"',
        )
    include_dirs = [d for d in config.build.include_dirs if (root / d).is_dir()]
    for folder in include_dirs:
        _refuse_outside(root, root / folder)
    headers = project_headers(root, include_dirs)
    _apply_object_settings(config, objects, table_sources, bpf_libs)
    _apply_app_settings(config, apps)
    _check_user_object_clashes(root, arches, apps)
    libbpf = _libbpf_tree(root, config)
    generated = tuple(os.path.normpath(path) for path in config.build.generated)
    patterns = [
        *config.build.exclude,
        *(path for lib in config.bpflibs.values() for path in lib.sources),
        *(path for table in config.objects.values() for path in table.sources),
    ]
    folders = tuple(dict.fromkeys(f for pattern in patterns for f in _glob_folders(root, pattern)))
    return Project(
        root,
        config,
        arches,
        objects,
        apps,
        include_dirs,
        vmlinux,
        libbpf,
        bpf_libs,
        excluded,
        generated,
        folders,
        headers,
        tuple(src_folders),
    )


def _apply_object_settings(
    config: ProjectConfig,
    objects: dict[str, BpfObject],
    table_sources: dict[str, tuple[str, ...]],
    bpf_libs: dict[str, BpfLib],
) -> None:
    """Each object's sources (its own first, then its table's), libraries, flags and
    skeleton names ([object.NAME] > [build] > the defaults); an [object.NAME] table
    without sources must name an object the project has. Then the clashes."""
    build = config.build
    for name in config.objects:
        if name not in objects:
            config.fail_at(
                ("object",),
                name,
                f"[object.{name}]: no BPF object named '{name}'",
                "objects: "
                + (", ".join(sorted(objects)) or "none")
                + f"; rename or remove [object.{name}], or give it `sources = [...]`",
            )
    for name, obj in objects.items():
        settings = config.objects.get(name)
        sources = dict.fromkeys(obj.sources)  # its own first
        sources.update(dict.fromkeys(table_sources.get(name, ())))
        objects[name] = BpfObject(
            name,
            tuple(sources),
            tuple(settings.bpf_cflags) if settings else (),
            tuple(settings.libs) if settings else (),
            (settings.skel_header if settings else "") or build.skel_header,
            (settings.skel_name if settings else "") or build.skel_name,
        )
    _check_object_clashes(config, objects, bpf_libs)


def _check_object_clashes(
    config: ProjectConfig, objects: dict[str, BpfObject], bpf_libs: dict[str, BpfLib]
) -> None:
    """No object named as a library; no two skeletons with one header file, one name,
    or one header guard (bpftool's is __NAME_SKEL_H__ in capitals: struct foo and
    struct FOO could not be included together); no name bpftool would cut."""

    def where(name: str, key: str) -> tuple[tuple[str, ...], str]:
        """The key that chose an object's skeleton header or name, for the error line."""
        settings = config.objects.get(name)
        return (("object", name), key) if settings and getattr(settings, key) else (("build",), key)

    headers: dict[str, str] = {}
    guards: dict[str, str] = {}
    for name, obj in objects.items():
        if name in bpf_libs:
            config.fail_at(
                ("bpflib",),
                name,
                f"BPF object '{name}' ({obj.source}) and [bpflib.{name}] have the same name",
                "rename the library: objects and BPF libraries share one namespace",
            )
        header, skeleton = obj.skeleton_header, obj.skeleton_name
        if header == "vmlinux.h":
            config.fail_at(
                *where(name, "skel_header"),
                f"the skeleton of object '{name}' would be vmlinux.h, which bpfbuild "
                "generates in the same folder",
                "choose another skel_header",
            )
        if header in headers:
            config.fail_at(
                *where(name, "skel_header"),
                f"objects '{headers[header]}' and '{name}' have the same skeleton header "
                f"'{header}'",
                f"give one of them its own skel_header in [object.{headers[header]}] or "
                f"[object.{name}]",
            )
        headers[header] = name
        if not (skeleton.isascii() and skeleton.isidentifier()):
            config.fail_at(
                *where(name, "skel_name"),
                f"the skeleton name of object '{name}' would be '{skeleton}', not a C identifier",
                "use letters, digits and underscores in skel_name",
            )
        if len(skeleton) > SKEL_NAME_MAX:
            config.fail_at(
                *where(name, "skel_name"),
                f"the skeleton name of object '{name}' would be '{skeleton}', longer than "
                f"the {SKEL_NAME_MAX} characters bpftool keeps",
                f"give [object.{name}] a shorter skel_name",
            )
        guard = f"__{skeleton.upper()}_SKEL_H__"
        if guard in guards:
            other = objects[guards[guard]].skeleton_name
            same = "name" if other == skeleton else f"header guard {guard} ('{other}')"
            config.fail_at(
                *where(name, "skel_name"),
                f"objects '{guards[guard]}' and '{name}' have the same skeleton {same}",
                f"give one of them its own skel_name in [object.{guards[guard]}] or "
                f"[object.{name}]",
            )
        guards[guard] = name


def _excluded_sources(root: Path, config: ProjectConfig) -> dict[str, str]:
    """[build] exclude: every file its globs match (a folder: the files in it), by path
    relative to the root, with the pattern that matched first. A glob that matches
    nothing is an error: it is a typo or a leftover."""
    excluded: dict[str, str] = {}
    for pattern in config.build.exclude:
        matched = _glob(root, pattern)
        if not matched:
            config.fail_at(
                ("build",),
                "exclude",
                f"'build.exclude': '{pattern}' matches no file",
                "fix the glob (relative to the project folder), or remove it",
            )
        for path in matched:
            files = (
                sorted(p for p in path.rglob("*") if not p.is_dir()) if path.is_dir() else [path]
            )
            for file in files:
                excluded.setdefault(file.relative_to(root).as_posix(), pattern)
    return excluded


def _glob(root: Path, pattern: str) -> list[Path]:
    """What a path or glob of the configuration names in the project (links too). As
    in a shell, a wildcard matches no name that starts with a dot: editors' leftovers
    (.#x.bpf.c, .x.bpf.c.swp) and hidden folders are not sources."""
    if GLOB_CHARS & set(pattern):
        literal = set(Path(pattern).parts)
        return sorted(
            path
            for path in root.glob(pattern)
            if not any(
                part.startswith(".") and part not in literal
                for part in path.relative_to(root).parts
            )
        )
    path = root / os.path.normpath(pattern)
    return [path] if os.path.lexists(path) else []


def _glob_folders(root: Path, pattern: str) -> list[str]:
    """The folders whose listing a path or glob depends on: the deepest folder it names
    literally, and every folder under it when a wildcard (or **) stands for folders."""
    parts = Path(os.path.normpath(pattern)).parts
    literal = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        literal.append(part)
    base = root.joinpath(*literal)
    folders = [base]
    if len(literal) < len(parts) - 1 and base.is_dir():
        folders += sorted(
            folder
            for folder in base.rglob("*")
            if folder.is_dir()
            and not any(part.startswith(".") for part in folder.relative_to(base).parts)
        )
    return [folder.relative_to(root).as_posix() for folder in folders]


def _expand_sources(
    root: Path,
    config: ProjectConfig,
    table: tuple[str, ...],
    patterns: list[str],
    excluded: dict[str, str],
) -> tuple[str, ...]:
    """The sources of an [object] or [bpflib] table, in order: each glob's files
    sorted, less the excluded ones; a glob that matches nothing, or a file listed by
    its own name that is excluded or missing, is an error naming the key's line."""
    dotted = ".".join(table) + ".sources"
    sources: dict[str, None] = {}
    for pattern in patterns:
        is_glob = bool(GLOB_CHARS & set(pattern))
        matched = [path for path in _glob(root, pattern) if not path.is_dir() or not is_glob]
        if not matched:
            config.fail_at(
                table,
                "sources",
                f"'{dotted}': '{pattern}' matches no file",
                "fix the path or glob (relative to the project folder)",
            )
        for path in matched:
            _refuse_outside(root, path)
            relative = path.relative_to(root).as_posix()
            what = kind_problem(path)
            if what:
                what = "not a file" if what == "missing" else what
                config.fail_at(
                    table,
                    "sources",
                    f"'{dotted}': '{relative}' is {what}",
                    f"list the BPF sources in '{dotted}', e.g. \"{relative}/*.bpf.c\""
                    if path.is_dir()
                    else "list regular files",
                )
            if not relative.endswith(".c"):
                config.fail_at(
                    table,
                    "sources",
                    f"'{dotted}': '{relative}' is not a C source (.c)",
                    "list only the BPF sources to compile; headers are found through include_dirs",
                )
            if relative in excluded:
                if is_glob:
                    continue
                _check_not_excluded(config, table, "sources", relative, excluded)
            sources[relative] = None
        if is_glob and not any(path.relative_to(root).as_posix() in sources for path in matched):
            config.fail_at(
                table,
                "sources",
                f"'{dotted}': every file '{pattern}' matches is excluded by build.exclude",
                "fix the glob, or the patterns of build.exclude",
            )
    return tuple(sources)


def _own_first(name: str, sources: tuple[str, ...], folders: Sequence[str]) -> tuple[str, ...]:
    """An object's sources with its own NAME.bpf.c of a src folder first, wherever its
    table lists it."""
    for folder in folders:
        own = (Path(folder) / f"{name}.bpf.c").as_posix()
        if own in sources:
            return (own, *(s for s in sources if s != own))
    return sources


def _source_folders(root: Path, config: ProjectConfig, tables_name_sources: bool) -> list[str]:
    """[build] src: the folders discovery reads, relative to the root ("." for the root
    itself), those that exist. Each folder the file names must be a folder in the
    project; the default src/ may be missing when [app] or [object] tables name the
    sources."""
    folders = []
    for folder in config.build.src:
        path = root / folder
        if path.is_dir():
            _refuse_outside(root, path)
            folders.append(folder)
            continue
        what = kind_problem(path) or "a file"
        if config.src_given:
            config.fail_at(
                ("build",),
                "src",
                f"'build.src': '{folder}' "
                + ("does not exist" if what == "missing" else f"is {what}, not a folder"),
                "give the folders that hold the sources, relative to the project folder "
                '("." for the project folder itself)',
            )
        elif tables_name_sources:
            continue
        elif what != "missing":
            raise ProjectError(
                f"{path} is {what}, not a folder",
                hint=f"move it away: bpfbuild discovers the sources in the folder {folder}/",
            )
        else:
            raise ProjectError(
                f"{root}: no {folder}/ folder",
                hint=f"put NAME.bpf.c and NAME.c in {folder}/ (see `bpfbuild init`), or "
                "name the folders of the sources with [build] src",
            )
    return folders


def _discover(
    root: Path,
    config: ProjectConfig,
    folders: Sequence[str],
    excluded: dict[str, str],
    claimed: dict[str, str],
) -> list[str]:
    """The *.c files directly in the src folders (relative to the root, each folder's
    sorted), but editors' leftovers, the excluded ones and those the [object] and
    [bpflib] tables claim. The folders are read as one: a file name found in two of
    them is an error naming both; each file is a regular file with a UTF-8 name."""
    by_name: dict[str, str] = {}
    for folder in folders:
        for path in sorted((root / folder).glob("*.c")):
            source = (Path(folder) / path.name).as_posix()
            if is_editor_leftover(path.name) or source in excluded or source in claimed:
                continue
            every = f"every {folder}/*.c is compiled"
            _refuse_outside(root, path)
            _check_name(root, path, every)
            what = kind_problem(path)
            if what:
                raise ProjectError(
                    f"{source} is {what}, not a source file",
                    hint=f"remove or rename {source}: {every}",
                )
            other = by_name.setdefault(path.name, source)
            if other != source:
                config.fail_at(
                    ("build",),
                    "src",
                    f"{path.name} is in two source folders: {other} and {source}",
                    "rename one of them, or leave one out with [build] exclude: discovery "
                    "pairs NAME.bpf.c with NAME.c by name across the folders of 'build.src'",
                )
    return list(by_name.values())


def _no_bpf_source(root: Path, config: ProjectConfig) -> None:
    """The error of a project without a BPF object, naming the src folders."""
    folders = [Path(folder).as_posix() for folder in config.build.src]
    where = f"{root / folders[0]}" if len(folders) == 1 else f"{root}"
    also = "" if len(folders) == 1 else " in " + ", ".join(f"{f}/" for f in folders)
    example = Path(folders[0])
    raise ProjectError(
        f"{where}: no *.bpf.c source{also}",
        hint=f"add {(example / 'NAME.bpf.c').as_posix()} (and "
        f"{(example / 'NAME.c').as_posix()} for an app); see `bpfbuild init`",
    )


def _check_not_excluded(
    config: ProjectConfig, table: tuple[str, ...], key: str, path: str, excluded: dict[str, str]
) -> None:
    """A file a table lists by name cannot also be excluded: one of them is a mistake."""
    normal = Path(os.path.normpath(path)).as_posix()
    if normal in excluded:
        config.fail_at(
            table,
            key,
            f"'{'.'.join(table + (key,))}' lists '{path}', which build.exclude leaves out "
            f"(pattern '{excluded[normal]}')",
            "remove it from one of the two",
        )


def _claimed_sources(
    config: ProjectConfig,
    bpf_libs: dict[str, BpfLib],
    table_sources: dict[str, tuple[str, ...]],
) -> dict[str, str]:
    """Sources the [bpflib] and [object] tables list, each with its owner ("object x",
    "bpflib y"): discovery makes no object or app of them. A source has one owner;
    objects share sources through a library."""
    owners: dict[str, str] = {}
    tables = [(("bpflib", name), lib.sources) for name, lib in bpf_libs.items()]
    tables += [(("object", name), sources) for name, sources in table_sources.items()]
    for table, sources in tables:
        for source in sources:
            owner = owners.get(source)
            if owner is None:
                owners[source] = f"{table[0]} {table[1]}"
                continue
            kind, name = owner.split(" ", 1)
            hint = "a BPF source belongs to one object: share it through a [bpflib]"
            if kind == "bpflib" and table[0] == "object":
                hint = f'remove it from [object.{table[1]}] sources and add "{name}" to its libs'
            config.fail_at(
                table,
                "sources",
                f"'{source}' is a source of both [{kind}.{name}] and [{table[0]}.{table[1]}]",
                hint,
            )
    return owners


def _object_of_listed(
    objects: dict[str, BpfObject],
    source: str,
    claimed: dict[str, str],
    config: ProjectConfig,
    app: str,
) -> str:
    """The object an [app] table's `bpf` source belongs to: the object whose table
    lists it, else the object it makes by its name."""
    owner = claimed.get(Path(os.path.normpath(source)).as_posix())
    if owner and owner.startswith("object "):
        return owner.split(" ", 1)[1]
    if owner:
        config.fail_at(
            ("app", app),
            "bpf",
            f"'app.{app}.bpf' lists '{source}', a source of [{owner.replace(' ', '.', 1)}]",
            "list the objects' own sources in `bpf`: a library is linked into the objects "
            "whose libs name it",
        )
    return _add_object(objects, source, config.path).name


def _check_user_object_clashes(root: Path, arches: Sequence[Arch], apps: dict[str, App]) -> None:
    """Two user sources whose objects would have one path (an object is named by its
    source's path, / made __: src/x/y.c and src/x__y.c) are refused, naming both."""
    layout = Layout(root, arches[0].name)
    makers: dict[Path, str] = {}
    for source in dict.fromkeys(s for app in apps.values() for s in app.sources):
        output = layout.user_object(source)
        other = makers.setdefault(output, source)
        if other != source:
            raise ProjectError(
                f"user sources {other} and {source} would both be compiled to "
                f"{output.relative_to(root)}",
                hint="rename one of them: a user object is named by its source's path "
                "relative to the project, with / written __",
            )


def _apply_app_settings(config: ProjectConfig, apps: dict[str, App]) -> None:
    """[app.NAME] flags, libraries and aliases; aliases must not collide with an app,
    another alias or one of bpfbuild's folders in output/<arch>/."""
    taken = {name: f"app '{name}'" for name in apps}
    taken.update((folder, f"bpfbuild's output folder '{folder}/'") for folder in RESERVED_NAMES)
    for name, app in list(apps.items()):
        settings = config.apps.get(name)
        if settings is None:
            continue
        for alias in settings.aliases:
            if alias in taken:
                config.fail_at(
                    ("app", name),
                    "aliases",
                    f"alias '{alias}' of app '{name}' collides with {taken[alias]}",
                    f"choose another name in [app.{name}] aliases",
                )
            taken[alias] = f"alias '{alias}' of app '{name}'"
        apps[name] = App(
            name,
            app.bpf_objects,
            app.sources,
            tuple(settings.cflags),
            tuple(settings.ldflags),
            tuple(settings.libs),
            tuple(settings.aliases),
        )


def _libbpf_tree(root: Path, config: ProjectConfig) -> LibbpfTree | None:
    """[libbpf] source: a libbpf tree inside the project, checked."""
    source = config.libbpf.source
    if not source:
        return None
    resolved = (root / source).resolve()
    if not resolved.is_relative_to(root.resolve()):
        config.fail_at(
            ("libbpf",),
            "source",
            f"[libbpf] source '{source}' is outside the project",
            "put libbpf inside the project (e.g. `git submodule add "
            "https://github.com/libbpf/libbpf`) and give its relative path",
        )
    if not resolved.is_dir():
        config.fail_at(
            ("libbpf",),
            "source",
            f"[libbpf] source '{source}' is not a folder",
            "run `git submodule update --init`, or fix the path in [libbpf] source",
        )
    try:
        # Not resolved: commands name the tree relative to the project root.
        return load_tree(root / os.path.normpath(source))
    except ConfigError as err:
        config.fail_at(("libbpf",), "source", err.message, err.hint or "")
    return None


def check_own_folders(root: Path, arches: Sequence[Arch] = ()) -> None:
    """output/, .bpfbuild/ and the folders in them are bpfbuild's own: a symlink there
    would make a build write outside the project, and a file there fail it."""
    folders = [root / OUTPUT_DIR, root / STATE_DIR]
    for arch in arches:
        folders.append(root / OUTPUT_DIR / arch.name)
        folders += [root / OUTPUT_DIR / arch.name / name for name in sorted(RESERVED_NAMES)]
    for folder in folders:
        if folder.is_symlink():
            raise ProjectError(
                f"{folder} is a symbolic link: bpfbuild writes nothing outside the project",
                hint="remove the link (`bpfbuild clean` does, and leaves its target alone); "
                f"bpfbuild then makes {folder.name}/ a real folder",
            )
        if folder.exists() and not folder.is_dir():
            raise ProjectError(
                f"{folder} is a file, where bpfbuild keeps a folder of its own",
                hint=f"move the file away (`bpfbuild clean` removes it); bpfbuild then makes "
                f"{folder.name}/ a folder",
            )
    for arch in arches:
        for name in sorted(RESERVED_NAMES):
            _refuse_links_inside(root, root / OUTPUT_DIR / arch.name / name)


def _refuse_links_inside(root: Path, folder: Path) -> None:
    """Nothing bpfbuild makes in its folders under output/<arch>/ is a link (an app's
    alias is one, beside them): a link there was planted, and a step would write through
    it (a log folder, an app's objects). An error naming it, before any step runs."""
    for current, dirs, files in os.walk(folder):  # does not enter linked folders
        for name in [*dirs, *files]:
            path = os.path.join(current, name)
            if os.path.islink(path):
                relative = os.path.relpath(path, root)
                raise ProjectError(
                    f"{relative} is a symbolic link inside bpfbuild's own folder "
                    f"{os.path.relpath(folder, root)}/: bpfbuild writes nothing through one",
                    hint=f"remove the link: rm {relative} (its target is left alone), "
                    "then run again",
                )


def project_headers(root: Path, include_dirs: Sequence[str]) -> tuple[Path, ...]:
    """Every *.h under the include folders, which bpfbuild reads (for the skeletons
    they include), but in output/, .bpfbuild/ and hidden folders (files.include_tree):
    editors' leftovers are left out; a name that is not UTF-8, or a
    header that is not a regular file (a folder, a link to nothing, a FIFO, a device),
    is an error naming it, stat()ed and never opened."""
    headers: dict[Path, None] = {}
    for folder in include_dirs:
        found = [
            Path(current, name)
            for current, dirs, names in include_tree(str(root), folder)
            for name in sorted([*dirs, *names])
            if name.endswith(".h")
        ]
        for header in sorted(found):
            if is_editor_leftover(header.name):
                continue
            why = f"bpfbuild reads every *.h of the include folders ({', '.join(include_dirs)})"
            _check_name(root, header, why)
            what = kind_problem(header)
            if what:
                relative = header.relative_to(root).as_posix()
                raise ProjectError(
                    f"{relative} is {what}, not a header",
                    hint=f"remove or rename {relative}: {why}",
                )
            headers[header] = None
    return tuple(headers)


def _check_name(root: Path, path: Path, why: str) -> None:
    """A file name discovery found must be UTF-8 text."""
    relative = path.relative_to(root).as_posix()
    byte = non_utf8_byte(relative)
    if byte is not None:
        relative = shown_name(relative)
        raise ProjectError(
            f"{relative}: the file name is not UTF-8 (byte 0x{byte:02x})",
            hint=f"{NOT_UTF8_HINT} ({why})",
        )


def _refuse_outside(root: Path, path: Path) -> None:
    """A discovered source or folder that is a link out of the project is an error:
    bpfbuild reads nothing outside the project. A link loop resolves nowhere: its
    kind is said where it is read (files.kind_problem)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop, before Python 3.13
        return
    if not resolved.is_relative_to(root.resolve()):
        relative = path.relative_to(root)
        raise ProjectError(
            f"{relative} is a symbolic link out of the project (to {resolved})",
            hint="bpfbuild reads only inside the project folder: copy or move what it "
            f"points to into the project, in place of the link {relative}",
        )


def _check_listed_file(root: Path, config_path: Path, app: str, key: str, path: str) -> None:
    """A file an [app] table lists exists, is a file, and is of the kind its key takes."""
    where = f"{config_path}: app '{app}' lists '{path}'"
    if (root / path).is_dir():
        raise ConfigError(
            f"{where}, which is a folder, not a file",
            hint=f"list the files in [app.{app}] {key}, e.g. "
            f'"{path}/{app}{".bpf.c" if key == "bpf" else ".c"}"',
        )
    what = kind_problem(root / path)
    if what == "missing":
        raise ConfigError(
            f"{where}, which does not exist", hint=f"fix [app.{app}] or create {path}"
        )
    if what:
        raise ConfigError(
            f"{where}, which is {what}, not a file",
            hint=f"replace {path} with a regular file, or fix [app.{app}] {key}",
        )
    if key == "sources" and path.endswith(".bpf.c"):
        raise ConfigError(
            f"{where} under `sources`, but it is a BPF program",
            hint=f"move it to `bpf = [...]` in [app.{app}]: BPF sources are "
            "built by clang, `sources` by the C compiler",
        )
    if key == "sources" and not path.endswith(USER_SUFFIXES):
        raise ConfigError(
            f"{where} under `sources`, which takes C sources (" + ", ".join(USER_SUFFIXES) + ")",
            hint=f"list only the files to compile in [app.{app}] sources; "
            "headers are found through include_dirs",
        )


def _kernel(config: ProjectConfig, root: Path, spec: str, arch: Arch) -> Kernel:
    """The Debian kernel a [vmlinux] value names, its BTF checked with the project's
    bpftool; errors say which key."""
    from ..kernels.debian import KernelError, get_kernel
    from .toolchain import chosen_bpftool

    config_path = config.path
    try:
        return get_kernel(spec, arch, chosen_bpftool(config.toolchain.bpftool, root))
    except KernelError as err:
        raise KernelError(
            f'{config_path}: [vmlinux] {arch.name} = "{spec}": {err.message}', hint=err.hint
        ) from None


def _add_object(objects: dict[str, BpfObject], source: str, config_path: Path) -> BpfObject:
    """Register the object built from source; names must be unique C identifiers."""
    base = Path(source).name
    if not base.endswith(".bpf.c"):
        raise ConfigError(
            f"{config_path}: BPF source '{source}' must be named NAME.bpf.c",
            hint="rename the file, or list it under `sources` if it is user space",
        )
    name = base[: -len(".bpf.c")]
    if name_problem(name, "BPF object"):
        raise ProjectError(
            f"{source}: '{name}' is not a valid C identifier, needed for the skeleton type",
            hint="rename the file using letters, digits and underscores",
        )
    existing = objects.get(name)
    if existing and source not in existing.sources:
        raise ProjectError(
            f"two BPF sources make object '{name}': {existing.source} and {source}",
            hint="rename one of them",
        )
    if not existing:
        objects[name] = BpfObject(name, (source,))
    return objects[name]
