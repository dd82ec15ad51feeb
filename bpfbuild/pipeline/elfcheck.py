"""Check that a freshly built file is an ELF of the arch it is for: machine, class, byte order."""

from __future__ import annotations

from dataclasses import dataclass

from ..arch import ARCHES, Arch
from ..elf import EM_BPF_NAME, HEADER_PREFIX_SIZE, machine_name, machine_number, parse_ident


@dataclass(frozen=True)
class ElfExpectation:
    """What one output must be; tasks hand it to their action."""

    arch: str
    """bpfbuild's arch name, as the message shows it."""
    machine: str
    """e_machine as pyelftools names it: EM_X86_64, EM_BPF..."""
    elf_class: int
    """32 or 64."""
    data: str
    """little or big."""
    fix: str
    """The hint: which compiler or setting to fix when the output is not so."""

    @classmethod
    def bpf_object(cls, arch: Arch, fix: str) -> ElfExpectation:
        """A BPF object for arch: EM_BPF, 64-bit, in the byte order of its bpf_target."""
        return cls(arch.name, EM_BPF_NAME, 64, arch.bpf_elf_data, fix)

    @classmethod
    def native(cls, arch: Arch, fix: str) -> ElfExpectation:
        """A user-space object or executable for arch."""
        return cls(arch.name, arch.elf_machine, arch.elf_class, arch.elf_data, fix)

    def describe(self) -> str:
        kind = "BPF" if self.machine == EM_BPF_NAME else self.arch
        return f"{kind} ({self.machine}, {self.elf_class}-bit, {self.data}-endian)"


@dataclass(frozen=True)
class ElfHeader:
    """The identifying fields of an ELF header."""

    machine: str
    elf_class: int | None
    """32, 64, or None for an invalid EI_CLASS."""
    data: str | None
    """little, big, or None for an invalid EI_DATA."""

    def describe(self) -> str:
        if self.machine == EM_BPF_NAME:
            kind = "BPF"
        else:
            kind = next(
                (
                    a.name
                    for a in ARCHES.values()
                    if a.elf_machine == self.machine
                    and a.elf_class == self.elf_class
                    and a.elf_data == self.data
                ),
                "another arch",
            )
        bits = f"{self.elf_class}-bit" if self.elf_class else "invalid class"
        order = f"{self.data}-endian" if self.data else "invalid byte order"
        return f"{kind} ({self.machine}, {bits}, {order})"

    def matches(self, expect: ElfExpectation) -> bool:
        return (self.machine, self.elf_class, self.data) == (
            expect.machine,
            expect.elf_class,
            expect.data,
        )


def parse_elf_header(head: bytes) -> ElfHeader | None:
    """The header's machine, class and byte order; None when head is no ELF header."""
    ident = parse_ident(head)
    if ident is None or len(head) < HEADER_PREFIX_SIZE:
        return None
    return ElfHeader(machine_name(machine_number(head, ident)), ident.bits, ident.byte_order)


def check_elf(path: str, expect: ElfExpectation, shown: str | None = None) -> str | None:
    """None when the file at path is an ELF of the expected kind; else the error
    message and its hint line (`hint: ...`), naming the output as shown."""
    shown = shown or path
    try:
        with open(path, "rb") as f:
            header = parse_elf_header(f.read(HEADER_PREFIX_SIZE))
    except OSError as err:
        return f"cannot read {shown}: {err.strerror}"
    if header is None:
        found = "is not an ELF file"
    elif header.matches(expect):
        return None
    else:
        found = f"is {header.describe()}"
    return f"{shown} {found}, expected {expect.describe()}\nhint: {expect.fix}"


def native_expectation(arch: Arch, cc: str, host: bool, env: dict[str, str]) -> ElfExpectation:
    """What user objects, executables and the verifier runner of arch must be; the
    hint names the variable that chose the compiler cc ($CC, or $CC_<arch> for a cross arch)."""
    variable = "CC" if host else f"CC_{arch.name}"
    default = "gcc" if host else f"{arch.gnu_triplet}-gcc"
    chosen = f"${variable}" if env.get(variable) else "the default compiler"
    return ElfExpectation.native(
        arch,
        (
            f"{cc} ({chosen}) does not build for {arch.name}: set ${variable} to a C compiler "
            f"for {arch.name} (e.g. {default}), and check -m/--target flags in $CFLAGS, "
            "$LDFLAGS and cflags/ldflags of bpfbuild.toml"
        ),
    )


def bpf_expectation(arch: Arch, clang: str, env: dict[str, str]) -> ElfExpectation:
    """What BPF objects of arch must be; the hint names $CLANG and bpf_cflags."""
    chosen = "$CLANG" if env.get("CLANG") else "the default clang"
    return ElfExpectation.bpf_object(
        arch,
        (
            f"{clang} ({chosen}) did not build a {arch.bpf_target} BPF object: set $CLANG to a "
            f"clang with the BPF target, and remove -target/-m flags from bpf_cflags of bpfbuild.toml"
        ),
    )


def bpftool_expectation(arch: Arch, bpftool: str) -> ElfExpectation:
    """What `bpftool gen object` must write for arch."""
    return ElfExpectation.bpf_object(
        arch,
        (
            f"{bpftool} wrote something other than a {arch.bpf_target} BPF object: "
            "set $BPFTOOL to a working bpftool (apt-get install bpftool)"
        ),
    )
