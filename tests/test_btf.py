"""Tests of the pure-Python BTF reader on a real object compiled with clang -g."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from bpfutil import compile_bpf
from buildutil import require_tool
from elftools.elf.elffile import ELFFile

from bpfbuild.testing.btf import Btf, BtfError, FormatLayout, Kind

FIXTURE = Path(__file__).parent / "fixtures" / "btf" / "types.bpf.c"

REC = {
    "origin": {"x": 1, "y": -2},
    "path": [{"x": 3, "y": 4}, {"x": 5, "y": 6}],
    "name": "probe",
    "mac": b"\xde\xad\xbe\xef\x00\x01",
    "small": -7,
    "neg": -300,
    "big": 0x1122334455667788,
    "qualified": 42,
    "color": "GREEN",
    "ptr": 0x1234,
    "flags": {"ready": 1, "mode": 5, "delta": -3, "rest": 0xABCDEF},
    "as_int": -1,
    "as_uint": 0xFFFFFFFF,
    "number": {"word": 0x04030201, "bytes": b"\x01\x02\x03\x04"},
    "ok": True,
}

DECODE_CASES: list[tuple[str, Any]] = [
    ("rec", REC),
    ("negative", -5),
    ("favourite", "BLUE"),
    ("greeting", "hi"),
    ("points", [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}]),
]


@pytest.fixture(scope="module", params=["clang", "linked"])
def types_object(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture compiled by clang (DATASEC offsets zero) and linked by bpftool."""
    require_tool("clang")
    require_tool("bpftool")
    out = tmp_path_factory.mktemp("btf")
    linked = compile_bpf(FIXTURE, out, out)
    return out / "types.tmp.bpf.o" if request.param == "clang" else linked


@pytest.fixture(scope="module")
def btf(types_object: Path) -> Btf:
    return Btf.from_elf(types_object)


def global_bytes(path: Path, btf: Btf, name: str) -> bytes:
    variable = btf.variable(name)
    with open(path, "rb") as f:
        data = ELFFile(f).get_section_by_name(variable.section).data()
    return data[variable.offset : variable.offset + variable.size]


@pytest.mark.parametrize(("name", "expected"), DECODE_CASES, ids=[c[0] for c in DECODE_CASES])
def test_decode_global(types_object: Path, btf: Btf, name: str, expected: Any) -> None:
    variable = btf.variable(name)
    assert btf.decode(variable.type_id, global_bytes(types_object, btf, name)) == expected


@pytest.mark.parametrize("name", [c[0] for c in DECODE_CASES])
def test_encode_inverts_decode(types_object: Path, btf: Btf, name: str) -> None:
    variable = btf.variable(name)
    raw = global_bytes(types_object, btf, name)
    assert btf.encode(variable.type_id, btf.decode(variable.type_id, raw)) == raw


@pytest.mark.parametrize(
    ("type_name", "size"),
    [
        ("struct point", 8),
        ("struct flags", 4),
        ("union number", 4),
        ("u32_t", 4),
        ("s8_t", 1),
        ("enum color", 4),
        ("struct record", 88),
    ],
)
def test_size_of(btf: Btf, type_name: str, size: int) -> None:
    assert btf.size_of(type_name) == size


@pytest.mark.parametrize(
    ("field", "offset", "type_name"),
    [
        ("origin", 0, "struct point"),
        ("path", 8, "struct point[2]"),
        ("name", 24, "char[8]"),
        ("mac", 32, "unsigned char[6]"),
        ("big", 48, "unsigned long long"),
        ("qualified", 56, "const volatile u32_t"),
        ("ptr", 64, "void *"),
    ],
)
def test_struct_layout(btf: Btf, field: str, offset: int, type_name: str) -> None:
    layout = btf.struct("record")
    assert layout.offset_of(field) == offset
    assert {f.name: f.type_name for f in layout.fields}[field] == type_name


def test_bitfields_are_described(btf: Btf) -> None:
    fields = {f.name: f for f in btf.struct("flags").fields}
    assert [
        (fields[n].bit_offset, fields[n].bitfield_size) for n in ("ready", "mode", "delta", "rest")
    ] == [(0, 1), (1, 3), (4, 4), (8, 24)]


def test_encode_partial_struct_zero_fills(btf: Btf) -> None:
    raw = btf.struct("point").encode({"y": -1})
    assert raw == b"\0\0\0\0\xff\xff\xff\xff"


def test_datasec_lists_variables_with_offsets(btf: Btf) -> None:
    variables = {m.name: m.bit_offset // 8 for m in btf.datasec(".data")}
    assert set(variables) == {"rec", "negative", "favourite", "greeting", "points"}
    assert len(set(variables.values())) == len(variables), "offsets must be filled in"


def test_find_by_kind(btf: Btf) -> None:
    assert btf.find("color", Kind.ENUM).kind is Kind.ENUM
    assert btf.find("rec").kind is Kind.VAR


ERROR_CASES = [
    (lambda b: b.find("struct missing"), "no BTF type named 'missing'", "unused_NAME"),
    (lambda b: b.struct("u32_t"), "'u32_t' is not a struct or union but INT", None),
    (lambda b: b.variable("nope"), "no global variable 'nope'", "const volatile"),
    (lambda b: b.encode("struct point", {"z": 1}), "has no field(s) z", "fields: x, y"),
    (
        lambda b: b.encode("enum color", "PURPLE"),
        "'PURPLE' is not an enumerator",
        "RED, GREEN, BLUE",
    ),
    (lambda b: b.encode("s8_t", 300), "does not fit in 1 bytes", None),
    (lambda b: b.decode("struct point", b"\0"), "too few", None),
]


@pytest.mark.parametrize(("action", "message", "hint"), ERROR_CASES)
def test_errors(btf: Btf, action: Any, message: str, hint: str | None) -> None:
    with pytest.raises(BtfError) as caught:
        action(btf)
    assert message in caught.value.message
    if hint is not None:
        assert hint in (caught.value.hint or "")


FORMAT_CASES = [
    ("<ii", ["x", "y"], b"\x01\0\0\0\xfe\xff\xff\xff", {"x": 1, "y": -2}),
    (
        "<Q4xH",
        ["big", "short"],
        bytes(range(8)) + b"pad!" + b"\x05\x00",
        {"big": 0x0706050403020100, "short": 5},
    ),
    ("<3s", ["tag"], b"abc", {"tag": b"abc"}),
]


@pytest.mark.parametrize(("fmt", "names", "raw", "expected"), FORMAT_CASES)
def test_format_layout(fmt: str, names: list[str], raw: bytes, expected: dict[str, Any]) -> None:
    layout = FormatLayout(fmt, names)
    assert layout.decode(raw) == expected
    assert layout.size == len(raw)


def test_format_layout_needs_one_name_per_field() -> None:
    with pytest.raises(BtfError, match="has 2 fields but 1 names"):
        FormatLayout("<ii", ["x"])


def test_object_without_btf(tmp_path: Path) -> None:
    require_tool("clang")
    source = tmp_path / "nobtf.c"
    source.write_text("int x = 1;\n")
    subprocess.run(
        ["clang", "-O2", "-target", "bpf", "-c", str(source), "-o", str(tmp_path / "n.o")],
        check=True,
    )
    with pytest.raises(BtfError) as caught:
        Btf.from_elf(tmp_path / "n.o")
    assert "clang -g" in (caught.value.hint or "")
