"""The one table of target architectures: what each arch changes in a build."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Arch:
    """One target architecture, named as the kernel and distributions name it."""

    name: str
    """bpfbuild's name, used in paths: output/<name>/."""
    target_arch: str
    """Suffix of the __TARGET_ARCH_<x> define that bpf_tracing.h reads for PT_REGS."""
    bpf_target: str
    """clang -target for BPF objects: the BPF byte order must match the kernel's."""
    gnu_triplet: str
    """Debian multiarch triplet: system include dir and cross-compiler prefix."""
    machines: tuple[str, ...]
    """Values of `uname -m` (platform.machine()) that mean this arch."""

    # ELF header of its executables and objects: every output is checked against these.
    elf_machine: str = "EM_NONE"
    """e_machine as pyelftools names it (elftools.elf.enums.ENUM_E_MACHINE)."""
    elf_class: int = 64
    """ELFCLASS: 32 or 64 bits."""
    elf_data: str = "little"
    """Byte order, ELFDATA2LSB (little) or ELFDATA2MSB (big)."""

    @property
    def bpf_elf_data(self) -> str:
        """Byte order of its BPF objects: that of bpf_target (bpfel or bpfeb)."""
        return "big" if self.bpf_target == "bpfeb" else "little"

    # -- answers derived from the arch (the rest of bpfbuild asks here) -----

    @property
    def debian(self) -> DebianFacts:
        """Debian's names for this arch: packages, qemu, kernels."""
        return DEBIAN[self.name]

    @property
    def debian_arch(self) -> str:
        """dpkg's name: amd64, arm64, armhf, riscv64, ppc64el, s390x, loong64."""
        return self.debian.arch

    @property
    def multiarch_include_dir(self) -> str:
        """Headers of this arch's libc and uapi (<asm/*.h>): -target bpf drops it."""
        return f"/usr/include/{self.gnu_triplet}"

    @property
    def multiarch_lib_dir(self) -> str:
        """Libraries of this arch (libbpf.a, libelf.a, ...) installed with :<debian_arch>."""
        return f"/usr/lib/{self.gnu_triplet}"

    @property
    def pkg_config_libdir(self) -> str:
        """PKG_CONFIG_LIBDIR for a cross build: only this arch's .pc files (and the
        arch-independent ones), never the host's."""
        return f"{self.multiarch_lib_dir}/pkgconfig:/usr/share/pkgconfig"

    def cross_tool(self, tool: str) -> str:
        """The Debian cross tool's name, e.g. aarch64-linux-gnu-gcc."""
        return f"{self.gnu_triplet}-{tool}"

    @property
    def cross_cc(self) -> str:
        return self.cross_tool("gcc")

    @property
    def cross_strip(self) -> str:
        return self.cross_tool("strip")

    @property
    def cross_libc_dir(self) -> str:
        """Where libc6-dev-<arch>-cross puts the target's libc (include/, lib/)."""
        return f"/usr/{self.gnu_triplet}"

    @property
    def qemu_user(self) -> str:
        """The static qemu-user binary that runs this arch's executables."""
        return f"qemu-{self.debian.qemu}-static"

    @property
    def qemu_system(self) -> str:
        """The qemu binary that boots this arch's kernels."""
        return f"qemu-system-{self.debian.qemu_system}"

    @property
    def kernel_packages(self) -> tuple[str, ...]:
        """Debian kernel metapackages, preferred first: the cloud flavour (small,
        boots in QEMU with a serial console) where it exists, then the generic one."""
        cloud = (f"linux-image-cloud-{self.debian.arch}",) if self.debian.cloud_kernel else ()
        return (*cloud, f"linux-image-{self.debian.kernel_flavour}")

    @property
    def bpf_packages(self) -> tuple[str, ...]:
        """Debian packages a BPF compile of this arch needs beyond clang: the uapi
        headers (<asm/*.h>) in the multiarch folder, for sources that use <linux/*.h>."""
        return (f"linux-libc-dev:{self.debian.arch}",)

    @property
    def library_packages(self) -> tuple[str, ...]:
        """Debian packages of the static libraries an app links (libbpf and its deps)."""
        return tuple(
            f"{name}:{self.debian.arch}"
            for name in ("libbpf-dev", "libelf-dev", "zlib1g-dev", "libzstd-dev")
        )

    @property
    def binutils_package(self) -> str:
        """The Debian package of this arch's binutils (strip)."""
        return "binutils" if self.name == host_arch_name() else f"binutils-{self.gnu_triplet}"

    @property
    def user_space_packages(self) -> tuple[str, ...]:
        """Debian packages that link this arch's static executables (cross or not)."""
        if self.name == host_arch_name():
            compilers: tuple[str, ...] = ("gcc", "libc6-dev")
        else:
            compilers = (f"gcc-{self.gnu_triplet}", f"libc6-dev-{self.debian.arch}-cross")
        return (*compilers, self.binutils_package, *self.library_packages)

    @property
    def run_packages(self) -> tuple[str, ...]:
        """Debian packages that run this arch's executables on the host (tests)."""
        return () if self.name == host_arch_name() else ("qemu-user-static",)

    @property
    def cross_packages(self) -> tuple[str, ...]:
        """Everything a build (and a test run) of this arch needs, for apt-get install."""
        return (*self.user_space_packages, *self.bpf_packages, *self.run_packages)


