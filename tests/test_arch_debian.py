"""What an arch changes beyond the compile: Debian names, multiarch folders, cross
tools, qemu and kernel packages, and `bpfbuild doctor --arch` built on them."""

from __future__ import annotations

import pytest
from buildutil import REPO, bpfbuild, copy_project, require_host, skip_when_unreachable

from bpfbuild.arch import ARCHES, DEBIAN, get_arch, host_arch
from bpfbuild.doctor import cross_checks, install_commands
from bpfbuild.kernels import get_kernel

# name, dpkg arch, qemu-user, qemu-system, kernel packages (preferred first)
TABLE = [
    (
        "x86_64",
        "amd64",
        "qemu-x86_64-static",
        "qemu-system-x86_64",
        ("linux-image-cloud-amd64", "linux-image-amd64"),
    ),
    (
        "arm64",
        "arm64",
        "qemu-aarch64-static",
        "qemu-system-aarch64",
        ("linux-image-cloud-arm64", "linux-image-arm64"),
    ),
    ("arm", "armhf", "qemu-arm-static", "qemu-system-arm", ("linux-image-armmp",)),
    ("riscv64", "riscv64", "qemu-riscv64-static", "qemu-system-riscv64", ("linux-image-riscv64",)),
    (
        "ppc64le",
        "ppc64el",
        "qemu-ppc64le-static",
        "qemu-system-ppc64",
        ("linux-image-powerpc64le",),
    ),
    ("s390x", "s390x", "qemu-s390x-static", "qemu-system-s390x", ("linux-image-s390x",)),
    (
        "loongarch64",
        "loong64",
        "qemu-loongarch64-static",
        "qemu-system-loongarch64",
        ("linux-image-loong64",),
    ),
]


def test_every_arch_has_debian_facts() -> None:
    assert list(DEBIAN) == list(ARCHES) == [row[0] for row in TABLE]


@pytest.mark.parametrize(
    "name, debian_arch, qemu_user, qemu_system, kernels", TABLE, ids=[row[0] for row in TABLE]
)
def test_debian_facts(name, debian_arch, qemu_user, qemu_system, kernels) -> None:
    arch = get_arch(name)
    assert (arch.debian_arch, arch.qemu_user, arch.qemu_system) == (
        debian_arch,
        qemu_user,
        qemu_system,
    )
    assert arch.kernel_packages == kernels
    triplet = arch.gnu_triplet
    assert arch.multiarch_include_dir == f"/usr/include/{triplet}"
    assert arch.pkg_config_libdir == f"/usr/lib/{triplet}/pkgconfig:/usr/share/pkgconfig"
    assert (arch.cross_cc, arch.cross_strip) == (f"{triplet}-gcc", f"{triplet}-strip")
    assert f"libbpf-dev:{debian_arch}" in arch.cross_packages
    assert f"linux-libc-dev:{debian_arch}" in arch.bpf_packages
    if arch != host_arch():
        assert arch.user_space_packages[:3] == (
            f"gcc-{triplet}",
            f"libc6-dev-{debian_arch}-cross",
            f"binutils-{triplet}",
        )
        assert "qemu-user-static" in arch.cross_packages


def test_arm64_packages_are_the_measured_ones() -> None:
    require_host("x86_64", "the measured list is for an amd64 host")
    assert set(get_arch("arm64").cross_packages) == {
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
        "binutils-aarch64-linux-gnu",
        "libbpf-dev:arm64",
        "libelf-dev:arm64",
        "zlib1g-dev:arm64",
        "libzstd-dev:arm64",
        "linux-libc-dev:arm64",
        "qemu-user-static",
    }


def test_install_commands_add_the_dpkg_arch_first() -> None:
    s390x = get_arch("s390x")
    if s390x == host_arch():
        pytest.skip("s390x is the host")
    commands = install_commands(s390x, ["libbpf-dev:s390x"])
    assert commands[-2:] == ["apt-get update", "apt-get install -y libbpf-dev:s390x"]
    assert len(commands) == 2 or commands[0] == "dpkg --add-architecture s390x"


def test_doctor_arch_names_what_is_missing_and_the_command() -> None:
    """On this machine: arm64 is set up (scripts/setup --arch arm64), s390x is not."""
    s390x = get_arch("s390x")
    missing = [
        package for _, present, package, required in cross_checks(s390x) if required and not present
    ]
    run = bpfbuild(REPO, "doctor", "--arch", "s390x")
    for what, _present, _package, _required in cross_checks(s390x):
        assert f"s390x:      {what}: " in run.stdout
    if not missing:
        pytest.skip("the s390x cross toolchain is installed here")
    assert run.returncode == 1
    assert "apt-get install -y " + " ".join(missing) in run.stdout
    assert "scripts/setup --arch s390x" in run.stdout


def test_doctor_unknown_arch_is_one_error() -> None:
    run = bpfbuild(REPO, "doctor", "--arch", "sparc")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "error: unknown arch 'sparc'",
        "hint: valid arches: " + ", ".join(ARCHES),
    ]


def test_doctor_bpf_only_cross_arch_needs_no_toolchain(tmp_path) -> None:
    with skip_when_unreachable("debian:6.12 for s390x"):
        get_kernel("debian:6.12", get_arch("s390x"))
    root = copy_project("bpfonly", tmp_path)
    with open(root / "bpfbuild.toml", "a") as config:
        config.write('\n[build]\narches = ["s390x"]\n\n[vmlinux]\ns390x = "debian:6.12"\n')
    run = bpfbuild(root, "doctor")
    assert "s390x:      BPF objects only: no cross toolchain needed" in run.stdout
    assert "MISSING" not in run.stdout
