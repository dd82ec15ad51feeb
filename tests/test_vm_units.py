"""Pure parts of bpfbuild.vm: the cpio writer (read back by cpio itself), the console
protocol, the matrix cells, kernel releases of images, the verify matrix table."""

from __future__ import annotations

import base64
import gzip
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import needs_tool

from bpfbuild.verify.formats import format_matrix
from bpfbuild.verify.log import Verdict
from bpfbuild.verify.results import ObjectReport, ProgramResult, VerifyReport
from bpfbuild.vm.console import ConsoleReader, Markers
from bpfbuild.vm.initramfs import CpioWriter, GuestObject, write_initramfs
from bpfbuild.vm.targets import ImageKernel, image_release, matrix_cells, split_list


@needs_tool("cpio")
def test_the_kernels_configuration_is_where_libbpf_looks(tmp_path: Path) -> None:
    busybox, runner, config = (tmp_path / n for n in ("busybox", "runner", "config"))
    busybox.write_bytes(b"B")
    runner.write_bytes(b"R")
    config.write_text("CONFIG_HZ=250\n")
    archive = tmp_path / "initramfs.cpio"
    write_initramfs(
        archive, busybox, runner, [], Markers("ab"), kernel_config=("6.12.1-amd64", config)
    )
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames"],
        stdin=archive.open("rb"),
        cwd=out,
        check=True,
    )
    assert (out / "boot" / "config-6.12.1-amd64").read_text() == "CONFIG_HZ=250\n"


def test_an_image_path_takes_the_configuration_beside_it(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz-6.12.1-amd64"
    image.write_bytes(b"MZ")
    kernel = ImageKernel(str(image), "x86_64", "6.12.1-amd64", image)
    assert kernel.config is None
    (tmp_path / "config-6.12.1-amd64").write_text("CONFIG_HZ=250\n")
    assert kernel.config == tmp_path / "config-6.12.1-amd64"


@needs_tool("cpio")
def test_initramfs_is_a_newc_archive_cpio_reads(tmp_path: Path) -> None:
    busybox, runner, obj = (tmp_path / n for n in ("busybox", "runner", "x.bpf.o"))
    busybox.write_bytes(b"B" * 1001)
    runner.write_bytes(b"R" * 7)
    obj.write_bytes(b"\x7fELF")
    archive = tmp_path / "initramfs.cpio"
    guest = GuestObject("x", obj, {"limit": 3}, {"events": 4096})
    write_initramfs(archive, busybox, runner, [guest], Markers("ab"))
    listing = subprocess.run(
        ["cpio", "-itv"], stdin=archive.open("rb"), capture_output=True, text=True, check=True
    ).stdout
    names = {
        line.split()[-1] if "->" not in line else line.split()[-3] for line in listing.splitlines()
    }
    assert {"init", "bin/busybox", "bin/sh", "bpfverify", "objects/x.bpf.o", "dev/console"} <= names
    assert any(
        line.startswith("crw") and line.endswith("dev/console") for line in listing.splitlines()
    )
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", "init", "bin/busybox"],
        stdin=archive.open("rb"),
        cwd=out,
        check=True,
    )
    assert (out / "bin" / "busybox").read_bytes() == b"B" * 1001
    init = (out / "init").read_text()
    assert "--set=limit=3" in init and 'echo "@@bpfbuild-ab exit x $status"' in init
    assert "--max-entries=events=4096" in init
    # sched_ext's state after boot and after the object, when the kernel has it.
    assert init.count("state boot\n") == 1 and init.count("state x\n") == 1
    assert (
        '[ -r /sys/kernel/sched_ext/state ] && echo "@@bpfbuild-ab state $1 '
        '/sys/kernel/sched_ext/state $(cat /sys/kernel/sched_ext/state)"' in init
    )


@pytest.mark.parametrize(
    ("states", "changed"),
    [
        ([("boot", "state", "disabled"), ("a", "state", "disabled")], None),
        ([], None),  # a kernel without sched_ext prints none
        (
            [("boot", "state", "disabled"), ("a", "state", "enabled")],
            "/sys/kernel/sched_ext/state was 'enabled' after a",
        ),
        (
            [("boot", "enable_seq", "0"), ("a", "enable_seq", "1"), ("b", "enable_seq", "1")],
            "a sched_ext scheduler was enabled (enable_seq went 0 -> 1 -> 1)",
        ),
    ],
)
def test_kernel_state_that_verifying_must_not_change(
    states: list[tuple[str, str, str]], changed: str | None
) -> None:
    from bpfbuild.vm.session import kernel_state_changes

    markers = Markers("c0de")
    reader = ConsoleReader(markers)
    for when, name, value in states:
        path = f"/sys/kernel/sched_ext/{name}"
        assert reader.feed(markers.line("state", when, path, value) + "\r\n") == "state"
    assert reader.states == [(w, f"/sys/kernel/sched_ext/{n}", v) for w, n, v in states]
    assert kernel_state_changes(reader.states) == changed


