"""Every object and executable is checked to be of its arch (ELF machine, class, byte
order): a compiler for another arch is refused with a hint naming it, and its output is
never renamed into place."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, copy_project, partial_files, require_cross

from bpfbuild.arch import ARCHES, Arch, host_arch
from bpfbuild.elf import EM_BPF, machine_name
from bpfbuild.pipeline.elfcheck import (
    ElfExpectation,
    bpf_expectation,
    check_elf,
    native_expectation,
    parse_elf_header,
)
from bpfbuild.pipeline.layout import Layout

MACHINE_NUMBERS = {
    "EM_X86_64": 62,
    "EM_AARCH64": 183,
    "EM_ARM": 40,
    "EM_RISCV": 243,
    "EM_PPC64": 21,
    "EM_S390": 22,
    "EM_LOONGARCH": 258,
    "EM_BPF": 247,
}
"""e_machine values from the ELF specification, written out independently of pyelftools."""

CLANG_TARGET = {
    "x86_64": "x86_64-linux-gnu",
    "arm64": "aarch64-linux-gnu",
    "arm": "armv7a-linux-gnueabihf",
    "riscv64": "riscv64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "loongarch64": "loongarch64-linux-gnu",
}


def make_header(machine: str, elf_class: int, data: str) -> bytes:
    """The first 20 bytes of an ELF relocatable file."""
    order = "little" if data == "little" else "big"
    ident = b"\x7fELF" + bytes([1 if elf_class == 32 else 2, 1 if data == "little" else 2, 1])
    ident = ident.ljust(16, b"\0")
    return ident + (1).to_bytes(2, order) + MACHINE_NUMBERS[machine].to_bytes(2, order)


def test_every_arch_has_elf_facts() -> None:
    for arch in ARCHES.values():
        assert arch.elf_machine in MACHINE_NUMBERS, arch
        assert arch.elf_class in (32, 64) and arch.elf_data in ("little", "big"), arch
        assert arch.bpf_elf_data == {"bpfel": "little", "bpfeb": "big"}[arch.bpf_target]


def test_built_machines_are_named_as_pyelftools_names_them() -> None:
    from elftools.elf.enums import ENUM_E_MACHINE

    for arch in ARCHES.values():
        number = arch.elf_machine_number
        assert MACHINE_NUMBERS[arch.elf_machine] == number == ENUM_E_MACHINE[arch.elf_machine]
        assert machine_name(number) == arch.elf_machine
    assert MACHINE_NUMBERS["EM_BPF"] == EM_BPF == ENUM_E_MACHINE["EM_BPF"]
    assert machine_name(EM_BPF) == "EM_BPF"
    assert machine_name(ENUM_E_MACHINE["EM_MIPS"]) == "EM_MIPS"  # from pyelftools
    assert machine_name(0xFEDC) == "e_machine 65244"


@pytest.mark.parametrize("arch", ARCHES.values(), ids=list(ARCHES))
def test_header_of_each_arch_matches_only_that_arch(tmp_path: Path, arch: Arch) -> None:
    path = tmp_path / "out.o"
    path.write_bytes(make_header(arch.elf_machine, arch.elf_class, arch.elf_data) + bytes(44))
    header = parse_elf_header(path.read_bytes())
    assert (header.machine, header.elf_class, header.data) == (
        arch.elf_machine,
        arch.elf_class,
        arch.elf_data,
    )
    for other in ARCHES.values():
        message = check_elf(str(path), ElfExpectation.native(other, "fix it"), "out.o")
        if other == arch:
            assert message is None
        else:
            assert message == (
                f"out.o is {arch.name} ({arch.elf_machine}, {arch.elf_class}-bit, "
                f"{arch.elf_data}-endian), expected {other.name} ({other.elf_machine}, "
                f"{other.elf_class}-bit, {other.elf_data}-endian)\nhint: fix it"
            )
        # a user object is never a BPF object
        assert check_elf(str(path), ElfExpectation.bpf_object(other, "fix")) is not None


@pytest.mark.parametrize("arch", ARCHES.values(), ids=list(ARCHES))
def test_class_and_byte_order_are_checked(tmp_path: Path, arch: Arch) -> None:
    path = tmp_path / "out.o"
    flipped = "big" if arch.elf_data == "little" else "little"
    for header in (
        make_header(arch.elf_machine, 96 - arch.elf_class, arch.elf_data),
        make_header(arch.elf_machine, arch.elf_class, flipped),
    ):
        path.write_bytes(header)
        message = check_elf(str(path), ElfExpectation.native(arch, "h"), "out.o")
        assert message is not None and message.startswith("out.o is another arch ("), message
        assert f"expected {arch.name} ({arch.elf_machine}" in message


def test_not_an_elf_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"#!/bin/sh\necho not an ELF file at all\n")
    host = host_arch()
    assert check_elf(str(path), ElfExpectation.native(host, "h"), "out") == (
        f"out is not an ELF file, expected {host.name} "
        f"({host.elf_machine}, {host.elf_class}-bit, {host.elf_data}-endian)\nhint: h"
    )


def _clang_targets() -> str:
    clang = shutil.which("clang")
    if not clang:
        return ""
    return subprocess.run([clang, "-print-targets"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("arch", ARCHES.values(), ids=list(ARCHES))
def test_objects_compiled_by_clang_for_each_arch(tmp_path: Path, arch: Arch) -> None:
    """Real objects: -target bpfel/bpfeb for BPF, and clang -target for the arch where
    this clang has that backend (Debian 12's clang 14 has no loongarch64: that arch's
    native header is covered by the constructed headers above)."""
    targets = _clang_targets()
    llvm_name = {
        "x86_64": "x86-64",
        "arm64": "aarch64",
        "arm": "arm",
        "riscv64": "riscv64",
        "ppc64le": "ppc64le",
        "s390x": "systemz",
        "loongarch64": "loongarch64",
    }[arch.name]
    source = tmp_path / "x.c"
    source.write_text("int answer(void) { return 42; }\n")
    native, bpf = tmp_path / "native.o", tmp_path / "bpf.o"
    builds = [(arch.bpf_target, bpf)]
    if f" {llvm_name} " in targets:
        builds.append((CLANG_TARGET[arch.name], native))
    for target, output in builds:
        subprocess.run(
            ["clang", "-target", target, "-c", str(source), "-o", str(output)], check=True
        )
    assert check_elf(str(bpf), ElfExpectation.bpf_object(arch, "h")) is None
    assert check_elf(str(bpf), ElfExpectation.native(arch, "h")) is not None
    if native.exists():
        assert check_elf(str(native), ElfExpectation.native(arch, "h")) is None
        assert check_elf(str(native), ElfExpectation.bpf_object(arch, "h")) is not None


def test_hints_name_the_compiler_variable() -> None:
    host = host_arch()
    other = next(a for a in ARCHES.values() if a != host)
    assert "($CC) does not build for" in native_expectation(host, "/x/cc", True, {"CC": "cc"}).fix
    assert "set $CC to a C compiler" in native_expectation(host, "/x/cc", True, {}).fix
    cross = native_expectation(other, "/x/cc", False, {}).fix
    assert f"set $CC_{other.name} to a C compiler for {other.name}" in cross
    assert f"{other.gnu_triplet}-gcc" in cross
    assert "set $CLANG" in bpf_expectation(host, "/x/clang", {}).fix


# -- whole builds with a compiler for the wrong arch ---------------------------------

OTHER = ARCHES["arm64" if ARCH != "arm64" else "x86_64"]
"""An arch that is not the host's."""


