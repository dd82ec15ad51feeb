"""The DT_NEEDED entries of an ELF executable, read with struct from its program headers.

Every link checks that a static executable needs no shared library. pyelftools parses
every section header to answer that (about 9 ms an executable, and its import); this
reads the ELF header, the program headers and the dynamic segment only: a static
executable has no PT_DYNAMIC, and a dynamic one names its libraries in it.
"""

from __future__ import annotations

import struct

from ..elf import IDENT_SIZE, parse_ident

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5
PN_XNUM = 0xFFFF


class NotElf(ValueError):
    """The file is not an ELF file this module can read."""


def needed_libraries(path: str) -> list[str]:
    """The DT_NEEDED entries of an ELF file, in order (empty for a static one)."""
    with open(path, "rb") as f:
        ident = parse_ident(f.read(IDENT_SIZE))
        if ident is None or not ident.valid:
            raise NotElf(f"{path} is not an ELF file")
        wide = ident.bits == 64
        order = ident.struct_order
        header = f.read(48 if wide else 36)
        if wide:
            phoff, shoff = struct.unpack_from(order + "QQ", header, 16)
            phentsize, phnum, shentsize = struct.unpack_from(order + "HHH", header, 38)
        else:
            phoff, shoff = struct.unpack_from(order + "II", header, 12)
            phentsize, phnum, shentsize = struct.unpack_from(order + "HHH", header, 26)
        if phnum == PN_XNUM:  # the real count is in the first section header's sh_info
            f.seek(shoff + (44 if wide else 28))
            phnum = struct.unpack(order + "I", f.read(4))[0]
        # p_type, p_offset, p_vaddr, p_filesz of each program header
        phdr = struct.Struct(order + ("IIQQQQ" if wide else "IIIIII"))
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        segments = []
        for i in range(phnum):
            fields = phdr.unpack_from(table, i * phentsize)
            if wide:
                p_type, _, p_offset, p_vaddr, _, p_filesz = fields
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _ = fields
            segments.append((p_type, p_offset, p_vaddr, p_filesz))
        dynamic = [s for s in segments if s[0] == PT_DYNAMIC]
        if not dynamic:
            return []
        f.seek(dynamic[0][1])
        data = f.read(dynamic[0][3])
        entry = struct.Struct(order + ("qQ" if wide else "iI"))
        needed, strtab = [], None
        for offset in range(0, len(data) - entry.size + 1, entry.size):
            tag, value = entry.unpack_from(data, offset)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed.append(value)
            elif tag == DT_STRTAB:
                strtab = value
        if not needed:
            return []
        base = _file_offset(segments, strtab, path)
        names = []
        for offset in needed:
            f.seek(base + offset)
            chunk = f.read(4096)
            end = chunk.find(b"\0")
            if end < 0:
                raise NotElf(f"{path}: a DT_NEEDED name is not terminated")
            names.append(chunk[:end].decode(errors="replace"))
        return names


def _file_offset(segments: list[tuple[int, int, int, int]], address: int | None, path: str) -> int:
    """Where the loadable segment holding a virtual address puts it in the file."""
    for p_type, p_offset, p_vaddr, p_filesz in segments:
        if address is not None and p_type == PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
            return p_offset + address - p_vaddr
    raise NotElf(f"{path}: no loadable segment holds the dynamic string table")
