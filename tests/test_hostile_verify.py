"""Hostile verify inputs: `verify --merge` of what no matrix job wrote (a binary file, a
FIFO, JSON of the wrong shape or types, an empty result, one result twice), a blank
`--kernel` or `--arch`, a kernel image that is empty, a folder, a FIFO or a link to
nothing, and two images of one release: each one `error:` line naming the file (and the
field) with a `hint:`, never a traceback, a hang or a silent success."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from buildutil import ARCH
from click.testing import CliRunner
from hostileutil import assert_error

from bpfbuild.cli import main
from bpfbuild.errors import BpfBuildError

PROGRAM = {
    "arch": ARCH,
    "error": None,
    "failing_insn": None,
    "hint": None,
    "insn_limit": 1000000,
    "insns_processed": 48,
    "jited_bytes": 223,
    "log_path": "/p/output/x86_64/verify/hello/handle_execve.log",
    "log_truncated": False,
    "max_states_per_insn": 0,
    "object": "hello",
    "peak_states": 4,
    "prog_type": "tracepoint",
    "program": "handle_execve",
    "section": "tp/syscalls/sys_enter_execve",
    "source_file": None,
    "source_line": None,
    "source_text": None,
    "stack_depth": 16,
    "total_states": 4,
    "verdict": "passed",
    "verification_time_usec": 99,
    "xlated_insns": 47,
}
OBJECT = {
    "arch": ARCH,
    "kernel": "6.1.0-1",
    "kernel_spec": "debian:6.1",
    "maps": {"events": 262144},
    "notes": [],
    "object": "hello",
    "path": "/p/output/x86_64/bpf/hello.bpf.o",
    "privileged": True,
    "programs": [PROGRAM],
}
RESULT = {"objects": [OBJECT]}
"""What `bpfbuild verify --format json` prints (the parts --merge reads)."""
MERGE_HINT = "give the files that each matrix job wrote with --format json"
NOT_A_RESULT = "not a result of `bpfbuild verify --format json`"


def invoke(*args: str, cwd: Path) -> tuple[str, int]:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)
    return result.output, result.exit_code


def changed(edit: Callable[[dict], Any]) -> bytes:
    document = copy.deepcopy(RESULT)
    edit(document)
    return json.dumps(document).encode()


def program(key: str, value: Any) -> bytes:
    return changed(lambda d: d["objects"][0]["programs"][0].__setitem__(key, value))


def obj(key: str, value: Any) -> bytes:
    return changed(lambda d: d["objects"][0].__setitem__(key, value))


def without(key: str) -> bytes:
    return changed(lambda d: d["objects"][0]["programs"][0].pop(key))


@dataclass(frozen=True)
class Merge:
    id: str
    files: tuple[bytes | str, ...]
    """Each file's bytes; "fifo", "folder" or "missing" for those."""
    error: str
    hint: str = MERGE_HINT


