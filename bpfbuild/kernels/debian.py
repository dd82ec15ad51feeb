"""Debian kernels: resolve `debian:6.1` (or an exact package) for an arch, fetch the
.deb with bpfbuild's own apt, cut out the bootable image and its BTF, and keep both
in the user's cache with their provenance.

    kernel = get_kernel("debian:6.12", get_arch("arm64"))
    kernel.btf      # raw BTF: what vmlinux.h is generated from
    kernel.image    # the bootable image a VM boots

Cache (see bpfbuild.cache), two kinds of entries:
- `kernel-specs/<spec>_<arch>`: what a spec resolved to (package, version, suite).
  A spec is resolved once and then pinned: later builds, online or not, take the
  same kernel and run no apt at all. `bpfbuild cache clean` (or deleting the entry)
  makes the next use resolve again and take a newer kernel.
- `kernels/<package>_<version>_<arch>`: the image and the BTF, with the .deb's
  SHA-256, package, version and `uname -r` in the manifest.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..arch import Arch
from ..cache import Entry, cache_root, locked, read_entry, write_entry
from ..errors import BpfBuildError
from .apt import Apt, AptError, DebianVersion, extract_deb
from .fetch import Made, cached_fetch, download_deb
from .image import KernelImageError, check_btf_file, extract_btf
from .spec import is_kernel_spec

__all__ = [
    "Kernel",
    "KernelError",
    "Resolution",
    "cached_resolution",
    "get_kernel",
    "is_kernel_spec",
]

SPECS_KIND = "kernel-specs"
KERNELS_KIND = "kernels"
BTF_FILE = "vmlinux.btf"
ENTRY_SHAPE = 2
"""What a kernel entry holds: 2 = image, BTF and configuration (1 had no configuration)."""
CONFIG_FILE = "config"
"""The kernel's build configuration (/boot/config-<release>), which libbpf reads in the
guest to resolve a program's `__kconfig` externs (CONFIG_* values)."""

SUITES: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye",),
    "6.1": ("bookworm",),
    "6.12": ("trixie", "bookworm-backports"),
    "7.3": ("trixie-backports",),
}
"""Kernel series `debian:SERIES` names -> the Debian suites that carry it, tried in order
(a mirror may lack a suite's file for one arch: the next suite's build is taken then).
In each suite the newest image package of the series is taken, so a new series (or one
a backports suite moves on to) is one line here."""
PACKAGE_SUITES = ("bookworm", "trixie", "bookworm-backports", "trixie-backports", "bullseye")
"""Where an exact package name is looked for."""
_PACKAGE = re.compile(r"^linux-image-[a-z0-9][a-z0-9.+~-]*$")
_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~-]*$")


class KernelError(BpfBuildError):
    """A kernel spec is invalid, or its kernel cannot be resolved or fetched."""


@dataclass(frozen=True)
class Kernel:
    """One Debian kernel for one arch, fetched and extracted into the cache."""

    spec: str
    """What the user named: "debian:6.1", or an exact package name."""
    arch: str
    """bpfbuild arch name (x86_64, arm64, ...)."""
    package: str
    """The image package, e.g. linux-image-6.1.0-50-cloud-arm64."""
    version: str
    """Its Debian version, e.g. 6.1.176-1."""
    deb_sha256: str
    release: str
    """`uname -r` of that kernel, e.g. 6.1.0-50-cloud-arm64."""
    image: Path
    """The bootable image (vmlinuz, Image) in the cache, verified."""
    btf: Path
    """The raw BTF cut out of the image, in the cache."""
    suite: str = ""
    """The Debian suite the package came from."""
    config: Path | None = None
    """The kernel's build configuration, in the cache (the guest's /boot/config-<release>)."""

    def provenance(self) -> dict:
        """What a build records about where its vmlinux.h came from."""
        return {
            "spec": self.spec,
            "arch": self.arch,
            "package": self.package,
            "version": self.version,
            "deb_sha256": self.deb_sha256,
            "release": self.release,
            "suite": self.suite,
        }

    def describe(self) -> str:
        return (
            f"{self.spec}: {self.package} {self.version} ({self.suite}), "
            f".deb sha256 {self.deb_sha256}"
        )


