"""The steps' actions: module-level functions of one typed argument object each, that run
one tool (the argv of the object's `commands`, which `-v` shows) and write outputs atomically."""

from __future__ import annotations

import errno
import inspect
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from doit.exceptions import TaskFailed

from .. import safefs
from . import header_cache
from .bpfcheck import (
    read_sections,
    require_programs,
    unreadable_sections_error,
    unresolved_externs,
)
from .content import content_digest
from .elfcheck import ElfExpectation, check_elf
from .elfdynamic import needed_libraries
from .steps import Command
from .toolchain import Bpftool

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
    cast(Any, function).__signature__ = inspect.signature(function)
    return function


def call_signature(cls: type) -> inspect.Signature:
    """The signature of calling an instance of cls (its __call__ without self): the
    __signature__ of an up-to-date check class, as signature_once for a function."""
    signature = inspect.signature(cls.__call__)
    return signature.replace(parameters=tuple(signature.parameters.values())[1:])


@dataclass(frozen=True)
class ToolArgs:
    """run_tool's argument: one command that writes some outputs."""

    command: Command
    """The tool and its arguments as they run (and as `-v` shows them): paths relative
    to cwd; each output named as OUTPUT.partial, or as the command's stdout."""
    cwd: str
    """The folder the command runs in: the project root."""
    outputs: tuple[str, ...]
    """Absolute paths of what the command writes, each first as OUTPUT.partial,
    all renamed into place when it succeeds."""
    expect: ElfExpectation | None
    """The ELF arch the first output must have (a compiler for another arch must not
    leave its output in ours); None: not checked."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.command,)


@signature_once
def run_tool(args: ToolArgs) -> TaskFailed | None:
    """Run the command; it writes each output as OUTPUT.partial (or its stdout is the
    content of one), then all are renamed."""
    failed = prepare_outputs(args.cwd, args.outputs)
    if failed:
        return failed
    command = args.command
    stdout = os.path.join(args.cwd, command.stdout) if command.stdout else None
    failed = _execute(command.argv, args.cwd, stdout)
    failed = with_space_hint(failed, args.cwd, args.outputs[0])
    if not failed:
        failed = check_arch(args.outputs[0], args.cwd, args.expect)
    return finish_outputs(args.outputs, failed, args.cwd)


def check_arch(output: str, cwd: str, expect: ElfExpectation | None) -> TaskFailed | None:
    """Check the ELF header of a freshly written OUTPUT.partial, before it is renamed
    into place: a compiler for another arch must not leave its output in ours."""
    if expect is None:
        return None
    message = check_elf(partial(output), expect, os.path.relpath(output, cwd))
    return TaskFailed(message) if message else None


@dataclass(frozen=True)
class BpfCompileArgs(ToolArgs):
    """compile_bpf's argument: the clang command of one BPF object."""

    source: str
    """The BPF source, relative to cwd: named when its object holds no program."""
    whole_object: bool = True
    """The source is all of its object (one source, no library): it must hold a
    program. The sources of a linked object may hold only functions and maps; the
    link checks that the object has a program."""


@signature_once
def compile_bpf(args: BpfCompileArgs) -> TaskFailed | None:
    """Compile one BPF object, then check that it holds a program. The command takes the
    precompiled vmlinux.h or parses vmlinux.h itself, as the step's run chose (see
    steps.py): the object is byte-identical either way."""
    failed = run_tool(args)
    return failed or (require_programs(args.outputs[0], args.source) if args.whole_object else None)


@dataclass(frozen=True)
class BpfLinkArgs(ToolArgs):
    """link_bpf's argument: `bpftool gen object OBJECT.partial INPUTS...`."""

    name: str
    """The object's name, for its errors."""
    inputs: tuple[str, ...]
    """The objects linked, relative to cwd: named when an extern stays unresolved."""


@signature_once
def link_bpf(args: BpfLinkArgs) -> TaskFailed | None:
    """Link the object, then refuse it while an extern is unresolved: libbpf would
    only say so when it loads it, naming no source."""
    failed = prepare_outputs(args.cwd, args.outputs)
    if failed:
        return failed
    failed = with_space_hint(_execute(args.command.argv, args.cwd), args.cwd, args.outputs[0])
    failed = failed or check_arch(args.outputs[0], args.cwd, args.expect)
    if not failed:
        failed = require_programs(partial(args.outputs[0]), f"object '{args.name}'")
    if not failed:
        try:
            missing = unresolved_externs(partial(args.outputs[0]))
        except (OSError, ValueError) as err:
            missing, failed = [], TaskFailed(f"cannot read the linked object {args.name}: {err}")
        if missing:
            failed = TaskFailed(
                f"object '{args.name}': unresolved extern {', '.join(missing)}: defined in "
                f"none of {', '.join(args.inputs)}\n"
                "hint: define it in one of the object's sources or in a [bpflib] its libs "
                "name; a kernel symbol is declared with __ksym (or __kconfig)"
            )
    return finish_outputs(args.outputs, failed, args.cwd)


