"""Build every project under examples/ with plain `doit`, through bpfbuild's task API.

doit            # build all examples
doit list       # see the tasks: <example>.bpf:x86_64/<object>, <example>.app:<app>, ...
"""

from pathlib import Path

import bpfbuild

HERE = Path(__file__).resolve().parent
EXAMPLES = sorted(p.parent for p in (HERE / "examples").glob("*/bpfbuild.toml"))

DOIT_CONFIG = bpfbuild.doit_config(HERE)


def task_examples():
    """Every example's tasks, named after its folder."""
    for root in EXAMPLES:
        yield from bpfbuild.task_bpfbuild(root, prefix=f"{root.name}.")
