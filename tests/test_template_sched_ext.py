"""The sched_ext template as a user gets it (`bpfbuild init --template sched_ext`):
built for x86_64 and arm64, one static binary each, with its skeleton in the kernel
tree's convention; every callback verified passed in VMs of Debian's trixie-backports
7.3 kernel (sched_ext built in) and "no struct sched_ext_ops" once per object on
debian:6.12, nothing verified failing --require, no scheduler switched on while
verifying, one callback broken by a patch rejected while its siblings pass; and its
loader, in VMs of that 7.3 kernel, registers the scheduler, which schedules the guest,
until Ctrl-C unregisters it, and says why when the kernel stops a failing scheduler.

The template's own tests (what a kernel without sched_ext can check) run in
test_templates.py."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    Run,
    bpfbuild,
    require_cross,
    require_qemu_user,
    require_template_kernels,
    require_vm,
)
from elftools.elf.elffile import ELFFile
from vmutil import kill_leftovers

from bpfbuild.arch import get_arch

pytestmark = pytest.mark.slow

NAME = "my_sched"
"""Not the template's name: its files must use {{name}} throughout."""
ARCHES = ("x86_64", "arm64")
MACHINES = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
KERNELS = ("debian:7.3", "debian:6.12")
CALLBACKS = ("select_cpu", "enqueue", "dispatch", "init", "exit")
PROGRAMS = tuple(f"{NAME}_{callback}" for callback in CALLBACKS)
NO_SCHED_EXT = "this kernel has no struct sched_ext_ops (sched_ext is not enabled in it)"
ENQUEUE_COUNTS = "\tcount(STAT_QUEUED);\n"
BROKEN_ENQUEUE = (
    "\tu32 key = STAT_QUEUED;\n"
    "\tu64 *queued = bpf_map_lookup_elem(&stats, &key);\n"
    "\n"
    "\t*queued += 1;\t/* BROKEN: no NULL check */\n"
)
"""The patch that breaks one callback: the enqueue counts through a map value it never
checks against NULL."""


