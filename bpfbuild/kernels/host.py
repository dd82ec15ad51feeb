"""Facts about the running kernel: BTF, tracefs, and whether this process may load BPF."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import re
from pathlib import Path

from ..arch import ARCHES, host_arch_name
from .abi import (
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_SOCKET_FILTER,
    CAP_BPF,
    CAP_SYS_ADMIN,
    ENOSYS_REASON,
    btf_byte_order,
    errno_name,
    missing_privilege,
)

KERNEL_BTF = "/sys/kernel/btf/vmlinux"
"""The running kernel's BTF: the default vmlinux.h source for the host arch."""
TRACEFS = "/sys/kernel/tracing"
"""Where tracefs is mounted: libbpf reads tracepoint ids there (or under debugfs)."""
TRACEFS_DIRS = (TRACEFS, "/sys/kernel/debug/tracing")
MOUNT_TRACEFS = ("mount", "-t", "tracefs", "nodev", TRACEFS)
"""The command that mounts it (root)."""


class _ProgLoadAttr(ctypes.Structure):
    """The head of union bpf_attr for BPF_PROG_LOAD (the kernel zero-fills the rest)."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
    ]


def can_load_bpf() -> tuple[bool, str]:
    """Try to load `r0 = 0; exit` as a socket filter: the least a BPF loader needs."""
    name = host_arch_name()
    if name is None:
        return False, f"unknown bpf() syscall number on {platform.machine()}"
    number = ARCHES[name].bpf_syscall
    insns = (ctypes.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)  # mov r0,0; exit
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoadAttr(
        BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(insns), ctypes.addressof(license_)
    )
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.syscall(number, BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return True, "yes"
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return False, f"no: {ENOSYS_REASON}"
    if err in (errno.EPERM, errno.EACCES):
        return False, f"no: {errno_name(err)}: {describe_missing_privilege()}"
    return False, f"no: {os.strerror(err)}"


def describe_missing_privilege() -> str:
    """Why this process may not load BPF (kernels.abi.missing_privilege)."""
    return missing_privilege(os.geteuid(), has_bpf_privileges())


def kernel_btf_status(path: str = KERNEL_BTF) -> tuple[bool, str]:
    """Whether the BTF at path can be read: open it and check its header magic.
    Returns (readable, what doctor prints), e.g. `unreadable (Permission denied)`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        return False, "absent (set [vmlinux] in bpfbuild.toml)"
    except OSError as err:
        return False, f"unreadable ({err.strerror or err})"
    if len(head) < 4:
        return False, f"unreadable ({len(head)} bytes, too short for a BTF header)"
    if btf_byte_order(head) is None:
        return False, f"unreadable (not BTF: magic {head[:2].hex()}, expected 9feb or eb9f)"
    return True, path


def tracefs_mount() -> str | None:
    """Where tracefs is mounted, or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "tracefs":
            return fields[1]
    return None


def has_bpf_privileges() -> bool:
    """True if this process may load BPF programs: CAP_SYS_ADMIN or CAP_BPF effective."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    match = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M)
    if not match:
        return os.geteuid() == 0
    caps = int(match.group(1), 16)
    return bool(caps & (1 << CAP_SYS_ADMIN) or caps & (1 << CAP_BPF))


def tracefs_mounted() -> bool:
    """True if tracepoint ids can be read where libbpf looks for them."""
    return any(Path(p, "events").is_dir() for p in TRACEFS_DIRS)