def test_cpio_entries_are_four_byte_aligned() -> None:
    buffer = io.BytesIO()
    writer = CpioWriter(buffer)
    writer.file("a", b"123")
    writer.close()
    data = buffer.getvalue()
    assert data.startswith(b"070701") and len(data) % 4 == 0
    assert data.index(b"123") % 4 == 0


def test_object_names_that_cannot_go_into_init_are_refused() -> None:
    with pytest.raises(ValueError):
        GuestObject('x"; reboot; "', Path("x"))


def console_lines(markers: Markers) -> list[str]:
    log = base64.b64encode(gzip.compress(b"processed 5 insns\n")).decode()
    return [
        "[    1.0] Linux version 6.1.0 ...\r\n",
        markers.line("boot", "6.1.0-50-cloud-amd64") + "\r\n",
        markers.line("object", "core") + "\r\n",
        '{"kind":"runner"}\r\n',
        "[    2.0] a kernel message in between\r\n",
        '{"kind":"done"}\r\n',
        markers.line("exit", "core", "0") + "\r\n",
        markers.line("log", "core", "read.log") + "\r\n",
        log[:10] + "\r\n",
        log[10:] + "\r\n",
        "[    3.0] glued " + markers.line("end") + "\r\n",
        "@@bpfbuild-forged done\r\n",
    ]


def test_console_reader_takes_marked_output_and_keeps_noise_for_the_tail() -> None:
    markers = Markers("feed")
    reader = ConsoleReader(markers)
    events = [reader.feed(line) for line in console_lines(markers)]
    assert [e for e in events if e] == ["boot", "object", "exit", "log", "end"]
    assert reader.release == "6.1.0-50-cloud-amd64"
    core = reader.objects["core"]
    assert core.stdout == '{"kind":"runner"}\n{"kind":"done"}\n' and core.status == 0
    assert core.logs == {"read.log": b"processed 5 insns\n"}
    assert not reader.done  # a marker with another nonce is noise
    assert "a kernel message in between" in reader.tail_text()
    assert reader.feed(markers.line("done")) == "done" and reader.done


def test_matrix_cells_and_lists() -> None:
    assert split_list(["x86_64,arm64", "arm64", " s390x "]) == ["x86_64", "arm64", "s390x"]
    assert matrix_cells(["host", "debian:6.1"], ["x86_64", "arm64"], "x86_64") == [
        ("host", "x86_64"),
        ("debian:6.1", "x86_64"),
        ("debian:6.1", "arm64"),
    ]


def test_release_of_a_bzimage_header_and_of_a_file_name(tmp_path: Path) -> None:
    image = bytearray(4096)
    image[0x202:0x206] = b"HdrS"
    image[0x20E:0x210] = (0x400).to_bytes(2, "little")
    image[0x600:0x620] = b"6.1.0-50-cloud-amd64 (debian@)\0"
    (tmp_path / "bz").write_bytes(image)
    assert image_release(tmp_path / "bz") == "6.1.0-50-cloud-amd64"
    (tmp_path / "vmlinuz-6.6.1-custom").write_bytes(b"\0" * 64)
    assert image_release(tmp_path / "vmlinuz-6.6.1-custom") == "6.6.1-custom"


def test_matrix_orders_kernels_and_marks_what_was_not_verified() -> None:
    def report(spec: str, arch: str, verdict: Verdict, program: str = "p") -> ObjectReport:
        result = ProgramResult(arch, "o", program, "xdp", "xdp", verdict)
        return ObjectReport("o", Path("o.bpf.o"), arch, "r", True, [result], kernel_spec=spec)

    text = format_matrix(
        VerifyReport(
            [
                report("debian:6.12", "x86_64", Verdict.PASSED),
                report("debian:6.1", "x86_64", Verdict.REJECTED),
                report("host", "x86_64", Verdict.UNSUPPORTED, "q"),
            ]
        )
    )
    header, _, *rows = text.splitlines()
    assert header.split() == [
        "Program",
        "host",
        "x86_64",
        "debian:6.1",
        "x86_64",
        "debian:6.12",
        "x86_64",
    ]
    assert [row.split() for row in rows] == [
        ["o/p", "-", "REJECTED", "ok"],
        ["o/q", "unsupported", "-", "-"],
    ]


