"""The steps verification adds to each arch's build, through the pipeline's one hook (a
step source, see pipeline.tasks.StepSource): the verifier runner, the verification of
each object in the running kernel, and one VM per (kernel, arch), with their actions."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doit.exceptions import TaskFailed

from ..arch import host_arch
from ..errors import BpfBuildError, VerifyError
from ..kernels.host import KERNEL_BTF
from ..pipeline import actions
from ..pipeline.actions import signature_once
from ..pipeline.elfcheck import ElfExpectation, native_expectation
from ..pipeline.project import BpfObject
from ..pipeline.steps import Command, Step, task_id
from ..pipeline.tasks import StepBuilder, StepSource
from ..pipeline.toolchain import Tool
from .results import load_object_report, save_object_report
from .run import run_verifier
from .runner import RUNNER_SOURCE, build_runner_command, runner_command
from .runner.build import RUNNER_LIBBPF_SUITE, build_runner, runner_compiler

if TYPE_CHECKING:
    from ..vm.session import VmJob
    from ..vm.targets import Target, VerifyPlan

_CLASSIFIER_FOLDERS = (
    Path(__file__).resolve().parent,
    Path(__file__).resolve().parent.parent / "vm",
)
"""Where the code that turns a runner's output into verdicts lives (log parsing, results,
the VM's console protocol): a saved report is only as good as the code that made it."""


@functools.cache
def classifier_key() -> str:
    """A digest of the Python sources that classify a load (this package and vm/): part of
    every verification step's key, so that a bpfbuild whose verdicts changed verifies
    again instead of showing reports saved by the old code."""
    digest = hashlib.sha256()
    for folder in _CLASSIFIER_FOLDERS:
        for source in sorted(folder.rglob("*.py")):
            digest.update(source.relative_to(folder.parent).as_posix().encode() + b"\0")
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


RUNNER_KIND = "tool"
HOST_KIND = "verify"
VM_KIND = "vmverify"


def host_verify_id(obj: str, arch: str) -> str:
    """The id of the step that verifies one object in the running kernel (in the graph
    of a bpfbuild command: no prefix)."""
    return task_id(HOST_KIND, obj, arch)


def vm_verify_id(release: str, arch: str) -> str:
    """The id of the step that verifies an arch's objects in a VM of a kernel."""
    return task_id(VM_KIND, release, arch)


def verification_steps(plan: VerifyPlan | None = None) -> StepSource:
    """The step source of a `bpfbuild verify` run: in each arch's build, the runner
    (when anything verifies that arch), every object's verification in the running
    kernel (its own arch only), and one VM per kernel of the plan. plan None: the
    running kernel only."""

    def steps(builder: StepBuilder) -> Iterator[Step]:
        arch = builder.arch
        host = arch == host_arch() and (plan is None or plan.host)
        vms = plan.vms(arch.name) if plan else []
        if host or vms:
            yield runner_step(builder)
        if host:
            for obj in builder.project.bpf_objects.values():
                yield host_verify_step(builder, obj)
        for target in vms:
            yield vm_verify_step(builder, target)

    return steps


@dataclass(frozen=True)
class RunnerArgs:
    """build_verifier_runner's argument."""

    command: Command
    """What -v shows: the link of the runner with the pinned libbpf's objects."""
    cc: Tool
    """The arch's C compiler (the toolchain's, or found for the runner alone)."""
    arch: str
    """bpfbuild's arch name of the runner."""
    output: str
    """Absolute path of bpfverify."""
    expect: ElfExpectation
    """The ELF the runner must be (a static executable of arch)."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.command,)


def runner_step(builder: StepBuilder) -> Step:
    """bpfverify, the static C program that loads each BPF program in the kernel:
    static so that it also runs in a bare initramfs with no Python; linked with the
    pinned libbpf of runner.build whatever the project's, so that every arch and
    machine gets the same verdicts (Debian 12's libbpf 1.1 cannot open struct_ops
    objects). A project with no app for an arch has no C compiler in its toolchain:
    the runner's is found then (a missing one is an error naming its package)."""
    arch = builder.arch
    cc = builder.toolchain.cc or runner_compiler(arch)
    runner = builder.layout.verifier_runner
    libbpf = f"<libbpf of Debian {RUNNER_LIBBPF_SUITE}, from the user cache>/*.o"
    shown = build_runner_command(cc.path, runner, RUNNER_SOURCE, ldflags=[libbpf])
    expect = native_expectation(arch, cc.path, arch == host_arch(), dict(os.environ))
    return builder.step(
        RUNNER_KIND,
        "bpfverify",
        "CC",
        builder.rel(runner),
        action=build_verifier_runner,
        args=RunnerArgs(Command(tuple(shown)), cc, arch.name, str(runner), expect, builder.cwd),
        inputs=(str(RUNNER_SOURCE),),
        outputs=(str(runner),),
        config={"cc": cc.path, "version": cc.version, "libbpf": RUNNER_LIBBPF_SUITE},
    )


@signature_once
def build_verifier_runner(args: RunnerArgs) -> TaskFailed | None:
    """The runner step's action (see runner.build.build_runner)."""
    return build_runner(
        args.cc.path, args.cc.version, args.arch, args.output, args.cwd, args.expect
    )


