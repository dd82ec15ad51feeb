"""Kernels: the running host's kernel facts, and distribution kernels resolved, fetched and cached."""

from .debian import Kernel, KernelError, get_kernel, is_kernel_spec
from .image import KernelImageError, extract_btf

__all__ = ["Kernel", "KernelError", "KernelImageError", "extract_btf", "get_kernel",
           "is_kernel_spec"]