def _patching_wrapper(tmp_path: Path, real: str, when: str) -> Path:
    """A compiler that runs `real`, then rewrites e_machine of the ELF it wrote (-o) to
    OTHER's: always available, unlike a cross compiler. `when`: on compiles (-c) or links."""
    wrapper = tmp_path / f"wrong-{Path(real).name}-{when}"
    wrapper.write_text(f"""#!{sys.executable}
import subprocess, sys
args = sys.argv[1:]
status = subprocess.call([{real!r}, *args])
is_compile = "-c" in args
if status == 0 and "-o" in args and is_compile == {when == "compile"!r}:
    out = args[args.index("-o") + 1]
    with open(out, "r+b") as f:
        if f.read(4) == b"\\x7fELF":
            f.seek(18)
            f.write(({MACHINE_NUMBERS[OTHER.elf_machine]}).to_bytes(2, "little"))
sys.exit(status)
""")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _assert_refused(run, shown: str, found: str, variable: str) -> None:
    assert run.returncode != 0, run.describe()
    assert "Traceback" not in run.output and "internal error" not in run.output, run.describe()
    assert re.search(
        rf"^{re.escape(shown)}\S* is {re.escape(found)}.*, expected ", run.output, re.M
    ), run.describe()
    assert "hint: " in run.output and f"set ${variable} to" in run.output, run.describe()


