"""bpfbuild's exit codes, one table: 0 success, 1 a failed step or verdict, 2 a usage
error (as click), the same with -k as without. (doit alone returns 2 when -k skipped the
steps that depend on a failed one; a bug, "internal error", also exits 2: see
tests/test_error_door.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from buildutil import BPF_SKIP_REASON, bpfbuild, copy_project

BROKEN = "this is not C;\n"


def tiny(tmp_path: Path, state: str) -> Path:
    """One BPF object and one app whose loader includes its skeleton (withdodo without
    its dodo.py), with a passing test in tests/; state: "ok", "broken" (the BPF source
    does not compile: the skeleton, the app's compile and link depend on it), "rejected"
    (a program the verifier rejects), "bad-config" (an unknown key in bpfbuild.toml)."""
    root = copy_project("withdodo", tmp_path)
    (root / "dodo.py").unlink()
    (root / "tests").mkdir()
    (root / "tests" / "test_tiny.py").write_text("def test_tiny():\n    pass\n")
    if state == "broken":
        with (root / "src" / "tiny.bpf.c").open("a") as source:
            source.write(BROKEN)
    elif state == "rejected":
        reject = Path(__file__).parent / "projects" / "verify_reject" / "src" / "bad.bpf.c"
        (root / "src" / "bad.bpf.c").write_bytes(reject.read_bytes())
    elif state == "bad-config":
        with (root / "bpfbuild.toml").open("a") as config:
            config.write("\n[build]\nno_such_key = 1\n")
    return root


CASES = [
    # (command line, project state, exit code)
    (("build",), "ok", 0),
    (("build", "-k"), "ok", 0),
    (("build",), "broken", 1),
    (("build", "-k"), "broken", 1),
    (("build",), "bad-config", 1),
    (("build", "-k"), "bad-config", 1),
    (("build", "--no-such-option"), "ok", 2),
    (("build", "-k", "--no-such-option"), "ok", 2),
    (("build", "-j", "0"), "ok", 2),
    (("verify",), "ok", 0),
    (("verify",), "broken", 1),
    (("verify",), "rejected", 1),
    (("verify", "-k"), "ok", 2),  # verify has no -k
    (("verify", "--format", "xml"), "ok", 2),
    (("test",), "ok", 0),
    (("test", "-k"), "ok", 0),
    (("test",), "broken", 1),
    (("test", "-k"), "broken", 1),
    (("test",), "rejected", 1),
    (("test", "-k"), "rejected", 1),
    (("test", "--", "--no-such-pytest-option"), "ok", 2),
    (("clean",), "ok", 0),
    (("clean", "-k"), "ok", 2),
    (("list",), "ok", 0),
    (("list",), "bad-config", 1),
    (("list", "-k"), "ok", 2),
    (("no-such-command",), "ok", 2),
]
LOADS_PROGRAMS = {"verify", "test"}


@pytest.mark.parametrize(
    ("argv", "state", "code"), CASES, ids=[f"{' '.join(a)} [{s}]" for a, s, _ in CASES]
)
def test_exit_code(tmp_path: Path, argv: tuple[str, ...], state: str, code: int) -> None:
    if argv[0] in LOADS_PROGRAMS and code != 2 and BPF_SKIP_REASON:
        pytest.skip(BPF_SKIP_REASON)
    run = bpfbuild(tiny(tmp_path, state), *argv, timeout=300)
    assert run.returncode == code, run.describe()
    assert "Traceback" not in run.output and "internal error" not in run.output, run.describe()
    if code == 2 and "--" in argv:  # pytest's usage error, in pytest's words
        assert "unrecognized arguments: --no-such-pytest-option" in run.stderr, run.describe()
    elif code == 2:  # bpfbuild's usage error says how to use the command
        assert run.stderr.splitlines()[-1].startswith("hint: see `bpfbuild"), run.describe()
    if state == "broken" and argv[0] == "build":
        assert "error: BPF src/tiny.bpf.c failed" in run.stdout, run.describe()
