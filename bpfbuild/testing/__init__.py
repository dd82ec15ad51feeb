"""Testing BPF objects from Python: a ctypes libbpf binding, a BTF reader and the pytest plugin.

Tests of a project import what they need from here:

    from bpfbuild.testing import BpfObject, BpfUnsupportedError
"""

from __future__ import annotations

from .libbpf import BpfObject, BpfUnsupportedError

__all__ = ["BpfObject", "BpfUnsupportedError"]
