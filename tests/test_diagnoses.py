"""Exact diagnoses: a kfunc the kernel lacks, a bpf() syscall that is not implemented
(ENOSYS: qemu-user, seccomp), and root with its capabilities dropped are each reported
as what they are, by verify, doctor, can_load_bpf and the libbpf binding."""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bpfutil import compile_bpf
from buildutil import (
    bpfbuild,
    bpfbuild_command,
    copy_project,
    needs_bpf,
    require_cross,
    require_qemu_user,
    require_root,
    require_tool,
)

from bpfbuild.arch import ARCHES, get_arch, host_arch_name
from bpfbuild.errors import VerifyError
from bpfbuild.verify.formats import format_rejection
from bpfbuild.verify.log import Verdict, classify_failure, no_privilege_reason
from bpfbuild.verify.results import VerifyReport
from bpfbuild.verify.run import run_verifier

FIXTURES = Path(__file__).parent / "fixtures" / "verify"
KFUNC = "bpf_no_such_kfunc_for_test"

# --- pure: the classification table -------------------------------------------------


@pytest.mark.parametrize(
    "load_errno, lines, verdict, reason, hint",
    [
        (
            errno.EINVAL,
            [
                f"extern (func ksym) '{KFUNC}': not found in kernel or module BTFs",
                "failed to load object 'x.bpf.o'",
            ],
            Verdict.UNSUPPORTED,
            f"kfunc {KFUNC} not found in this kernel",
            "bpf_ksym_exists",
        ),
        (
            errno.ESRCH,
            ["extern (func ksym) 'bpf_rcu_read_lock': not found in kernel or module BTFs"],
            Verdict.UNSUPPORTED,
            "kfunc bpf_rcu_read_lock not found in this kernel",
            "__weak",
        ),
        (
            errno.ESRCH,
            ["extern (var ksym) 'bpf_prog_active': not found in kernel BTF"],
            Verdict.UNSUPPORTED,
            "kernel variable bpf_prog_active not found in this kernel",
            "__weak",
        ),
        (
            errno.EINVAL,
            ["failed to load object 'x.bpf.o'"],
            Verdict.UNSUPPORTED,
            "the kernel refused the load with EINVAL and no verifier log",
            None,
        ),
    ],
)
def test_classify_missing_ksym(
    load_errno: int, lines: list[str], verdict: Verdict, reason: str, hint: str | None
) -> None:
    classification = classify_failure(load_errno, "", lines)
    assert classification.verdict is verdict
    assert classification.reason.startswith(reason)
    if hint:
        assert hint in (classification.hint or "")


@pytest.mark.parametrize(
    "probe_errno, euid, capable, reason, hint",
    [
        (errno.ENOSYS, 0, True, "the bpf() syscall is not implemented here (ENOSYS)", "qemu-user"),
        (
            errno.ENOSYS,
            1000,
            False,
            "the bpf() syscall is not implemented here (ENOSYS)",
            "seccomp",
        ),
        (
            errno.EPERM,
            0,
            False,
            "no BPF privilege: no CAP_BPF/CAP_SYS_ADMIN (running as root, "
            "but with those capabilities dropped)",
            "setpriv",
        ),
        (0, 0, False, "no BPF privilege: no CAP_BPF/CAP_SYS_ADMIN", "CAP_BPF"),
        (
            errno.EPERM,
            1000,
            False,
            "no BPF privilege: not root, and no CAP_BPF/CAP_SYS_ADMIN",
            "sudo",
        ),
        (errno.EPERM, 0, True, "the kernel refused a trivial program with EPERM", "lockdown"),
    ],
)
def test_no_privilege_reason(
    probe_errno: int, euid: int, capable: bool, reason: str, hint: str
) -> None:
    got_reason, got_hint = no_privilege_reason(probe_errno, euid, capable)
    assert got_reason.startswith(reason)
    assert "not root" not in got_reason or euid != 0
    assert hint in got_hint


# --- real runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools(verify_tools: dict[str, Path]) -> dict[str, Path]:
    """The runner and the kfunc fixture (strong and weak), built once; world-readable."""
    root = verify_tools["root"] / "diagnoses"
    include = verify_tools["include"]
    return {
        "root": root,
        "runner": verify_tools["runner"],
        "kfunc": compile_bpf(FIXTURES / "kfunc.bpf.c", root / "strong", include),
        "weak": compile_bpf(FIXTURES / "kfunc.bpf.c", root / "weak", include, ("WEAK",)),
    }