def test_cc_for_another_arch_is_refused_at_compile(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    cc = _patching_wrapper(tmp_path, shutil.which("gcc") or "cc", "compile")
    run = bpfbuild(root, "build", env={**os.environ, "CC": str(cc)})
    host = host_arch()
    shown = f"output/{ARCH}/user/src__alpha.c.o"
    _assert_refused(
        run, "output/" + ARCH + "/user/src__", f"{OTHER.name} ({OTHER.elf_machine}", "CC"
    )
    assert (
        f"expected {host.name} ({host.elf_machine}, {host.elf_class}-bit, {host.elf_data}-endian)"
    ) in run.output
    assert f"{cc} ($CC) does not build for {ARCH}" in run.output
    assert not list((root / "output" / ARCH / "user").glob("*.o")), run.describe()
    assert not (root / shown).exists()
    assert partial_files(root) == []


def test_cc_for_another_arch_is_refused_at_link(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    cc = _patching_wrapper(tmp_path, shutil.which("gcc") or "cc", "link")
    run = bpfbuild(root, "build", env={**os.environ, "CC": str(cc)})
    _assert_refused(run, f"output/{ARCH}/", f"{OTHER.name} ({OTHER.elf_machine}", "CC")
    assert "error: LD" in run.output, run.describe()
    for app in ("alpha", "gamma"):
        assert not Layout(root, ARCH).executable(app).exists(), run.describe()
    assert partial_files(root) == []


def test_clang_that_does_not_build_bpf_is_refused(tmp_path: Path) -> None:
    root = copy_project("multi", tmp_path)
    clang = _patching_wrapper(tmp_path, shutil.which("clang"), "compile")
    run = bpfbuild(root, "build", env={**os.environ, "CLANG": str(clang)})
    _assert_refused(run, f"output/{ARCH}/bpf/", f"{OTHER.name} ({OTHER.elf_machine}", "CLANG")
    assert "expected BPF (EM_BPF, 64-bit, little-endian)" in run.output, run.describe()
    assert not list((root / "output" / ARCH / "bpf").glob("*.bpf.o")), run.describe()
    assert partial_files(root) == []


def test_installed_cross_compiler_as_cc_is_refused(tmp_path: Path) -> None:
    """The case of the issue: CC=aarch64-linux-gnu-gcc bpfbuild build on x86_64."""
    cross = shutil.which(require_cross(OTHER))
    root = copy_project("multi", tmp_path)
    run = bpfbuild(root, "build", env={**os.environ, "CC": f"{OTHER.gnu_triplet}-gcc"})
    _assert_refused(run, f"output/{ARCH}/user/src__", f"{OTHER.name} ({OTHER.elf_machine}", "CC")
    assert f"{cross} ($CC) does not build for {ARCH}" in run.output
    assert not (root / "output" / ARCH / "alpha").exists()
    assert not list((root / "output" / ARCH / "user").glob("*.o"))
    assert partial_files(root) == []


def test_verify_runner_for_another_arch_is_refused(tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    cc = _patching_wrapper(tmp_path, shutil.which("gcc") or "cc", "link")
    run = bpfbuild(root, "verify", env={**os.environ, "CC": str(cc)})
    _assert_refused(
        run, f"output/{ARCH}/tools/bpfverify", f"{OTHER.name} ({OTHER.elf_machine}", "CC"
    )
    assert not Layout(root, ARCH).verifier_runner.exists(), run.describe()
    assert partial_files(root) == []


def test_cross_arch_outputs_are_checked(tmp_path: Path) -> None:
    """A cross build passes the check; the host's gcc as $CC_<arch> is refused by name."""
    require_cross(OTHER, libraries=True)
    root = copy_project("multi", tmp_path)
    header = subprocess.run(
        ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (root / "vmlinux_other.h").write_text(header)
    config = root / "bpfbuild.toml"
    config.write_text(
        config.read_text().replace(
            "[build]\n", f'[build]\narches = ["{ARCH}", "{OTHER.name}"]\n', 1
        )
        + f'\n[vmlinux]\n{OTHER.name} = "vmlinux_other.h"\n'
    )
    run = bpfbuild(root, "build")
    assert run.returncode == 0, run.describe()
    assert (
        check_elf(str(root / "output" / OTHER.name / "alpha"), ElfExpectation.native(OTHER, "h"))
        is None
    )
    for arch in (OTHER, host_arch()):
        assert (
            check_elf(
                str(Layout(root, arch.name).bpf_object("alpha")),
                ElfExpectation.bpf_object(arch, "h"),
            )
            is None
        )

    (root / "src" / "alpha.c").write_text((root / "src" / "alpha.c").read_text() + "\n/* edit */\n")
    refused = bpfbuild(root, "build", env={**os.environ, f"CC_{OTHER.name}": "gcc"})
    _assert_refused(
        refused,
        f"output/{OTHER.name}/user/src__",
        f"{ARCH} ({host_arch().elf_machine}",
        f"CC_{OTHER.name}",
    )
    assert f"($CC_{OTHER.name}) does not build for {OTHER.name}" in refused.output
    assert partial_files(root) == []
