"""doit actions: module-level functions that run one tool and write its outputs atomically."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from doit.exceptions import TaskFailed

from . import header_cache
from .content import content_digest
from .depfile import existing_deps
from .elfcheck import ElfExpectation, check_elf
from .elfdynamic import needed_libraries

PARTIAL = ".partial"
"""Suffix of an output being written; renamed to its final name only on success,
so a killed build never leaves a truncated file that looks up to date."""


F = TypeVar("F", bound=Callable)


def partial(path: Path | str) -> str:
    return str(path) + PARTIAL


def signature_once(function: F) -> F:
    """Store a doit action's signature on it. doit inspects the signature of each python
    action (and up-to-date check) every time it calls it, to pass `task` or `values` by
    name; inspect returns a stored __signature__ at once (otherwise ~60 µs a call, 256
    calls in a clean build of the benchmark)."""
    function.__signature__ = inspect.signature(function)
    return function


def call_signature(cls: type) -> inspect.Signature:
    """The signature of calling an instance of cls (its __call__ without self): the
    __signature__ of an up-to-date check class, as signature_once for a function."""
    signature = inspect.signature(cls.__call__)
    return signature.replace(parameters=tuple(signature.parameters.values())[1:])


@signature_once
def run_tool(
    argv: tuple[str, ...],
    cwd: str,
    outputs: tuple[str, ...],
    stdout_to: str | None = None,
    expect: ElfExpectation | None = None,
) -> TaskFailed | None:
    """Run argv in cwd; it writes each output as OUTPUT.partial, then all are renamed.

    With stdout_to, the tool's stdout is the content of that output; with expect,
    the first output must be an ELF file of that arch.
    """
    _prepare(outputs)
    failed = _execute(argv, cwd, stdout_to)
    if not failed:
        failed = check_arch(outputs[0], cwd, expect)
    return _finish(outputs, failed)


def check_arch(output: str, cwd: str, expect: ElfExpectation | None) -> TaskFailed | None:
    """Check the ELF header of a freshly written OUTPUT.partial, before it is renamed
    into place: a compiler for another arch must not leave its output in ours."""
    if expect is None:
        return None
    message = check_elf(partial(output), expect, os.path.relpath(output, cwd))
    return TaskFailed(message) if message else None


@signature_once
def compile_with_depfile(
    argv: tuple[str, ...],
    cwd: str,
    outputs: tuple[str, ...],
    depfile: str,
    task,
    expect: ElfExpectation | None = None,
) -> TaskFailed | None:
    """Compile, then record the headers the compiler read (its depfile) as the
    task's file_dep before doit saves its state, so the next build finds the same
    dependency list and runs nothing. doit passes `task` by name."""
    failed = run_tool(argv, cwd, outputs, expect=expect)
    if not failed:
        task.file_dep.update(existing_deps(Path(cwd), Path(depfile)))
    return failed


@signature_once
def generate_vmlinux(
    argv: tuple[str, ...], cwd: str, header: str, btf: str, tool: tuple[str, str]
) -> TaskFailed | None:
    """`bpftool btf dump file BTF format c > HEADER`, or the same header from the
    machine-wide cache: keyed by the BTF's content, bpftool (tool: path, version) and
    the command's other words."""
    if not header_cache.enabled():
        return run_tool(argv, cwd, (header,), header)
    words = [word for word in argv[1:] if word != btf]
    key = header_cache.key_of(header_cache.content_sha256(btf), *tool, words)
    return header_cache.fetch_or_make(
        header_cache.VMLINUX_KIND,
        key,
        "vmlinux.h",
        header,
        lambda: _execute(argv, cwd, header),
        header_cache.stamp(btf=btf, bpftool=tool[1]),
    )


@signature_once
def build_pch(
    argv: tuple[str, ...], cwd: str, pch: str, key_file: str, key: str, header: str
) -> TaskFailed | None:
    """Precompile vmlinux.h, or take the same PCH from the machine-wide cache (it is
    relocatable: see TaskFactory.vmlinux_pch), then write KEY_FILE, which says what
    the PCH was built from. The key goes first and comes back last: a compile that
    reads a matching key finds the PCH of those very inputs in place (see pch_ready)."""
    Path(key_file).unlink(missing_ok=True)
    if header_cache.enabled():
        cache_key = header_cache.key_of(key, header_cache.content_sha256(header))
        failed = header_cache.fetch_or_make(
            header_cache.PCH_KIND,
            cache_key,
            "vmlinux.h.pch",
            pch,
            lambda: _execute(argv, cwd),
            header_cache.stamp(built_in=cwd),
        )
    else:
        failed = run_tool(argv, cwd, (pch,))
    if failed:
        return failed
    Path(partial(key_file)).write_text(f"{key} {content_digest(header)}\n")
    os.replace(partial(key_file), key_file)
    return None


def pch_ready(key_file: str, key: str, header: str) -> bool:
    """True when the PCH in place was built with these flags from this vmlinux.h."""
    try:
        saved = Path(key_file).read_text().split()
    except OSError:
        return False
    return saved == [key, content_digest(header)]


