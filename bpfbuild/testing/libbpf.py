"""A small Pythonic ctypes binding to libbpf.so.1, for testing BPF objects from Python.

Open a built object, set its globals, load it, run programs with BPF_PROG_TEST_RUN,
attach tracepoints, uprobes and perf events, read iterators, and read or write maps
and ring buffers:

    with BpfObject.open("output/x86_64/bpf/xdp_pass.bpf.o") as obj:
        obj.set_global("max_len", 100)
        obj.load()
        result = obj.program("xdp_pass").test_run(data_in=packet)
        packets = sum(obj.map("counters").lookup(0, decode=int))

Every failure raises a `BpfError`. Its subclasses say why, so that a test runner can
skip rather than fail: `BpfPrivilegeError` (not root, no CAP_BPF) and
`BpfUnsupportedError` (the kernel refuses a feature although we are privileged).
libbpf's own messages, the verifier log among them, are captured and put in the error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_codes
import functools
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import ARCHES, host_arch_name
from ..errors import BpfBuildError, ToolchainError
from ..kernels.abi import (
    BPF_ANY,
    ENOSYS_REASON,
    ENOTSUPP,
    PERCPU_MAP_TYPES,
    RINGBUF_MAP_TYPE,
    errno_description,
    errno_name,
)
from ..kernels.host import (
    MOUNT_TRACEFS,
    describe_missing_privilege,
    has_bpf_privileges,
    tracefs_mounted,
)
from ..verify.log import missing_ksym
from .btf import Btf, ValueLayout

log = logging.getLogger("bpfbuild.testing.libbpf")
log.addHandler(logging.NullHandler())  # libbpf's messages go into errors; print only if asked

LIBBPF_SONAME = "libbpf.so.1"
KPROBE_SECTIONS = (
    "kprobe",
    "kretprobe",
    "ksyscall",
    "kretsyscall",
    "kprobe.multi",
    "kretprobe.multi",
)
"""Section prefixes attached through kprobes, which some kernels are built without."""
TRACEPOINT_SECTIONS = ("tp", "tracepoint")
"""Section prefixes attached through tracefs (perf tracepoint events)."""


class BpfError(BpfBuildError):
    """A libbpf or kernel operation failed: open, load, attach, test run or map access."""

    def __init__(
        self, message: str, hint: str | None = None, errno: int = 0, libbpf_log: str = ""
    ) -> None:
        super().__init__(message, hint)
        self.errno = errno
        self.libbpf_log = libbpf_log

    def __str__(self) -> str:
        if not self.libbpf_log:
            return self.message
        return f"{self.message}\nlibbpf output:\n{self.libbpf_log.rstrip()}"


class BpfPrivilegeError(BpfError):
    """Not privileged enough: run as root or with CAP_BPF (and CAP_PERFMON for tracing)."""


class BpfUnsupportedError(BpfError):
    """This kernel lacks a feature (or refuses it despite privileges: lockdown, config)."""


class LibbpfNotFoundError(ToolchainError):
    """libbpf.so.1 is not installed."""


# ---------------------------------------------------------------------- library


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts of <bpf/bpf.h> (libbpf 1.1): 80 bytes on 64-bit."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts of <bpf/libbpf.h> (libbpf 1.1): 40 bytes on 64-bit."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ref_ctr_offset", ctypes.c_size_t),
        ("bpf_cookie", ctypes.c_uint64),
        ("retprobe", ctypes.c_bool),
        ("func_name", ctypes.c_char_p),
    ]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (_P, [ctypes.c_char_p, _P]),
    "bpf_object__load": (ctypes.c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__name": (ctypes.c_char_p, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (ctypes.c_char_p, [_P]),
    "bpf_program__section_name": (ctypes.c_char_p, [_P]),
    "bpf_program__fd": (ctypes.c_int, [_P]),
    "bpf_program__type": (ctypes.c_int, [_P]),
    "bpf_program__autoload": (ctypes.c_bool, [_P]),
    "bpf_program__set_autoload": (ctypes.c_int, [_P, ctypes.c_bool]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_uprobe_opts": (
        _P,
        [_P, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, _P],
    ),
    "bpf_program__attach_perf_event": (_P, [_P, ctypes.c_int]),
    "bpf_link__destroy": (ctypes.c_int, [_P]),
    "bpf_link__fd": (ctypes.c_int, [_P]),
    "bpf_iter_create": (ctypes.c_int, [ctypes.c_int]),
    "bpf_map__name": (ctypes.c_char_p, [_P]),
    "bpf_map__fd": (ctypes.c_int, [_P]),
    "bpf_map__type": (ctypes.c_int, [_P]),
    "bpf_map__key_size": (ctypes.c_uint32, [_P]),
    "bpf_map__value_size": (ctypes.c_uint32, [_P]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_P]),
    "bpf_map__is_internal": (ctypes.c_bool, [_P]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_map__btf_key_type_id": (ctypes.c_uint32, [_P]),
    "bpf_map__btf_value_type_id": (ctypes.c_uint32, [_P]),
    "bpf_prog_test_run_opts": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, _P, _P]),
    "bpf_map_update_elem": (ctypes.c_int, [ctypes.c_int, _P, _P, ctypes.c_uint64]),
    "bpf_map_delete_elem": (ctypes.c_int, [ctypes.c_int, _P]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, _P, _P]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "libbpf_version_string": (ctypes.c_char_p, []),
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "ring_buffer__new": (_P, [ctypes.c_int, _SAMPLE_FN, _P, _P]),
    "ring_buffer__poll": (ctypes.c_int, [_P, ctypes.c_int]),
    "ring_buffer__consume": (ctypes.c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
}


@functools.cache
def lib() -> ctypes.CDLL:
    """libbpf.so.1, with argument types declared and libbpf's printing captured."""
    candidates = [LIBBPF_SONAME]
    found = ctypes.util.find_library("bpf")
    if found and found != LIBBPF_SONAME:
        candidates.append(found)
    errors = []
    for name in candidates:
        try:
            library = ctypes.CDLL(name, use_errno=True)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise LibbpfNotFoundError(
            f"cannot load {LIBBPF_SONAME}: " + "; ".join(errors),
            hint="apt-get install libbpf1",
        )
    for fn_name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(library, fn_name)
        fn.restype = restype
        fn.argtypes = argtypes
    library.libbpf_set_print(_print_callback)
    return library


