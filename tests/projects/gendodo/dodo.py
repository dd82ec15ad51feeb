"""Generates the headers the sources include; slow on purpose, so that a compile that
did not wait for them would fail."""

import time
from pathlib import Path

from bpfbuild import doit_config, task_bpfbuild  # noqa: F401 - task_bpfbuild is bpfbuild's graph

HERE = Path(__file__).resolve().parent
DOIT_CONFIG = doit_config(HERE)
EVENTS = HERE / "include" / "events.h"
LIMITS = HERE / "include" / "limits.h"


def write_events() -> None:
    time.sleep(0.3)
    EVENTS.write_text("#define EVENT_GETPID 1\nstruct event { int kind; int pid; };\n")


def write_limits() -> None:
    time.sleep(0.3)
    LIMITS.write_text("#define MAX_EVENTS 64\n")


def task_events():
    """include/events.h, named as a target."""
    return {"actions": [write_events], "targets": [EVENTS], "uptodate": [True]}


def task_limits():
    """include/limits.h, which [build] generated lists (no target named)."""
    return {"actions": [write_limits], "uptodate": [lambda: LIMITS.is_file()]}
