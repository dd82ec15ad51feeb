"""apt with bpfbuild's own configuration: real Debian package lists, never the machine's."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from buildutil import skip_when_unreachable

from bpfbuild.archive import ArchiveError
from bpfbuild.cache import sha256_file
from bpfbuild.kernels.apt import Apt, AptError, extract_deb
from bpfbuild.kernels.fetch import Made, cached_fetch, download_deb


def _deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb: ar archive with debian-binary and an uncompressed data.tar."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    members = [("debian-binary", b"2.0\n"), ("data.tar", data.getvalue())]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        out += body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(out)
    return path


def test_own_configuration_never_names_the_machines_sources(tmp_path: Path) -> None:
    apt = Apt(["bullseye", "bookworm"], "arm64", root=tmp_path)
    options = apt.options()
    assert f"Dir::Etc::sourcelist={tmp_path}/apt/arm64-bookworm+bullseye/sources.list" in options
    assert all("/etc/apt" not in option for option in options)
    assert "APT::Architectures=arm64" in options
    assert [line.split()[-2] for line in apt.sources_lines()] == ["bookworm", "bullseye"]


def test_unknown_suite_and_arch_are_clean_errors(tmp_path: Path) -> None:
    with pytest.raises(AptError, match="unknown Debian suite sid"):
        Apt(["sid"], "amd64", root=tmp_path)
    with pytest.raises(AptError, match="invalid Debian architecture"):
        Apt(["bookworm"], "../x", root=tmp_path)


def test_extract_deb_keeps_paths_inside(tmp_path: Path) -> None:
    deb = _deb(tmp_path / "p.deb", {"./boot/vmlinuz-1": b"image", "./usr/x": b"x"})
    extract_deb(deb, tmp_path / "out", ["./boot/vmlinuz-1"])
    assert (tmp_path / "out/boot/vmlinuz-1").read_bytes() == b"image"
    assert not (tmp_path / "out/usr").exists()
    evil = _deb(tmp_path / "evil.deb", {"../../escape": b"x"})
    with pytest.raises(ArchiveError, match="a '..' component"):
        extract_deb(evil, tmp_path / "out2")
    (tmp_path / "bad.deb").write_bytes(b"not a deb")
    with pytest.raises(AptError, match="not a Debian package"):
        extract_deb(tmp_path / "bad.deb", tmp_path / "out3")


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Apt:
    apt = Apt(["bookworm"], "amd64", root=tmp_path_factory.mktemp("cache"))
    with skip_when_unreachable("bookworm's package lists"):
        apt.update()
    return apt


def test_resolves_and_downloads_a_real_package(bookworm: Apt, tmp_path: Path) -> None:
    version = bookworm.candidate("busybox-static")
    assert version and version[0].isdigit()
    deb = bookworm.download("busybox-static", version, tmp_path)
    extract_deb(deb, tmp_path / "root", ["./bin/busybox"])
    assert (tmp_path / "root/bin/busybox").read_bytes()[:4] == b"\x7fELF"
    assert bookworm.show("no-such-package-bpfbuild") is None


def test_a_package_is_fetched_once_into_its_cache_entry(bookworm: Apt) -> None:
    """The one fetch helper (busybox, kernels, libbpf source): made once in a scratch
    folder beside the entry (not in the cache root), moved in, then read back."""
    root = bookworm.dir.parent.parent
    version = bookworm.candidate("busybox-static")
    assert version
    scratches: list[Path] = []

    def make(scratch: Path) -> Made:
        scratches.append(scratch)
        deb = download_deb(bookworm, "busybox-static", version, scratch)
        return {"package.deb": deb.path}, {"deb_sha256": deb.sha256}

    entry = cached_fetch("test-debs", "busybox-static", make, root)
    assert cached_fetch("test-debs", "busybox-static", make, root) == entry
    assert len(scratches) == 1 and scratches[0].parent == root / "test-debs"
    assert scratches[0].name.endswith(".partial") and not scratches[0].exists()
    assert entry.meta["deb_sha256"] == sha256_file(entry.file("package.deb"))
    assert entry.file("package.deb").read_bytes()[:8] == b"!<arch>\n"
