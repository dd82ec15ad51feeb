"""The kernel's BPF interface as bpfbuild needs it: bpf() commands, program and map
types, capabilities, the errno values bpf() returns and how they are named, BTF's
header, and the words that say why a process may not load BPF."""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

# -- bpf(2) ---------------------------------------------------------------------

BPF_PROG_LOAD = 5
"""enum bpf_cmd."""
BPF_PROG_TYPE_SOCKET_FILTER = 1
"""enum bpf_prog_type: the least a process must be allowed to load."""

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
"""Flags of a map update: create or replace, create only, replace only."""

PERCPU_MAP_TYPES = frozenset({5, 6, 10, 21})
"""enum bpf_map_type: PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE."""
RINGBUF_MAP_TYPE = 27
"""enum bpf_map_type: RINGBUF."""

CAP_SYS_ADMIN = 21
CAP_BPF = 39
"""Either one, effective, lets a process load BPF programs."""

# -- errno ----------------------------------------------------------------------

ENOTSUPP = 524
"""The kernel-internal "operation not supported" code the bpf() syscall can leak
(no libc name; not EOPNOTSUPP)."""


def errno_name(number: int) -> str:
    """The symbolic name of an errno bpf() returned: EPERM, ENOTSUPP, or the number."""
    if number == ENOTSUPP:
        return "ENOTSUPP"
    return errno.errorcode.get(number, str(number))


def errno_description(number: int) -> str:
    """strerror's words, also for ENOTSUPP (which libc does not know)."""
    return "Operation not supported" if number == ENOTSUPP else os.strerror(number)


ENOSYS_REASON = "the bpf() syscall is not implemented here (ENOSYS)"
"""No BPF at all: qemu-user, a seccomp filter, or a kernel without CONFIG_BPF_SYSCALL."""


def missing_privilege(euid: int, capable: bool) -> str:
    """Why a process may not load BPF, in words that tell root with its capabilities
    dropped from a user who is not root. capable: CAP_BPF or CAP_SYS_ADMIN is
    effective (the kernel refuses all the same: lockdown, an LSM)."""
    if capable:
        return "CAP_BPF or CAP_SYS_ADMIN is effective, yet the kernel refuses (lockdown, LSM?)"
    if euid == 0:
        return "no CAP_BPF/CAP_SYS_ADMIN (running as root, but with those capabilities dropped)"
    return "not root, and no CAP_BPF/CAP_SYS_ADMIN"


# -- BTF (include/uapi/linux/btf.h) ------------------------------------------------

BTF_MAGIC = 0xEB9F
"""First two bytes of a BTF blob, in the byte order of whoever wrote it."""
BTF_VERSION = 1
BTF_HEADER_SIZE = 24
"""magic (2), version (1), flags (1), then hdr_len, type_off, type_len, str_off, str_len."""


def btf_magic(byte_order: str) -> bytes:
    """The magic and version a BTF blob of that byte order starts with."""
    return BTF_MAGIC.to_bytes(2, "big" if byte_order == "big" else "little") + bytes([BTF_VERSION])


def btf_byte_order(head: bytes) -> str | None:
    """little or big by the magic at the start of head; None when it is no BTF magic."""
    if head[:2] == BTF_MAGIC.to_bytes(2, "little"):
        return "little"
    if head[:2] == BTF_MAGIC.to_bytes(2, "big"):
        return "big"
    return None


@dataclass(frozen=True)
class BtfHeader:
    """The fixed part of a BTF blob."""

    big_endian: bool
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int

    @property
    def size(self) -> int:
        """Bytes from the magic to the end of the last section."""
        return self.hdr_len + max(self.type_off + self.type_len, self.str_off + self.str_len)

    @property
    def struct_order(self) -> str:
        """The struct module's prefix for its byte order (< or >)."""
        return ">" if self.big_endian else "<"


def parse_btf_header(data: bytes, offset: int = 0) -> BtfHeader | None:
    """The header at offset if it is a sane BTF header whose sections fit in data."""
    head = data[offset : offset + BTF_HEADER_SIZE]
    if len(head) < BTF_HEADER_SIZE or head[2] != BTF_VERSION or head[3] != 0:
        return None
    byte_order = btf_byte_order(head)
    if byte_order is None:
        return None
    big_endian = byte_order == "big"
    fields = struct.unpack(">5I" if big_endian else "<5I", head[4:BTF_HEADER_SIZE])
    header = BtfHeader(big_endian, *fields)
    if header.hdr_len < BTF_HEADER_SIZE or header.hdr_len > 256 or header.hdr_len % 4:
        return None
    if header.type_off % 4 or header.type_off + header.type_len > header.str_off:
        return None
    if header.str_len < 1 or offset + header.size > len(data):
        return None
    strings = offset + header.hdr_len + header.str_off
    # The string section starts with the empty name and ends with a terminator.
    if data[strings] != 0 or data[strings + header.str_len - 1] != 0:
        return None
    return header
