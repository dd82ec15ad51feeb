"""The arch table: names, uname spellings, BPF byte order and __TARGET_ARCH defines;
every per-arch table has every arch, and no arch is spelled outside arch.py."""

from __future__ import annotations

import ast
import platform
from pathlib import Path

import pytest

import bpfbuild
from bpfbuild import arch as arch_module
from bpfbuild.arch import ARCHES, bpf_target_flags, get_arch, host_arch
from bpfbuild.errors import ConfigError

# (name, __TARGET_ARCH_ suffix, clang -target, Debian triplet)
TABLE = [
    ("x86_64", "x86", "bpfel", "x86_64-linux-gnu"),
    ("arm64", "arm64", "bpfel", "aarch64-linux-gnu"),
    ("arm", "arm", "bpfel", "arm-linux-gnueabihf"),
    ("riscv64", "riscv", "bpfel", "riscv64-linux-gnu"),
    ("ppc64le", "powerpc", "bpfel", "powerpc64le-linux-gnu"),
    ("s390x", "s390", "bpfeb", "s390x-linux-gnu"),
    ("loongarch64", "loongarch", "bpfel", "loongarch64-linux-gnu"),
]


@pytest.mark.parametrize("name, target_arch, bpf_target, triplet", TABLE, ids=[t[0] for t in TABLE])
def test_arch_table(name: str, target_arch: str, bpf_target: str, triplet: str) -> None:
    arch = get_arch(name)
    assert (arch.name, arch.target_arch, arch.bpf_target, arch.gnu_triplet) == (
        name,
        target_arch,
        bpf_target,
        triplet,
    )


def test_table_has_no_other_arch() -> None:
    assert list(ARCHES) == [t[0] for t in TABLE]


@pytest.mark.parametrize(
    "machine, name",
    [
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
    ],
)
def test_uname_spellings(machine: str, name: str) -> None:
    assert get_arch(machine).name == name


def test_host_arch_matches_uname() -> None:
    assert platform.machine() in host_arch().machines


def test_host_arch_of_an_unknown_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "pdp11")
    with pytest.raises(ConfigError) as caught:
        host_arch()
    assert "pdp11" in caught.value.message
    assert "x86_64" in caught.value.hint


@pytest.mark.parametrize("name", ["sparc", "X86_64", "", "bpf"])
def test_unknown_arch_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_arch(name)
    assert caught.value.message == f"unknown arch '{name}'"
    assert caught.value.hint == "valid arches: " + ", ".join(ARCHES)


def per_arch_tables() -> dict[str, dict]:
    """Every module-level dict of arch.py keyed by arch names."""
    return {
        name: value
        for name, value in vars(arch_module).items()
        if isinstance(value, dict) and name != "ARCHES" and set(value) & set(ARCHES)
    }


def test_every_arch_has_an_entry_in_every_per_arch_table() -> None:
    tables = per_arch_tables()
    assert {"DEBIAN", "VM"} <= set(tables)
    for name, table in tables.items():
        assert list(table) == list(ARCHES), f"arch.{name} must have one entry per arch of ARCHES"
    for arch in ARCHES.values():
        assert arch.elf_machine.startswith("EM_") and arch.elf_machine_number > 0, arch
        assert arch.bpf_syscall > 0, arch
        assert arch.va_list_size is None or arch.va_list_size > 0, arch
    assert {a.name for a in ARCHES.values() if a.vm} == {"x86_64", "arm64"}


@pytest.mark.parametrize("name", list(ARCHES))
def test_bpf_target_flags(name: str) -> None:
    arch = get_arch(name)
    flags = bpf_target_flags(arch)
    assert flags == ["-target", arch.bpf_target, f"-D__TARGET_ARCH_{arch.target_arch}"]


def arch_spellings() -> set[str]:
    """Every way the table spells an arch: bpfbuild's name, `uname -m`, dpkg's."""
    spellings: set[str] = set()
    for arch in ARCHES.values():
        spellings |= {arch.name, *arch.machines, arch.debian_arch}
    return spellings


def test_arch_facts_live_in_arch_py() -> None:
    """No module of bpfbuild but arch.py spells an arch (a string that is an arch's
    name, `uname -m` or Debian name): a table or test keyed by one elsewhere is a
    second home for an arch fact. Put it on bpfbuild.arch.Arch, or in a table of
    arch.py keyed by arch name (test_every_arch_has_an_entry_in_every_per_arch_table
    then checks that every arch has its entry)."""
    package = Path(bpfbuild.__file__).parent
    spellings = arch_spellings()
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "arch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in spellings:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}: {node.value!r}")
    assert not found, "arch facts outside bpfbuild/arch.py (move them there):\n" + "\n".join(found)