@dataclass(frozen=True)
class HostVerifyArgs:
    """verify_in_running_kernel's argument: the runner on one object."""

    command: Command
    """The runner's command line (runner.runner_command of the fields below: what
    run_verifier runs)."""
    runner: str
    """Absolute path of bpfverify."""
    bpf_object: str
    """Absolute path of the linked object."""
    log_dir: str
    """Where the runner writes one verifier log per program."""
    rodata: Mapping[str, int]
    """.rodata globals set before loading ([verify.rodata] of bpfbuild.toml)."""
    max_entries: Mapping[str, int]
    """Map sizes set before loading ([verify.maps] of bpfbuild.toml)."""
    name: str
    """The object's name."""
    arch: str
    """bpfbuild's arch name."""
    report: str
    """Absolute path of the object's saved report."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.command,)


def host_verify_step(builder: StepBuilder, obj: BpfObject) -> Step:
    """Load every program of one object in the running kernel; save the report.
    Up to date while the object, the runner and the kernel (release, BTF) are."""
    layout = builder.layout
    rodata = builder.project.config.verify.rodata.get(obj.name, {})
    max_entries = builder.project.config.verify.max_entries(obj.name)
    report = layout.verify_report(obj.name)
    bpf_object, runner = layout.bpf_object(obj.name), layout.verifier_runner
    log_dir = layout.verify_dir(obj.name)
    return builder.step(
        HOST_KIND,
        obj.name,
        "VERIFY",
        builder.rel(bpf_object),
        action=verify_in_running_kernel,
        args=HostVerifyArgs(
            Command(
                tuple(runner_command(runner, bpf_object, log_dir, rodata, max_entries=max_entries))
            ),
            str(runner),
            str(bpf_object),
            str(log_dir),
            rodata,
            max_entries,
            obj.name,
            builder.arch.name,
            str(report),
            builder.cwd,
        ),
        inputs=(str(bpf_object), str(runner), KERNEL_BTF),
        outputs=(str(report),),
        # `bpfbuild verify` on a fresh tree: the PCH (no compile waits for it)
        order_only=tuple(builder.pch_steps()),
        config={
            "kernel": platform.release(),
            "rodata": rodata,
            "maps": max_entries,
            "classifier": classifier_key(),
        },
        checks=((report_complete, (str(report),)),),
    )


@signature_once
def verify_in_running_kernel(args: HostVerifyArgs) -> TaskFailed | None:
    """Run the verifier runner on one object and save its report (atomically).
    A rejection is a result, not a task failure: `bpfbuild verify` judges it."""
    try:
        result = run_verifier(
            Path(args.runner),
            Path(args.bpf_object),
            Path(args.log_dir),
            args.rodata,
            max_entries=args.max_entries,
            name=args.name,
            arch=args.arch,
        )
    except BpfBuildError as err:
        return TaskFailed(err.describe())
    failed = actions.prepare_outputs(args.cwd, (args.report,))
    if failed:
        return failed
    save_object_report(result, Path(actions.partial(args.report)))
    return actions.finish_outputs((args.report,), None, args.cwd)


@signature_once
def report_complete(report: str) -> bool:
    """Up-to-date check: False when the saved report was made without BPF privilege
    (verify again)."""
    try:
        return load_object_report(Path(report)).privileged
    except VerifyError:  # missing or corrupt: verify again
        return False


@dataclass(frozen=True)
class VmVerifyArgs:
    """verify_in_vm's argument."""

    job: VmJob
    """Everything the VM needs (bpfbuild.vm.session.VmJob)."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return ()


def vm_verify_step(builder: StepBuilder, target: Target) -> Step:
    """Boot target's kernel once with every object of this arch and save their
    reports. Up to date while the objects, the runner and the kernel image are."""
    from ..vm.initramfs import GuestObject
    from ..vm.session import VmJob

    layout, kernel, arch = builder.layout, target.kernel, builder.arch.name
    assert kernel is not None, "the running kernel is verified by host_verify_step"
    folder = layout.vm_verify_dir(kernel.release)
    settings = builder.project.config.verify
    objects = tuple(
        GuestObject(
            name,
            layout.bpf_object(name),
            settings.rodata.get(name, {}),
            settings.max_entries(name),
        )
        for name in builder.project.bpf_objects
    )
    job = VmJob(
        spec=target.spec,
        arch=arch,
        image=str(kernel.image),
        runner=str(layout.verifier_runner),
        objects=objects,
        log_root=str(folder),
        reports={o.name: str(folder / f"{o.name}.json") for o in objects},
        timeout=builder.project.config.verify.timeout,
        config=str(kernel.config) if kernel.config else None,
        release=kernel.release,
    )
    return builder.step(
        VM_KIND,
        kernel.release,
        None,  # no kbuild line: the VM's progress line (bpfbuild.vm.progress) says it all
        "",
        action=verify_in_vm,
        args=VmVerifyArgs(job, builder.cwd),
        inputs=(
            *[str(o.path) for o in objects],
            str(layout.verifier_runner),
            str(kernel.image),
            *([str(kernel.config)] if kernel.config else []),
        ),
        outputs=tuple(job.reports.values()),
        order_only=tuple(builder.pch_steps()),
        config={
            "kernel": kernel.provenance(),
            "release": kernel.release,
            "rodata": {o.name: o.rodata for o in objects},
            "maps": {o.name: o.max_entries for o in objects},
            "classifier": classifier_key(),
        },
        doc=f"verify every object of {arch} in a VM of {target.spec}",
    )


@signature_once
def verify_in_vm(args: VmVerifyArgs) -> TaskFailed | dict:
    """Boot one VM that verifies every object of its arch and save their reports;
    returns where the time went, saved as the task's values."""
    from ..vm.session import run_vm_job

    try:
        return run_vm_job(args.job)
    except BpfBuildError as err:
        return TaskFailed(err.describe())
