"""Kernel images: find the raw BTF inside a bootable image (an uncompressed arm64
`Image`, an x86 `bzImage` with an lz4/zstd/xz/gzip payload, an s390x image with a
compressed payload, an ELF vmlinux) and check that it is whole.

BTF starts with a header (kernels.abi.parse_btf_header): magic 0xeB9F in the kernel's
byte order, version 1, flags, then the sections' offsets and lengths. The magic can also
occur by chance in compressed data or machine code, and an image may embed small BTF
blobs (e.g. the preloaded BPF iterators); every occurrence is checked, and the largest
well-formed one wins, then `bpftool btf dump` must read it.
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from ..errors import BpfBuildError
from .abi import btf_magic, parse_btf_header

MIN_VMLINUX_BTF = 256 * 1024
"""Any kernel's BTF is megabytes; smaller blobs are embedded objects, not vmlinux."""
MAX_DECOMPRESSED = 1 << 30
MAX_CANDIDATES = 32
"""Compression magics tried per image before giving up (most are chance matches)."""

COMPRESSIONS = (
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lz4", b"\x02\x21\x4c\x18"),  # lz4 legacy frame, what the kernel's Makefiles write
    ("lz4", b"\x04\x22\x4d\x18"),
    ("xz", b"\xfd7zXZ\x00"),
    ("gzip", b"\x1f\x8b\x08"),
)


class KernelImageError(BpfBuildError):
    """A kernel image is corrupt, truncated, or holds no BTF."""


def find_btf(data: bytes) -> bytes | None:
    """The largest well-formed BTF blob in data, or None."""
    best: tuple[int, int] | None = None
    for magic in (btf_magic("little"), btf_magic("big")):
        start = data.find(magic)
        while start >= 0:
            header = parse_btf_header(data, start)
            if header and (best is None or header.size > best[1]):
                best = (start, header.size)
            start = data.find(magic, start + 1)
    if best is None or best[1] < MIN_VMLINUX_BTF:
        return None
    return data[best[0] : best[0] + best[1]]


def _decompress_tool(tool: str, payload: bytes) -> bytes:
    """Run lz4/zstd -dc; a payload followed by other data (the kernel appends its
    size, or the rest of the image follows) ends in an error after the whole frame
    was written, so the output counts whatever the exit code."""
    binary = shutil.which(tool)
    if not binary:
        raise KernelImageError(
            f"{tool} is needed to decompress this kernel image", hint=f"apt-get install {tool}"
        )
    argv = [binary, "-dc"] + (["--memory=2048MB"] if tool == "zstd" else [])
    done = subprocess.run(argv, input=payload, capture_output=True)
    return done.stdout


def decompress(kind: str, payload: bytes) -> bytes:
    """Decompress a payload that may be followed by unrelated bytes; b"" when it is
    not a valid stream of that kind."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(wbits=31).decompress(payload, MAX_DECOMPRESSED)
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(
                payload, MAX_DECOMPRESSED
            )
    except (zlib.error, lzma.LZMAError, EOFError):
        return b""
    return _decompress_tool(kind, payload)


def _bzimage_payload(data: bytes) -> tuple[int, int] | None:
    """(offset, length) of an x86 bzImage's compressed kernel, from its setup header."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    if payload_length == 0 or start + payload_length > len(data):
        raise KernelImageError(
            f"truncated x86 kernel image: its setup header puts the kernel at bytes "
            f"{start}..{start + payload_length}, but the file has {len(data)}",
            hint="delete the cached kernel (`bpfbuild cache clean`) and fetch it again",
        )
    return start, payload_length


def _payload_candidates(data: bytes) -> list[tuple[str, int, int]]:
    """(compression, offset, length) of every possible compressed kernel, in the
    order worth trying: the bzImage's declared payload first, then magics by offset."""
    found: list[tuple[str, int, int]] = []
    declared = _bzimage_payload(data)
    if declared:
        start, length = declared
        for kind, magic in COMPRESSIONS:
            if data.startswith(magic, start):
                found.append((kind, start, length))
    scanned = []
    for kind, magic in COMPRESSIONS:
        at = data.find(magic)
        while at >= 0:
            scanned.append((at, kind))
            at = data.find(magic, at + 1)
    found += [
        (kind, at, len(data) - at)
        for at, kind in sorted(scanned)
        if not declared or at != declared[0]
    ]
    return found[:MAX_CANDIDATES]


def extract_btf(image: Path) -> bytes:
    """The kernel's BTF from a bootable image, decompressing its payload if needed."""
    try:
        data = image.read_bytes()
    except OSError as err:
        raise KernelImageError(
            f"cannot read kernel image {image}: {err.strerror}",
            hint="check the path and its permissions",
        ) from None
    if len(data) < 4096:
        raise KernelImageError(
            f"{image} is {len(data)} bytes: not a kernel image",
            hint="delete the cached kernel (`bpfbuild cache clean`) and fetch it again",
        )
    btf = find_btf(data)
    if btf is not None:
        return btf
    for kind, start, length in _payload_candidates(data):
        payload = data[start : start + length]
        if kind in ("lz4", "zstd") and start + length == len(data) and _bzimage_payload(data):
            payload = payload[:-4]  # the 4-byte size the kernel's build appends
        unpacked = decompress(kind, payload)
        if unpacked:
            btf = find_btf(unpacked)
            if btf is not None:
                return btf
    raise KernelImageError(
        f"no BTF found in kernel image {image}: it is truncated or corrupt, or the "
        "kernel was built without CONFIG_DEBUG_INFO_BTF",
        hint="use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's are, except "
        "s390x before 6.12); if it came from the cache, `bpfbuild cache clean`",
    )


def check_btf_file(path: Path, bpftool: str | None = None) -> None:
    """Fail unless bpftool (the project's; default: bpftool in PATH) can read the BTF
    file (header, types and strings)."""
    parse = parse_btf_header(path.read_bytes())
    if parse is None:
        raise KernelImageError(
            f"{path} is not a whole BTF blob", hint="delete it and extract it again"
        )
    tool = bpftool or shutil.which("bpftool", path="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin")
    if not tool:
        raise KernelImageError(
            "bpftool is needed to check the extracted BTF", hint="apt-get install bpftool"
        )
    try:
        done = subprocess.run(
            [tool, "btf", "dump", "file", str(path), "format", "raw"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as err:
        raise KernelImageError(
            f"cannot run {tool} to check the extracted BTF: {err.strerror}",
            hint="set $BPFTOOL or [toolchain] bpftool of bpfbuild.toml to a bpftool, "
            "or apt-get install bpftool",
        ) from None
    if done.returncode != 0:
        raise KernelImageError(
            "the BTF cut out of the kernel image is unreadable: "
            + (done.stderr.strip().splitlines() or ["bpftool failed"])[-1],
            hint="the image is corrupt: `bpfbuild cache clean` and fetch it again",
        )