@dataclass(frozen=True)
class DebianFacts:
    """How Debian names one arch's packages and tools."""

    arch: str
    """dpkg architecture."""
    qemu: str
    """qemu-user's name for it (qemu-<qemu>-static)."""
    qemu_system: str
    """qemu-system-<qemu_system>."""
    kernel_flavour: str
    """The generic kernel metapackage is linux-image-<kernel_flavour>."""
    cloud_kernel: bool
    """Whether linux-image-cloud-<arch> exists."""


DEBIAN: dict[str, DebianFacts] = {
    "x86_64": DebianFacts("amd64", "x86_64", "x86_64", "amd64", True),
    "arm64": DebianFacts("arm64", "aarch64", "aarch64", "arm64", True),
    "arm": DebianFacts("armhf", "arm", "arm", "armmp", False),
    "riscv64": DebianFacts("riscv64", "riscv64", "riscv64", "riscv64", False),
    "ppc64le": DebianFacts("ppc64el", "ppc64le", "ppc64", "powerpc64le", False),
    "s390x": DebianFacts("s390x", "s390x", "s390x", "s390x", False),
    "loongarch64": DebianFacts("loong64", "loongarch64", "loongarch64", "loong64", False),
}
"""Keyed by bpfbuild arch name; one entry per arch of ARCHES."""


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            "x86_64",
            "x86",
            "bpfel",
            "x86_64-linux-gnu",
            ("x86_64", "amd64"),
            elf_machine="EM_X86_64",
        ),
        Arch(
            "arm64",
            "arm64",
            "bpfel",
            "aarch64-linux-gnu",
            ("aarch64", "arm64"),
            elf_machine="EM_AARCH64",
        ),
        Arch(
            "arm",
            "arm",
            "bpfel",
            "arm-linux-gnueabihf",
            ("armv7l", "armv6l"),
            elf_machine="EM_ARM",
            elf_class=32,
        ),
        Arch(
            "riscv64", "riscv", "bpfel", "riscv64-linux-gnu", ("riscv64",), elf_machine="EM_RISCV"
        ),
        Arch(
            "ppc64le",
            "powerpc",
            "bpfel",
            "powerpc64le-linux-gnu",
            ("ppc64le",),
            elf_machine="EM_PPC64",
        ),
        Arch(
            "s390x",
            "s390",
            "bpfeb",
            "s390x-linux-gnu",
            ("s390x",),
            elf_machine="EM_S390",
            elf_data="big",
        ),
        Arch(
            "loongarch64",
            "loongarch",
            "bpfel",
            "loongarch64-linux-gnu",
            ("loongarch64",),
            elf_machine="EM_LOONGARCH",
        ),
    )
}


def host_arch_name() -> str | None:
    """bpfbuild's name of the machine's arch, or None when it is not in the table."""
    machine = platform.machine()
    for arch in ARCHES.values():
        if machine in arch.machines:
            return arch.name
    return None


def host_arch() -> Arch:
    """The arch of the machine bpfbuild runs on."""
    machine = platform.machine()
    for arch in ARCHES.values():
        if machine in arch.machines:
            return arch
    raise ConfigError(
        f"unsupported host machine '{machine}'",
        hint="set `arches = [...]` in bpfbuild.toml to one of: " + ", ".join(ARCHES),
    )


def get_arch(name: str) -> Arch:
    """Look up an arch by bpfbuild name or by `uname -m` spelling."""
    if name in ARCHES:
        return ARCHES[name]
    for arch in ARCHES.values():
        if name in arch.machines:
            return arch
    raise ConfigError(f"unknown arch '{name}'", hint="valid arches: " + ", ".join(ARCHES))
