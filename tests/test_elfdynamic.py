"""DT_NEEDED read from the program headers (bpfbuild/pipeline/elfdynamic.py) gives what
pyelftools reads from the section headers, on executables built here: static, dynamic,
and a cross-compiled arm64 one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from buildutil import require_tool
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.elfdynamic import NotElf, needed_libraries

HELLO = '#include <stdio.h>\n#include <math.h>\nint main(int c, char **v) { printf("%f\\n", sqrt(c)); return 0; }\n'


def pyelftools_needed(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [
            tag.needed
            for section in ELFFile(f).iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]


@pytest.mark.parametrize(
    ("compiler", "flags"),
    [
        ("cc", ["-static", "-lm"]),
        ("cc", ["-lm"]),
        ("cc", ["-static-pie", "-lm"]),
        ("cc", ["-shared", "-fPIC", "-lm"]),
        ("aarch64-linux-gnu-gcc", ["-lm"]),
    ],
)
def test_same_as_pyelftools(tmp_path: Path, compiler: str, flags: list[str]) -> None:
    require_tool(compiler)
    (tmp_path / "hello.c").write_text(HELLO)
    done = subprocess.run(
        [compiler, "-o", "hello", "hello.c", *flags], cwd=tmp_path, capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"{compiler} {' '.join(flags)} cannot link here: {done.stderr.strip()[-200:]}")
    expected = pyelftools_needed(tmp_path / "hello")
    assert needed_libraries(str(tmp_path / "hello")) == expected
    assert ("-static" in flags or "-static-pie" in flags) == (expected == [])


def test_system_libraries_agree() -> None:
    """Every ELF file among the first shared libraries of the system."""
    libraries = sorted(
        p
        for p in Path(host_arch().multiarch_lib_dir).glob("lib*.so.*")
        if p.is_file() and not p.is_symlink()
    )[:40]
    if not libraries:
        pytest.skip(f"no shared libraries in {host_arch().multiarch_lib_dir}")
    for library in libraries:
        assert needed_libraries(str(library)) == pyelftools_needed(library), library


def test_not_an_elf_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(NotElf):
        needed_libraries(str(script))