def _spec_hint() -> str:
    series = ", ".join(f'"debian:{s}"' for s in SUITES)
    return (
        f"use {series}, or an exact package name such as "
        '"linux-image-6.1.0-50-cloud-arm64" (optionally =VERSION)'
    )


def _parse_spec(spec: str) -> tuple[tuple[str, ...], str | None, str | None]:
    """(suites, exact package or None, exact version or None)."""
    if spec.startswith("debian:"):
        series = spec[len("debian:") :]
        if series not in SUITES:
            raise KernelError(f"unknown Debian kernel series {spec!r}", hint=_spec_hint())
        return SUITES[series], None, None
    package, _, version = spec.partition("=")
    if not _PACKAGE.match(package) or (version and not _VERSION.match(version)):
        raise KernelError(f"invalid kernel package name {spec!r}", hint=_spec_hint())
    return PACKAGE_SUITES, package, version or None


def _spec_key(spec: str, arch: Arch) -> str:
    return re.sub(r"[^A-Za-z0-9._+~-]", "-", spec) + "_" + arch.name


def _kernel_key(package: str, version: str, arch: Arch) -> str:
    return f"{package}_{version}_{arch.name}"


def _progress(text: str) -> None:
    print(f"bpfbuild: {text}", file=sys.stderr, flush=True)


def _image_package(apt: Apt, name: str, version: str | None) -> tuple[str, str] | None:
    """(package, version) of the real image package behind name: a metapackage
    (linux-image-cloud-arm64) depends on exactly one linux-image-X (= version)."""
    record = apt.show(name, version)
    if record is None:
        return None
    for alternative in record.fields.get("Depends", "").split(","):
        match = re.match(r"\s*(linux-image-\S+)\s*\(=\s*([^)\s]+)\)", alternative)
        if match:
            return _image_package(apt, match[1], match[2])
    return record.name, record.version


def _series_image(apt: Apt, series: str, flavour: str) -> tuple[str, str] | None:
    """(package, version) of the newest image package of a kernel series in apt's suite,
    for one flavour (`cloud-amd64`, `amd64`): linux-image-<series>.<rest>-<flavour>,
    e.g. linux-image-6.1.0-50-cloud-amd64 or linux-image-7.3.4+deb13-cloud-amd64."""
    pattern = re.compile(
        rf"linux-image-{re.escape(series)}\.[0-9][A-Za-z0-9.+~]*(-[0-9]+)?-{re.escape(flavour)}"
    )
    names = [n for n in apt.package_names(f"linux-image-{series}.") if pattern.fullmatch(n)]
    found = [(name, record.version) for name in names if (record := apt.show(name))]
    # The version tells the series too: an ABI name of another series is not taken.
    found = [(n, v) for n, v in found if v.startswith(f"{series}.")]
    return max(found, key=lambda nv: DebianVersion(nv[1]), default=None)


def _resolve(spec: str, arch: Arch) -> list[tuple[str, str, str]]:
    """Every (suite, package, version) the spec may mean for arch, preferred first.
    Raises when none of the suites has it."""
    suites, package, version = _parse_spec(spec)
    flavours = [name.removeprefix("linux-image-") for name in arch.kernel_packages]
    found: list[tuple[str, str, str]] = []
    last_error: AptError | None = None
    for suite in suites:
        apt = Apt([suite], arch.debian_arch)
        try:
            apt.update()
        except AptError as err:
            last_error = err
            continue
        if package:
            resolved = _image_package(apt, package, version)
        else:
            series = spec[len("debian:") :]
            resolved = next(
                (image for f in flavours if (image := _series_image(apt, series, f))), None
            )
        if resolved:
            found.append((suite, *resolved))
    if not found:
        if last_error is not None:
            raise KernelError(
                f"cannot resolve {spec} for {arch.name}: {last_error.message}", hint=last_error.hint
            )
        wanted = package or " or ".join(f"linux-image-{spec[7:]}.*-{f}" for f in flavours)
        raise KernelError(
            f"{spec}: no {wanted} for {arch.debian_arch} in Debian " + ", ".join(suites),
            hint=_spec_hint(),
        )
    return found


