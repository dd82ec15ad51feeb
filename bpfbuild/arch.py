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
    elf_machine: str
    """e_machine as pyelftools names it (elftools.elf.enums.ENUM_E_MACHINE)."""
    elf_machine_number: int
    """e_machine's value: outputs are checked without importing pyelftools' table."""
    bpf_syscall: int
    """__NR_bpf: the bpf() syscall number of this arch's kernels."""
    va_list_size: int | None
    """Bytes of a va_list where C passes it by pointer (libbpf's print callback copies
    one to format a message twice); None where bpfbuild has not measured it."""
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
    def vm(self) -> VmFacts | None:
        """How qemu boots this arch's kernels; None when bpfbuild boots no VM of it."""
        return VM[self.name]

    @property
    def bpf_include_dirs(self) -> tuple[str, ...]:
        """Added with -idirafter to BPF compiles: -target bpf drops the multiarch dir,
        so <linux/*.h> uapi headers (which include <asm/*.h>) would not be found."""
        return (self.multiarch_include_dir, "/usr/include")

    @property
    def uapi_package(self) -> str:
        """The Debian package of this arch's uapi headers (<asm/*.h>) in the multiarch
        folder, for BPF sources that use <linux/*.h>."""
        return f"linux-libc-dev:{self.debian.arch}"

    @property
    def bpf_packages(self) -> tuple[str, ...]:
        """Debian packages a BPF compile of this arch needs beyond clang."""
        return (self.uapi_package,)

    def library_package(self, library: Library) -> str:
        """The Debian package of one static library for this arch, e.g. libbpf-dev:arm64."""
        return f"{library.package}:{self.debian.arch}"

    @property
    def library_packages(self) -> tuple[str, ...]:
        """Debian packages of the static libraries an app links (libbpf and its deps)."""
        return tuple(self.library_package(library) for library in LIBRARIES)

    @property
    def binutils_package(self) -> str:
        """The Debian package of this arch's binutils (strip)."""
        return "binutils" if self.name == host_arch_name() else f"binutils-{self.gnu_triplet}"

    @property
    def cc_package(self) -> str:
        """The Debian package of this arch's C compiler (the cross gcc, or gcc)."""
        return "gcc" if self.name == host_arch_name() else f"gcc-{self.gnu_triplet}"

    @property
    def libc_package(self) -> str:
        """The Debian package of this arch's C library to link against."""
        return (
            "libc6-dev" if self.name == host_arch_name() else f"libc6-dev-{self.debian.arch}-cross"
        )

    @property
    def user_space_packages(self) -> tuple[str, ...]:
        """Debian packages that link this arch's static executables (cross or not)."""
        return (self.cc_package, self.libc_package, self.binutils_package, *self.library_packages)

    @property
    def qemu_user_package(self) -> str:
        """The Debian package of qemu_user."""
        return "qemu-user-static"

    @property
    def run_packages(self) -> tuple[str, ...]:
        """Debian packages that run this arch's executables on the host (tests)."""
        return () if self.name == host_arch_name() else (self.qemu_user_package,)

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


@dataclass(frozen=True)
class VmFacts:
    """How qemu boots one arch's Debian kernels in bpfbuild's VMs."""

    qemu_package: str
    """The Debian package that provides its qemu system emulator."""
    console: str
    """The kernel's name of the serial console the board has."""
    tcg_args: tuple[str, ...]
    """Board and CPU under TCG (emulation)."""
    kvm_args: tuple[str, ...]
    """Board and CPU under KVM."""


VM: dict[str, VmFacts | None] = {
    "x86_64": VmFacts(
        "qemu-system-x86",
        "ttyS0",
        ("-M", "pc", "-cpu", "max"),
        ("-M", "pc", "-enable-kvm", "-cpu", "host"),
    ),
    "arm64": VmFacts(
        "qemu-system-arm",
        "ttyAMA0",
        # pauth-impdef: the architected pointer-auth algorithm costs TCG 4x the boot time
        ("-M", "virt", "-cpu", "max,pauth-impdef=on"),
        ("-M", "virt", "-enable-kvm", "-cpu", "host"),
    ),
    "arm": None,
    "riscv64": None,
    "ppc64le": None,
    "s390x": None,
    "loongarch64": None,
}
"""Keyed by bpfbuild arch name; one entry per arch of ARCHES, None where bpfbuild boots
no VM (verify runs there only on the host's own kernel)."""


