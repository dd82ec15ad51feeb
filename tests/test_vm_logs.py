"""The newest kernel family's verifier logs, live: tests/projects/verify_rejections
rejected in a VM of debian:7.3, whose kernel explains each rejection (`Verification
failed: ...`); every verdict, message and source line is the one its captured fixture
(tests/fixtures/verify/logs/7.3) gives, so the fixtures stay true to the kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, copy_project, require_vm
from test_verifier_log import LOGS, MISTAKES
from vmutil import kill_leftovers

from bpfbuild.verify.log import classify_failure, split_log

pytestmark = pytest.mark.slow

SPEC = "debian:7.3"


def test_7_3_rejections_parse_as_their_fixtures(tmp_path: Path) -> None:
    if ARCH != "x86_64":
        pytest.skip("the project's vmlinux.h is the host's: an x86_64 host")
    kernel = require_vm(SPEC, ARCH)
    assert (LOGS / "7.3" / "RELEASE").read_text().strip() == kernel.release
    root = copy_project("verify_rejections", tmp_path)
    try:
        run = bpfbuild(root, "verify", "--kernel", SPEC, "--format", "json", timeout=900)
    finally:
        kill_leftovers(root)
    assert run.returncode == 1, run.describe()
    (obj,) = json.loads(run.stdout)["objects"]
    assert (obj["kernel"], obj["kernel_spec"]) == (kernel.release, SPEC)
    found = {p["program"]: p for p in obj["programs"]}
    assert set(found) == set(MISTAKES)
    for name, (headline, line, text, hint_words) in MISTAKES.items():
        program = found[name]
        assert program["verdict"] == "rejected", program
        assert program["error"].splitlines()[0] == headline  # not "verification time ..."
        assert (program["source_file"], program["source_line"]) == ("src/mistakes.bpf.c", line)
        assert program["source_text"].startswith(text)
        assert hint_words in program["hint"]
        live = Path(program["log_path"]).read_text()
        assert "\nVerification failed: " in live  # the family's explained format
        fixture = classify_failure(13, *split_log((LOGS / "7.3" / f"{name}.log").read_text()))
        assert program["error"] == fixture.rejection.message