@dataclass(frozen=True)
class SkeletonArgs(ToolArgs):
    """generate_skeleton's argument: `bpftool gen skeleton OBJECT name NAME > HEADER`."""

    bpf_object: str
    """The linked BPF object, relative to cwd."""
    bpftool: Bpftool
    """The bpftool that runs: which sections its libbpf reads (bpfcheck)."""


@signature_once
def generate_skeleton(args: SkeletonArgs) -> TaskFailed | None:
    """Write the skeleton, unless the object has a section the bpftool's libbpf would
    skip (struct_ops maps attached through a link with bpftool 7.1): that skeleton
    would lack them, and the user would only see a C error later."""
    try:
        sections = [
            section.name for section in read_sections(os.path.join(args.cwd, args.bpf_object))
        ]
    except (OSError, ValueError) as err:
        return TaskFailed(f"{args.bpf_object}: cannot read the linked object: {err}")
    error = unreadable_sections_error(args.bpf_object, sections, args.bpftool)
    if error:
        return TaskFailed(f"{error.message}\nhint: {error.hint}")
    return run_tool(args)


@dataclass(frozen=True)
class VmlinuxArgs:
    """generate_vmlinux's argument: `bpftool btf dump file BTF format c > HEADER`."""

    command: Command
    """The bpftool command, its stdout the header (relative to cwd)."""
    cwd: str
    """The project root."""
    header: str
    """Absolute path of vmlinux.h."""
    btf: str
    """Absolute path of the BTF it dumps (its content keys the machine-wide cache)."""
    bpftool: tuple[str, str]
    """bpftool's path and version (part of the cache key)."""
    provenance: Mapping[str, object] | None
    """Where a Debian kernel's BTF came from (package, version, the .deb's SHA-256),
    written as HEADER.source.json; None for other BTF."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.command,)

    @property
    def provenance_record(self) -> str:
        return self.header + ".source.json"


@signature_once
def generate_vmlinux(args: VmlinuxArgs) -> TaskFailed | None:
    """vmlinux.h from bpftool, or the same header from the machine-wide cache: keyed by
    the BTF's content, bpftool (path, version) and the command's other words; then its
    provenance record, if any."""
    argv = args.command.argv
    if not header_cache.enabled():
        failed = run_tool(ToolArgs(args.command, args.cwd, (args.header,), None))
    else:
        words = [word for word in argv[1:] if word != args.btf]
        key = header_cache.key_of(header_cache.content_sha256(args.btf), *args.bpftool, words)
        failed = _fetch_or_make(
            header_cache.VMLINUX_KIND,
            key,
            "vmlinux.h",
            args.header,
            lambda: with_space_hint(_execute(argv, args.cwd, args.header), args.cwd, args.header),
            header_cache.stamp(btf=args.btf, bpftool=args.bpftool[1]),
            args.cwd,
        )
    if failed or args.provenance is None:
        return failed
    text = json.dumps(args.provenance, indent=1, sort_keys=True) + "\n"
    return _write_own(args.cwd, args.provenance_record, text.encode())


@dataclass(frozen=True)
class PchArgs:
    """build_pch's argument: vmlinux.h precompiled with the BPF flags of one arch."""

    command: Command
    """The clang command, writing PCH.partial."""
    cwd: str
    """The project root."""
    pch: str
    """Absolute path of the PCH."""
    key_file: str
    """Absolute path of the key file, which says what the PCH was built from."""
    key: str
    """The flags and clang the PCH is built with (StepBuilder.pch_key)."""
    header: str
    """Absolute path of vmlinux.h (its digest completes the key)."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.command,)


@signature_once
def build_pch(args: PchArgs) -> TaskFailed | None:
    """Precompile vmlinux.h, or take the same PCH from the machine-wide cache (it is
    relocatable: see StepBuilder.vmlinux_pch), then write the key file. The key goes
    first and comes back last: a compile that reads a matching key finds the PCH of
    those very inputs in place (see pch_ready)."""
    try:
        safefs.prepare_file(args.cwd, args.key_file)
        Path(args.key_file).unlink(missing_ok=True)
    except safefs.UnsafePathError as err:
        return TaskFailed(err.describe())
    except OSError as err:
        return TaskFailed(safefs.refusal(args.cwd, args.key_file, err).describe())
    if header_cache.enabled():
        cache_key = header_cache.key_of(args.key, header_cache.content_sha256(args.header))
        failed = _fetch_or_make(
            header_cache.PCH_KIND,
            cache_key,
            "vmlinux.h.pch",
            args.pch,
            lambda: with_space_hint(_execute(args.command.argv, args.cwd), args.cwd, args.pch),
            header_cache.stamp(built_in=args.cwd),
            args.cwd,
        )
    else:
        failed = run_tool(ToolArgs(args.command, args.cwd, (args.pch,), None))
    if failed:
        return failed
    key_line = f"{args.key} {content_digest(args.header)}\n"
    return _write_own(args.cwd, args.key_file, key_line.encode())


def _fetch_or_make(*args: Any) -> TaskFailed | None:
    """header_cache.fetch_or_make, with a link or a file where output's folders go as
    the step's failure."""
    try:
        return header_cache.fetch_or_make(*args)
    except safefs.UnsafePathError as err:
        return TaskFailed(err.describe())


