"""Which kernel symbols (kfuncs, ksym variables) each program of a BPF object uses,
directly or through the subprograms it calls, read from the object's ELF relocations.

libbpf resolves an object's kfuncs all at once: one the kernel lacks fails the load of
every program, also of those that never call it. This tells the programs that do
(the kfunc is why they cannot load) from their siblings (the object is why)."""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

INSN_SIZE = 8
"""struct bpf_insn: code, registers, offset, immediate."""
BPF_CALL = 0x85
"""BPF_JMP | BPF_CALL: a helper, a kfunc or a subprogram."""
BPF_LD_IMM64 = 0x18
"""BPF_LD | BPF_IMM | BPF_DW: takes the address of a ksym, a map or a callback."""
BPF_PSEUDO_CALL = 1
"""src_reg of a call to a subprogram, pc-relative."""
SHF_EXECINSTR = 0x4
SUBPROGRAMS = ".text"
"""The section of functions that programs call; not a program itself."""

Function = tuple[int, int]
"""(section index, offset): where a function starts."""


def program_ksyms(path: Path) -> dict[str, frozenset[str]]:
    """Program name -> the extern kernel symbols it calls or takes the address of, also
    through its subprograms. An unreadable object gives {} (the verdicts stand)."""
    try:
        with open(path, "rb") as f:
            return _program_ksyms(ELFFile(f))
    except (OSError, ELFError, ValueError, struct.error):
        return {}


def _program_ksyms(elf: ELFFile) -> dict[str, frozenset[str]]:
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        return {}
    symbols = list(symtab.iter_symbols())
    code = {
        i: section
        for i, section in enumerate(elf.iter_sections())
        if section["sh_flags"] & SHF_EXECINSTR and section["sh_size"]
    }
    starts: dict[int, list[int]] = {i: [] for i in code}
    names: dict[Function, str] = {}
    for symbol in symbols:
        where = symbol["st_shndx"]
        if symbol["st_info"]["type"] == "STT_FUNC" and where in code:
            starts[where].append(symbol["st_value"])
            names[(where, symbol["st_value"])] = symbol.name
    for offsets in starts.values():
        offsets.sort()

    def function_at(section: int, offset: int) -> Function | None:
        at = bisect.bisect_right(starts.get(section, []), offset) - 1
        return (section, starts[section][at]) if at >= 0 else None

    calls: dict[Function, set[Function]] = {}
    uses: dict[Function, set[str]] = {}
    relocated = _relocations(elf, code)
    order = "<" if elf.little_endian else ">"
    for index, section in code.items():
        data = section.data()
        relocations = relocated.get(index, {})
        for offset in range(0, len(data) - INSN_SIZE + 1, INSN_SIZE):
            opcode, registers, imm = data[offset], data[offset + 1], 0
            if opcode not in (BPF_CALL, BPF_LD_IMM64):
                continue
            (imm,) = struct.unpack_from(order + "i", data, offset + 4)
            source_reg = registers >> 4 if elf.little_endian else registers & 0xF
            caller = function_at(index, offset)
            if caller is None:
                continue
            target: Function | None = None
            if offset in relocations:
                symbol = symbols[relocations[offset]]
                where = symbol["st_shndx"]
                if where == "SHN_UNDEF" and symbol.name:
                    uses.setdefault(caller, set()).add(symbol.name)
                elif where in code:
                    # A call: imm counts instructions after the symbol (-1 for a
                    # function symbol); an address: imm is a byte offset in it.
                    step = (imm + 1) * INSN_SIZE if opcode == BPF_CALL else imm
                    target = function_at(where, symbol["st_value"] + step)
            elif opcode == BPF_CALL and source_reg == BPF_PSEUDO_CALL:
                target = function_at(index, offset + (imm + 1) * INSN_SIZE)
            if target is not None:
                calls.setdefault(caller, set()).add(target)
    text = {i for i, section in code.items() if section.name == SUBPROGRAMS}
    return {
        names[entry]: frozenset(k for f in _reachable(entry, calls) for k in uses.get(f, ()))
        for entry in names
        if entry[0] not in text
    }


def _relocations(elf: ELFFile, code: dict) -> dict[int, dict[int, int]]:
    """Section index -> {offset: symbol index} of the relocations of each code section."""
    found: dict[int, dict[int, int]] = {}
    for section in elf.iter_sections():
        if isinstance(section, RelocationSection) and section["sh_info"] in code:
            entries = found.setdefault(section["sh_info"], {})
            for relocation in section.iter_relocations():
                entries[relocation["r_offset"]] = relocation["r_info_sym"]
    return found


def _reachable(entry: Function, calls: dict[Function, set[Function]]) -> Iterator[Function]:
    seen, todo = {entry}, [entry]
    while todo:
        function = todo.pop()
        yield function
        for callee in calls.get(function, ()):
            if callee not in seen:
                seen.add(callee)
                todo.append(callee)
