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


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("x86_64", "x86", "bpfel", "x86_64-linux-gnu", ("x86_64", "amd64"),
             elf_machine="EM_X86_64"),
        Arch("arm64", "arm64", "bpfel", "aarch64-linux-gnu", ("aarch64", "arm64"),
             elf_machine="EM_AARCH64"),
        Arch("arm", "arm", "bpfel", "arm-linux-gnueabihf", ("armv7l", "armv6l"),
             elf_machine="EM_ARM", elf_class=32),
        Arch("riscv64", "riscv", "bpfel", "riscv64-linux-gnu", ("riscv64",),
             elf_machine="EM_RISCV"),
        Arch("ppc64le", "powerpc", "bpfel", "powerpc64le-linux-gnu", ("ppc64le",),
             elf_machine="EM_PPC64"),
        Arch("s390x", "s390", "bpfeb", "s390x-linux-gnu", ("s390x",),
             elf_machine="EM_S390", elf_data="big"),
        Arch("loongarch64", "loongarch", "bpfel", "loongarch64-linux-gnu", ("loongarch64",),
             elf_machine="EM_LOONGARCH"),
    )
}


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
    raise ConfigError(
        f"unknown arch '{name}'", hint="valid arches: " + ", ".join(ARCHES)
    )
