"""This project's own tasks on top of bpfbuild's: `bpfbuild build` and plain
`python -m doit` both run them."""

import hashlib
import platform
from pathlib import Path

from bpfbuild import doit_config, task_bpfbuild  # noqa: F401 - task_bpfbuild is bpfbuild's graph

HERE = Path(__file__).resolve().parent
DOIT_CONFIG = doit_config(HERE)
ARCH = {"aarch64": "arm64"}.get(platform.machine(), platform.machine())
APP = HERE / "output" / ARCH / "tiny"  # absolute, as bpfbuild's targets are
CHECKSUM = HERE / "tiny.sha256"


def write_checksum() -> None:
    CHECKSUM.write_text(f"{hashlib.sha256(APP.read_bytes()).hexdigest()}  tiny\n")


def task_checksum():
    """sha256 of the built app, rewritten whenever the app changes."""
    return {"actions": [write_checksum], "file_dep": [APP], "targets": [CHECKSUM]}
