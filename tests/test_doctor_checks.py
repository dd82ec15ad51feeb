"""doctor's kernel BTF check (readable, not only present) and tool version parsing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from buildutil import PROJECTS, require_kernel_btf, require_tool

from bpfbuild.doctor import run_doctor
from bpfbuild.kernels.host import KERNEL_BTF, kernel_btf_status
from bpfbuild.pipeline.toolchain import parse_version


def _bad_btf(tmp_path: Path, kind: str) -> str:
    """A path standing for kernel BTF that cannot be read as BTF."""
    path = tmp_path / "vmlinux"
    if kind == "directory":
        path.mkdir()
    elif kind == "bad magic":
        path.write_bytes(b"\x7fELF" + bytes(20))
    elif kind == "empty":
        path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize(
    "kind, shown",
    [
        ("directory", "unreadable (Is a directory)"),
        ("bad magic", "unreadable (not BTF: magic 7f45"),
        ("empty", "unreadable (0 bytes, too short for a BTF header)"),
        ("absent", "absent (set [vmlinux] in bpfbuild.toml)"),
    ],
)
def test_kernel_btf_status_reads_the_header(tmp_path: Path, kind: str, shown: str) -> None:
    readable, text = kernel_btf_status(_bad_btf(tmp_path, kind))
    assert not readable
    assert text.startswith(shown)


@pytest.mark.parametrize("magic", [b"\x9f\xeb", b"\xeb\x9f"])
def test_kernel_btf_status_accepts_both_byte_orders(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "btf"
    path.write_bytes(magic + b"\x01\x00" + bytes(20))
    assert kernel_btf_status(str(path)) == (True, str(path))


def test_running_kernel_btf_is_readable() -> None:
    require_kernel_btf()
    assert kernel_btf_status() == (True, KERNEL_BTF)


def test_doctor_fails_when_kernel_btf_is_unreadable(tmp_path: Path, capsys) -> None:
    # No project: the host arch's vmlinux.h would come from the kernel BTF.
    status = run_doctor(str(tmp_path), btf_path=_bad_btf(tmp_path, "directory"))
    out = capsys.readouterr().out
    assert status == 1, out
    assert "kernel BTF: unreadable (Is a directory)" in out
    assert "hint: vmlinux.h for" in out and "set [vmlinux] in bpfbuild.toml" in out
    assert "builds can work" not in out
    assert "builds cannot work" in out


def test_doctor_ignores_unreadable_btf_when_vmlinux_is_configured(tmp_path: Path, capsys) -> None:
    root = tmp_path / "proj"
    shutil.copytree(PROJECTS / "multi", root, ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    (root / "vmlinux.h").write_text("/* a ready header */\n")
    config = root / "bpfbuild.toml"
    from bpfbuild.arch import host_arch

    config.write_text(config.read_text() + f'\n[vmlinux]\n{host_arch().name} = "vmlinux.h"\n')
    status = run_doctor(str(root), btf_path=_bad_btf(tmp_path, "bad magic"))
    out = capsys.readouterr().out
    assert "kernel BTF: unreadable (not BTF" in out
    assert status == 0, out
    assert "doctor: builds can work" in out


@pytest.mark.parametrize(
    "text, version",
    [
        (
            "llvm-strip, compatible with GNU strip\nDebian LLVM version 14.0.6\n  Optimized build.\n",
            "14.0.6",
        ),
        (
            "gcc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n",
            "12.2.0",
        ),
        ("GNU strip (GNU Binutils for Debian) 2.40\nCopyright (C) 2023\n", "2.40"),
        ("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n", "14.0.6"),
        ("aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0\n", "12.2.0"),
        ("no numbers here\n", "unknown"),
    ],
)
def test_parse_version(text: str, version: str) -> None:
    assert parse_version(text) == version


def test_doctor_shows_llvm_strip_version(tmp_path: Path, capsys) -> None:
    require_tool("llvm-strip", "llvm")
    run_doctor(str(tmp_path))
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("llvm-strip:"))
    assert "(unknown)" not in line
    assert parse_version(line) != "unknown", line
