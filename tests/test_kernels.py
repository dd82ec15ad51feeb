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

from bpfbuild.arch import get_arch
from bpfbuild.kernels import (
    Kernel,
    KernelError,
    KernelImageError,
    extract_btf,
    get_kernel,
    is_kernel_spec,
)
from bpfbuild.kernels.abi import parse_btf_header
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
