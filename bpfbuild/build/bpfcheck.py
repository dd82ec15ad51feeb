"""Checks on a compiled BPF object before it is linked: it must hold a program."""

from __future__ import annotations

from doit.exceptions import TaskFailed


def program_sections(path: str) -> list[str]:
    """Names of the sections of a BPF object that hold a program: executable and not
    empty; `.text` holds subprograms (called functions), which load with no program."""
    # Imported here: a no-op build compiles nothing and need not import pyelftools.
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as stream:
        return [section.name for section in ELFFile(stream).iter_sections()
                if section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and section["sh_size"]
                and section.name != ".text"]


def require_programs(compiled: str, source: str) -> TaskFailed | None:
    """doit action: fail, naming the source, when its object holds no program."""
    from elftools.common.exceptions import ELFError

    try:
        if program_sections(compiled):
            return None
    except (OSError, ELFError) as err:
        return TaskFailed(f"{source}: cannot read the compiled object {compiled}: {err}")
    return TaskFailed(
        f"{source}: no BPF program (no non-empty SEC(\"...\") function)\n"
        "hint: add a program: a function marked SEC(\"tracepoint/...\"), SEC(\"xdp\"), ...; "
        "a file of shared code is a header (.h) included by the .bpf.c that uses it")
