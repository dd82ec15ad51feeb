"""bpfbuild.archive: hostile archives are refused with a hint on every Python (Debian 12's
3.11.2 has no tarfile filter), a well-formed one unpacks with safe modes."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from bpfbuild.archive import ArchiveError, unpack


def _tar(*members: tuple[str, str, object]) -> tarfile.TarFile:
    """An in-memory tar: (kind, name, data or link target) per member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for kind, name, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = bytes(extra)  # type: ignore[arg-type]
                info.size = len(data)
                info.mode = 0o4755 if name.endswith(".suid") else 0o644
                out.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
                "blk": tarfile.BLKTYPE,
            }[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(extra)
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3
            out.addfile(info)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


HOSTILE = [
    ("absolute name", [("file", "/tmp/evil", b"x")], "an absolute name"),
    ("dot-dot", [("file", "../evil", b"x")], "a '..' component"),
    ("dot-dot inside", [("dir", "a", None), ("file", "a/../../evil", b"x")], "a '..' component"),
    ("symlink out, absolute", [("sym", "link", "/etc")], "absolute path /etc"),
    ("symlink out, relative", [("sym", "link", "../..")], "outside the destination"),
    (
        "write through a symlink",
        [
            ("dir", "d", None),
            ("sym", "d/up", "."),
            ("file", "d/up/x", b"x"),
            ("sym", "e", "d"),
            ("file", "e/f", b"y"),
        ],
        "not a folder",
    ),
    (
        "symlink chain out",
        [
            ("dir", "a", None),
            ("dir", "a/b", None),
            ("sym", "a/b/x", "y/../../.."),
            ("sym", "a/b/y", "../../a"),
        ],
        "leads out of the destination",
    ),
    ("hard link out", [("hard", "h", "/etc/passwd")], "a hard link to /etc/passwd"),
    ("hard link to dot-dot", [("hard", "h", "../outside")], "a hard link to ../outside"),
    ("hard link to nothing", [("hard", "h", "missing")], "not a file unpacked before it"),
    ("character device", [("chr", "dev/null", None)], "a device node"),
    ("block device", [("blk", "sda", None)], "a device node"),
    ("fifo", [("fifo", "pipe", None)], "a FIFO"),
    ("duplicate", [("file", "a", b"1"), ("sym", "a", "b")], "a second member of the same name"),
]


@pytest.mark.parametrize(
    "members,expected", [(m, e) for _, m, e in HOSTILE], ids=[case for case, _, _ in HOSTILE]
)
def test_hostile_member_is_refused(tmp_path: Path, members, expected: str) -> None:
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    destination = tmp_path / "sub" / "dest"
    with pytest.raises(ArchiveError) as caught:
        unpack(_tar(*members), destination, origin="x.tar", hint="fetch it again")
    assert expected in caught.value.message
    assert caught.value.message.startswith("x.tar: refused to unpack member")
    assert caught.value.hint == "fetch it again"
    assert outside.read_text() == "untouched"
    assert list(destination.iterdir()) == []  # nothing of a refused archive is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "sub"]


def test_a_good_archive_unpacks_with_safe_modes(tmp_path: Path) -> None:
    archive = _tar(
        ("dir", "./top", None),
        ("file", "./top/a.txt", b"hello"),
        ("file", "top/tool.suid", b"#!"),
        ("sym", "top/link", "a.txt"),
        ("hard", "top/same", "./top/a.txt"),
        ("file", "implicit/parent/f", b"f"),
    )
    unpack(archive, tmp_path / "d")
    top = tmp_path / "d" / "top"
    assert (top / "a.txt").read_bytes() == b"hello"
    assert os.readlink(top / "link") == "a.txt"
    assert (top / "same").stat().st_ino == (top / "a.txt").stat().st_ino
    assert stat.S_IMODE((top / "tool.suid").stat().st_mode) == 0o755  # no setuid bit
    assert stat.S_IMODE((top / "a.txt").stat().st_mode) == 0o644
    assert (tmp_path / "d" / "implicit" / "parent" / "f").read_bytes() == b"f"


def test_only_the_wanted_members(tmp_path: Path) -> None:
    archive = _tar(
        ("file", "./bin/busybox", b"bb"), ("file", "./usr/other", b"o"), ("chr", "./dev/null", None)
    )
    unpack(archive, tmp_path / "d", ["./bin/busybox"])
    assert [str(p.relative_to(tmp_path / "d")) for p in sorted((tmp_path / "d").rglob("*"))] == [
        "bin",
        "bin/busybox",
    ]


def test_a_truncated_archive_is_an_error_with_a_hint(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        info = tarfile.TarInfo("big")
        info.size = 10000
        out.addfile(info, io.BytesIO(b"x" * 10000))
    truncated = tarfile.open(fileobj=io.BytesIO(buffer.getvalue()[:3000]))
    with pytest.raises(ArchiveError) as caught:
        unpack(truncated, tmp_path / "d", origin="t.tar", hint="fetch it again")
    assert caught.value.message.startswith("cannot unpack t.tar")
    assert caught.value.hint == "fetch it again"


def test_debian_package_with_a_hostile_member(tmp_path: Path) -> None:
    """extract_deb goes through the same checks: a .deb whose data.tar holds a link
    out is refused, with the hint to fetch it again."""
    from bpfbuild.kernels.apt import AptError, extract_deb

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as out:
        info = tarfile.TarInfo("./boot")
        info.type = tarfile.SYMTYPE
        info.linkname = "/boot"
        out.addfile(info)
    body = data.getvalue()
    header = f"{'data.tar/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
    deb = tmp_path / "evil.deb"
    deb.write_bytes(b"!<arch>\n" + header + body + (b"\n" if len(body) % 2 else b""))
    with pytest.raises((ArchiveError, AptError)) as caught:
        extract_deb(deb, tmp_path / "root")
    assert "absolute path /boot" in caught.value.message
    assert "cache clean" in (caught.value.hint or "")


def test_the_root_entry_and_an_empty_file_name(tmp_path: Path) -> None:
    unpack(_tar(("dir", "./", None), ("file", "./a", b"a")), tmp_path / "d")
    assert (tmp_path / "d" / "a").read_bytes() == b"a"
    with pytest.raises(ArchiveError, match="an empty name"):
        unpack(_tar(("file", "./", b"x")), tmp_path / "e")
