"""The project model: apps, BPF objects, user sources and arches, from config and discovery."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..arch import Arch, get_arch, host_arch
from .config import CONFIG_NAME, ProjectConfig, load_config
from ..errors import ConfigError, ProjectError
from ..kernels.host import KERNEL_BTF
from ..kernels.spec import is_kernel_spec

if TYPE_CHECKING:
    from ..kernels.debian import Kernel



@dataclass(frozen=True)
class BpfObject:
    """One BPF object: built from src/NAME.bpf.c, skeleton NAME.skel.h, type NAME_bpf."""

    name: str
    source: str
    """Path relative to the project root."""

    @property
    def skeleton_name(self) -> str:
        return f"{self.name}_bpf"


@dataclass(frozen=True)
class App:
    """One deployable executable: user-space sources plus the skeletons they include."""

    name: str
    bpf_objects: tuple[str, ...]
    sources: tuple[str, ...]


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
        value = config.vmlinux.get(arch.name)
        if value is not None and is_kernel_spec(value):
            vmlinux[arch.name] = VmlinuxSource(value, _kernel(config.path, value, arch))
        elif value is not None:
            vmlinux[arch.name] = VmlinuxSource(value)
        elif arch.name == host:
            vmlinux[arch.name] = VmlinuxSource(KERNEL_BTF)
        else:
            raise ConfigError(
                f"{config.path}: no vmlinux source for arch '{arch.name}'",
                hint=f"add `{arch.name} = \"path/to/BTF-or-vmlinux.h\"`, or `{arch.name} = "
                "\"debian:6.12\"` for a Debian kernel's BTF (fetched once), under [vmlinux]; "
                "the host's kernel BTF is only right for the host arch",
            )
    include_dirs = [d for d in config.build.include_dirs if (root / d).is_dir()]
    return Project(root, config, arches, objects, apps, include_dirs, vmlinux)


def _kernel(config_path: Path, spec: str, arch: Arch) -> Kernel:
    """The Debian kernel a [vmlinux] value names; errors say which key."""
    from ..kernels.debian import KernelError, get_kernel

    try:
        return get_kernel(spec, arch)
    except KernelError as err:
        raise KernelError(f"{config_path}: [vmlinux] {arch.name} = \"{spec}\": {err.message}",
                          hint=err.hint) from None


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