def libbpf_version() -> str:
    return lib().libbpf_version_string().decode()


@functools.cache
def num_possible_cpus() -> int:
    """CPUs a per-CPU map holds a value for (possible, not only online, CPUs)."""
    count = lib().libbpf_num_possible_cpus()
    if count < 0:
        raise BpfError("cannot count possible CPUs", errno=-count)
    return count


# ------------------------------------------------------------- libbpf's output


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.vsnprintf.restype = ctypes.c_int
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
    return libc


def _format(fmt: int, ap: int) -> str:
    """printf-format libbpf's message with C's vsnprintf on the va_list pointer."""
    # libbpf's print callback receives a va_list; where it arrives as a pointer of
    # known size (Arch.va_list_size), copying its bytes lets vsnprintf run twice when
    # the first buffer was too small (what va_copy does there).
    host = host_arch_name()
    va_size = ARCHES[host].va_list_size if host else None
    if va_size is None:  # cannot copy the va_list: format once, into a large buffer
        buf = ctypes.create_string_buffer(1 << 20)
        _libc().vsnprintf(buf, len(buf), fmt, ap)
        return buf.value.decode("utf-8", "replace")
    size = 1024
    while True:
        buf = ctypes.create_string_buffer(size)
        ap_copy = ctypes.create_string_buffer(va_size)
        ctypes.memmove(ap_copy, ap, va_size)
        needed = _libc().vsnprintf(buf, size, fmt, ctypes.addressof(ap_copy))
        if needed < size:
            return buf.value.decode("utf-8", "replace")
        size = needed + 1


_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_sinks: list[list[tuple[int, str]]] = []
"""Active captures: each gets every libbpf message printed while it is open."""


def _print(level: int, fmt: int, ap: int) -> int:
    try:
        message = _format(fmt, ap)
    except Exception:  # noqa: BLE001 - a failure here must not unwind through C
        return 0
    for sink in _sinks:
        sink.append((level, message))
    log.log(_LEVELS.get(level, logging.DEBUG), "%s", message.rstrip("\n"))
    return 0


_print_callback = _PRINT_FN(_print)
"""Module-level so that the C function pointer outlives every libbpf call."""


@contextmanager
def _capture() -> Iterator[list[tuple[int, str]]]:
    sink: list[tuple[int, str]] = []
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


