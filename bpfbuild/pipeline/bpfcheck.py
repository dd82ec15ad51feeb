"""Checks on BPF objects: a compiled one must hold a program, and the bpftool found
must read every section of a linked one before it writes its skeleton."""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doit.exceptions import TaskFailed

from ..elf import parse_ident
from ..errors import BpfBuildError, ToolchainError
from .toolchain import Bpftool, Toolchain, _VersionCache, chosen_bpftool, find_bpftool

if TYPE_CHECKING:
    from .project import Project

SHF_EXECINSTR = 0x4
SHN_XINDEX = 0xFFFF


@dataclass(frozen=True)
class Section:
    """One ELF section header, as far as the checks need it."""

    name: str
    type: int
    flags: int
    size: int
    offset: int = 0
    """Where its bytes are in the file."""
    link: int = 0
    """sh_link: for a symbol table, the index of its string table."""


def read_sections(path: str) -> list[Section]:
    return _read_elf(path)[1]


def _read_elf(path: str) -> tuple[bytes, list[Section], str]:
    """The section headers of a BPF object, read with struct (BPF objects are ELF64 of
    either byte order): pyelftools takes about 10 ms an object for this, a third of
    bpfbuild's own time in a clean build. Raises ValueError for what is not such an
    object."""
    with open(path, "rb") as f:
        data = f.read()
    ident = parse_ident(data)
    if len(data) < 64 or ident is None or ident.bits != 64 or ident.byte_order is None:
        raise ValueError("not a 64-bit ELF file")
    order = ident.struct_order
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
    if any(s[1] != SHT_NOBITS and s[4] + s[5] > len(data) for s in sections):
        raise ValueError("a section runs past the end of the file")
    names = sections[shstrndx]
    strings = data[names[4] : names[4] + names[5]]

    def name_of(offset: int) -> str:
        end = strings.find(b"\0", offset)
        return strings[offset : end if end >= 0 else None].decode(errors="replace")

    found = [Section(name_of(s[0]), s[1], s[2], s[5], s[4], s[6]) for s in sections]
    return data, found, order


def program_sections(path: str) -> list[str]:
    """Names of the sections of a BPF object that hold a program: executable and not
    empty; `.text` holds subprograms (called functions), which load with no program.
    Raises ValueError for what is not a 64-bit ELF object."""
    return [
        s.name
        for s in read_sections(path)
        if s.flags & SHF_EXECINSTR and s.size and s.name != ".text"
    ]


SHT_SYMTAB = 2
SHT_NOBITS = 8
SHN_UNDEF = 0
STB_GLOBAL, STB_WEAK = 1, 2
KERNEL_EXTERN_SECTIONS = (".ksyms", ".kconfig")
"""The BTF data sections of the externs the kernel resolves when libbpf loads the
object (kfuncs and kernel variables with __ksym, CONFIG_ values with __kconfig)."""


def unresolved_externs(path: str) -> list[str]:
    """The externs of a linked BPF object that nothing resolves: undefined in its
    symbol table and in neither .ksyms nor .kconfig of its BTF. libbpf would refuse to
    load it ("failed to find BTF for extern"). Raises ValueError for what is not a
    64-bit ELF file."""
    from ..testing.btf import Btf, BtfError, Kind

    data, sections, order = _read_elf(path)
    undefined: list[str] = []
    for table in sections:
        if table.type != SHT_SYMTAB or table.link >= len(sections):
            continue
        strings = sections[table.link]
        names = data[strings.offset : strings.offset + strings.size]
        for start in range(table.offset + 24, table.offset + table.size, 24):  # Elf64_Sym
            name, info, _, shndx = struct.unpack_from(order + "IBBH", data, start)
            if shndx == SHN_UNDEF and name and info >> 4 in (STB_GLOBAL, STB_WEAK):
                undefined.append(names[name : names.index(b"\0", name)].decode(errors="replace"))
    if not undefined:
        return []
    kernel: set[str] = set()
    btf = next((s for s in sections if s.name == ".BTF"), None)
    if btf is not None:
        try:
            types = Btf(data[btf.offset : btf.offset + btf.size]).types
        except BtfError as err:
            raise ValueError(f"unreadable BTF: {err.message}") from None
        for t in types:
            if t.kind is Kind.DATASEC and t.name in KERNEL_EXTERN_SECTIONS:
                kernel.update(member.name for member in t.members)
    return [name for name in dict.fromkeys(undefined) if name not in kernel]


