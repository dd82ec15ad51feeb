"""bpfbuild: a build tool for libbpf/eBPF C projects."""

from __future__ import annotations

__version__ = "0.1.0"
