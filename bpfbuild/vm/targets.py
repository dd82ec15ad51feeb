"""What to verify on: kernels as the user names them (`host`, `debian:6.1`, a Debian
package, a bootable image) times arches, resolved to the images the VMs boot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import BpfBuildError
from .qemu import MACHINES, machine_for

HOST = "host"
_RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]*")


class BootableKernel(Protocol):
    """What a VM needs of a kernel: bpfbuild.kernels.Kernel has it, ImageKernel too
    (frozen dataclasses: read-only attributes)."""

    @property
    def spec(self) -> str: ...

    @property
    def arch(self) -> str: ...

    @property
    def release(self) -> str: ...

    @property
    def image(self) -> Path: ...

    @property
    def config(self) -> Path | None: ...

    def provenance(self) -> dict: ...


@dataclass(frozen=True)
class ImageKernel:
    """A kernel given as a path to its bootable image (vmlinuz, bzImage, Image)."""

    spec: str
    arch: str
    release: str
    image: Path

    @property
    def config(self) -> Path | None:
        """The kernel's build configuration when it lies beside the image, as in /boot
        (config-<release>): the guest's libbpf reads it for `__kconfig` externs."""
        beside = self.image.parent / f"config-{self.release}"
        return beside if beside.is_file() else None

    def provenance(self) -> dict:
        return {"image": str(self.image)}


@dataclass(frozen=True)
class Target:
    """One cell of the matrix: a kernel (None: the running one) and an arch."""

    spec: str
    arch: str
    kernel: BootableKernel | None

    @property
    def label(self) -> str:
        return f"{self.spec} {self.arch}"


@dataclass(frozen=True)
class VerifyPlan:
    """Every (kernel, arch) of one `bpfbuild verify` run."""

    targets: tuple[Target, ...]

    @property
    def host(self) -> bool:
        return any(t.kernel is None for t in self.targets)

    def vms(self, arch: str) -> list[Target]:
        return [t for t in self.targets if t.kernel is not None and t.arch == arch]


def split_list(values: Sequence[str]) -> list[str]:
    """`--arch x86_64,arm64 --arch s390x` -> [x86_64, arm64, s390x], first seen first."""
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(items))


def matrix_cells(
    kernels: Sequence[str], arches: Sequence[str], host_arch: str
) -> list[tuple[str, str]]:
    """The (kernel spec, arch) cells: the host kernel only for the host's arch."""
    cells = []
    for spec in kernels:
        for arch in arches:
            if spec == HOST and arch != host_arch:
                continue
            cells.append((spec, arch))
    return cells


def check_vm_arch(arch: str) -> None:
    if arch not in MACHINES:
        raise BpfBuildError(
            f"cannot verify {arch} in a VM: bpfbuild boots only "
            + ", ".join(MACHINES)
            + " kernels",
            hint="drop it from --arch or from `arches` in [verify]",
        )


def resolve(spec: str, arch: str, root: Path) -> BootableKernel:
    """The kernel a spec names for an arch: an image path, else a Debian kernel."""
    machine_for(arch)
    candidate = (root / spec).resolve() if not spec.startswith("debian:") else None
    if candidate is not None and ("/" in spec or candidate.is_file()):
        if not candidate.is_file():
            raise BpfBuildError(
                f"kernel image {spec} not found",
                hint="give a bootable image (vmlinuz, Image), `debian:6.1` "
                "or a Debian kernel package name",
            )
        return ImageKernel(spec, arch, image_release(candidate), candidate)
    from ..arch import get_arch

    try:
        from ..kernels import get_kernel  # the Debian kernel cache
    except ImportError:
        raise BpfBuildError(
            f"cannot resolve kernel {spec}: this bpfbuild has no Debian "
            "kernel cache (bpfbuild.kernels.get_kernel)",
            hint="give a kernel image path instead, or update bpfbuild",
        ) from None

    kernel = get_kernel(spec, get_arch(arch))
    if not _RELEASE.fullmatch(kernel.release):
        raise BpfBuildError(
            f"kernel {spec} has an unusable release {kernel.release!r}",
            hint="this is a bug in bpfbuild",
        )
    return kernel


def image_release(image: Path) -> str:
    """`uname -r` of a kernel image: from an x86 bzImage's header, else a `Linux
    version` string in an uncompressed image, else the file name."""
    try:
        return _release_in(image)
    except OSError as err:
        raise BpfBuildError(
            f"cannot read kernel image {image}: {err.strerror}",
            hint="give a readable bootable image (vmlinuz, Image)",
        ) from None


def _release_in(image: Path) -> str:
    with open(image, "rb") as f:
        head = f.read(1 << 16)
        if head[0x202:0x206] == b"HdrS":
            offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
            words = head[offset : offset + 256].split(b"\0")[0].split()
            if words and _RELEASE.fullmatch(words[0].decode(errors="replace")):
                return words[0].decode()
        f.seek(0)
        found = re.search(rb"Linux version (\S+) ", f.read(64 << 20))
        if found and _RELEASE.fullmatch(found[1].decode(errors="replace")):
            return found[1].decode()
    name = re.sub(r"^(vmlinuz|vmlinux|bzImage|Image)-?", "", image.name) or image.name
    return name if _RELEASE.fullmatch(name) else "image"
