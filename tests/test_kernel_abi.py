"""The kernel's BPF interface in one module (bpfbuild.kernels.abi): errno names, the BTF
magic in both byte orders, and the no-privilege wording every reporter shares."""

from __future__ import annotations

import errno

import pytest

from bpfbuild.kernels.abi import (
    BTF_MAGIC,
    ENOTSUPP,
    btf_byte_order,
    btf_magic,
    errno_description,
    errno_name,
    missing_privilege,
)


@pytest.mark.parametrize(
    "number, name, description",
    [
        (errno.EPERM, "EPERM", "Operation not permitted"),
        (errno.ENOENT, "ENOENT", "No such file or directory"),
        (ENOTSUPP, "ENOTSUPP", "Operation not supported"),  # no libc name
        (4321, "4321", None),
    ],
)
def test_errno_names(number: int, name: str, description: str | None) -> None:
    assert errno_name(number) == name
    if description is not None:
        assert errno_description(number) == description


@pytest.mark.parametrize(
    "head, order",
    [
        (b"\x9f\xeb\x01\x00", "little"),
        (b"\xeb\x9f\x01\x00", "big"),
        (b"\x7fELF", None),
        (b"", None),
    ],
)
def test_btf_byte_order(head: bytes, order: str | None) -> None:
    assert btf_byte_order(head) == order
    if order is not None:
        assert btf_magic(order) == head[:3]
        assert int.from_bytes(head[:2], order) == BTF_MAGIC


@pytest.mark.parametrize(
    "euid, capable, wording",
    [
        (
            0,
            False,
            "no CAP_BPF/CAP_SYS_ADMIN (running as root, but with those capabilities dropped)",
        ),
        (1000, False, "not root, and no CAP_BPF/CAP_SYS_ADMIN"),
        (0, True, "CAP_BPF or CAP_SYS_ADMIN is effective, yet the kernel refuses (lockdown, LSM?)"),
    ],
)
def test_missing_privilege_tells_root_without_capabilities_from_not_root(
    euid: int, capable: bool, wording: str
) -> None:
    assert missing_privilege(euid, capable) == wording