WHERE = "objects[0].programs[0]"
MERGES = [
    Merge("binary", (bytes(range(256)),), f"{NOT_A_RESULT}: byte 0x80 at offset 128 is not UTF-8"),
    Merge("utf16-bom", (b"\xff\xfe{\x00}\x00",), "byte 0xff at offset 0 is not UTF-8"),
    Merge("empty-file", (b"",), f"{NOT_A_RESULT}: not JSON"),
    Merge("not-json", (b"objects: []",), f"{NOT_A_RESULT}: not JSON"),
    Merge("truncated", (json.dumps(RESULT).encode()[:-10],), f"{NOT_A_RESULT}: not JSON"),
    Merge("array", (b"[]",), "the document is [] (an array), not an object"),
    Merge("string", (b'"objects"',), 'the document is "objects" (a string), not an object'),
    Merge("null", (b"null",), "the document is null, not an object"),
    Merge("no-objects", (b"{}",), "the document has no 'objects'"),
    Merge(
        "objects-string", (b'{"objects": "hello"}',), 'objects is "hello" (a string), not an array'
    ),
    Merge("objects-dict", (b'{"objects": {}}',), "objects is {} (an object), not an array"),
    Merge("object-number", (b'{"objects": [3]}',), "objects[0] is 3 (an integer), not an object"),
    Merge(
        "programs-missing",
        (changed(lambda d: d["objects"][0].pop("programs")),),
        "objects[0] has no 'programs'",
    ),
    Merge("programs-null", (obj("programs", None),), "objects[0].programs is null, not an array"),
    Merge(
        "program-string",
        (obj("programs", ["x"]),),
        'objects[0].programs[0] is "x" (a string), not an object',
    ),
    Merge(
        "insns-string",
        (program("insns_processed", "48"),),
        f'{WHERE}.insns_processed is "48" (a string), not an integer or null',
    ),
    Merge(
        "insns-bool",
        (program("insns_processed", True),),
        f"{WHERE}.insns_processed is true, not an integer or null",
    ),
    Merge(
        "insns-float",
        (program("insns_processed", 4.5),),
        f"{WHERE}.insns_processed is 4.5 (a number), not an integer or null",
    ),
    Merge("stack-list", (program("stack_depth", [16]),), f"{WHERE}.stack_depth is [16] (an array)"),
    Merge(
        "verdict-unknown",
        (program("verdict", "ok"),),
        f"{WHERE}.verdict is 'ok', not one of passed, rejected",
    ),
    Merge(
        "verdict-number",
        (program("verdict", 1),),
        f"{WHERE}.verdict is 1 (an integer), not a string",
    ),
    Merge("verdict-missing", (without("verdict"),), f"{WHERE} has no 'verdict'"),
    Merge("program-name-missing", (without("program"),), f"{WHERE} has no 'program'"),
    Merge("arch-number", (program("arch", 64),), f"{WHERE}.arch is 64 (an integer), not a string"),
    Merge(
        "log-path-number",
        (program("log_path", 7),),
        f"{WHERE}.log_path is 7 (an integer), not a string or null",
    ),
    Merge("error-dict", (program("error", {"x": 1}),), f'{WHERE}.error is {{"x": 1}} (an object)'),
    Merge(
        "truncated-string",
        (program("log_truncated", "no"),),
        f'{WHERE}.log_truncated is "no" (a string), not true or false',
    ),
    Merge("unknown-key", (program("bogus", 1),), f"{WHERE} has an unknown key 'bogus'"),
    Merge(
        "privileged-string",
        (obj("privileged", "yes"),),
        'objects[0].privileged is "yes" (a string), not true or false',
    ),
    Merge("kernel-null", (obj("kernel", None),), "objects[0].kernel is null, not a string"),
    Merge("path-number", (obj("path", 3),), "objects[0].path is 3 (an integer), not a string"),
    Merge("notes-string", (obj("notes", "x"),), 'objects[0].notes is "x" (a string), not an array'),
    Merge(
        "note-number", (obj("notes", [1]),), "objects[0].notes[0] is 1 (an integer), not a string"
    ),
    Merge("maps-list", (obj("maps", []),), "objects[0].maps is [] (an array), not an object"),
    Merge(
        "map-size-string",
        (obj("maps", {"events": "1"}),),
        'objects[0].maps.events is "1" (a string), not an integer',
    ),
    Merge(
        "object-name-missing",
        (changed(lambda d: d["objects"][0].pop("object")),),
        "objects[0] has no 'object'",
    ),
    Merge(
        "empty-result",
        (b'{"objects": []}',),
        "an empty result (no object was verified)",
        "check that the matrix job that wrote it verified something",
    ),
    Merge(
        "one-file-twice",
        (json.dumps(RESULT).encode(), "same"),
        f"object 'hello' on {ARCH}, kernel 6.1.0-1 is twice",
        "give each matrix job's file once",
    ),
    Merge(
        "two-jobs-one-cell",
        (json.dumps(RESULT).encode(), json.dumps(RESULT).encode()),
        f"object 'hello' on {ARCH}, kernel 6.1.0-1 is also in",
        "give each matrix job's file once",
    ),
    Merge(
        "one-object-twice-in-a-file",
        (changed(lambda d: d["objects"].append(copy.deepcopy(OBJECT))),),
        "is twice",
        "give each matrix job's file once",
    ),
    Merge(
        "fifo",
        ("fifo",),
        "job0.json: a FIFO (named pipe), not a file",
        "give the files the matrix jobs wrote",
    ),
    Merge(
        "folder",
        ("folder",),
        "job0.json: a folder, not a file",
        "give the files the matrix jobs wrote",
    ),
    Merge("missing", ("missing",), "no such file", "give the files the matrix jobs wrote"),
]


