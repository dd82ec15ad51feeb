"""The arch table: names, uname spellings, BPF byte order and __TARGET_ARCH defines."""

from __future__ import annotations

import platform

import pytest

from bpfbuild.arch import ARCHES, get_arch, host_arch
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