def _write_own(root: str, path: str, data: bytes) -> TaskFailed | None:
    """Write one of bpfbuild's own small files atomically, under checked folders."""
    try:
        safefs.write_file(root, path, data)
    except safefs.UnsafePathError as err:
        return TaskFailed(err.describe())
    return None


def pch_ready(key_file: str, key: str, header: str) -> bool:
    """True when the PCH in place was built with these flags from this vmlinux.h."""
    saved = safefs.read_regular(key_file, limit=4096)
    if saved is None:
        return False
    return saved.decode(errors="replace").split() == [key, content_digest(header)]


@dataclass(frozen=True)
class JsonArgs:
    """write_json's argument."""

    output: str
    """Absolute path of the file."""
    data: object
    """What it holds, as JSON."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return ()


@signature_once
def write_json(args: JsonArgs) -> TaskFailed | None:
    """Write data as JSON atomically."""
    failed = prepare_outputs(args.cwd, (args.output,))
    if failed:
        return failed
    failed = _write_own(
        args.cwd, partial(args.output), (json.dumps(args.data, indent=1) + "\n").encode()
    )
    return finish_outputs((args.output,), failed, args.cwd)


@dataclass(frozen=True)
class CopyArgs:
    """copy_file's argument."""

    source: str
    """The file copied, relative to cwd or absolute, as `-v` shows it."""
    output: str
    """Where it goes, relative to cwd or absolute, as `-v` shows it."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (Command(("cp", self.source, self.output)),)


@signature_once
def copy_file(args: CopyArgs) -> TaskFailed | None:
    """Copy source to output atomically (what `cp` would do)."""
    output = os.path.join(args.cwd, args.output)
    failed = prepare_outputs(args.cwd, (output,))
    if failed:
        return failed
    try:
        shutil.copyfile(os.path.join(args.cwd, args.source), partial(output))
    except OSError as err:
        failed = TaskFailed(f"cannot copy {args.source} to {args.output}: {err.strerror}")
    return finish_outputs((output,), failed, args.cwd)


@signature_once
def archive_library(args: ToolArgs) -> TaskFailed | None:
    """`ar rcsD OUTPUT.partial OBJECTS...` then rename. ar adds to an existing archive,
    so a partial one a killed build left behind goes first."""
    Path(partial(args.outputs[0])).unlink(missing_ok=True)
    return run_tool(args)


@dataclass(frozen=True)
class LinkArgs:
    """link_executable's argument: one app's link, and its strip."""

    link: Command
    """The C compiler linking OUTPUT.partial."""
    strip: Command | None
    """strip --strip-all of OUTPUT.partial, when [build] strip is set."""
    cwd: str
    """The project root."""
    output: str
    """Absolute path of the executable."""
    static: bool
    """[build] static: the executable must have no NEEDED entry."""
    expect: ElfExpectation | None
    """The ELF arch the executable must have."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (self.link, self.strip) if self.strip else (self.link,)


@signature_once
def link_executable(args: LinkArgs) -> TaskFailed | dict:
    """Link (and optionally strip) an app into OUTPUT.partial, check its arch and that
    a static one has no NEEDED entry, then rename it. Returns size and NEEDED entries,
    which doit saves as the task's values."""
    output, cwd = args.output, args.cwd
    failed = prepare_outputs(cwd, (output,))
    if failed:
        return failed
    failed = _execute(args.link.argv, cwd)
    if not failed and args.strip:
        failed = _execute(args.strip.argv, cwd)
    failed = with_space_hint(failed, cwd, output)
    if not failed:
        failed = check_arch(output, cwd, args.expect)
    needed: list[str] = []
    if not failed:
        try:
            needed = needed_libraries(partial(output))
        except (OSError, ValueError, struct.error) as err:  # NotElf is a ValueError
            failed = TaskFailed(
                f"{output}: the linker wrote no readable ELF executable "
                f"({err})\nhint: check ldflags in bpfbuild.toml and $LDFLAGS"
            )
    if not failed and args.static and needed:
        failed = TaskFailed(
            f"{output} should be static but needs {', '.join(needed)}; "
            "check ldflags in bpfbuild.toml and $LDFLAGS"
        )
    failed = finish_outputs((output,), failed, cwd)
    if failed:
        return failed
    return {"size": os.path.getsize(output), "needed": needed}


