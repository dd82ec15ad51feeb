"""Cross builds: examples/netwatch and every template for x86_64 and arm64 in one
build, with arm64's vmlinux.h from a Debian kernel; arm64 executables are static
aarch64 ELF files that run under qemu-user; s390x BPF objects come out big-endian
with no cross toolchain; switching arm64's kernel rebuilds arm64 only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import (
    REPO,
    STRUCT_OPS_TEMPLATES,
    bpfbuild,
    build,
    copy_project,
    needs_host,
    require_cross,
    require_qemu_user,
    skip_when_unreachable,
)
from elftools.elf.elffile import ELFFile

from bpfbuild.arch import get_arch
from bpfbuild.kernels import get_kernel
from bpfbuild.kernels.abi import parse_btf_header
from bpfbuild.scaffold import available_templates

pytestmark = needs_host("x86_64", "the cross tests build arm64 from an x86_64 host")
ARM64 = get_arch("arm64")
TEMPLATES = [t.name for t in available_templates() if t.name not in STRUCT_OPS_TEMPLATES]
"""Built here against debian:6.1's arm64 BTF; sched_ext's vmlinux.h must come from a kernel
that has it: tests/test_template_sched_ext.py builds it for both arches."""


def _kernel_or_skip(spec: str, arch: str) -> None:
    with skip_when_unreachable(f"{spec} for {arch}"):
        get_kernel(spec, get_arch(arch))


def _cross_config(root: Path, vmlinux: dict[str, str], arches: list[str]) -> None:
    """Set [build] arches and [vmlinux] in a project's bpfbuild.toml (once)."""
    config = root / "bpfbuild.toml"
    text = config.read_text()
    line = "arches = [" + ", ".join(f'"{a}"' for a in arches) + "]\n"
    text = (
        text.replace("[build]\n", "[build]\n" + line)
        if "[build]\n" in text
        else text + "\n[build]\n" + line
    )
    text += "\n[vmlinux]\n" + "".join(f'{a} = "{v}"\n' for a, v in vmlinux.items())
    config.write_text(text)


@pytest.fixture(scope="module")
def cross_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """netwatch and one project per template, each built once for x86_64 and arm64."""
    require_cross(ARM64, libraries=True)
    require_qemu_user(ARM64)
    _kernel_or_skip("debian:6.1", "arm64")
    base = tmp_path_factory.mktemp("cross")
    roots = {"netwatch": base / "netwatch"}
    shutil.copytree(
        REPO / "examples" / "netwatch",
        roots["netwatch"],
        ignore=shutil.ignore_patterns("output", ".bpfbuild"),
    )
    for template in TEMPLATES:
        root = base / template
        run = bpfbuild(base, "init", str(root), "--template", template, "--name", f"t_{template}")
        assert run.returncode == 0, run.describe()
        roots[template] = root
    for root in roots.values():
        _cross_config(root, {"arm64": "debian:6.1"}, ["x86_64", "arm64"])
        build(root, "-j2")
    return roots


def _executables(root: Path, arch: str) -> list[Path]:
    folder = root / "output" / arch
    return sorted(p for p in folder.iterdir() if p.is_file() and os.access(p, os.X_OK))