@dataclass
class Project:
    root: Path
    build: Run


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The template, initialised, with both arches on, built."""
    require_cross("arm64", libraries=True)
    require_template_kernels("sched_ext", ARCHES)
    base = tmp_path_factory.mktemp("sched_ext")
    init = bpfbuild(base, "init", "--template", "sched_ext", NAME)
    assert init.returncode == 0, init.describe()
    root = base / NAME
    config = root / "bpfbuild.toml"
    arches = '# arches = ["x86_64", "arm64"]'
    assert arches in config.read_text(), "the template's commented arches"
    config.write_text(config.read_text().replace(arches, arches.removeprefix("# ")))
    # Nothing else: where Debian 12's bpftool would drop .struct_ops.link, bpfbuild
    # fetches a newer one, and the libbpf 1.5 its skeleton needs.
    build = bpfbuild(root, "build", timeout=900)
    assert build.returncode == 0, build.describe()
    assert "Traceback" not in build.output
    return Project(root, build)


@pytest.mark.parametrize("arch", ARCHES)
def test_one_static_binary_per_arch(project: Project, arch: str) -> None:
    line = next(
        (x for x in project.build.stdout.splitlines() if f"BIN     output/{arch}/{NAME}:" in x),
        None,
    )
    assert line is not None and line.endswith("static, no NEEDED entry"), project.build.describe()
    with open(project.root / "output" / arch / NAME, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == MACHINES[arch]
        assert not any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments())


def test_the_arm64_loader_runs_under_qemu_user(project: Project) -> None:
    """--help, then a plain run: no bpf() is reached, the loader looks for sched_ext
    first (and this machine's kernel, which qemu-user shows it, may have none)."""
    arm64 = get_arch("arm64")
    qemu = require_qemu_user(arm64)
    loader = str(project.root / "output" / "arm64" / NAME)
    done = subprocess.run([qemu, loader, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: "), done
    if not Path("/sys/kernel/sched_ext").exists():
        done = subprocess.run([qemu, loader], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "has no sched_ext" in done.stderr, done


@pytest.mark.parametrize("arch", ARCHES)
def test_the_skeleton_follows_the_kernels_convention(project: Project, arch: str) -> None:
    include = project.root / "output" / arch / "include"
    skeleton = (include / f"{NAME}.bpf.skel.h").read_text()
    assert f"struct {NAME} {{" in skeleton
    assert f"{NAME}__open(void)" in skeleton
    # The ops struct's map is there: the bpftool used keeps .struct_ops.link.
    assert re.search(rf"struct bpf_map \*{NAME}_ops;", skeleton), skeleton[:2000]
    assert not (include / f"{NAME}.skel.h").exists()
    loader = (project.root / "src" / f"{NAME}.c").read_text()
    assert f'#include "{NAME}.bpf.skel.h"' in loader and f"{NAME}__open()" in loader


# ---------------------------------------------------------------- in VMs


@dataclass
class Verified:
    run: Run
    releases: dict[tuple[str, str], str]
    """(spec, arch) -> `uname -r`."""

    def programs(self, spec: str, arch: str) -> dict[str, dict]:
        data = json.loads(self.run.stdout)
        (obj,) = [o for o in data["objects"] if (o["kernel_spec"], o["arch"]) == (spec, arch)]
        assert obj["object"] == NAME
        return {p["program"]: p for p in obj["programs"]}


@pytest.fixture(scope="module")
def verified(project: Project) -> Verified:
    """The template verified on 7.3 and 6.12 for both arches: four VMs."""
    releases = {(s, a): require_vm(s, a).release for s in KERNELS for a in ARCHES}
    try:
        run = bpfbuild(
            project.root,
            "verify",
            *[f"--kernel={k}" for k in KERNELS],
            "--format",
            "json",
            timeout=1500,
        )
    finally:
        kill_leftovers(project.root)
    assert "Traceback" not in run.output, run.describe()
    assert run.returncode == 0, run.describe()
    return Verified(run, releases)


@pytest.mark.parametrize("arch", ARCHES)
def test_every_callback_passes_on_a_kernel_with_sched_ext(verified: Verified, arch: str) -> None:
    found = verified.programs("debian:7.3", arch)
    assert tuple(found) == PROGRAMS
    for program in found.values():
        assert (program["verdict"], program["prog_type"]) == ("passed", "struct_ops"), program
        assert program["insns_processed"] > 0


@pytest.mark.parametrize("arch", ARCHES)
def test_6_12_names_the_missing_subsystem_once(verified: Verified, arch: str) -> None:
    found = verified.programs("debian:6.12", arch)
    assert tuple(found) == PROGRAMS
    assert {(p["verdict"], p["error"]) for p in found.values()} == {("unsupported", NO_SCHED_EXT)}
    notes = [
        line
        for line in verified.run.stderr.splitlines()
        if line.startswith("note:") and f"debian:6.12 ({arch})" in line
    ]
    assert len(notes) == 1 and notes[0].endswith(NO_SCHED_EXT), verified.run.stderr
    assert "kfunc" not in verified.run.stderr and "bpf_ksym_exists" not in verified.run.stderr


def test_the_kernels_it_runs_on(verified: Verified) -> None:
    """The line a README can quote: the oldest verified kernel where all programs pass."""
    support = json.loads(verified.run.stdout)["kernel_support"][NAME]
    assert {arch: support[arch]["oldest"] for arch in ARCHES} == dict.fromkeys(ARCHES, "7.3")


def test_sched_ext_stays_disabled_while_verifying(verified: Verified, project: Project) -> None:
    for arch in ARCHES:
        release = verified.releases[("debian:7.3", arch)]
        record = project.root / "output" / arch / "verify" / release / "kernel-state.json"
        values: dict[str, set[str]] = {}
        for state in json.loads(record.read_text()):
            values.setdefault(state["file"], set()).add(state["value"])
        assert values == {
            "/sys/kernel/sched_ext/state": {"disabled"},
            "/sys/kernel/sched_ext/enable_seq": {"0"},  # never enabled, not even briefly
        }


def test_nothing_verified_fails_require(verified: Verified, project: Project) -> None:
    run = bpfbuild(project.root, "verify", "--kernel", "debian:6.12", "--require", timeout=600)
    assert run.returncode == 1, run.describe()
    assert "5 of 5 programs verified on no kernel at all" in run.stderr, run.describe()
    assert "debian:7.3" in run.stderr  # the hint: where sched_ext is


@pytest.fixture(scope="module")
def broken(verified: Verified, project: Project) -> tuple[Run, int]:
    """The template's scheduler with its enqueue broken by a patch, as a second object
    (src/broken.bpf.c), verified on 7.3 for both arches; and the broken line."""
    source = (project.root / "src" / f"{NAME}.bpf.c").read_text()
    assert source.count(ENQUEUE_COUNTS) == 1, "the template's enqueue changed: update the patch"
    patched = source.replace(ENQUEUE_COUNTS, BROKEN_ENQUEUE)
    (project.root / "src" / "broken.bpf.c").write_text(patched)
    line = next(n for n, text in enumerate(patched.splitlines(), 1) if "BROKEN" in text)
    try:
        run = bpfbuild(
            project.root,
            "verify",
            "broken",
            "--kernel=debian:7.3",
            "--format",
            "json",
            timeout=1500,
        )
    finally:
        kill_leftovers(project.root)
    assert "Traceback" not in run.output, run.describe()
    assert run.returncode == 1, run.describe()  # the rejection
    return run, line


@pytest.mark.parametrize("arch", ARCHES)
def test_a_broken_callback_is_rejected_and_its_siblings_pass(
    broken: tuple[Run, int], arch: str
) -> None:
    run, line = broken
    (obj,) = [o for o in json.loads(run.stdout)["objects"] if o["arch"] == arch]
    assert obj["object"] == "broken"
    found = {p["program"]: p for p in obj["programs"]}
    assert tuple(found) == PROGRAMS
    for name, program in found.items():
        if name != f"{NAME}_enqueue":
            assert program["verdict"] == "passed", program  # not "not supported"
            continue
        assert program["verdict"] == "rejected", program
        assert "invalid mem access 'map_value_or_null'" in program["error"], program
        assert (program["source_file"], program["source_line"]) == ("src/broken.bpf.c", line)
        assert "BROKEN: no NULL check" in program["source_text"]
        assert "NULL" in program["hint"]


# ---------------------------------------------------------------- the loader in a VM

LOADER_INIT = """#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
echo "@@ before $(cat /sys/kernel/sched_ext/state)"
/loader > /tmp/out 2> /tmp/err &
loader=$!
tries=0
while [ "$(cat /sys/kernel/sched_ext/state)" != enabled ] && [ $tries -lt 120 ]; do
  sleep 1
  tries=$((tries + 1))
done
sleep 3
echo "@@ during $(cat /sys/kernel/sched_ext/state) $(cat /sys/kernel/sched_ext/root/ops)"
kill -INT $loader
wait $loader
echo "@@ exit $?"
echo "@@ after $(cat /sys/kernel/sched_ext/state) $(cat /sys/kernel/sched_ext/enable_seq)"
sed 's/^/@@ out /' /tmp/out
sed 's/^/@@ err /' /tmp/err
poweroff -f
"""
"""/init of a VM that runs the loader as a user would: it registers the scheduler, which
schedules the guest for three seconds, and Ctrl-C (SIGINT) unregisters it. Lines of
interest start with @@."""


def run_loader_in_vm(loader: Path, arch: str, folder: Path, init: str = LOADER_INIT) -> list[str]:
    """Boot debian:7.3 for arch with loader as /loader under init; the @@ lines."""
    from bpfbuild.vm.busybox import busybox_for
    from bpfbuild.vm.initramfs import CpioWriter
    from bpfbuild.vm.qemu import machine_for, qemu_command, run

    kernel = require_vm("debian:7.3", arch)
    machine = machine_for(arch)
    initramfs = folder / f"loader-{arch}.cpio"
    with open(initramfs, "wb") as out:
        cpio = CpioWriter(out)
        for name in ("bin", "dev", "proc", "sys", "tmp"):
            cpio.directory(name)
        cpio.char_device("dev/console", 5, 1)
        cpio.char_device("dev/null", 1, 3)  # the stdin of a job started with &
        cpio.file("bin/busybox", busybox_for(machine.debian_arch).read_bytes(), executable=True)
        for applet in ("sh", "mount", "echo", "cat", "sleep", "sed", "poweroff"):
            cpio.symlink(f"bin/{applet}", "busybox")
        cpio.file("loader", loader.read_bytes(), executable=True)
        cpio.file("init", init.encode(), executable=True)
        cpio.close()
    lines: list[str] = []
    done = run(
        qemu_command(machine, kernel.image, initramfs, kvm=False),
        timeout=300,
        on_line=lambda line: lines.append(line.strip()),
    )
    assert not done.timed_out, "\n".join(lines)
    return [line.removeprefix("@@ ") for line in lines if line.startswith("@@ ")]


@pytest.mark.parametrize("arch", ARCHES)
def test_the_loader_schedules_in_a_kernel_with_sched_ext_until_ctrl_c(
    project: Project, arch: str, tmp_path: Path
) -> None:
    report = run_loader_in_vm(project.root / "output" / arch / NAME, arch, tmp_path)
    assert report[:4] == [
        "before disabled",
        f"during enabled {NAME}",  # registered through the link: the guest's scheduler
        "exit 0",
        "after disabled 1",  # unregistered by Ctrl-C; enabled once
    ], report
    out = [line.removeprefix("out ") for line in report if line.startswith("out ")]
    assert out[0].split() == ["DIRECT", "QUEUED", "DISPATCHED"], report
    counts = [[int(n) for n in line.split()] for line in out[1:]]
    assert counts and all(len(c) == 3 for c in counts), report
    assert sum(map(sum, counts)) > 0, report  # it scheduled tasks
    err = [line.removeprefix("err ") for line in report if line.startswith("err ")]
    # The exit callback's record: the kernel's reason for SCX_EXIT_UNREG.
    assert err == [f"{NAME}: stopped (unregistered from user space)"], report


FAILING_INIT = """#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
/loader -d 120 > /tmp/out 2> /tmp/err
echo "@@ exit $?"
echo "@@ after $(cat /sys/kernel/sched_ext/state)"
sed 's/^/@@ err /' /tmp/err
poweroff -f
"""
"""/init of a VM whose scheduler fails: the loader must end by itself, long before -d."""
DISPATCH_COUNTS = "\t\tcount(STAT_DISPATCHED);\n"
FAILING_DISPATCH = (
    DISPATCH_COUNTS + "\tif (++dispatches == 100)\t/* FAIL: the scheduler stops itself */\n"
    "\t\tscx_bpf_error_bstr(fail_fmt, fail_args, sizeof(fail_args));\n"
)
FAILING_GLOBALS = """
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;
static char fail_fmt[] = "failing on purpose";
static unsigned long long fail_args[1];
static int dispatches;
"""
"""The patch that makes the scheduler fail at run time: its 100th dispatch calls
scx_bpf_error() (as scx_bpf_error_bstr, the kfunc behind it), and the kernel stops it."""


def test_the_loader_says_why_the_kernel_stopped_the_scheduler(tmp_path: Path) -> None:
    """The template patched to fail once it runs, built for the host's arch only, run
    in a VM: the loader prints the kernel's reason and the scheduler's message, and
    exits with 1; sched_ext is disabled again."""
    require_template_kernels("sched_ext")
    init = bpfbuild(tmp_path, "init", "--template", "sched_ext", NAME)
    assert init.returncode == 0, init.describe()
    root = tmp_path / NAME
    source = root / "src" / f"{NAME}.bpf.c"
    text = source.read_text()
    exit_info = "struct exit_info exit_info;\n"
    assert text.count(DISPATCH_COUNTS) == 1 and text.count(exit_info) == 1, "update the patch"
    text = text.replace(exit_info, exit_info + FAILING_GLOBALS)
    source.write_text(text.replace(DISPATCH_COUNTS, FAILING_DISPATCH))
    build = bpfbuild(root, "build", timeout=900)
    assert build.returncode == 0, build.describe()
    report = run_loader_in_vm(root / "output" / ARCH / NAME, ARCH, tmp_path, FAILING_INIT)
    assert report[:2] == ["exit 1", "after disabled"], report
    err = [line.removeprefix("err ") for line in report if line.startswith("err ")]
    assert err == [
        f"{NAME}: the kernel stopped the scheduler: scx_bpf_error: failing on purpose"
    ], report


def test_a_scheduler_named_like_the_kfunc_header(tmp_path: Path) -> None:
    """--name sched_ext: its src/sched_ext.h ({{name}}.h) is not the template's
    src/scx/sched_ext.h, and the project builds."""
    require_template_kernels("sched_ext")
    init = bpfbuild(tmp_path, "init", "--template", "sched_ext", "sched_ext")
    assert init.returncode == 0, init.describe()
    root = tmp_path / "sched_ext"
    assert "struct exit_info" in (root / "src" / "sched_ext.h").read_text()
    assert "scx_bpf_dsq_insert" in (root / "src" / "scx" / "sched_ext.h").read_text()
    build = bpfbuild(root, "build", timeout=900)
    assert build.returncode == 0, build.describe()
    assert (root / "output" / ARCH / "sched_ext").is_file()