def _log_text(sink: list[tuple[int, str]], max_lines: int = 200) -> str:
    """WARN and INFO messages (DEBUG is too chatty for an error), the last max_lines lines."""
    lines = "".join(message for level, message in sink if level <= 1).splitlines()
    if len(lines) > max_lines:
        lines = [f"... ({len(lines) - max_lines} earlier lines omitted)"] + lines[-max_lines:]
    return "\n".join(lines)


# ---------------------------------------------------------------------- errors


def _error(
    op: str,
    what: str,
    err: int,
    *,
    sink: list[tuple[int, str]] | None = None,
    section: str = "",
    hint: str | None = None,
) -> BpfError:
    """The error for a failed operation, of the subclass its errno and context call for."""
    err = abs(err)
    message = f"{op} {what} failed: {errno_name(err)} ({errno_description(err)})"
    text = _log_text(sink) if sink is not None else ""
    kind = section.split("/", 1)[0]
    privileged = has_bpf_privileges()
    if err == errno_codes.ENOSYS:
        return BpfUnsupportedError(
            f"{message}: {ENOSYS_REASON}",
            hint
            or (
                "run on a kernel with CONFIG_BPF_SYSCALL, outside qemu-user and seccomp filters "
                "that refuse bpf()"
            ),
            err,
            text,
        )
    if op == "load" and (ksym := missing_ksym(text.splitlines())):
        return BpfUnsupportedError(f"{message}: {ksym.reason}", hint or ksym.hint, err, text)
    if err in (errno_codes.EPERM, errno_codes.EACCES) and not privileged:
        return BpfPrivilegeError(
            f"{message}: {describe_missing_privilege()}",
            hint or "run as root with its capabilities, or grant CAP_BPF and CAP_PERFMON",
            err,
            text,
        )
    if err in (errno_codes.EOPNOTSUPP, ENOTSUPP):
        return BpfUnsupportedError(message, hint or "this kernel does not support it", err, text)
    if err == errno_codes.EPERM and op in ("load", "attach"):
        return BpfUnsupportedError(
            message + (f' for SEC("{section}")' if section else "") + " despite privileges",
            hint
            or "the kernel refuses this program type (lockdown, or a feature such as "
            "fentry/LSM is unavailable)",
            err,
            text,
        )
    if err == errno_codes.ENOENT and op == "attach" and kind in KPROBE_SECTIONS:
        return BpfUnsupportedError(message, hint or "this kernel has no kprobe support", err, text)
    return BpfError(message, hint, err, text)


def _errno(ret: int) -> int:
    """libbpf 1.x returns -errno; fall back to errno if a call returned plain -1."""
    if ret < -1:
        return -ret
    return ctypes.get_errno() or (-ret if ret < 0 else errno_codes.EINVAL)


# --------------------------------------------------------------------- objects


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returned."""

    __test__ = False  # not a pytest test class despite the name

    retval: int
    """The program's return value (e.g. XDP_PASS = 2)."""
    data_out: bytes
    """The packet after the program ran (it may rewrite or resize it)."""
    ctx_out: bytes | None
    """The context after the run, if a context was passed in."""
    duration_ns: int
    """Average duration of one repetition, in nanoseconds."""


Decoder = None | type | str | ValueLayout | Callable[[bytes], Any]
"""How to turn raw bytes into a value; see Map.lookup."""


