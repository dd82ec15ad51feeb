"""bpfbuild: a build tool for libbpf/eBPF C projects.

A project's own dodo.py extends the build graph with:

    from bpfbuild import doit_config, task_bpfbuild
    DOIT_CONFIG = doit_config(Path(__file__).parent)
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["TargetsAsRecorded", "doit_config", "task_bpfbuild", "__version__"]


def __getattr__(name: str):
    # Lazy, so that importing the pytest plugin does not import doit.
    if name == "doit_config":
        from .pipeline.engine import doit_config

        return doit_config
    if name == "task_bpfbuild":
        from .commands import task_bpfbuild

        return task_bpfbuild
    if name == "TargetsAsRecorded":  # for a dodo.py's own tasks: see docs
        from .pipeline.state import TargetsAsRecorded

        return TargetsAsRecorded
    raise AttributeError(name)