@signature_once
def compile_bpf(
    argv: tuple[str, ...],
    direct_argv: tuple[str, ...] | None,
    cwd: str,
    outputs: tuple[str, ...],
    depfile: str,
    pch: tuple[str, str, str] | None,
    task,
    expect: ElfExpectation | None = None,
) -> TaskFailed | dict:
    """Compile one BPF object with the precompiled vmlinux.h when it is ready, else
    parse vmlinux.h directly (direct_argv): the object is byte-identical either way.
    A compile never waits for the PCH, so on a clean build the other cores compile
    while one builds it. Returns {"pch": used?}, saved as the task's values."""
    use_pch = direct_argv is None or (pch is not None and pch_ready(*pch))
    failed = compile_with_depfile(
        argv if use_pch else direct_argv, cwd, outputs, depfile, task, expect
    )
    return failed or {"pch": use_pch}


@signature_once
def write_json(output: str, data: object) -> None:
    """Write data as JSON to output atomically."""
    _prepare((output,))
    Path(partial(output)).write_text(json.dumps(data, indent=1) + "\n")
    _finish((output,), None)


@signature_once
def copy_file(source: str, output: str) -> None:
    """Copy source to output atomically."""
    _prepare((output,))
    shutil.copyfile(source, partial(output))
    _finish((output,), None)


@signature_once
def link_executable(
    argv: tuple[str, ...],
    cwd: str,
    output: str,
    static: bool,
    strip_argv: tuple[str, ...] | None,
    expect: ElfExpectation | None = None,
) -> TaskFailed | dict:
    """Link (and optionally strip) an app into OUTPUT.partial, check its arch and that
    a static one has no NEEDED entry, then rename it. Returns size and NEEDED entries,
    which doit saves as the task's values."""
    _prepare((output,))
    failed = _execute(argv, cwd)
    if not failed and strip_argv:
        failed = _execute(strip_argv, cwd)
    if not failed:
        failed = check_arch(output, cwd, expect)
    needed: list[str] = []
    if not failed:
        try:
            needed = needed_libraries(partial(output))
        except (OSError, ValueError, struct.error) as err:  # NotElf is a ValueError
            failed = TaskFailed(
                f"{output}: the linker wrote no readable ELF executable "
                f"({err})\nhint: check ldflags in bpfbuild.toml and $LDFLAGS"
            )
    if not failed and static and needed:
        failed = TaskFailed(
            f"{output} should be static but needs {', '.join(needed)}; "
            "check ldflags in bpfbuild.toml and $LDFLAGS"
        )
    if failed:
        return _finish((output,), failed)
    _finish((output,), None)
    return {"size": os.path.getsize(output), "needed": needed}


def _prepare(outputs: tuple[str, ...]) -> None:
    for output in outputs:
        Path(output).parent.mkdir(parents=True, exist_ok=True)


def _finish(outputs: tuple[str, ...], failed: TaskFailed | None) -> TaskFailed | None:
    """On success rename every OUTPUT.partial into place; on failure delete them.
    Each output is hashed here, in the job's thread, so that recording it in the build
    state (state.TargetsAsRecorded, in doit's main thread) finds the hash cached."""
    for output in outputs:
        if failed:
            Path(partial(output)).unlink(missing_ok=True)
        else:
            os.replace(partial(output), output)
            content_digest(output)
    return failed


def _execute(argv: tuple[str, ...], cwd: str, stdout_to: str | None = None) -> TaskFailed | None:
    """Run one command; a failure carries the tool's own diagnostics and the command."""
    try:
        if stdout_to:
            with open(partial(stdout_to), "wb") as out:
                done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
        else:
            done = subprocess.run(argv, cwd=cwd, capture_output=True)
    except OSError as err:
        return TaskFailed(f"cannot run {argv[0]}: {err.strerror}")
    if done.returncode == 0:
        if done.stderr:  # warnings: show them, as make would
            sys.stderr.write(done.stderr.decode(errors="replace"))
            sys.stderr.flush()
        return None
    diagnostics = (done.stderr or b"").decode(errors="replace").rstrip()
    if done.stdout:
        diagnostics = (done.stdout.decode(errors="replace").rstrip() + "\n" + diagnostics).strip()
    status = f"{Path(argv[0]).name} exited with {done.returncode} (run with -v to see the command)"
    return TaskFailed(f"{diagnostics}\n{status}".lstrip())


@signature_once
def verify_object(
    runner: str,
    bpf_object: str,
    log_dir: str,
    rodata: dict,
    max_entries: dict,
    name: str,
    arch: str,
    report: str,
) -> TaskFailed | None:
    """Run the verifier runner on one object and save its report (atomically).
    A rejection is a result, not a task failure: `bpfbuild verify` judges it."""
    from ..errors import BpfBuildError
    from ..verify.results import save_object_report
    from ..verify.run import run_verifier

    try:
        result = run_verifier(
            Path(runner),
            Path(bpf_object),
            Path(log_dir),
            rodata,
            max_entries=max_entries,
            name=name,
            arch=arch,
        )
    except BpfBuildError as err:
        return TaskFailed(err.describe())
    _prepare((report,))
    save_object_report(result, Path(partial(report)))
    return _finish((report,), None)


def report_complete(report: str) -> bool:
    """False when the saved report was made without BPF privilege: verify again."""
    from ..errors import VerifyError
    from ..verify.results import load_object_report

    try:
        return load_object_report(Path(report)).privileged
    except VerifyError:  # missing or corrupt: verify again
        return False


@signature_once
def verify_in_vm(job) -> TaskFailed | dict:
    """Boot one VM that verifies every object of its arch (bpfbuild.vm.session.VmJob)
    and save their reports; returns where the time went, saved as the task's values."""
    from ..errors import BpfBuildError
    from ..vm.session import run_vm_job

    try:
        return run_vm_job(job)
    except BpfBuildError as err:
        return TaskFailed(err.describe())
