"""The build stage's former name, kept importable for one release: a project's dodo.py
that imports `bpfbuild.build.state` (for `TargetsAsRecorded`) goes on working. New code
imports `bpfbuild.pipeline` (or `from bpfbuild import TargetsAsRecorded`).

A module, not a folder: tools treat a `build/` folder anywhere as build output."""

from __future__ import annotations

import sys

from .pipeline import state

sys.modules[__name__ + ".state"] = state
