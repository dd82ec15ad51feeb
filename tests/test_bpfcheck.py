"""The program check of a compiled BPF object: struct-read section headers agree with
pyelftools on real objects of both byte orders; a broken file is an error, not a crash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from bpfbuild.pipeline.bpfcheck import program_sections, require_programs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "verify"
SOURCE = """
#define SEC(name) __attribute__((section(name), used))
static __attribute__((noinline)) int helper(int x) { return x + 1; }
SEC("xdp") int first(void *ctx) { return helper(1); }
SEC("tracepoint/syscalls/sys_enter_execve") int second(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def _pyelftools_programs(path: Path) -> list[str]:
    with open(path, "rb") as stream:
        return [
            s.name
            for s in ELFFile(stream).iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"] and s.name != ".text"
        ]


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_agrees_with_pyelftools_for_both_byte_orders(tmp_path: Path, target: str) -> None:
    source = tmp_path / "two.bpf.c"
    source.write_text(SOURCE)
    objects = [tmp_path / "two.o"]
    subprocess.run(
        ["clang", "-g", "-O2", "-target", target, "-c", str(source), "-o", str(objects[0])],
        check=True,
    )
    for fixture in sorted(FIXTURES.glob("*.bpf.c"))[:3]:
        output = tmp_path / (fixture.stem + ".o")
        done = subprocess.run(
            [
                "clang",
                "-g",
                "-O2",
                "-target",
                target,
                "-I",
                str(FIXTURES),
                "-c",
                str(fixture),
                "-o",
                str(output),
            ],
            capture_output=True,
        )
        if done.returncode == 0:
            objects.append(output)
    for path in objects:
        assert program_sections(str(path)) == _pyelftools_programs(path), path
    assert program_sections(str(objects[0])) == ["xdp", "tracepoint/syscalls/sys_enter_execve"]


def test_no_program_and_broken_objects_fail_the_step(tmp_path: Path) -> None:
    source = tmp_path / "empty.bpf.c"
    source.write_text("int shared_value;\n")
    empty = tmp_path / "empty.o"
    subprocess.run(
        ["clang", "-O2", "-target", "bpfel", "-c", str(source), "-o", str(empty)], check=True
    )
    failed = require_programs(str(empty), "src/empty.bpf.c")
    assert failed is not None and "src/empty.bpf.c: no BPF program" in failed.get_msg()
    truncated = tmp_path / "truncated.o"
    truncated.write_bytes(empty.read_bytes()[:100])
    failed = require_programs(str(truncated), "src/t.bpf.c")
    assert failed is not None and "cannot read the compiled object" in failed.get_msg()
    assert require_programs(str(tmp_path / "missing.o"), "src/m.bpf.c") is not None


def test_a_section_past_the_end_of_the_file_is_a_broken_object(tmp_path: Path) -> None:
    """A section header whose data lies beyond the file (a damaged object) is refused as
    unreadable, by the program check and by the extern check of a linked object."""
    import struct

    from bpfbuild.pipeline.bpfcheck import unresolved_externs

    source = tmp_path / "p.bpf.c"
    source.write_text(SOURCE)
    good = tmp_path / "p.o"
    subprocess.run(
        ["clang", "-O2", "-target", "bpfel", "-c", str(source), "-o", str(good)], check=True
    )
    assert unresolved_externs(str(good)) == []
    data = bytearray(good.read_bytes())
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, _ = struct.unpack_from("<HHH", data, 58)
    last = shoff + (shnum - 1) * shentsize
    struct.pack_into("<Q", data, last + 24, len(data) * 2)  # its sh_offset, past the end
    damaged = tmp_path / "damaged.o"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="past the end"):
        unresolved_externs(str(damaged))
    failed = require_programs(str(damaged), "src/p.bpf.c")
    assert failed is not None and "cannot read the compiled object" in failed.get_msg()