def _image_holder(apt: Apt, package: str, version: str, release: str) -> str:
    """The package whose .deb holds /boot/vmlinuz-<release>: the image package itself
    up to Debian's 6.x kernels; from 7.x on (trixie-backports) that package only
    depends on linux-binary-<release> of the same version, which holds the image."""
    record = apt.show(package, version)
    depends = record.fields.get("Depends", "") if record else ""
    binary = f"linux-binary-{release}"
    if re.search(rf"(^|,)\s*{re.escape(binary)}\s*\(=\s*{re.escape(version)}\)", depends):
        return binary
    return package


def _config_holder(apt: Apt, package: str, version: str, release: str) -> str | None:
    """The package whose .deb holds the kernel's configuration when the image's does not:
    from 7.x on, linux-base-<release> of the same version (/usr/lib/modules/<release>/config)."""
    record = apt.show(package, version)
    depends = record.fields.get("Depends", "") if record else ""
    base = f"linux-base-{release}"
    if re.search(rf"(^|,)\s*{re.escape(base)}\s*\(=\s*{re.escape(version)}\)", depends):
        return base
    return None


def _fetch(suite: str, package: str, version: str, arch: Arch, bpftool: str | None) -> dict:
    """Download one image package and store its image and BTF; the entry's meta."""

    def make(work: Path) -> Made:
        apt = Apt([suite], arch.debian_arch)
        _progress(
            f"downloading {package} {version} ({arch.debian_arch}, {suite}) for its BTF and image"
        )
        release = package[len("linux-image-") :].removesuffix("-unsigned")
        holder = _image_holder(apt, package, version, release)
        deb = download_deb(apt, holder, version, work / "deb")
        extract_deb(deb.path, work / "root")
        boot, modules = work / "root" / "boot", work / "root" / "usr/lib/modules" / release
        # /boot/vmlinuz-<release> up to 6.x; /usr/lib/modules/<release>/vmlinuz in 7.x.
        images = [
            (f"{name}-{release}", path)
            for name in ("vmlinuz", "vmlinux", "Image")
            for path in (boot / f"{name}-{release}", modules / name)
            if path.is_file()
        ]
        if not images:
            raise KernelError(
                f"{deb.path.name} holds no /boot/vmlinuz-{release} nor "
                f"/usr/lib/modules/{release}/vmlinuz",
                hint=f"name the image package itself, e.g. {arch.kernel_packages[-1]}",
            )
        image_name, image = images[0]
        places = (boot / f"config-{release}", modules / "config")
        if not any(c.is_file() for c in places):
            base = _config_holder(apt, package, version, release)
            if base:
                extract_deb(download_deb(apt, base, version, work / "deb").path, work / "root")
        config = next((c for c in places if c.is_file()), places[0])
        if config.is_file() and "# CONFIG_DEBUG_INFO_BTF is not set" in config.read_text():
            raise KernelError(
                f"{package} {version} was built without CONFIG_DEBUG_INFO_BTF: it has no BTF",
                hint="take a series whose kernel for this arch has BTF (debian:6.12 has "
                "it for amd64, arm64, riscv64 and s390x), or name a BTF file",
            )
        btf = work / BTF_FILE
        try:
            btf.write_bytes(extract_btf(image))
            check_btf_file(btf, bpftool)
        except KernelImageError as err:
            raise KernelImageError(f"{package} {version}: {err.message}", hint=err.hint) from None
        meta: dict[str, object] = {
            "package": package,
            "version": version,
            "arch": arch.name,
            "debian_arch": arch.debian_arch,
            "suite": suite,
            "release": release,
            "deb_sha256": deb.sha256,
            "deb": deb.path.name,
            "image": image_name,
            "image_package": holder,
        }
        files = {image_name: image, BTF_FILE: btf}
        meta["config"] = CONFIG_FILE if config.is_file() else ""
        meta["shape"] = ENTRY_SHAPE
        if config.is_file():
            files[CONFIG_FILE] = config
        return files, meta

    return cached_fetch(
        KERNELS_KIND, _kernel_key(package, version, arch), make, usable=_current_shape
    ).meta