@pytest.mark.parametrize("case", MERGES, ids=[m.id for m in MERGES])
def test_merge_refuses_what_no_matrix_job_wrote(case: Merge, tmp_path: Path) -> None:
    names = []
    for index, content in enumerate(case.files):
        path = tmp_path / f"job{index}.json"
        if content == "same":
            names.append(names[-1])
            continue
        if content == "fifo":
            os.mkfifo(path)
        elif content == "folder":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        names.append(path.name)
    output, code = invoke("verify", "--merge", *names, cwd=tmp_path)
    assert_error(output, code, 1, case.error, case.hint)


def test_merge_of_good_results_passes(tmp_path: Path) -> None:
    """The control: the document the cases break is a result --merge takes; two cells
    (two kernels) of one object are two rows of its matrix."""
    (tmp_path / "a.json").write_text(json.dumps(RESULT))
    other = copy.deepcopy(RESULT)
    other["objects"][0]["kernel"] = "6.12.0-1"
    other["objects"][0]["kernel_spec"] = "debian:6.12"
    (tmp_path / "b.json").write_text(json.dumps(other))
    output, code = invoke("verify", "--merge", "a.json", "b.json", cwd=tmp_path)
    assert code == 0, output
    assert "hello/handle_execve" in output


def test_every_field_of_a_result_has_a_json_type() -> None:
    import dataclasses

    from bpfbuild.verify.results import _RESULT_TYPES, ProgramResult

    assert {f.name for f in dataclasses.fields(ProgramResult)} == set(_RESULT_TYPES)


# -- --kernel and --arch: a blank value is a usage error --------------------------------

BLANKS = [
    ("verify", "--kernel", " "),
    ("verify", "--kernel", ""),
    ("verify", "--kernel", ","),
    ("verify", "--kernel", "host,"),
    ("verify", "--kernel", ",host"),
    ("verify", "--kernel", "host, ,debian:6.1"),
    ("verify", "--kernel", "\t"),
    ("verify", "--arch", " "),
    ("verify", "--arch", ""),
    ("verify", "--arch", f"{ARCH},"),
    ("build", "--arch", ""),
    ("build", "--arch", " "),
]


@pytest.mark.parametrize(
    "command,option,value", BLANKS, ids=[f"{c}{o}={v!r}" for c, o, v in BLANKS]
)
def test_a_blank_kernel_or_arch_is_a_usage_error(
    command: str, option: str, value: str, tmp_path: Path
) -> None:
    output, code = invoke(command, option, value, cwd=tmp_path)
    assert_error(
        output,
        code,
        2,
        f"Invalid value for '{option}': {value!r} names nothing",
        f"see `bpfbuild {command} --help`",
    )


def test_blank_kernel_with_a_good_one_is_still_refused(tmp_path: Path) -> None:
    output, code = invoke("verify", "--kernel", "host", "--kernel", " ", cwd=tmp_path)
    assert_error(output, code, 2, "' ' names nothing", "see `bpfbuild verify --help`")


# -- kernel images: say what the file is ------------------------------------------------

IMAGE_HINT = "give a bootable image (vmlinuz, Image)"
IMAGES = [
    ("empty", lambda p: p.write_bytes(b""), "is an empty file"),
    ("folder", lambda p: p.mkdir(), "is a folder"),
    ("fifo", lambda p: os.mkfifo(p), "is a FIFO (named pipe)"),
    ("dangling", lambda p: p.symlink_to("nowhere"), "is a symbolic link to nothing"),
    ("loop", lambda p: p.symlink_to(p.name), "is a symbolic link loop"),
    ("missing", lambda p: None, "not found"),
]


