"""Checks on a compiled BPF object before it is linked: it must hold a program."""

from __future__ import annotations

import struct

from doit.exceptions import TaskFailed

SHF_EXECINSTR = 0x4
SHN_XINDEX = 0xFFFF


def program_sections(path: str) -> list[str]:
    """Names of the sections of a BPF object that hold a program: executable and not
    empty; `.text` holds subprograms (called functions), which load with no program.

    Read with struct from the section headers (BPF objects are ELF64 of either byte
    order): pyelftools takes about 10 ms an object for this, a third of bpfbuild's
    own time in a clean build. Raises ValueError for what is not such an object."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] not in (1, 2):
        raise ValueError("not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    (shoff,) = struct.unpack_from(order + "Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 58)
    header = struct.Struct(order + "IIQQQQIIQQ")  # one Elf64_Shdr
    if shentsize < header.size or shoff + header.size > len(data):
        raise ValueError("no section header table")
    first = header.unpack_from(data, shoff)
    shnum = shnum or first[5]  # extended numbering: in section 0
    shstrndx = first[6] if shstrndx == SHN_XINDEX else shstrndx
    if shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise ValueError("truncated section header table")
    sections = [header.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names = sections[shstrndx]
    strings = data[names[4] : names[4] + names[5]]

    def name_of(offset: int) -> str:
        end = strings.find(b"\0", offset)
        return strings[offset : end if end >= 0 else None].decode(errors="replace")

    return [
        name_of(s[0])
        for s in sections
        if s[2] & SHF_EXECINSTR and s[5] and name_of(s[0]) != ".text"
    ]


def require_programs(compiled: str, source: str) -> TaskFailed | None:
    """A failure, naming the source, when its object holds no program (actions.compile_bpf)."""
    try:
        if program_sections(compiled):
            return None
    except (OSError, ValueError) as err:
        return TaskFailed(f"{source}: cannot read the compiled object {compiled}: {err}")
    return TaskFailed(
        f'{source}: no BPF program (no non-empty SEC("...") function)\n'
        'hint: add a program: a function marked SEC("tracepoint/..."), SEC("xdp"), ...; '
        "a file of shared code is a header (.h) included by the .bpf.c that uses it"
    )