def _current_shape(entry: Entry) -> bool:
    """Whether a kernel entry holds what this bpfbuild stores (entries made before the
    configuration was kept are fetched again)."""
    return entry.meta.get("shape") == ENTRY_SHAPE


def get_kernel(spec: str, arch: Arch, bpftool: str | None = None) -> Kernel:
    """The kernel spec names for arch, from the cache when it is there (no network,
    no apt, no work); else resolved, downloaded and extracted once. bpftool: the one
    that checks the BTF cut out of a fetched image (default: bpftool in PATH)."""
    _parse_spec(spec)
    spec_key = _spec_key(spec, arch)
    resolution = read_entry(SPECS_KIND, spec_key)
    if resolution is not None:
        kernel = _cached_kernel(spec, arch, resolution.meta)
        if kernel is not None:
            return kernel
    with locked(SPECS_KIND, spec_key):
        resolution = read_entry(SPECS_KIND, spec_key)
        if resolution is None:
            _progress(f"resolving {spec} for {arch.name} with apt (once; pinned in {cache_root()})")
            candidates = _resolve(spec, arch)
        else:
            meta = resolution.meta
            candidates = [(meta["suite"], meta["package"], meta["version"])]
        first_error: BpfBuildError | None = None
        for suite, package, version in candidates:
            try:
                _fetch(suite, package, version, arch, bpftool)
            except AptError as err:
                first_error = first_error or err
                continue
            meta = {
                "spec": spec,
                "arch": arch.name,
                "suite": suite,
                "package": package,
                "version": version,
                "resolved_at": int(time.time()),
            }
            write_entry(SPECS_KIND, spec_key, {}, meta)
            kernel = _cached_kernel(spec, arch, meta)
            if kernel is not None:
                return kernel
        if first_error is None:  # fetched, but the entry went (a concurrent cache clean)
            raise KernelError(
                f"fetched {spec} for {arch.name}, but its cache entry is gone",
                hint="run the command again",
            )
        raise KernelError(
            f"cannot fetch {spec} for {arch.name}: {first_error.message}", hint=first_error.hint
        )


@dataclass(frozen=True)
class Resolution:
    """What a spec is pinned to for an arch, as the cache has it (nothing fetched)."""

    spec: str
    arch: str
    package: str
    version: str
    suite: str
    release: str | None
    """`uname -r`; None while the kernel itself is not in the cache."""


def cached_resolution(spec: str, arch: Arch) -> Resolution | None:
    """What spec resolved to for arch when it was last used, from the cache alone (no
    apt, no network); None when it has not been resolved yet. Raises for a bad spec."""
    _parse_spec(spec)
    entry = read_entry(SPECS_KIND, _spec_key(spec, arch))
    if entry is None:
        return None
    meta = entry.meta
    try:
        kernel = _cached_kernel(spec, arch, meta)
        return Resolution(
            spec,
            arch.name,
            meta["package"],
            meta["version"],
            meta["suite"],
            kernel.release if kernel else None,
        )
    except KeyError:
        return None


def _cached_kernel(spec: str, arch: Arch, resolution: dict) -> Kernel | None:
    """The Kernel of a resolution when its files are in the cache and intact."""
    try:
        key = _kernel_key(resolution["package"], resolution["version"], arch)
    except KeyError:
        return None
    entry = read_entry(KERNELS_KIND, key)
    if entry is None:
        return None
    meta = entry.meta
    if not _current_shape(entry):  # made by an older bpfbuild: fetched again
        return None
    try:
        return Kernel(
            spec=spec,
            arch=arch.name,
            package=meta["package"],
            version=meta["version"],
            deb_sha256=meta["deb_sha256"],
            release=meta["release"],
            image=entry.file(meta["image"]),
            btf=entry.file(BTF_FILE),
            suite=meta.get("suite", ""),
            config=entry.file(meta["config"]) if meta["config"] else None,
        )
    except KeyError:
        return None
