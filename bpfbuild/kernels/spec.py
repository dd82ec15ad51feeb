"""Which `[vmlinux]` values name a distribution kernel: cheap to import, so that a
project without one loads none of the fetching machinery."""

from __future__ import annotations

KERNEL_SPEC_PREFIXES = ("debian:", "linux-image-")


def is_kernel_spec(value: str) -> bool:
    """True for `[vmlinux]` values that name a Debian kernel rather than a file."""
    return value.startswith(KERNEL_SPEC_PREFIXES)
