"""The project model: apps, BPF objects, user sources and arches, from config and discovery."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..arch import Arch, get_arch, host_arch
from ..errors import ConfigError, ProjectError
from ..kernels.host import KERNEL_BTF
from ..kernels.spec import is_kernel_spec
from .config import ProjectConfig, load_config
from .layout import NAME_HINT, RESERVED_NAMES, name_problem
from .libbpf_source import LibbpfTree, load_tree
from .names import CONFIG_NAME, OUTPUT_DIR, STATE_DIR

if TYPE_CHECKING:
    from ..kernels.debian import Kernel

USER_SUFFIXES = (".c", ".S", ".s")
"""What the C compiler builds for user space: C and assembly."""


@dataclass(frozen=True)
class BpfObject:
    """One BPF object: built from src/NAME.bpf.c, skeleton NAME.skel.h, type NAME_bpf."""

    name: str
    source: str
    """Path relative to the project root."""
    bpf_cflags: tuple[str, ...] = ()
    """[object.NAME] bpf_cflags: clang flags of this object only, after [build]'s."""

    @property
    def skeleton_name(self) -> str:
        return f"{self.name}_bpf"


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

    @property
    def name(self) -> str:
        return self.config.name


def find_root(start: Path) -> Path:
    """The nearest folder at or above start that holds bpfbuild.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ProjectError(
        f"no {CONFIG_NAME} in {start} or any parent folder",
        hint="run `bpfbuild init` to create a project, or cd into one",
    )


def load_project(root: Path) -> Project:
    """Read bpfbuild.toml and discover the project's sources."""
    config = load_config(root / CONFIG_NAME)
    arches = [get_arch(name) for name in config.build.arches] or [host_arch()]
    check_own_folders(root, arches)
    src = root / "src"
    if not src.is_dir():
        raise ProjectError(
            f"{root}: no src/ folder",
            hint="put NAME.bpf.c and NAME.c in src/ (see `bpfbuild init`)",
        )
    found = sorted(src.glob("*.c"))
    for path in [src, *found]:
        _refuse_outside(root, path)
    for path in found:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "a symbolic link to nothing"
            raise ProjectError(
                f"src/{path.name} is {what}, not a source file",
                hint=f"remove or rename src/{path.name}: every src/*.c is compiled",
            )
    bpf_sources = [p.name for p in found if p.name.endswith(".bpf.c")]
    user_sources = [p.name for p in found if not p.name.endswith(".bpf.c")]
    objects: dict[str, BpfObject] = {}
    for name in bpf_sources:
        _add_object(objects, f"src/{name}", config.path)

    apps: dict[str, App] = {}
    mains: set[str] = set()  # sources that hold an app's main(): never shared
    for name in user_sources:
        stem = name[: -len(".c")]
        if stem in objects:
            problem = name_problem(stem)
            if problem:
                raise ProjectError(
                    f"src/{name}: {problem}",
                    hint=f"rename src/{stem}.c and src/{stem}.bpf.c; {NAME_HINT}",
                )
            apps[stem] = App(stem, (stem,), (f"src/{name}",))
            mains.add(f"src/{name}")
    for app_name, table in config.apps.items():
        for key, paths in (("bpf", table.bpf), ("sources", table.sources)):
            for listed in paths:
                _check_listed_file(root, config.path, app_name, key, listed)
        # The first source of an [app] table is its main; the others may be shared
        # sources, which stay linked into the discovered apps too.
        mains.update(table.sources[:1])
        bpf = tuple(_add_object(objects, path, config.path).name for path in table.bpf)
        default = apps.get(app_name)
        apps[app_name] = App(
            app_name,
            bpf or (default.bpf_objects if default else ()),
            tuple(table.sources) or (default.sources if default else ()),
        )
    shared = tuple(f"src/{n}" for n in user_sources if f"src/{n}" not in mains)
    for app_name, app in apps.items():
        if not app.sources:
            raise ConfigError(
                f"{config.path}: app '{app_name}' has no user-space source",
                hint=f'add `sources = ["src/{app_name}.c"]` to [app.{app_name}]',
            )
        explicit = app_name in config.apps and config.apps[app_name].sources
        if not explicit:
            apps[app_name] = App(app_name, app.bpf_objects, app.sources + shared)
    if not objects:
        raise ProjectError(
            f"{src}: no *.bpf.c source",
            hint="add src/NAME.bpf.c (and src/NAME.c for an app); see `bpfbuild init`",
        )
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
            if not (root / value).is_file():
                what = "a folder" if (root / value).is_dir() else "not found"
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
    _apply_object_settings(config, objects)
    _apply_app_settings(config, apps)
    libbpf = _libbpf_tree(root, config)
    return Project(root, config, arches, objects, apps, include_dirs, vmlinux, libbpf)


def _apply_object_settings(config: ProjectConfig, objects: dict[str, BpfObject]) -> None:
    """[object.NAME] tables: each must name an object of the project."""
    for name, settings in config.objects.items():
        if name not in objects:
            config.fail_at(
                ("object",),
                name,
                f"[object.{name}]: no BPF object named '{name}'",
                "objects: "
                + (", ".join(sorted(objects)) or "none")
                + f"; rename or remove [object.{name}]",
            )
        objects[name] = BpfObject(name, objects[name].source, tuple(settings.bpf_cflags))


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


def _refuse_outside(root: Path, path: Path) -> None:
    """A discovered source or folder that is a link out of the project is an error:
    bpfbuild reads nothing outside the project."""
    resolved = path.resolve()
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
    if not (root / path).is_file():
        raise ConfigError(
            f"{where}, which does not exist", hint=f"fix [app.{app}] or create {path}"
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
    if existing and existing.source != source:
        raise ProjectError(
            f"two BPF sources make object '{name}': {existing.source} and {source}",
            hint="rename one of them",
        )
    objects[name] = BpfObject(name, source)
    return objects[name]