@dataclass(frozen=True)
class SectionSupport:
    """A section libbpf reads only from some version on: an older one skips it, and
    bpftool built with it writes a skeleton without what the section holds."""

    name: str
    libbpf: tuple[int, int]
    """The first libbpf release that reads it (from libbpf's history)."""
    holds: str


LIBBPF_SECTIONS = (
    SectionSupport(".struct_ops.link", (1, 2), "struct_ops maps attached through a link"),
    SectionSupport("?.struct_ops", (1, 4), "struct_ops maps created only on request"),
    SectionSupport(
        "?.struct_ops.link", (1, 4), "struct_ops maps with a link, created only on request"
    ),
    SectionSupport(".addr_space.1", (1, 4), "the global variables of a BPF arena"),
    SectionSupport(".jumptables", (1, 7), "the jump tables of indirect jumps"),
)
"""Sections libbpf learned to read after libbpf 1.0 (libbpf 1.2: .struct_ops.link;
1.4: `?` struct_ops and arenas; 1.7: jump tables)."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def bpftool_libbpf(bpftool: Bpftool) -> tuple[int, ...]:
    """The libbpf bpftool runs: what `bpftool version` says, else what its version
    implies (bpftool 7.N is built with libbpf 1.N); an older bpftool: before 1.0."""
    if bpftool.libbpf_version:
        return _version(bpftool.libbpf_version)
    major, *minor = _version(bpftool.version) or (0,)
    return (major - 6, *minor[:1]) if major >= 7 else (0, 0)


def unreadable_sections(sections: Iterable[str], bpftool: Bpftool) -> list[SectionSupport]:
    """The sections of an object that the libbpf of bpftool skips, of those a newer
    libbpf reads (a section no libbpf reads is only a warning, which bpftool prints)."""
    libbpf = bpftool_libbpf(bpftool)
    names = set(sections)
    return [need for need in LIBBPF_SECTIONS if need.name in names and libbpf < need.libbpf]


def unreadable_sections_error(
    bpf_object: str, sections: Iterable[str], bpftool: Bpftool
) -> ToolchainError | None:
    """The skeleton step's error for an object with a section the found bpftool drops
    (sections: the object's section names, or those skipped_sections found in
    bpftool's warnings), naming bpftool's version, the section and the fix."""
    dropped = unreadable_sections(sections, bpftool)
    if not dropped:
        return None
    libbpf = ".".join(map(str, bpftool_libbpf(bpftool)))
    need = max(dropped, key=lambda section: section.libbpf)
    names = ", ".join(f"{section.name} ({section.holds})" for section in dropped)
    return ToolchainError(
        f"{bpf_object}: bpftool {bpftool.version} (libbpf {libbpf}, {bpftool.path}) would "
        f"write its skeleton without section {names}: libbpf reads it from "
        f"{'.'.join(map(str, need.libbpf))} on",
        hint="scripts/setup --backports installs bpftool 7.5 (Debian 12); or name a newer "
        "bpftool in [toolchain] bpftool of bpfbuild.toml (or $BPFTOOL)",
    )


SECTIONS_SPELLED = {".addr_space.1": ("address_space(1)",)}
"""What else in a source makes clang emit a section than its quoted name: an arena's
variables (`__attribute__((address_space(1)))`, bpf_arena_common.h's __arena) go
into .addr_space.1."""


def _spellings(section: str) -> tuple[str, ...]:
    return (f'"{section}"', *SECTIONS_SPELLED.get(section, ()))


def sections_named(project: Project) -> list[str]:
    """The sections of LIBBPF_SECTIONS whose names, quoted, appear in the project's BPF
    sources or headers (SEC(".struct_ops.link"), or a macro that expands to it, as
    sched_ext's SCX_OPS_DEFINE), or what else makes one (SECTIONS_SPELLED): known
    before anything is compiled."""
    files = [project.root / source for source in project.bpf_sources]
    files += project.headers  # regular files only: no FIFO is opened
    found: set[str] = set()
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        found.update(
            need.name
            for need in LIBBPF_SECTIONS
            if any(spelling in text for spelling in _spellings(need.name))
        )
    return sorted(found)


def bpftool_for_sections(project: Project, bpftool: Bpftool, versions: Path) -> Bpftool | None:
    """A bpftool for `gen object` and `gen skeleton` when the user chose none ($BPFTOOL,
    [toolchain] bpftool) and the found one drops a section the sources name:
    bookworm-backports' bpftool 7.5, fetched once into the user's cache (said once,
    on stderr). None when bpftool will do, or when it cannot be fetched (offline): the
    skeleton step then refuses the object, saying how to get a newer bpftool."""
    if chosen_bpftool(project.config.toolchain.bpftool, project.root) is not None:
        return None
    dropped = unreadable_sections(sections_named(project), bpftool)
    if not dropped:
        return None
    from ..arch import host_arch
    from ..cache import read_entry
    from ..kernels.tools import TOOLS_KIND, backports_bpftool, bpftool_key

    debian_arch = host_arch().debian_arch
    fetched_now = read_entry(TOOLS_KIND, bpftool_key(debian_arch)) is None
    try:
        entry = backports_bpftool(debian_arch)
    except (BpfBuildError, OSError) as err:  # apt, the cache: the skeleton step says the rest
        reason = err.message if isinstance(err, BpfBuildError) else str(err)
        print(
            f"bpfbuild: bpftool {bpftool.version} drops {dropped[0].name}, and bookworm-backports' "
            f"bpftool cannot be fetched: {reason}",
            file=sys.stderr,
            flush=True,
        )
        return None
    cache = _VersionCache(versions)
    try:
        newer = find_bpftool(cache, str(entry.file("bpftool")))
    except BpfBuildError as err:  # it does not run here: the skeleton step says the rest
        print(
            f"bpfbuild: bpftool {bpftool.version} drops {dropped[0].name}, and bookworm-backports' "
            f"bpftool does not run here: {err.message}",
            file=sys.stderr,
            flush=True,
        )
        return None
    finally:
        cache.save()
    if unreadable_sections([need.name for need in dropped], newer):
        return None
    if fetched_now:
        names = ", ".join(need.name for need in dropped)
        print(
            f"bpfbuild: bpftool {bpftool.version} drops {names}: skeletons are written with "
            f"{entry.meta.get('suite')}' bpftool {newer.version}, fetched into "
            f"{entry.path}",
            file=sys.stderr,
            flush=True,
        )
    return newer


SKELETON_LIBBPF = (1, 5)
"""The user-space libbpf the skeletons of bookworm-backports' bpftool 7.5 need: they set
the `link` of a struct_ops map's bpf_map_skeleton, which libbpf 1.5 added."""


def libbpf_for_skeletons(toolchains: list[Toolchain], project: Project) -> list[Toolchain]:
    """The toolchains, with libbpf built from Debian trixie's libbpf 1.5 source (fetched
    once into the user's cache) for the apps of the arches whose libbpf is older than
    the skeletons of the fetched bpftool need. Only when the project builds no libbpf of
    its own ([libbpf] source) and bpftool_for_sections chose bpftool 7.5."""
    first = toolchains[0] if toolchains else None
    if first is None or first.gen_bpftool is None or project.libbpf or not project.apps:
        return toolchains
    old = [t for t in toolchains if t.cc and _version(t.libbpf.version) < SKELETON_LIBBPF]
    if not old:
        return toolchains
    from .layout import state_dir
    from .libbpf_source import fetch_debian_libbpf, load_tree
    from .toolchain import with_libbpf_tree

    try:
        tree = load_tree(fetch_debian_libbpf("trixie"))
    except (BpfBuildError, OSError) as err:  # apt, the cache, a damaged source tree
        reason = err.message if isinstance(err, BpfBuildError) else str(err)
        raise ToolchainError(
            f"the skeletons of bpftool {first.gen_bpftool.version} need libbpf 1.5 for the "
            f"apps, and libbpf {old[0].libbpf.version} is installed: {reason}",
            hint="build libbpf 1.5 with the project ([libbpf] source, a git submodule), or "
            "name a bpftool whose skeletons your libbpf compiles in [toolchain] bpftool",
        ) from None
    return [
        with_libbpf_tree(t, tree, project.root, state_dir(project.root)) if t in old else t
        for t in toolchains
    ]


_SKIPPED = re.compile(
    r"^libbpf: elf: skipping (?:unrecognized data section\(\d+\) (\S+)"
    r"|relo section\(\d+\) \S+ for section\(\d+\) (\S+))",
    re.M,
)


def skipped_sections(stderr: str) -> list[str]:
    """The sections libbpf says it skipped in bpftool's output (`libbpf: elf: skipping
    unrecognized data section(13) .struct_ops.link`, and the relocations of one)."""
    return list(dict.fromkeys(a or b for a, b in _SKIPPED.findall(stderr)))


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