class BpfObject:
    """An opened BPF object file; closing it frees its programs, maps and links."""

    def __init__(self, handle: int, path: Path) -> None:
        self._handle: int | None = handle
        self.path = path
        self.loaded = False
        self._links: list[Link] = []
        self._btf: Btf | None = None
        library = lib()
        self.programs: dict[str, Program] = {}
        prog = library.bpf_object__next_program(handle, None)
        while prog:
            program = Program(self, prog)
            self.programs[program.name] = program
            prog = library.bpf_object__next_program(handle, prog)
        self.maps: dict[str, Map] = {}
        bpf_map = library.bpf_object__next_map(handle, None)
        while bpf_map:
            wrapped = Map(self, bpf_map)
            self.maps[wrapped.name] = wrapped
            bpf_map = library.bpf_object__next_map(handle, bpf_map)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BpfObject:
        """Open (not load) a BPF object file."""
        path = Path(path)
        if not path.is_file():
            raise BpfError(
                f"BPF object {path} does not exist",
                hint="run `bpfbuild build`",
                errno=errno_codes.ENOENT,
            )
        library = lib()
        with _capture() as sink:
            ctypes.set_errno(0)
            handle = library.bpf_object__open_file(os.fsencode(path), None)
            if not handle:
                raise _error(
                    "open",
                    str(path),
                    _errno(-1),
                    sink=sink,
                    hint="is it a BPF object built by clang -target bpf?",
                )
        return cls(handle, path)

    @property
    def name(self) -> str:
        return lib().bpf_object__name(self._ptr).decode()

    @property
    def _ptr(self) -> int:
        if self._handle is None:
            raise BpfError(f"BPF object {self.path} is closed")
        return self._handle

    @property
    def btf(self) -> Btf:
        """The object's BTF, read from the file (type ids match libbpf's)."""
        if self._btf is None:
            self._btf = Btf.from_elf(self.path)
        return self._btf

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Destroy the links, then free the object (its programs and maps)."""
        for link in reversed(self._links):
            link.destroy()
        self._links.clear()
        if self._handle is not None:
            lib().bpf_object__close(self._handle)
            self._handle = None

    def load(self) -> None:
        """Load every program (whose autoload is on) and create the maps in the kernel."""
        with _capture() as sink:
            ret = lib().bpf_object__load(self._ptr)
            if ret:
                section = ""
                failed = re.findall(
                    r"prog '([^']+)': (?:failed to load|BPF program load failed)",
                    "".join(m for _, m in sink),
                )
                if failed and failed[-1] in self.programs:
                    section = self.programs[failed[-1]].section
                what = f"of {self.path.name}" + (f" (program '{failed[-1]}')" if failed else "")
                raise _error("load", what, _errno(ret), sink=sink, section=section)
        self.loaded = True

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise BpfError(
                f"no program '{name}' in {self.path.name}",
                hint="programs: " + ", ".join(self.programs),
            ) from None

    def map(self, name: str) -> Map:
        """A map by name; ".bss", ".data", ".rodata" name the object's global sections."""
        if name in self.maps:
            return self.maps[name]
        for candidate in self.maps.values():
            if candidate.internal and candidate.name.endswith(name) and name.startswith("."):
                return candidate
        raise BpfError(f"no map '{name}' in {self.path.name}", hint="maps: " + ", ".join(self.maps))

    def _global(self, name: str) -> tuple[Map, int, int, int]:
        variable = self.btf.variable(name)
        if not variable.section.startswith((".rodata", ".data", ".bss")):
            raise BpfError(
                f"'{name}' is not a global variable but lives in {variable.section}",
                hint="use obj.map(name) for maps",
            )
        return self.map(variable.section), variable.offset, variable.size, variable.type_id

    def set_global(self, name: str, value: int | bytes | str | dict[str, Any] | list[Any]) -> None:
        """Set a global variable: .rodata only before load; .bss and .data at any time.

        An int is stored with the variable's size, a dict or list is encoded with BTF,
        bytes and str are copied and zero-padded.
        """
        section_map, offset, size, type_id = self._global(name)
        if isinstance(value, str):
            value = value.encode()
        raw = (
            bytes(value).ljust(size, b"\0")
            if isinstance(value, (bytes, bytearray))
            else self.btf.encode(type_id, value)
        )
        if len(raw) > size:
            raise BpfError(f"{len(raw)} bytes do not fit global '{name}' ({size} bytes)")
        if self.loaded and ".rodata" in section_map.name:
            raise BpfError(
                f"global '{name}' is in .rodata, which is frozen once loaded",
                hint="set read-only globals before load(), or make it non-const (.bss)",
            )
        if self.loaded:
            # libbpf 1.1 maps the kernel's copy only for skeletons: go through the map.
            data = bytearray(section_map.lookup(0))
            data[offset : offset + size] = raw
            section_map.update(0, bytes(data))
        else:
            ctypes.memmove(section_map._initial_value() + offset, raw, size)

    def get_global(self, name: str, decode: bool = True) -> Any:
        """A global variable's value: the kernel's once loaded, else the initial value."""
        section_map, offset, size, type_id = self._global(name)
        if self.loaded:
            raw = section_map.lookup(0)[offset : offset + size]
        else:
            raw = ctypes.string_at(section_map._initial_value() + offset, size)
        return self.btf.decode(type_id, raw) if decode else raw