@pytest.mark.parametrize("spec", ["./vmlinuz-odd", "vmlinuz-odd"])
@pytest.mark.parametrize("kind,make,said", IMAGES, ids=[i[0] for i in IMAGES])
def test_a_kernel_image_that_is_not_a_file_says_what_it_is(
    spec: str, kind: str, make: Callable[[Path], None], said: str, tmp_path: Path
) -> None:
    from bpfbuild.vm.targets import resolve

    make(tmp_path / "vmlinuz-odd")
    with pytest.raises(BpfBuildError) as raised:
        resolve(spec, ARCH, tmp_path)
    if kind == "missing" and "/" not in spec:
        # a bare name that is no file is read as a Debian package name, and is no such name
        assert raised.value.message == f"invalid kernel package name {spec!r}"
        assert '"debian:6.12"' in (raised.value.hint or "")
        return
    assert raised.value.message == f"kernel image {spec} {said}"
    assert IMAGE_HINT in (raised.value.hint or "")


def _image(path: Path, release: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 8192 + f"Linux version {release} (x@y) #1\0".encode())
    return path


def _plan(root: Path, specs: list[str]):
    from bpfbuild.commands import _resolve_plan

    return _resolve_plan(SimpleNamespace(root=root), specs, [ARCH])  # type: ignore[arg-type]


def test_two_images_of_one_release_are_refused(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "vmlinuz", "6.1.0-9-amd64")
    _image(tmp_path / "b" / "vmlinuz", "6.1.0-9-amd64").write_bytes(
        (tmp_path / "b" / "vmlinuz").read_bytes() + b"other"
    )
    with pytest.raises(BpfBuildError) as raised:
        _plan(tmp_path, ["a/vmlinuz", "b/vmlinuz"])
    assert "kernels a/vmlinuz and b/vmlinuz" in raised.value.message
    assert "two images of one release '6.1.0-9-amd64'" in raised.value.message
    assert "two runs" in (raised.value.hint or "")


def test_two_images_of_two_releases_both_boot(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "vmlinuz", "6.1.0-9-amd64")
    _image(tmp_path / "b" / "vmlinuz", "6.12.0-1-amd64")
    plan = _plan(tmp_path, ["a/vmlinuz", "b/vmlinuz"])
    assert [t.spec for t in plan.targets] == ["a/vmlinuz", "b/vmlinuz"]


def test_one_image_named_twice_boots_once(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "vmlinuz", "6.1.0-9-amd64")
    (tmp_path / "same").symlink_to(tmp_path / "a" / "vmlinuz")
    plan = _plan(tmp_path, ["a/vmlinuz", "./same"])
    assert [t.spec for t in plan.targets] == ["a/vmlinuz"]


def test_the_tables_are_long() -> None:
    assert len(MERGES) + len(BLANKS) + 2 * len(IMAGES) >= 60


# -- files verify reads or writes beside the project ------------------------------------