def prepare_outputs(root: str, outputs: tuple[str, ...]) -> TaskFailed | None:
    """Make and check the folders of outputs (none may be a link: safefs), and remove
    a link or a killed build's leftover at each OUTPUT and OUTPUT.partial, so that no
    tool writes through a link planted there. A failure names the path and the fix."""
    for output in outputs:
        try:
            safefs.prepare_file(root, output)
            safefs.prepare_file(root, partial(output))
            Path(partial(output)).unlink(missing_ok=True)
        except safefs.UnsafePathError as err:
            return TaskFailed(err.describe())
        except OSError as err:
            return TaskFailed(safefs.refusal(root, partial(output), err).describe())
    return None


def finish_outputs(
    outputs: tuple[str, ...], failed: TaskFailed | None, root: str
) -> TaskFailed | None:
    """On success rename every OUTPUT.partial into place; on failure delete them. A
    folder where an output goes fails the step (a user's folder is never replaced),
    as does a folder bpfbuild cannot write. Each output is hashed here, in the job's
    thread, so that recording it in the build state (state.TargetsAsRecorded, in
    doit's main thread) finds the hash cached."""
    for output in outputs:
        if failed:
            Path(partial(output)).unlink(missing_ok=True)
            continue
        try:
            os.replace(partial(output), output)
        except OSError as err:
            Path(partial(output)).unlink(missing_ok=True)
            failed = TaskFailed(safefs.refusal(root, output, err).describe())
            continue
        content_digest(output, own_output=True)
    return failed


def _execute(argv: tuple[str, ...], cwd: str, stdout_to: str | None = None) -> TaskFailed | None:
    """Run one command; a failure carries the tool's own diagnostics and the command.
    stdout_to: its stdout is the content of OUTPUT.partial, written here (not by the
    tool, which may not check its writes: a full disk must fail the step, not leave a
    truncated header that looks complete)."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True)
    except OSError as err:
        return TaskFailed(f"cannot run {argv[0]}: {err.strerror}")
    if done.returncode == 0:
        if done.stderr:  # warnings: show them, as make would
            sys.stderr.write(done.stderr.decode(errors="replace"))
            sys.stderr.flush()
        if stdout_to:
            return _write_stdout(cwd, stdout_to, done.stdout)
        return None
    diagnostics = (done.stderr or b"").decode(errors="replace").rstrip()
    if done.stdout and not stdout_to:
        diagnostics = (done.stdout.decode(errors="replace").rstrip() + "\n" + diagnostics).strip()
    status = f"{Path(argv[0]).name} exited with {done.returncode} (run with -v to see the command)"
    return TaskFailed(f"{diagnostics}\n{status}".lstrip())


def _write_stdout(cwd: str, output: str, data: bytes) -> TaskFailed | None:
    """Write a tool's stdout as OUTPUT.partial (O_NOFOLLOW: prepare_outputs removed any
    link there, one planted since is refused); a write error is the step's failure."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(partial(output), flags, 0o644), "wb") as out:
            out.write(data)
    except OSError as err:
        Path(partial(output)).unlink(missing_ok=True)
        return TaskFailed(safefs.refusal(cwd, partial(output), err).describe())
    return None


def with_space_hint(failed: TaskFailed | None, cwd: str, output: str) -> TaskFailed | None:
    """A failed step whose output's file system is full says so: the tool's own message
    (clang's "No space left on device") is followed by what to do."""
    if failed is None:
        return None
    message = failed.get_msg()
    said = any(os.strerror(e) in message for e in (errno.ENOSPC, errno.EDQUOT))
    try:
        st = os.statvfs(os.path.dirname(output))
        nearly_full = st.f_bavail * st.f_frsize < 64 * 1024
    except OSError:
        nearly_full = False
    if not (said or nearly_full):
        return failed
    name = os.path.relpath(os.path.dirname(output), cwd)
    return TaskFailed(
        f"{message.rstrip()}\nthe file system of {name}/ is full"
        "\nhint: free space on it, then build again"
    )
