"""Debian kernels: BTF cut out of real kernel images (arm64 uncompressed, x86 lz4 and
zstd), cached with provenance, reused with no apt; bad images and specs are clean errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import bpfbuild, copy_project, require_tool, skip_when_unreachable

from bpfbuild.arch import get_arch, host_arch
from bpfbuild.errors import BpfBuildError
from bpfbuild.kernels import (
    Kernel,
    KernelError,
    KernelImageError,
    extract_btf,
    get_kernel,
    is_kernel_spec,
)
from bpfbuild.kernels.abi import parse_btf_header
from bpfbuild.kernels.apt import DebianVersion
from bpfbuild.kernels.image import check_btf_file

KERNELS = {  # id: (spec, arch, what the image is)
    "arm64-6.1": ("debian:6.1", "arm64", "uncompressed"),
    "x86_64-6.1": ("debian:6.1", "x86_64", "lz4"),
    "x86_64-6.12": ("debian:6.12", "x86_64", "zstd"),
}
PAYLOAD_MAGIC = {"lz4": b"\x02\x21\x4c\x18", "zstd": b"\x28\xb5\x2f\xfd"}


@pytest.fixture(scope="session")
def kernels() -> dict[str, Kernel]:
    """The real Debian kernels, downloaded once into the user's cache (scripts/setup
    --arch arm64 fetches the arm64 ones ahead)."""
    found = {}
    for name, (spec, arch, _) in KERNELS.items():
        with skip_when_unreachable(f"{spec} for {arch}"):
            found[name] = get_kernel(spec, get_arch(arch))
    return found


@pytest.mark.parametrize("name", list(KERNELS))
def test_btf_cut_out_of_a_real_image(kernels: dict[str, Kernel], name: str) -> None:
    kernel = kernels[name]
    spec, arch, compression = KERNELS[name]
    image = kernel.image.read_bytes()
    if compression == "uncompressed":
        assert image[0x38:0x3C] == b"ARMd"  # arm64 Image header magic
    else:
        assert image[0x202:0x206] == b"HdrS"  # an x86 bzImage...
        setup = (image[0x1F1] + 1) * 512
        offset = int.from_bytes(image[0x248:0x24C], "little")
        assert image[setup + offset :].startswith(
            PAYLOAD_MAGIC[compression]
        )  # ...with that payload
    btf = kernel.btf.read_bytes()
    header = parse_btf_header(btf)
    assert header is not None and not header.big_endian
    assert header.size == len(btf) and len(btf) > 2_000_000
    assert extract_btf(kernel.image) == btf
    assert kernel.release in kernel.package and kernel.image.name.endswith(kernel.release)
    provenance = kernel.provenance()
    assert (provenance["spec"], provenance["arch"]) == (spec, arch)
    assert len(provenance["deb_sha256"]) == 64 and provenance["version"][0].isdigit()
    assert provenance["package"].startswith(f"linux-image-{spec[len('debian:') :]}")
    assert "cloud" in provenance["package"]  # the cloud flavour is preferred


def test_arm64_vmlinux_h_has_arm64_registers(kernels: dict[str, Kernel]) -> None:
    def header(kernel: Kernel) -> str:
        return subprocess.run(
            ["bpftool", "btf", "dump", "file", str(kernel.btf), "format", "c"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    arm64, x86 = header(kernels["arm64-6.1"]), header(kernels["x86_64-6.1"])
    assert "struct user_pt_regs {" in arm64 and "struct user_pt_regs {" not in x86
    assert "struct pt_regs {" in x86


def test_second_use_runs_no_apt(kernels: dict[str, Kernel], tmp_path: Path) -> None:
    """From the cache with no apt-get on PATH and an unreachable mirror."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("bpftool") or "/usr/sbin/bpftool", bin_dir / "bpftool")
    env = dict(os.environ, PATH=str(bin_dir), BPFBUILD_DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    code = (
        "from bpfbuild.arch import get_arch; from bpfbuild.kernels import get_kernel; "
        "print(get_kernel('debian:6.1', get_arch('arm64')).btf)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(kernels["arm64-6.1"].btf)
    assert done.stderr == ""  # no progress line: nothing was fetched


def test_extracted_btf_is_checked_with_the_chosen_bpftool(
    kernels: dict[str, Kernel], tmp_path: Path
) -> None:
    """get_kernel hands the project's bpftool ([toolchain] bpftool, $BPFTOOL) to the
    check of the BTF it cuts out: that one runs, not bpftool from PATH."""
    real = require_tool("bpftool")
    btf = tmp_path / "vmlinux.btf"
    shutil.copyfile(kernels["arm64-6.1"].btf, btf)
    ran = tmp_path / "ran"
    chosen = tmp_path / "project-bpftool"
    chosen.write_text(f'#!/bin/sh\necho "$@" >> {ran}\nexec {real} "$@"\n')
    chosen.chmod(0o755)
    check_btf_file(btf, str(chosen))
    assert ran.read_text() == f"btf dump file {btf} format raw\n"
    with pytest.raises(KernelImageError, match="cannot run .*/missing-bpftool") as caught:
        check_btf_file(btf, str(tmp_path / "missing-bpftool"))
    assert "[toolchain] bpftool" in (caught.value.hint or "")


def test_offline_is_one_error_with_the_sources_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BPFBUILD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BPFBUILD_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    with pytest.raises(KernelError) as caught:
        get_kernel("debian:5.10", get_arch("arm64"))
    assert caught.value.message.startswith("cannot resolve debian:5.10 for arm64")
    assert "http://127.0.0.1:9/debian bullseye main" in caught.value.hint


@pytest.mark.parametrize(
    "value, expected",
    [
        ("debian:6.1", True),
        ("debian:6.12", True),
        ("linux-image-6.1.0-50-cloud-arm64", True),
        ("btf/vmlinux-arm64", False),
        ("include/vmlinux.h", False),
        ("/sys/kernel/btf/vmlinux", False),
    ],
)
def test_is_kernel_spec(value: str, expected: bool) -> None:
    assert is_kernel_spec(value) is expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("debian:7", "unknown Debian kernel series 'debian:7'"),
        ("linux-image-../../x", "invalid kernel package name"),
        ("linux-image-6.1=bad version", "invalid kernel package name"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(KernelError, match=message) as caught:
        get_kernel(spec, get_arch("arm64"))
    assert "debian:6.12" in caught.value.hint


def test_truncated_and_corrupt_images(kernels: dict[str, Kernel], tmp_path: Path) -> None:
    x86 = kernels["x86_64-6.1"].image.read_bytes()
    truncated = tmp_path / "truncated"
    truncated.write_bytes(x86[: len(x86) // 2])
    with pytest.raises(KernelImageError, match="truncated x86 kernel image") as caught:
        extract_btf(truncated)
    assert "bpfbuild cache clean" in caught.value.hint

    arm64 = bytearray(kernels["arm64-6.1"].image.read_bytes())
    btf = kernels["arm64-6.1"].btf.read_bytes()
    at = bytes(arm64).find(btf[:64])
    arm64[at + len(btf) - 100 : at + len(btf)] = b"\xff" * 100  # the string section's end
    corrupt = tmp_path / "corrupt"
    corrupt.write_bytes(bytes(arm64))
    with pytest.raises(KernelImageError, match="no BTF found"):
        extract_btf(corrupt)

    cut = tmp_path / "cut"
    cut.write_bytes(bytes(arm64[: at + len(btf) // 2]))
    with pytest.raises(KernelImageError, match="no BTF found"):
        extract_btf(cut)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"MZ")
    with pytest.raises(KernelImageError, match="not a kernel image"):
        extract_btf(tiny)


def test_exact_package_pin_reuses_the_cached_kernel(
    kernels: dict[str, Kernel], capfd: pytest.CaptureFixture
) -> None:
    """Entries are keyed by package, version and arch: naming the same kernel by its
    package and version resolves again, but downloads nothing."""
    by_series = kernels["arm64-6.1"]
    pinned = get_kernel(f"{by_series.package}={by_series.version}", get_arch("arm64"))
    assert (pinned.btf, pinned.image, pinned.deb_sha256) == (
        by_series.btf,
        by_series.image,
        by_series.deb_sha256,
    )
    assert pinned.provenance()["spec"] == f"{by_series.package}={by_series.version}"
    assert "downloading" not in capfd.readouterr().err


def test_offline_build_is_an_error_and_a_hint(tmp_path: Path) -> None:
    root = copy_project("bpfonly", tmp_path)
    with open(root / "bpfbuild.toml", "a") as config:
        config.write('\n[build]\narches = ["arm64"]\n\n[vmlinux]\narm64 = "debian:5.10"\n')
    env = dict(
        os.environ,
        BPFBUILD_CACHE_DIR=str(tmp_path / "cache"),
        BPFBUILD_DEBIAN_MIRROR="http://127.0.0.1:9/debian",
    )
    run = bpfbuild(root, "build", env=env)
    assert run.returncode == 1, run.describe()
    lines = [ln for ln in run.stderr.splitlines() if not ln.startswith("bpfbuild: resolving")]
    assert len(lines) == 2, run.describe()
    assert lines[0].startswith(
        f'error: {root}/bpfbuild.toml: [vmlinux] arm64 = "debian:5.10": '
        "cannot resolve debian:5.10 for arm64"
    )
    assert lines[1].startswith("hint: ") and "http://127.0.0.1:9/debian bullseye main" in lines[1]
    assert not (root / "output").exists()


# --- series in every suite, backports included (debian:7.3) --------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("7.3.4-1~bpo13+1", "7.3.4-1"),  # a backport sorts before the release
        ("7.3.4-1", "7.3.10-1"),  # numbers, not text
        ("6.12.117-1", "7.3.4-1~bpo13+1"),
        ("1.0~rc1", "1.0"),
        ("1.0", "1.0a"),
        ("1.0-1", "1:0.1-1"),  # the epoch first
    ],
)
def test_debian_versions_order_as_dpkg(older: str, newer: str) -> None:
    assert DebianVersion(older) < DebianVersion(newer)
    assert sorted([DebianVersion(newer), DebianVersion(older)])[0].text == older
    if shutil.which("dpkg"):
        assert subprocess.run(["dpkg", "--compare-versions", older, "lt", newer]).returncode == 0


@pytest.fixture(scope="session")
def sched_ext_kernels() -> dict[str, Kernel]:
    """debian:7.3 (trixie-backports, sched_ext built in) for both VM arches; scripts/setup
    fetches them, so this skips only when Debian cannot be reached at all."""
    found = {}
    for arch in ("x86_64", "arm64"):
        try:
            found[arch] = get_kernel("debian:7.3", get_arch(arch))
        except BpfBuildError as err:
            pytest.skip(f"cannot fetch debian:7.3 for {arch}: {err.message}")
    return found


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_debian_7_3_comes_from_trixie_backports(
    sched_ext_kernels: dict[str, Kernel], arch: str
) -> None:
    kernel = sched_ext_kernels[arch]
    debian_arch = get_arch(arch).debian_arch
    assert kernel.suite == "trixie-backports"
    assert kernel.package == f"linux-image-{kernel.release}"
    assert kernel.release.startswith("7.3.") and kernel.release.endswith(f"cloud-{debian_arch}")
    assert kernel.version.startswith("7.3.") and "~bpo13" in kernel.version
    # 7.x packaging: the image is in linux-binary-<release>, not the image package.
    assert kernel.image.name == f"vmlinuz-{kernel.release}"
    btf = kernel.btf.read_bytes()
    assert b"\0sched_ext_ops\0" in btf and b"\0bpf_struct_ops_sched_ext_ops\0" in btf


def test_a_backports_package_by_its_exact_name(
    sched_ext_kernels: dict[str, Kernel], capfd: pytest.CaptureFixture
) -> None:
    by_series = sched_ext_kernels["x86_64"]
    exact = get_kernel(by_series.package, get_arch("x86_64"))
    assert (exact.suite, exact.version, exact.btf) == (
        "trixie-backports",
        by_series.version,
        by_series.btf,
    )
    assert "downloading" not in capfd.readouterr().err  # the same kernel, already cached


def test_a_series_takes_its_newest_image_not_the_suites_metapackage() -> None:
    """trixie-backports carries several series; its metapackage follows the newest. A
    series resolves to the newest image of that series (checked on 7.2, older there)."""
    from bpfbuild.kernels.apt import Apt, AptError
    from bpfbuild.kernels.debian import _series_image

    apt = Apt(["trixie-backports"], "amd64")
    try:
        names = apt.package_names("linux-image-7.2.")
    except AptError as err:
        pytest.skip(f"cannot read trixie-backports: {err.message}")
    if not names:
        pytest.skip("trixie-backports carries no 7.2 kernel any more")
    found = _series_image(apt, "7.2", "cloud-amd64")
    assert found is not None
    package, version = found
    assert package.startswith("linux-image-7.2.") and package.endswith("-cloud-amd64")
    versions = [
        record.version
        for name in names
        if name.endswith("-cloud-amd64") and (record := apt.show(name))
    ]
    assert DebianVersion(version) == max(map(DebianVersion, versions))
    meta = apt.show("linux-image-cloud-amd64")
    assert meta is not None and not meta.version.startswith("7.2.")  # the suite moved on


def test_list_kernels_reads_the_cache_and_fetches_nothing(
    sched_ext_kernels: dict[str, Kernel], tmp_path: Path
) -> None:
    root = copy_project("bpfonly", tmp_path)
    with open(root / "bpfbuild.toml", "a") as config:
        config.write(
            '\n[build]\narches = ["x86_64", "arm64"]\n\n[vmlinux]\n'
            'x86_64 = "debian:7.3"\narm64 = "debian:7.3"\n\n'
            '[verify]\nkernels = ["debian:7.3", "host"]\n'
        )
    run = bpfbuild(root, "verify", "--list-kernels")
    assert run.returncode == 0, run.describe()
    rows = [line.split() for line in run.stdout.splitlines()[2:] if line.strip()]
    x86, arm64 = sched_ext_kernels["x86_64"], sched_ext_kernels["arm64"]
    assert [
        "debian:7.3",
        "x86_64",
        x86.package,
        x86.version,
        "trixie-backports",
        x86.release,
    ] in rows
    assert [
        "debian:7.3",
        "arm64",
        arm64.package,
        arm64.version,
        "trixie-backports",
        arm64.release,
    ] in rows
    assert any(row[:2] == ["host", "x86_64"] for row in rows) or get_arch("x86_64") != host_arch()
    assert not (root / "output").exists()  # nothing built, nothing fetched

    empty = dict(os.environ, BPFBUILD_CACHE_DIR=str(tmp_path / "cache"))
    fresh = bpfbuild(root, "verify", "--list-kernels", "--kernel", "debian:6.1", env=empty)
    assert fresh.returncode == 0, fresh.describe()
    assert fresh.stdout.count("(not resolved yet)") == 2
    assert (
        "note: debian:6.1 (arm64) is not resolved yet: `bpfbuild verify --kernel debian:6.1"
        in fresh.stdout
    )
    assert not (tmp_path / "cache" / "kernels").exists() and "resolving" not in fresh.stderr