BASELINES = [
    ("fifo", lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a verifier baseline"),
    (
        "dangling",
        lambda p: p.symlink_to("nowhere"),
        "is a symbolic link to nothing, not a verifier baseline",
    ),
    ("loop", lambda p: p.symlink_to(p.name), "is a symbolic link loop, not a verifier baseline"),
]


@pytest.mark.parametrize("update", [False, True], ids=["compare", "update"])
@pytest.mark.parametrize("kind,make,said", BASELINES, ids=[b[0] for b in BASELINES])
def test_a_baseline_that_is_not_a_file_is_never_opened(
    update: bool, kind: str, make: Callable[[Path], None], said: str, tmp_path: Path
) -> None:
    from bpfbuild.errors import VerifyError
    from bpfbuild.verify.baseline import load_baseline, write_baseline
    from bpfbuild.verify.log import Verdict
    from bpfbuild.verify.results import ProgramResult

    path = tmp_path / "verify-baseline.json"
    make(path)
    result = ProgramResult(ARCH, "hello", "p", "s", "xdp", Verdict.PASSED)
    with pytest.raises(VerifyError) as raised:
        if update:
            write_baseline(path, [result])
        else:
            load_baseline(path)
    assert raised.value.message == f"{path} {said}"
    assert "bpfbuild verify --update-baseline" in (raised.value.hint or "")
    assert os.path.islink(path) or not path.is_file()  # nothing written through it


JUNIT = [
    ("fifo", lambda p: os.mkfifo(p), "is a FIFO (named pipe), where pytest writes a file"),
    ("folder", lambda p: p.mkdir(), "is a folder, where pytest writes a file"),
]


@pytest.mark.parametrize("kind,make,said", JUNIT, ids=[j[0] for j in JUNIT])
def test_a_junit_report_path_that_is_not_a_file_is_refused(
    kind: str, make: Callable[[Path], None], said: str, tmp_path: Path
) -> None:
    from bpfbuild.commands import test_project

    make(tmp_path / "report.xml")
    with pytest.raises(BpfBuildError) as raised:
        test_project(tmp_path, junit_xml=str(tmp_path / "report.xml"))
    assert said in raised.value.message
    assert "give the path of a file" in (raised.value.hint or "")


INIT_TARGETS = [
    ("file", lambda p: p.write_text("notes"), "exists and is not a folder (a file)"),
    ("fifo", lambda p: os.mkfifo(p), "exists and is not a folder (a FIFO (named pipe))"),
    (
        "dangling",
        lambda p: p.symlink_to("nowhere"),
        "exists and is not a folder (a symbolic link to nothing)",
    ),
]


@pytest.mark.parametrize("kind,make,said", INIT_TARGETS, ids=[i[0] for i in INIT_TARGETS])
def test_init_into_what_is_not_a_folder_says_what_it_is(
    kind: str, make: Callable[[Path], None], said: str, tmp_path: Path
) -> None:
    make(tmp_path / "newp")
    output, code = invoke("init", "--name", "newp", "newp", cwd=tmp_path)
    assert_error(output, code, 1, f"newp {said}", "choose another DIR")


def test_init_in_a_folder_whose_name_is_not_utf8_shows_the_byte(tmp_path: Path) -> None:
    folder = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/n\xff"))
    folder.mkdir()
    output, code = invoke("init", str(folder), cwd=tmp_path)
    assert_error(output, code, 1, "'n\\xff' is not a valid app name", "e.g. --name my_tool")


def test_two_images_of_one_file_name_without_a_release_are_refused(tmp_path: Path) -> None:
    """No release in either image: both are known by their file name, `vmlinuz`."""
    for folder, filler in (("a", b"\1"), ("b", b"\2")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "vmlinuz").write_bytes(filler * 8192)
    with pytest.raises(BpfBuildError) as raised:
        _plan(tmp_path, ["a/vmlinuz", "b/vmlinuz"])
    assert "are two images of one release 'vmlinuz'" in raised.value.message


# -- arguments that are not UTF-8: refused, their bytes shown as \xNN -------------------

BYTE = os.fsdecode(b"\xff")
ARGS = [
    (["build", BYTE], "no app named \\xff", "apps: hello"),
    (["build", f"caf\u00e9{BYTE}"], "no app named caf\u00e9\\xff", "apps: hello"),
    (["verify", BYTE], "no BPF object named \\xff", "objects: hello"),
    (["verify", "--kernel", f"./{BYTE}"], "kernel image ./\\xff not found", IMAGE_HINT),
    (["verify", "--kernel", BYTE], "invalid kernel package name '\\xff'", "debian:6.12"),
    (["verify", "--merge", f"{BYTE}.json"], "\\xff.json: no such file", "give the files"),
    (["build", "--arch", BYTE], "unknown arch '\\xff'", "valid arches:"),
    (["init", "--name", BYTE, "other"], "'\\xff' is not a valid app name", "e.g. --name my_tool"),
]


@pytest.mark.parametrize(
    "args,error,hint", ARGS, ids=[" ".join(a[0]).encode("unicode_escape").decode() for a in ARGS]
)
def test_an_argument_that_is_not_utf8_is_shown_by_its_bytes(
    args: list[str], error: str, hint: str, tmp_path: Path
) -> None:
    output, code = invoke("init", "--name", "hello", "hello", cwd=tmp_path)
    assert code == 0, output
    output, code = invoke(*args, cwd=tmp_path / "hello")
    assert_error(output, code, 1, error, hint)
    assert "\\udc" not in output