class Link:
    """An attachment of a program; destroying it detaches the program."""

    def __init__(self, owner: BpfObject, handle: int, description: str) -> None:
        self._owner = owner
        self._handle: int | None = handle
        self.description = description

    @property
    def fd(self) -> int:
        if self._handle is None:
            raise BpfError(f"link {self.description} is destroyed")
        return lib().bpf_link__fd(self._handle)

    def iter_read(self) -> bytes:
        """Run an iterator (a SEC("iter/...") program's link) once: everything it wrote."""
        fd = lib().bpf_iter_create(self.fd)
        if fd < 0:
            raise _error(
                "create iterator from",
                self.description,
                _errno(fd),
                hint='only links of SEC("iter/...") programs can be read',
            )
        chunks = []
        try:
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        except OSError as exc:
            raise _error("read iterator", self.description, exc.errno or errno_codes.EIO) from None
        finally:
            os.close(fd)
        return b"".join(chunks)

    def destroy(self) -> None:
        if self._handle is not None:
            lib().bpf_link__destroy(self._handle)
            self._handle = None
            if self in self._owner._links:
                self._owner._links.remove(self)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        state = "attached" if self._handle is not None else "destroyed"
        return f"Link({self.description!r}, {state})"


class Program:
    """One program of a BPF object."""

    def __init__(self, owner: BpfObject, handle: int) -> None:
        self._owner = owner
        self._handle = handle
        self.name: str = lib().bpf_program__name(handle).decode()
        self.section: str = lib().bpf_program__section_name(handle).decode()

    def __repr__(self) -> str:
        return f"Program({self.name!r}, section={self.section!r})"

    @property
    def fd(self) -> int:
        return lib().bpf_program__fd(self._handle)

    @property
    def prog_type(self) -> int:
        """The numeric enum bpf_prog_type."""
        return lib().bpf_program__type(self._handle)

    @property
    def autoload(self) -> bool:
        return lib().bpf_program__autoload(self._handle)

    @autoload.setter
    def autoload(self, value: bool) -> None:
        """Before load: False leaves this program out (e.g. one the kernel refuses)."""
        ret = lib().bpf_program__set_autoload(self._handle, value)
        if ret:
            raise _error("set autoload of", f"program '{self.name}'", _errno(ret))

    def _require_loaded(self, action: str) -> None:
        if self.fd < 0:
            raise BpfError(
                f"cannot {action} program '{self.name}': it is not loaded",
                hint="call load() on the object first",
            )

    def test_run(
        self,
        data_in: bytes = b"",
        ctx_in: bytes | None = None,
        repeat: int = 1,
        data_size_out: int | None = None,
        flags: int = 0,
        cpu: int = 0,
    ) -> TestRunResult:
        """Run the program once (or `repeat` times) in the kernel on a packet and/or context.

        data_size_out is the room for the output packet; by default the input size
        plus 4 KiB, so that programs growing the packet fit.
        """
        self._require_loaded("run")
        out_size = len(data_in) + 4096 if data_size_out is None else data_size_out
        data_in_buf = ctypes.create_string_buffer(bytes(data_in), len(data_in) or 1)
        data_out_buf = ctypes.create_string_buffer(max(out_size, 1))
        opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), repeat=repeat, flags=flags, cpu=cpu)
        if data_in:
            opts.data_in = ctypes.addressof(data_in_buf)
            opts.data_size_in = len(data_in)
            opts.data_out = ctypes.addressof(data_out_buf)
            opts.data_size_out = out_size
        ctx_out_buf = None
        if ctx_in is not None:
            ctx_in_buf = ctypes.create_string_buffer(bytes(ctx_in), len(ctx_in) or 1)
            ctx_out_buf = ctypes.create_string_buffer(max(len(ctx_in), 1))
            opts.ctx_in = ctypes.addressof(ctx_in_buf)
            opts.ctx_size_in = len(ctx_in)
            opts.ctx_out = ctypes.addressof(ctx_out_buf)
            opts.ctx_size_out = len(ctx_in)
        with _capture() as sink:
            ret = lib().bpf_prog_test_run_opts(self.fd, ctypes.byref(opts))
            if ret:
                err = _errno(ret)
                hint = None
                if err == errno_codes.ENOSPC:
                    hint = "the output packet is larger than data_size_out; pass a larger one"
                elif err == errno_codes.EINVAL:
                    hint = (
                        "the input does not suit this program type (e.g. a packet shorter "
                        "than an Ethernet header, or a context this type does not take)"
                    )
                elif err in (errno_codes.EOPNOTSUPP, ENOTSUPP):
                    hint = f'this kernel cannot test-run SEC("{self.section}") programs'
                raise _error(
                    "test run of",
                    f"program '{self.name}'",
                    err,
                    sink=sink,
                    section=self.section,
                    hint=hint,
                )
        return TestRunResult(
            retval=opts.retval,
            data_out=data_out_buf.raw[: opts.data_size_out] if data_in else b"",
            ctx_out=ctx_out_buf.raw[: opts.ctx_size_out] if ctx_out_buf is not None else None,
            duration_ns=opts.duration,
        )

    def _link(
        self, handle: int | None, sink: list[tuple[int, str]], what: str, hint: str | None = None
    ) -> Link:
        if not handle:
            raise _error("attach", what, _errno(-1), sink=sink, section=self.section, hint=hint)
        link = Link(self._owner, handle, what)
        self._owner._links.append(link)
        return link

    def attach(self) -> Link:
        """Attach by section name: tracepoints, raw tracepoints, tp_btf, iterators, ..."""
        self._require_loaded("attach")
        hint = None
        if self.section.split("/", 1)[0] in TRACEPOINT_SECTIONS and not tracefs_mounted():
            hint = f"tracefs is not mounted: {shlex.join(MOUNT_TRACEFS)}"
        with _capture() as sink:
            ctypes.set_errno(0)
            handle = lib().bpf_program__attach(self._handle)
            return self._link(
                handle, sink, f"program '{self.name}' (SEC(\"{self.section}\"))", hint
            )

    def attach_perf_event(self, perf_event_fd: int) -> Link:
        """Attach a SEC("perf_event") program to an open perf event and enable it.

        Once attached, the link owns the perf event: destroying the link closes
        perf_event_fd. If attaching fails, the caller still owns it.
        """
        self._require_loaded("attach")
        with _capture() as sink:
            ctypes.set_errno(0)
            handle = lib().bpf_program__attach_perf_event(self._handle, perf_event_fd)
            return self._link(
                handle, sink, f"program '{self.name}' to perf event fd {perf_event_fd}"
            )

    def attach_uprobe(
        self,
        binary: str | os.PathLike[str],
        func_name: str | None = None,
        offset: int = 0,
        pid: int = -1,
        retprobe: bool = False,
        cookie: int = 0,
    ) -> Link:
        """Attach to a user-space function, by symbol name (libbpf finds it) or offset.

        pid -1 traces every process running the binary; 0 only this one.
        """
        self._require_loaded("attach")
        opts = _UprobeOpts(
            sz=ctypes.sizeof(_UprobeOpts),
            bpf_cookie=cookie,
            retprobe=retprobe,
            func_name=func_name.encode() if func_name else None,
        )
        target = f"{binary}:{func_name or hex(offset)}"
        with _capture() as sink:
            ctypes.set_errno(0)
            handle = lib().bpf_program__attach_uprobe_opts(
                self._handle, pid, os.fsencode(binary), offset, ctypes.byref(opts)
            )
            return self._link(handle, sink, f"program '{self.name}' to uprobe {target}")