@needs_bpf
def test_missing_kfunc_is_named(tools: dict[str, Path], tmp_path: Path) -> None:
    report = run_verifier(tools["runner"], tools["kfunc"], tmp_path / "logs")
    [result] = report.results
    assert result.verdict is Verdict.UNSUPPORTED
    assert result.error == f"kfunc {KFUNC} not found in this kernel"
    assert "__weak" in result.hint and f"bpf_ksym_exists({KFUNC})" in result.hint
    shown = format_rejection(result)
    assert f"kfunc {KFUNC} not found in this kernel" in shown
    assert "no verifier log" not in shown and "EINVAL" not in shown


@needs_bpf
def test_weak_guarded_kfunc_loads(tools: dict[str, Path], tmp_path: Path) -> None:
    [result] = run_verifier(tools["runner"], tools["weak"], tmp_path / "logs").results
    assert result.verdict is Verdict.PASSED, result


@needs_bpf
def test_missing_kfunc_through_the_cli(tools: dict[str, Path], tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    shutil.copy(FIXTURES / "kfunc.bpf.c", root / "src" / "kfunc.bpf.c")
    run = bpfbuild(root, "verify")
    assert run.returncode == 0, run.describe()  # unsupported is a note, not a failure
    assert (
        f"note: kfunc/call_missing_kfunc: not supported by this kernel: kfunc {KFUNC} "
        "not found in this kernel"
    ) in run.output, run.describe()


@needs_bpf
def test_missing_kfunc_in_the_libbpf_binding_is_a_skip_reason(tools: dict[str, Path]) -> None:
    from bpfbuild.testing.libbpf import BpfObject, BpfUnsupportedError
    from bpfbuild.testing.pytest_plugin import skip_reason

    obj = BpfObject.open(tools["kfunc"])
    try:
        with pytest.raises(BpfUnsupportedError) as caught:
            obj.load()
    finally:
        obj.close()
    reason = skip_reason(caught.value)
    assert f"kfunc {KFUNC} not found in this kernel" in reason
    assert "bpf_ksym_exists" in reason


# ENOSYS: a seccomp filter that makes bpf() fail with ENOSYS, then runs a command.
SECCOMP_ENOSYS = textwrap.dedent("""\
    import ctypes, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    nr = int(sys.argv[1])
    # ld [0] (syscall nr); jeq nr ? next : allow; ret ERRNO|ENOSYS; ret ALLOW
    code = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x00050000 | 38),
            (0x06, 0, 0, 0x7FFF0000)]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *c) for c in code))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(len(code), ctypes.addressof(filters))
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
        sys.exit(f"seccomp: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[2], sys.argv[2:])
""")


@pytest.fixture(scope="module")
def enosys(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A launcher under which bpf() returns ENOSYS, as under qemu-user."""
    host = host_arch_name()
    if host is None:
        pytest.skip(f"bpf() syscall number unknown on {platform.machine()}")
    number = ARCHES[host].bpf_syscall
    script = tmp_path_factory.mktemp("seccomp") / "enosys.py"
    script.write_text(SECCOMP_ENOSYS)
    launcher = [sys.executable, str(script), str(number)]
    probe = subprocess.run([*launcher, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot install a seccomp filter here: {probe.stderr.strip()}")
    return launcher


@needs_bpf
def test_enosys_in_verify_runner(tools: dict[str, Path], enosys: list[str], tmp_path: Path) -> None:
    report = VerifyReport(
        [run_verifier(tools["runner"], tools["kfunc"], tmp_path / "logs", launcher=enosys)]
    )
    assert (
        report.skip_message == "verify skipped: the bpf() syscall is not implemented here (ENOSYS)"
    )
    assert report.status == "no bpf syscall"
    assert "privilege" not in report.skip_message and "root" not in report.skip_message
    assert {r.verdict for r in report.results} == {Verdict.SKIPPED}
    with pytest.raises(VerifyError) as caught:
        run_verifier(
            tools["runner"], tools["kfunc"], tmp_path / "logs", launcher=enosys, require=True
        )
    assert "ENOSYS" in caught.value.message and "qemu-user" in (caught.value.hint or "")


@needs_bpf
def test_enosys_through_the_cli(enosys: list[str], tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    run = subprocess.run(
        [*enosys, *bpfbuild_command(), "verify", "--require"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "error: verify skipped: the bpf() syscall is not implemented here (ENOSYS)" in output
    assert "hint: " in output and "Traceback" not in output
    as_json = subprocess.run(
        [*enosys, *bpfbuild_command(), "verify", "--format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["status"] == "no bpf syscall"
    assert "the bpf() syscall is not implemented here (ENOSYS)" in as_json.stderr


def test_enosys_in_can_load_bpf_and_doctor(enosys: list[str], tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            *enosys,
            sys.executable,
            "-c",
            "from bpfbuild.kernels.host import can_load_bpf; print(can_load_bpf())",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == (
        "(False, 'no: the bpf() syscall is not implemented here (ENOSYS)')"
    ), probe.stderr
    doctor = subprocess.run(
        [*enosys, *bpfbuild_command(), "doctor"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "load BPF:   no: the bpf() syscall is not implemented here (ENOSYS)" in doctor.stdout


def test_enosys_in_the_libbpf_binding(enosys: list[str], tools: dict[str, Path]) -> None:
    code = textwrap.dedent(f"""\
        from bpfbuild.testing.libbpf import BpfObject, BpfUnsupportedError
        from bpfbuild.testing.pytest_plugin import skip_reason
        try:
            BpfObject.open({str(tools["weak"])!r}).load()
        except BpfUnsupportedError as err:
            print(skip_reason(err))
    """)
    done = subprocess.run([*enosys, sys.executable, "-c", code], capture_output=True, text=True)
    assert "the bpf() syscall is not implemented here (ENOSYS)" in done.stdout, done.stderr


# Root with every capability dropped.
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


@pytest.fixture(scope="module")
def no_caps() -> list[str]:
    require_root("the case is root with its capabilities dropped")
    require_tool("setpriv", "util-linux")
    return NO_CAPS


@needs_bpf
def test_root_without_capabilities_in_verify(tools: dict[str, Path], no_caps: list[str]) -> None:
    logs = tools["root"] / "nocaps-logs"
    report = VerifyReport([run_verifier(tools["runner"], tools["kfunc"], logs, launcher=no_caps)])
    assert report.skip_message == (
        "verify skipped: no BPF privilege: no CAP_BPF/CAP_SYS_ADMIN "
        "(running as root, but with those capabilities dropped)"
    )
    assert report.status == "no privilege"
    assert "not root" not in report.skip_message
    assert "setpriv" in report.skip_hint


@needs_bpf
def test_root_without_capabilities_through_the_cli(no_caps: list[str], tmp_path: Path) -> None:
    root = copy_project("verify_pass", tmp_path)
    run = subprocess.run(
        [*no_caps, *bpfbuild_command(), "verify"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "verify skipped: no BPF privilege: no CAP_BPF/CAP_SYS_ADMIN" in output
    assert "not root" not in output


def test_root_without_capabilities_in_can_load_bpf_and_binding(
    no_caps: list[str], tools: dict[str, Path]
) -> None:
    code = textwrap.dedent(f"""\
        from bpfbuild.kernels.host import can_load_bpf
        from bpfbuild.testing.libbpf import BpfObject, BpfPrivilegeError
        from bpfbuild.testing.pytest_plugin import skip_reason
        print(can_load_bpf()[1])
        try:
            BpfObject.open({str(tools["weak"])!r}).load()
        except BpfPrivilegeError as err:
            print(skip_reason(err))
    """)
    done = subprocess.run([*no_caps, sys.executable, "-c", code], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert (
        lines[0]
        == "no: EPERM: no CAP_BPF/CAP_SYS_ADMIN (running as root, but with those capabilities "
        "dropped)"
    ), done.stderr
    assert "no CAP_BPF/CAP_SYS_ADMIN (running as root, but with those capabilities" in lines[1]
    assert "not root" not in done.stdout


def test_enosys_under_qemu_user(tools: dict[str, Path], tmp_path: Path) -> None:
    """The real case: the arm64 runner under qemu-aarch64-static, whose bpf() is ENOSYS."""
    from bpfbuild.verify.runner import build_runner_command

    if platform.machine() == "aarch64":
        pytest.skip("the host is arm64: qemu-user is not needed to run the arm64 runner")
    arm64 = get_arch("arm64")
    qemu, cc = require_qemu_user(arm64), require_cross(arm64, libraries=True)
    env = {**os.environ, "PKG_CONFIG_LIBDIR": arm64.pkg_config_libdir}
    libs = subprocess.run(
        ["pkg-config", "--static", "--libs", "libbpf"], env=env, capture_output=True, text=True
    )
    assert libs.returncode == 0, libs.stderr
    runner = tmp_path / "bpfverify-arm64"
    subprocess.run(build_runner_command(cc, runner, ldflags=libs.stdout.split()), check=True)
    report = VerifyReport([run_verifier(runner, tools["weak"], tmp_path / "logs", launcher=[qemu])])
    assert report.objects[0].arch == "arm64"
    assert (
        report.skip_message == "verify skipped: the bpf() syscall is not implemented here (ENOSYS)"
    )
