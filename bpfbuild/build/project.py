"""The project model: apps, BPF objects, user sources and arches, from config and discovery."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..arch import Arch, get_arch, host_arch
from .config import CONFIG_NAME, ProjectConfig, load_config
from ..errors import ConfigError, ProjectError
from ..kernels.host import KERNEL_BTF
from .libbpf_source import LibbpfTree, load_tree

OUTPUT_FOLDERS = frozenset({"bpf", "include", "user", "verify", "tools", "libbpf"})
"""bpfbuild's own folders in output/<arch>/: no app or alias may take these names."""



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
    """A BTF file (kernel /sys/kernel/btf/vmlinux or an ELF vmlinux), or a header."""

    @property
    def is_header(self) -> bool:
        return self.path.endswith(".h")

    def describe(self) -> str:
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
    src = root / "src"
    if not src.is_dir():
        raise ProjectError(
            f"{root}: no src/ folder",
            hint="put NAME.bpf.c and NAME.c in src/ (see `bpfbuild init`)",
        )
    bpf_sources = sorted(p.name for p in src.glob("*.bpf.c"))
    user_sources = sorted(p.name for p in src.glob("*.c") if not p.name.endswith(".bpf.c"))
    objects: dict[str, BpfObject] = {}
    for name in bpf_sources:
        _add_object(objects, f"src/{name}", config.path)

    apps: dict[str, App] = {}
    mains: set[str] = set()
    for name in user_sources:
        stem = name[: -len(".c")]
        if stem in objects:
            apps[stem] = App(stem, (stem,), (f"src/{name}",))
            mains.add(f"src/{name}")
    for app_name, table in config.apps.items():
        for path in (*table.bpf, *table.sources):
            if not (root / path).is_file():
                raise ConfigError(
                    f"{config.path}: app '{app_name}' lists '{path}', which does not exist",
                    hint=f"fix [app.{app_name}] or create {path}",
                )
        mains.update(table.sources)
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
                hint=f"add `sources = [\"src/{app_name}.c\"]` to [app.{app_name}]",
            )
        explicit = app_name in config.apps and config.apps[app_name].sources
        if not explicit:
            apps[app_name] = App(app_name, app.bpf_objects, app.sources + shared)
    if not objects:
        raise ProjectError(
            f"{src}: no *.bpf.c source",
            hint="add src/NAME.bpf.c (and src/NAME.c for an app); see `bpfbuild init`",
        )

    vmlinux = {}
    host = host_arch().name
    for arch in arches:
        if arch.name in config.vmlinux:
            vmlinux[arch.name] = VmlinuxSource(config.vmlinux[arch.name])
        elif arch.name == host:
            vmlinux[arch.name] = VmlinuxSource(KERNEL_BTF)
        else:
            raise ConfigError(
                f"{config.path}: no vmlinux source for arch '{arch.name}'",
                hint=f"add `{arch.name} = \"path/to/BTF-or-vmlinux.h\"` under [vmlinux]; "
                "the host's kernel BTF is only right for the host arch",
            )
    include_dirs = [d for d in config.build.include_dirs if (root / d).is_dir()]
    _apply_object_settings(config, objects)
    _apply_app_settings(config, apps)
    libbpf = _libbpf_tree(root, config)
    return Project(root, config, arches, objects, apps, include_dirs, vmlinux, libbpf)


def _apply_object_settings(config: ProjectConfig, objects: dict[str, BpfObject]) -> None:
    """[object.NAME] tables: each must name an object of the project."""
    for name, settings in config.objects.items():
        if name not in objects:
            config.fail_at(("object",), name, f"[object.{name}]: no BPF object named '{name}'",
                           "objects: " + (", ".join(sorted(objects)) or "none")
                           + f"; rename or remove [object.{name}]")
        objects[name] = BpfObject(name, objects[name].source, tuple(settings.bpf_cflags))


def _apply_app_settings(config: ProjectConfig, apps: dict[str, App]) -> None:
    """[app.NAME] flags, libraries and aliases; aliases must not collide with an app,
    another alias or one of bpfbuild's folders in output/<arch>/."""
    taken = {name: f"app '{name}'" for name in apps}
    taken.update((folder, f"bpfbuild's output folder '{folder}/'") for folder in OUTPUT_FOLDERS)
    for name, app in list(apps.items()):
        settings = config.apps.get(name)
        if settings is None:
            continue
        for alias in settings.aliases:
            if alias in taken:
                config.fail_at(("app", name), "aliases",
                               f"alias '{alias}' of app '{name}' collides with {taken[alias]}",
                               f"choose another name in [app.{name}] aliases")
            taken[alias] = f"alias '{alias}' of app '{name}'"
        apps[name] = App(name, app.bpf_objects, app.sources, tuple(settings.cflags),
                         tuple(settings.ldflags), tuple(settings.libs), tuple(settings.aliases))


def _libbpf_tree(root: Path, config: ProjectConfig) -> LibbpfTree | None:
    """[libbpf] source: a libbpf tree inside the project, checked."""
    source = config.libbpf.source
    if not source:
        return None
    resolved = (root / source).resolve()
    if not resolved.is_relative_to(root.resolve()):
        config.fail_at(("libbpf",), "source",
                       f"[libbpf] source '{source}' is outside the project",
                       "put libbpf inside the project (e.g. `git submodule add "
                       "https://github.com/libbpf/libbpf`) and give its relative path")
    if not resolved.is_dir():
        config.fail_at(("libbpf",), "source", f"[libbpf] source '{source}' is not a folder",
                       "run `git submodule update --init`, or fix the path in [libbpf] source")
    try:
        # Not resolved: commands name the tree relative to the project root.
        return load_tree(root / os.path.normpath(source))
    except ConfigError as err:
        config.fail_at(("libbpf",), "source", err.message, err.hint or "")
    return None


def _add_object(objects: dict[str, BpfObject], source: str, config_path: Path) -> BpfObject:
    """Register the object built from source; names must be unique C identifiers."""
    base = Path(source).name
    if not base.endswith(".bpf.c"):
        raise ConfigError(
            f"{config_path}: BPF source '{source}' must be named NAME.bpf.c",
            hint="rename the file, or list it under `sources` if it is user space",
        )
    name = base[: -len(".bpf.c")]
    if not name.isidentifier():
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