class Map:
    """One map of a BPF object. Keys and values are bytes; see lookup() for conversions."""

    def __init__(self, owner: BpfObject, handle: int) -> None:
        library = lib()
        self._owner = owner
        self._handle = handle
        self.name: str = library.bpf_map__name(handle).decode()
        self.map_type: int = library.bpf_map__type(handle)
        self.key_size: int = library.bpf_map__key_size(handle)
        self.value_size: int = library.bpf_map__value_size(handle)
        self.max_entries: int = library.bpf_map__max_entries(handle)
        self.internal: bool = library.bpf_map__is_internal(handle)

    def __repr__(self) -> str:
        return f"Map({self.name!r}, type={self.map_type}, key={self.key_size}, value={self.value_size})"

    @property
    def fd(self) -> int:
        fd = lib().bpf_map__fd(self._handle)
        if fd < 0:
            raise BpfError(
                f"map '{self.name}' is not created yet", hint="call load() on the object first"
            )
        return fd

    @property
    def per_cpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def _slot_size(self) -> int:
        """Bytes per CPU in a per-CPU value: the value size rounded up to 8."""
        return (self.value_size + 7) // 8 * 8

    def _initial_value(self) -> int:
        size = ctypes.c_size_t()
        memory = lib().bpf_map__initial_value(self._handle, ctypes.byref(size))
        if not memory:
            raise BpfError(f"map '{self.name}' has no memory-mapped data")
        return memory

    # --- conversions

    def _btf_type(self, which: str) -> int:
        getter = (
            lib().bpf_map__btf_value_type_id if which == "value" else lib().bpf_map__btf_key_type_id
        )
        type_id = getter(self._handle)
        if not type_id:
            raise BpfError(
                f"map '{self.name}' has no BTF {which} type",
                hint="declare the map with __type(key, ...) and __type(value, ...)",
            )
        return type_id

    def _encode(self, value: Any, size: int, which: str) -> bytes:
        if isinstance(value, int) and not isinstance(value, bool):
            return value.to_bytes(size, sys.byteorder, signed=value < 0)
        if isinstance(value, dict):
            return self._owner.btf.encode(self._btf_type(which), value)
        raw = bytes(value)
        if len(raw) != size:
            raise BpfError(
                f"map '{self.name}': {which} is {len(raw)} bytes, expected {size}",
                hint=f"pass exactly {size} bytes, an int, or a dict of fields",
            )
        return raw

    def _decoder(self, decode: Decoder, which: str) -> Callable[[bytes], Any]:
        if decode is None:
            return bytes
        if decode is int:
            return lambda raw: int.from_bytes(raw, sys.byteorder)
        if decode == "btf":
            type_id = self._btf_type(which)
            return lambda raw: self._owner.btf.decode(type_id, raw)
        if isinstance(decode, str):
            btf = self._owner.btf
            return lambda raw: btf.decode(decode, raw)
        if hasattr(decode, "decode"):
            return decode.decode
        return decode

    def _split(self, raw: bytes, decode: Callable[[bytes], Any]) -> Any:
        if not self.per_cpu:
            return decode(raw)
        step = self._slot_size
        return [
            decode(raw[i * step : i * step + self.value_size]) for i in range(num_possible_cpus())
        ]

    # --- element access

    def _value_buffer(self) -> ctypes.Array[ctypes.c_char]:
        size = self._slot_size * num_possible_cpus() if self.per_cpu else self.value_size
        return ctypes.create_string_buffer(max(size, 1))

    def lookup(self, key: Any, decode: Decoder = None) -> Any:
        """The value at key, or None if absent; a list with one value per CPU for per-CPU maps.

        key: bytes of key_size, an int, or a dict (encoded with the map's BTF key type).
        decode: None for bytes; int for an unsigned integer; "btf" for the map's BTF
        value type as a dict; another str names a BTF type ("struct event"); a
        layout (btf.BtfStruct, btf.FormatLayout); or any callable taking bytes.
        """
        key_buf = ctypes.create_string_buffer(
            self._encode(key, self.key_size, "key"), max(self.key_size, 1)
        )
        value_buf = self._value_buffer()
        ret = lib().bpf_map_lookup_elem(self.fd, key_buf, value_buf)
        if ret:
            err = _errno(ret)
            if err == errno_codes.ENOENT:
                return None
            raise _error("lookup in", f"map '{self.name}'", err)
        return self._split(value_buf.raw, self._decoder(decode, "value"))

    def __getitem__(self, key: Any) -> Any:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self.lookup(key) is not None

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """Set key to value (bytes, int or dict); for a per-CPU map a list sets each CPU,
        a single value sets every CPU. flags: kernels.abi.BPF_ANY, BPF_NOEXIST, BPF_EXIST."""
        key_raw = self._encode(key, self.key_size, "key")
        if self.per_cpu:
            per_cpu = value if isinstance(value, list) else [value] * num_possible_cpus()
            if len(per_cpu) != num_possible_cpus():
                raise BpfError(
                    f"map '{self.name}' is per-CPU: give {num_possible_cpus()} values",
                    hint="or one value, to set it on every CPU",
                )
            raw = b"".join(
                self._encode(v, self.value_size, "value").ljust(self._slot_size, b"\0")
                for v in per_cpu
            )
        else:
            raw = self._encode(value, self.value_size, "value")
        key_buf = ctypes.create_string_buffer(key_raw, max(len(key_raw), 1))
        value_buf = ctypes.create_string_buffer(raw, max(len(raw), 1))
        ret = lib().bpf_map_update_elem(self.fd, key_buf, value_buf, flags)
        if ret:
            raise _error("update of", f"map '{self.name}'", _errno(ret))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def delete(self, key: Any) -> bool:
        """Remove key; False if it was absent (array maps cannot delete: EINVAL)."""
        key_buf = ctypes.create_string_buffer(
            self._encode(key, self.key_size, "key"), max(self.key_size, 1)
        )
        ret = lib().bpf_map_delete_elem(self.fd, key_buf)
        if ret:
            err = _errno(ret)
            if err == errno_codes.ENOENT:
                return False
            raise _error(
                "delete from",
                f"map '{self.name}'",
                err,
                hint="array maps have fixed entries; update them instead"
                if err == errno_codes.EINVAL
                else None,
            )
        return True

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def keys(self, decode: Decoder = None) -> Iterator[Any]:
        """Every key, in the kernel's iteration order."""
        convert = self._decoder(decode, "key")
        fd = self.fd
        size = max(self.key_size, 1)
        previous: ctypes.Array[ctypes.c_char] | None = None
        while True:
            current = ctypes.create_string_buffer(size)
            ret = lib().bpf_map_get_next_key(fd, previous, current)
            if ret:
                err = _errno(ret)
                if err == errno_codes.ENOENT:
                    return
                raise _error("iterate over", f"map '{self.name}'", err)
            yield convert(current.raw[: self.key_size])
            previous = current

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def items(
        self, decode: Decoder = None, key_decode: Decoder = None
    ) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs; entries deleted meanwhile are left out."""
        convert_key = self._decoder(key_decode, "key")
        convert_value = self._decoder(decode, "value")
        for raw_key in self.keys():
            value = self.lookup(raw_key)
            if value is not None:
                values = [convert_value(v) for v in value] if self.per_cpu else convert_value(value)
                yield convert_key(raw_key), values

    def values(self, decode: Decoder = None) -> Iterator[Any]:
        for _key, value in self.items(decode):
            yield value

    def ringbuf_consume(self, decode: Decoder = None) -> list[Any]:
        """Every record waiting in this ring buffer map, oldest first."""
        events: list[Any] = []
        with RingBuffer(self, events.append, decode=decode) as ring:
            ring.consume()
        return events


class RingBuffer:
    """A consumer of a BPF ring buffer map: calls callback(record) for each record.

    Records are bytes, or decoded as for Map.lookup. If callback raises, consuming
    stops and the exception propagates out of poll()/consume().
    """

    def __init__(
        self, ring_map: Map, callback: Callable[[Any], Any] | None = None, decode: Decoder = None
    ) -> None:
        if ring_map.map_type != RINGBUF_MAP_TYPE:
            raise BpfError(
                f"map '{ring_map.name}' is not a ring buffer (type {ring_map.map_type})",
                hint="declare it with __uint(type, BPF_MAP_TYPE_RINGBUF)",
            )
        self.map = ring_map
        self.events: list[Any] = []
        self._callback = callback if callback is not None else self.events.append
        self._convert = ring_map._decoder(decode, "value") if decode is not None else bytes
        self._failure: BaseException | None = None
        self._sample = _SAMPLE_FN(self._on_sample)  # kept on self: C holds this pointer
        with _capture() as sink:
            ctypes.set_errno(0)
            self._handle: int | None = lib().ring_buffer__new(ring_map.fd, self._sample, None, None)
            if not self._handle:
                raise _error("open ring buffer", f"'{ring_map.name}'", _errno(-1), sink=sink)

    def _on_sample(self, _ctx: int, data: int, size: int) -> int:
        try:
            self._callback(self._convert(ctypes.string_at(data, size)))
        except BaseException as exc:  # noqa: BLE001 - must not unwind through C: re-raised after the call
            self._failure = exc
            return -1
        return 0

    def _check(self, ret: int, action: str) -> int:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if ret < 0 and -ret != errno_codes.EINTR:
            raise _error(action, f"ring buffer '{self.map.name}'", -ret)
        return max(ret, 0)

    @property
    def _ptr(self) -> int:
        if self._handle is None:
            raise BpfError(f"ring buffer '{self.map.name}' is closed")
        return self._handle

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to timeout_ms for records and consume them; the number consumed."""
        return self._check(lib().ring_buffer__poll(self._ptr, timeout_ms), "poll")

    def consume(self) -> int:
        """Consume the records already there without waiting; the number consumed."""
        return self._check(lib().ring_buffer__consume(self._ptr), "consume")

    def close(self) -> None:
        if self._handle is not None:
            lib().ring_buffer__free(self._handle)
            self._handle = None

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