@dataclass(frozen=True)
class Library:
    """A static library every app links (libbpf and what it needs)."""

    pkg_config: str
    """Its pkg-config name."""
    archive: str
    """The archive's file name in the arch's multiarch library folder."""
    package: str
    """The Debian package that installs it (as <package>:<debian arch>)."""


LIBRARIES = (
    Library("libbpf", "libbpf.a", "libbpf-dev"),
    Library("libelf", "libelf.a", "libelf-dev"),
    Library("zlib", "libz.a", "zlib1g-dev"),
    Library("libzstd", "libzstd.a", "libzstd-dev"),
)
"""libbpf and, through libelf, its dependencies."""


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            "x86_64",
            target_arch="x86",
            bpf_target="bpfel",
            gnu_triplet="x86_64-linux-gnu",
            machines=("x86_64", "amd64"),
            elf_machine="EM_X86_64",
            elf_machine_number=62,
            bpf_syscall=321,
            va_list_size=24,  # __va_list_tag[1]: an array, so passed as a pointer
        ),
        Arch(
            "arm64",
            target_arch="arm64",
            bpf_target="bpfel",
            gnu_triplet="aarch64-linux-gnu",
            machines=("aarch64", "arm64"),
            elf_machine="EM_AARCH64",
            elf_machine_number=183,
            bpf_syscall=280,
            va_list_size=32,  # struct __va_list: larger than 16 bytes, passed by reference
        ),
        Arch(
            "arm",
            target_arch="arm",
            bpf_target="bpfel",
            gnu_triplet="arm-linux-gnueabihf",
            machines=("armv7l", "armv6l"),
            elf_machine="EM_ARM",
            elf_machine_number=40,
            bpf_syscall=386,
            va_list_size=None,
            elf_class=32,
        ),
        Arch(
            "riscv64",
            target_arch="riscv",
            bpf_target="bpfel",
            gnu_triplet="riscv64-linux-gnu",
            machines=("riscv64",),
            elf_machine="EM_RISCV",
            elf_machine_number=243,
            bpf_syscall=280,
            va_list_size=None,
        ),
        Arch(
            "ppc64le",
            target_arch="powerpc",
            bpf_target="bpfel",
            gnu_triplet="powerpc64le-linux-gnu",
            machines=("ppc64le",),
            elf_machine="EM_PPC64",
            elf_machine_number=21,
            bpf_syscall=361,
            va_list_size=None,
        ),
        Arch(
            "s390x",
            target_arch="s390",
            bpf_target="bpfeb",
            gnu_triplet="s390x-linux-gnu",
            machines=("s390x",),
            elf_machine="EM_S390",
            elf_machine_number=22,
            bpf_syscall=351,
            va_list_size=None,
            elf_data="big",
        ),
        Arch(
            "loongarch64",
            target_arch="loongarch",
            bpf_target="bpfel",
            gnu_triplet="loongarch64-linux-gnu",
            machines=("loongarch64",),
            elf_machine="EM_LOONGARCH",
            elf_machine_number=258,
            bpf_syscall=280,
            va_list_size=None,
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
    name = host_arch_name()
    if name is None:
        raise ConfigError(
            f"unsupported host machine '{platform.machine()}'",
            hint="set `arches = [...]` in bpfbuild.toml to one of: " + ", ".join(ARCHES),
        )
    return ARCHES[name]


def get_arch(name: str) -> Arch:
    """Look up an arch by bpfbuild name or by `uname -m` spelling."""
    if name in ARCHES:
        return ARCHES[name]
    for arch in ARCHES.values():
        if name in arch.machines:
            return arch
    raise ConfigError(f"unknown arch '{name}'", hint="valid arches: " + ", ".join(ARCHES))


def bpf_target_flags(arch: Arch) -> list[str]:
    """The clang flags that make a BPF object for arch: every BPF compile takes them
    (bpfbuild's steps and the tests' own compiles)."""
    return [
        "-target",
        arch.bpf_target,  # BPF byte order must match the kernel's
        f"-D__TARGET_ARCH_{arch.target_arch}",  # bpf_tracing.h picks PT_REGS by arch
    ]
