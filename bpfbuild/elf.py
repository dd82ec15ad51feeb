"""The ELF identification every output check reads: magic, class, byte order, e_machine."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .arch import ARCHES

MAGIC = b"\x7fELF"
EI_CLASS = 4
"""Index in e_ident of the class: ELFCLASS32 (1) or ELFCLASS64 (2)."""
EI_DATA = 5
"""Index in e_ident of the byte order: ELFDATA2LSB (1) or ELFDATA2MSB (2)."""
IDENT_SIZE = 16
"""e_ident's size; e_type (2 bytes) and e_machine (2) follow."""
MACHINE_OFFSET = 18
HEADER_PREFIX_SIZE = 20
"""e_ident, e_type and e_machine: enough to tell what a file is built for."""

CLASS_BITS = {1: 32, 2: 64}
"""ELFCLASS32, ELFCLASS64."""
BYTE_ORDERS = {1: "little", 2: "big"}
"""ELFDATA2LSB, ELFDATA2MSB."""

EM_BPF = 247
EM_BPF_NAME = "EM_BPF"


@dataclass(frozen=True)
class Ident:
    """What e_ident says: the class and byte order (None when the byte is invalid)."""

    bits: int | None
    """32, 64, or None."""
    byte_order: str | None
    """little, big, or None."""

    @property
    def valid(self) -> bool:
        return self.bits is not None and self.byte_order is not None

    @property
    def struct_order(self) -> str:
        """The struct module's prefix for this byte order (< or >)."""
        return ">" if self.byte_order == "big" else "<"


def parse_ident(head: bytes) -> Ident | None:
    """The class and byte order of an ELF file from its first bytes; None when they
    are not an ELF identification."""
    if len(head) < IDENT_SIZE or head[: len(MAGIC)] != MAGIC:
        return None
    return Ident(CLASS_BITS.get(head[EI_CLASS]), BYTE_ORDERS.get(head[EI_DATA]))


def machine_number(head: bytes, ident: Ident) -> int:
    """e_machine of an ELF header prefix (at least HEADER_PREFIX_SIZE bytes)."""
    field = head[MACHINE_OFFSET : MACHINE_OFFSET + 2]
    return int.from_bytes(field, "big" if ident.byte_order == "big" else "little")


def machine_name(number: int) -> str:
    """pyelftools' name of an e_machine value (EM_...): that of BPF and of every arch
    of the arch table without importing pyelftools' table (~5 ms), the others with it."""
    if number == EM_BPF:
        return EM_BPF_NAME
    known = next((a.elf_machine for a in ARCHES.values() if a.elf_machine_number == number), None)
    return known or _machine_names().get(number, f"e_machine {number}")


@functools.cache
def _machine_names() -> dict[int, str]:
    from elftools.elf.enums import ENUM_E_MACHINE

    return {number: name for name, number in ENUM_E_MACHINE.items() if name.startswith("EM_")}