@pytest.mark.parametrize("project", ["netwatch", *TEMPLATES])
def test_arm64_executables_are_static_aarch64_and_run(
    cross_projects: dict[str, Path], project: str
) -> None:
    root = cross_projects[project]
    arm64, x86 = _executables(root, "arm64"), _executables(root, "x86_64")
    assert arm64 and [p.name for p in arm64] == [p.name for p in x86]
    for executable in arm64:
        with open(executable, "rb") as f:
            elf = ELFFile(f)
            assert elf["e_machine"] == "EM_AARCH64" and elf.elfclass == 64
            assert not any(s.header.p_type == "PT_INTERP" for s in elf.iter_segments())
            dynamic = elf.get_section_by_name(".dynamic")
            needed = (
                [t for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"] if dynamic else []
            )
            assert needed == []
        # --help under qemu-user: the program starts, prints its usage and exits 0;
        # bpf() is never reached.
        done = subprocess.run(
            [ARM64.qemu_user, str(executable), "--help"], capture_output=True, text=True, timeout=60
        )
        output = done.stdout + done.stderr
        assert "Exec format error" not in output and "qemu:" not in output, output
        assert done.returncode == 0, output
        assert "usage" in done.stdout.lower(), output
    objects = sorted((root / "output" / "arm64" / "bpf").glob("*.bpf.o"))
    assert objects
    for obj in objects:
        with open(obj, "rb") as f:
            elf = ELFFile(f)
            assert elf["e_machine"] == "EM_BPF" and elf.little_endian


def test_arm64_loaders_say_there_is_no_bpf_syscall_under_qemu_user(
    cross_projects: dict[str, Path],
) -> None:
    """qemu-user implements no bpf(): a loader says so (ENOSYS), not "run as root"."""
    for name, args in (("tracepoint", ["-d", "1"]), ("netwatch", [])):
        root = cross_projects[name]
        executable = next(
            p for p in _executables(root, "arm64") if name != "netwatch" or p.name == "syscount"
        )
        done = subprocess.run(
            [ARM64.qemu_user, str(executable), *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0, done.stdout + done.stderr
        assert "Function not implemented (this system has no bpf() syscall" in done.stderr, (
            done.stderr
        )
        assert "root" not in done.stderr.splitlines()[-1], done.stderr


def test_arm64_provenance_recorded_and_listed(cross_projects: dict[str, Path]) -> None:
    root = cross_projects["netwatch"]
    kernel = get_kernel("debian:6.1", ARM64)
    record = json.loads((root / "output/arm64/include/vmlinux.h.source.json").read_text())
    assert record == kernel.provenance()
    assert not (root / "output/x86_64/include/vmlinux.h.source.json").exists()
    assert "struct user_pt_regs {" in (root / "output/arm64/include/vmlinux.h").read_text()
    run = bpfbuild(root, "list")
    assert run.returncode == 0, run.describe()
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("arch arm64:"))
    for fact in (kernel.package, kernel.version, kernel.deb_sha256):
        assert fact in line


def _steps(stdout: str) -> list[tuple[str, str, str]]:
    """(kind, what, arch) of each kbuild line of a multi-arch build."""
    found = re.findall(r"^  ([A-Z]+) +(\S+) \((\w+)\)$", stdout, re.M)
    return [step for step in found if step[0] != "BIN"]


def test_changing_arm64_kernel_rebuilds_arm64_only(cross_projects: dict[str, Path]) -> None:
    _kernel_or_skip("debian:6.12", "arm64")
    root = cross_projects["netwatch"]
    assert _steps(build(root).stdout) == []
    config = root / "bpfbuild.toml"
    config.write_text(
        config.read_text().replace('arm64 = "debian:6.1"\n', 'arm64 = "debian:6.12"\n')
    )
    steps = _steps(build(root).stdout)
    assert {arch for _, _, arch in steps} == {"arm64"}
    # Exactly the objects that read vmlinux.h: pktcount uses uapi headers only.
    assert {what for kind, what, _ in steps if kind == "BPF"} == {"src/syscount.bpf.c"}
    assert ("GEN", "output/arm64/include/vmlinux.h", "arm64") in steps
    record = json.loads((root / "output/arm64/include/vmlinux.h.source.json").read_text())
    assert record["spec"] == "debian:6.12" and record["package"].startswith("linux-image-6.12")
    assert _steps(build(root).stdout) == []


def test_s390x_bpf_only_project_is_big_endian(tmp_path: Path) -> None:
    """No s390x compiler or libraries here: a project without apps needs none."""
    _kernel_or_skip("debian:6.12", "s390x")
    root = copy_project("bpfonly", tmp_path)
    _cross_config(root, {"s390x": "debian:6.12"}, ["s390x"])
    # A compiler that does not exist: the build must not look for one at all.
    build(
        root, env=dict(os.environ, CC_s390x="/nonexistent/s390x-cc", PKG_CONFIG_PATH="/nonexistent")
    )
    with open(root / "output/s390x/bpf/probe.bpf.o", "rb") as f:
        elf = ELFFile(f)
        assert elf["e_ident"]["EI_DATA"] == "ELFDATA2MSB"  # bpfeb
        assert elf["e_machine"] == "EM_BPF"
        assert elf.get_section_by_name(".BTF") is not None
    assert "struct user_pt_regs {" not in (root / "output/s390x/include/vmlinux.h").read_text()
    btf = get_kernel("debian:6.12", get_arch("s390x")).btf.read_bytes()
    header = parse_btf_header(btf)
    assert header is not None and header.big_endian and header.size == len(btf)


def test_cross_arch_without_vmlinux_suggests_a_debian_kernel(tmp_path: Path) -> None:
    root = copy_project("bpfonly", tmp_path)
    (root / "bpfbuild.toml").write_text('[build]\narches = ["arm64"]\n')
    run = bpfbuild(root, "build")
    assert run.returncode == 1
    assert "error: " in run.stderr and "no vmlinux source for arch 'arm64'" in run.stderr
    assert 'arm64 = "debian:6.12"' in run.stderr
    assert "Traceback" not in run.output
