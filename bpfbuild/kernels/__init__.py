"""Kernels: the running host's kernel facts, and distribution kernels resolved, fetched and cached."""

from __future__ import annotations

from .spec import is_kernel_spec

__all__ = [
    "Kernel",
    "KernelError",
    "KernelImageError",
    "extract_btf",
    "get_kernel",
    "is_kernel_spec",
]


def __getattr__(name: str):
    # Lazy: importing kernels.host (every command does) must not import apt and the
    # decompressors.
    if name in ("Kernel", "KernelError", "get_kernel"):
        from . import debian

        return getattr(debian, name)
    if name in ("KernelImageError", "extract_btf"):
        from . import image

        return getattr(image, name)
    raise AttributeError(name)