def test_progress_redraws_one_line_per_vm_on_a_terminal_and_prints_once_otherwise() -> None:
    from bpfbuild.vm.progress import VmProgress

    live = VmProgress(io.StringIO(), live=True)
    live.update("debian:6.1 x86_64", "booting (tcg)")
    live.update("debian:6.12 x86_64", "booting (tcg)")
    live.update("debian:6.1 x86_64", "verifying 1/3")
    live.finish("debian:6.1 x86_64", "done")
    text = live.stream.getvalue()
    assert text.count("\x1b[2F") == 2  # moved up over both lines before each redraw
    assert text.rsplit("\x1b[2F", 1)[1] == (
        "\x1b[2K  VM      debian:6.1 x86_64: done\n"
        "\x1b[2K  VM      debian:6.12 x86_64: booting (tcg)\n"
    )
    quiet = VmProgress(io.StringIO(), live=False)
    quiet.update("debian:6.1 x86_64", "booting (tcg)")
    quiet.finish("debian:6.1 x86_64", "done, 1 objects")
    assert quiet.stream.getvalue() == "  VM      debian:6.1 x86_64: done, 1 objects\n"


def test_kvm_only_for_the_hosts_arch_and_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfbuild.arch import host_arch
    from bpfbuild.vm import qemu

    other = next(m for m in qemu.MACHINES.values() if m.arch != host_arch().name)
    monkeypatch.delenv(qemu.ACCEL_ENV, raising=False)
    assert qemu.use_kvm(other, Path("/nonexistent")) is False  # no probe: another arch
    monkeypatch.setenv(qemu.ACCEL_ENV, "tcg")
    assert qemu.use_kvm(qemu.MACHINES[host_arch().name], Path("/nonexistent")) is False
    command = (
        qemu.qemu_command(other, Path("/k"), Path("/i"), kvm=False)
        if shutil.which(other.qemu)
        else []
    )
    if command:
        assert "-enable-kvm" not in command and command[command.index("-kernel") + 1] == "/k"


def test_a_garbled_log_is_reported_not_dropped() -> None:
    markers = Markers("feed")
    reader = ConsoleReader(markers)
    for line in (
        markers.line("object", "core"),
        markers.line("exit", "core", "0"),
        markers.line("log", "core", "read.log"),
        "not base64 !!",
        markers.line("end"),
    ):
        reader.feed(line)
    assert reader.bad_logs == ["core/read.log"] and reader.objects["core"].logs == {}


def test_vm_tasks_one_per_cell_with_objects_runner_and_image_as_file_dep(tmp_path: Path) -> None:
    from buildutil import copy_project

    from bpfbuild.arch import get_arch
    from bpfbuild.pipeline.layout import Layout
    from bpfbuild.pipeline.project import load_project
    from bpfbuild.pipeline.tasks import StepBuilder
    from bpfbuild.pipeline.toolchain import Libbpf, Tool, Toolchain
    from bpfbuild.verify.steps import verification_steps
    from bpfbuild.vm.targets import ImageKernel, Target, VerifyPlan

    root = copy_project("vm_kernels", tmp_path)
    (root / "arm64.btf").write_bytes(b"")
    toml = root / "bpfbuild.toml"
    toml.write_text(
        toml.read_text().replace(
            "[verify]", '[build]\narches = ["arm64"]\n\n[vmlinux]\narm64 = "arm64.btf"\n\n[verify]'
        )
    )
    project = load_project(root)
    arm64 = get_arch("arm64")
    toolchain = Toolchain(
        arm64,
        Tool("clang", "/c", "17"),
        Tool("bpftool", "/b", "7"),
        Tool("cc", "/usr/bin/aarch64-linux-gnu-gcc", "12"),
        Libbpf("1.3", [], ["-lbpf"], ["-lbpf", "-lelf", "-lz"]),
        None,
    )
    image = tmp_path / "Image"
    kernel = ImageKernel("Image", "arm64", "6.12.1-arm64", image)
    plan = VerifyPlan((Target("Image", "arm64", kernel), Target("host", "x86_64", None)))
    builder = StepBuilder(project, toolchain)
    steps = {step.id: step for step in verification_steps(plan)(builder)}
    assert "tool:arm64/bpfverify" in steps  # the runner, cross-compiled
    assert steps["tool:arm64/bpfverify"].commands[0].argv[0] == "/usr/bin/aarch64-linux-gnu-gcc"
    assert not [name for name in steps if name.startswith("verify:")]  # not the host's arch
    vm = steps["vmverify:arm64/6.12.1-arm64"]
    assert vm.label is None  # the VM's progress line says it all
    assert vm.order_only == tuple(builder.pch_steps())  # a fresh tree: the PCH too
    layout = Layout(root, "arm64")
    assert sorted(vm.inputs) == sorted(
        [str(layout.bpf_object(n)) for n in ("core", "hooks", "kfunc")]
        + [str(layout.verifier_runner), str(image)]
    )
    assert list(vm.outputs) == [
        str(layout.vm_verify_dir("6.12.1-arm64") / f"{n}.json") for n in ("core", "hooks", "kfunc")
    ]
