"""Pure-Python BTF reader: decode and encode C values of a BPF object by type name.

BTF (BPF Type Format) is the type information clang emits in the `.BTF` section of a
BPF object. Tests use it to read a map value or a global variable by field name
instead of by byte offset. The format is documented in the kernel's
Documentation/bpf/btf.rst; this module reads every kind the kernel defines.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import BpfBuildError
from ..kernels.abi import parse_btf_header


class BtfError(BpfBuildError):
    """The BTF is missing or malformed, or a type or value does not fit it."""


class Kind(IntEnum):
    """BTF_KIND_* from include/uapi/linux/btf.h."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}
"""Kinds that only qualify another type: decoding looks through them."""
_TEXT_CHARS = {"char", "signed char"}
"""Element types whose arrays decode to str; other 1-byte ints give bytes."""


@dataclass(frozen=True)
class Member:
    """One field of a struct or union (or one enumerator, param or DATASEC var)."""

    name: str
    type_id: int
    bit_offset: int = 0
    """Struct/union members: offset from the start of the aggregate, in bits."""
    bitfield_size: int = 0
    """Width in bits if the member is a bitfield, else 0."""
    value: int = 0
    """Enumerators: the value. DATASEC vars: the byte size."""


@dataclass
class BtfType:
    """One BTF type; the fields used depend on the kind."""

    type_id: int
    kind: Kind
    name: str
    size: int = 0
    """Byte size of INT, STRUCT, UNION, ENUM, FLOAT, DATASEC."""
    ref: int = 0
    """Referenced type of PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG; element of ARRAY."""
    kind_flag: bool = False
    members: list[Member] = field(default_factory=list)
    int_encoding: int = 0
    int_offset: int = 0
    int_bits: int = 0
    nelems: int = 0


class ValueLayout(Protocol):
    """Anything that turns the raw bytes of a value into a dict: BTF or user-given."""

    size: int

    def decode(self, raw: bytes) -> dict[str, Any]: ...


def _elf_sections(path: Path) -> tuple[bytes, str, dict[str, tuple[int, int, dict[str, int]]]]:
    """The .BTF bytes, byte order and, per data section, (index, size, {symbol: offset})."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf_section = elf.get_section_by_name(".BTF")
        if btf_section is None:
            raise BtfError(
                f"{path} has no .BTF section",
                hint="compile BPF objects with `clang -g` so that BTF is emitted",
            )
        raw = btf_section.data()
        endian = "<" if elf.little_endian else ">"
        sections: dict[str, tuple[int, int, dict[str, int]]] = {}
        for index, section in enumerate(elf.iter_sections()):
            sections[section.name] = (index, section["sh_size"], {})
        by_index = {index: syms for index, _size, syms in sections.values()}
        for section in elf.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for symbol in section.iter_symbols():
                shndx = symbol["st_shndx"]
                if isinstance(shndx, int) and shndx in by_index and symbol.name:
                    by_index[shndx][symbol.name] = symbol["st_value"]
    return raw, endian, sections


class Btf:
    """All types of one BTF blob, indexed by id (id 0 is void)."""

    def __init__(self, raw: bytes, endian: str | None = None) -> None:
        header = parse_btf_header(raw)
        if header is None or endian not in (None, header.struct_order):
            raise BtfError(
                f"not a whole BTF blob (it starts with {raw[:4].hex() or 'nothing'})",
                hint="is this a BPF object built with clang -g?",
            )
        self.endian = header.struct_order
        self.byte_order: Literal["little", "big"] = "big" if header.big_endian else "little"
        hdr_len, type_off, type_len = header.hdr_len, header.type_off, header.type_len
        str_off, str_len = header.str_off, header.str_len
        self.strings = raw[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, Kind.UNKN, "void")]
        self._parse_types(raw[hdr_len + type_off : hdr_len + type_off + type_len])
        self._by_name: dict[str, list[BtfType]] = {}
        for t in self.types[1:]:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t)

    @classmethod
    def from_elf(cls, path: str | Path) -> Btf:
        """Read the `.BTF` of an ELF object.

        clang leaves DATASEC sizes and variable offsets at zero in an unlinked object
        (the linker or libbpf fills them in); they are filled here from the section
        headers and symbols, as libbpf does, so both kinds of object work.
        """
        raw, endian, sections = _elf_sections(Path(path))
        btf = cls(raw, endian)
        for t in btf.types:
            if t.kind is not Kind.DATASEC or t.name not in sections:
                continue
            _index, size, symbols = sections[t.name]
            t.size = size
            t.members = [
                Member(m.name, m.type_id, symbols.get(m.name, m.bit_offset // 8) * 8, 0, m.value)
                for m in t.members
            ]
        return btf

    def _str(self, offset: int) -> str:
        end = self.strings.index(b"\0", offset)
        return self.strings[offset:end].decode("utf-8", "replace")

    def _parse_types(self, data: bytes) -> None:
        e = self.endian
        pos = 0
        while pos < len(data):
            name_off, info, size_or_type = struct.unpack_from(e + "III", data, pos)
            pos += 12
            vlen = info & 0xFFFF
            kind = Kind((info >> 24) & 0x1F)
            kind_flag = bool(info >> 31)
            t = BtfType(len(self.types), kind, self._str(name_off), kind_flag=kind_flag)
            if kind in (
                Kind.INT,
                Kind.STRUCT,
                Kind.UNION,
                Kind.ENUM,
                Kind.ENUM64,
                Kind.FLOAT,
                Kind.DATASEC,
            ):
                t.size = size_or_type
            else:
                t.ref = size_or_type
            if kind is Kind.INT:
                (enc,) = struct.unpack_from(e + "I", data, pos)
                pos += 4
                t.int_encoding, t.int_offset, t.int_bits = (
                    (enc >> 24) & 0xF,
                    (enc >> 16) & 0xFF,
                    enc & 0xFF,
                )
            elif kind is Kind.ARRAY:
                t.ref, _index_type, t.nelems = struct.unpack_from(e + "III", data, pos)
                pos += 12
            elif kind in (Kind.STRUCT, Kind.UNION):
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from(e + "III", data, pos)
                    pos += 12
                    bits = m_off >> 24 if kind_flag else 0
                    offset = m_off & 0xFFFFFF if kind_flag else m_off
                    t.members.append(Member(self._str(m_name), m_type, offset, bits))
            elif kind is Kind.ENUM:
                for _ in range(vlen):
                    m_name, value = struct.unpack_from(e + "Ii", data, pos)
                    pos += 8
                    t.members.append(Member(self._str(m_name), 0, value=value))
            elif kind is Kind.ENUM64:
                for _ in range(vlen):
                    m_name, lo, hi = struct.unpack_from(e + "III", data, pos)
                    pos += 12
                    value = hi << 32 | lo
                    if kind_flag and value >= 1 << 63:
                        value -= 1 << 64
                    t.members.append(Member(self._str(m_name), 0, value=value))
            elif kind is Kind.FUNC_PROTO:
                for _ in range(vlen):
                    m_name, m_type = struct.unpack_from(e + "II", data, pos)
                    pos += 8
                    t.members.append(Member(self._str(m_name), m_type))
            elif kind in (Kind.VAR, Kind.DECL_TAG):
                pos += 4  # VAR linkage, DECL_TAG component index: not needed here
            elif kind is Kind.DATASEC:
                for _ in range(vlen):
                    v_type, v_off, v_size = struct.unpack_from(e + "III", data, pos)
                    pos += 12
                    t.members.append(Member("", v_type, v_off * 8, value=v_size))
            self.types.append(t)
        # A DATASEC entry names its VAR by type id; copy the names now that all exist.
        for t in self.types:
            if t.kind is Kind.DATASEC:
                t.members = [
                    Member(self.types[m.type_id].name, m.type_id, m.bit_offset, 0, m.value)
                    for m in t.members
                ]

    # ----------------------------------------------------------------- lookups

    def __getitem__(self, type_id: int) -> BtfType:
        return self.types[type_id]

    def __iter__(self) -> Iterator[BtfType]:
        return iter(self.types[1:])

    def find(self, name: str, kind: Kind | None = None) -> BtfType:
        """The type called `name`; "struct x", "union x", "enum x" pick the kind."""
        for prefix, prefix_kind in (
            ("struct ", Kind.STRUCT),
            ("union ", Kind.UNION),
            ("enum ", Kind.ENUM),
        ):
            if name.startswith(prefix):
                name, kind = name[len(prefix) :], prefix_kind
        candidates = [
            t
            for t in self._by_name.get(name, [])
            if kind is None or t.kind is kind or (kind is Kind.ENUM and t.kind is Kind.ENUM64)
        ]
        if not candidates:
            raise BtfError(
                f"no BTF type named '{name}'" + (f" of kind {kind.name}" if kind else ""),
                hint="clang emits types of globals, maps and functions only; for a ring "
                "buffer record add `const struct NAME *unused_NAME __attribute__((unused));`",
            )
        # A VAR or FUNC and a type may share a name: prefer a real type.
        candidates.sort(key=lambda t: t.kind in (Kind.VAR, Kind.FUNC, Kind.FWD, Kind.DECL_TAG))
        return candidates[0]

    def _type(self, type_ref: int | str) -> BtfType:
        return self.find(type_ref) if isinstance(type_ref, str) else self.types[type_ref]

    def resolve(self, type_ref: int | str) -> BtfType:
        """The type with typedefs, const, volatile, restrict and type tags removed."""
        t = self._type(type_ref)
        while t.kind in _MODIFIERS or t.kind is Kind.VAR:
            t = self.types[t.ref]
        return t

    def size_of(self, type_ref: int | str) -> int:
        """Byte size of a type, as sizeof() in C."""
        t = self.resolve(type_ref)
        if t.kind is Kind.PTR:
            return 8
        if t.kind is Kind.ARRAY:
            return t.nelems * self.size_of(t.ref)
        return t.size

    def type_name(self, type_ref: int | str) -> str:
        """A C spelling of a type, for messages."""
        t = self._type(type_ref)
        if t.kind is Kind.PTR:
            return self.type_name(t.ref) + " *"
        if t.kind is Kind.ARRAY:
            return f"{self.type_name(t.ref)}[{t.nelems}]"
        if t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
            return f"{t.kind.name.lower()} {self.type_name(t.ref)}"
        prefix = {Kind.STRUCT: "struct ", Kind.UNION: "union ", Kind.ENUM: "enum "}.get(t.kind, "")
        return prefix + (t.name or "<anon>")

    def struct(self, name: str) -> BtfStruct:
        """The layout of a struct or union (or a typedef of one) by name."""
        t = self.resolve(name)
        if t.kind not in (Kind.STRUCT, Kind.UNION):
            raise BtfError(f"'{name}' is not a struct or union but {t.kind.name}")
        return BtfStruct(self, t)

    def datasec(self, section: str) -> list[Member]:
        """The variables of a data section (".rodata", ".bss", ".data", ...)."""
        for t in self.types:
            if t.kind is Kind.DATASEC and t.name == section:
                return list(t.members)
        raise BtfError(f"no data section '{section}' in BTF")

    def variable(self, name: str) -> Variable:
        """Where a global variable lives: its section, byte offset, size and type."""
        for t in self.types:
            if t.kind is not Kind.DATASEC:
                continue
            for m in t.members:
                if m.name == name:
                    return Variable(
                        name, t.name, m.bit_offset // 8, m.value, self.types[m.type_id].ref
                    )
        raise BtfError(
            f"no global variable '{name}' in the object's BTF",
            hint="globals settable before load are `const volatile` (.rodata) or "
            "non-static globals (.bss/.data) used by a program",
        )

    # ---------------------------------------------------------------- decoding

    def decode(self, type_ref: int | str, raw: bytes) -> Any:
        """Decode raw bytes as a value of a type: dict for struct/union, list for arrays,
        str for char arrays, bytes for other byte arrays, int/bool/float for scalars,
        enumerator name for enums (int if no enumerator matches), int for pointers."""
        size = self.size_of(type_ref)
        if len(raw) < size:
            raise BtfError(
                f"{len(raw)} bytes are too few for {self.type_name(type_ref)} ({size} bytes)"
            )
        return self._decode(self._type(type_ref).type_id, raw[:size])

    def _int(self, raw: bytes, signed: bool) -> int:
        return int.from_bytes(raw, self.byte_order, signed=signed)

    def _decode(self, type_id: int, raw: bytes) -> Any:
        t = self.resolve(type_id)
        if t.kind is Kind.INT:
            value = self._int(raw[: t.size], bool(t.int_encoding & INT_SIGNED))
            return bool(value) if t.int_encoding & INT_BOOL else value
        if t.kind is Kind.PTR:
            return self._int(raw[:8], False)
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            value = self._int(raw[: t.size], t.kind_flag)
            if not t.kind_flag and any(m.value < 0 for m in t.members):
                value = self._int(raw[: t.size], True)
            return next((m.name for m in t.members if m.value == value), value)
        if t.kind is Kind.FLOAT:
            return struct.unpack(self.endian + {4: "f", 8: "d"}[t.size], raw[: t.size])[0]
        if t.kind is Kind.ARRAY:
            element = self.resolve(t.ref)
            step = self.size_of(t.ref)
            if (
                element.kind is Kind.INT
                and element.size == 1
                and not element.int_encoding & INT_BOOL
            ):
                data = raw[: t.nelems]
                if element.name in _TEXT_CHARS:
                    return data.split(b"\0", 1)[0].decode("utf-8", "replace")
                return bytes(data)
            return [self._decode(t.ref, raw[i * step : (i + 1) * step]) for i in range(t.nelems)]
        if t.kind in (Kind.STRUCT, Kind.UNION):
            return self._decode_aggregate(t, raw)
        if t.kind is Kind.DATASEC:
            return {
                m.name: self._decode(
                    m.type_id, raw[m.bit_offset // 8 : m.bit_offset // 8 + m.value]
                )
                for m in t.members
            }
        return None

    def _member_bits(self, m: Member) -> int:
        """Bitfield width of a member: from the member (kind_flag) or from its INT type."""
        if m.bitfield_size:
            return m.bitfield_size
        t = self.resolve(m.type_id)
        if t.kind is Kind.INT and (t.int_bits != t.size * 8 or t.int_offset):
            return t.int_bits
        return 0

    def _decode_aggregate(self, t: BtfType, raw: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in t.members:
            bits = self._member_bits(m)
            if bits:
                member_type = self.resolve(m.type_id)
                value = self._get_bits(raw[: t.size], m.bit_offset, bits)
                signed = member_type.kind is Kind.INT and member_type.int_encoding & INT_SIGNED
                if signed and value >= 1 << (bits - 1):
                    value -= 1 << bits
                decoded: Any = value
            else:
                start = m.bit_offset // 8
                decoded = self._decode(m.type_id, raw[start : start + self.size_of(m.type_id)])
            if not m.name and isinstance(decoded, dict):
                out.update(decoded)  # anonymous struct/union: its fields belong to the parent
            else:
                out[m.name] = decoded
        return out

    def _get_bits(self, raw: bytes, bit_offset: int, bits: int) -> int:
        whole = int.from_bytes(raw, self.byte_order)
        shift = bit_offset if self.endian == "<" else len(raw) * 8 - bit_offset - bits
        return (whole >> shift) & ((1 << bits) - 1)

    # ---------------------------------------------------------------- encoding

    def encode(self, type_ref: int | str, value: Any) -> bytes:
        """The raw bytes of a value of a type: the inverse of decode().

        Struct fields left out of a dict are zero; a str or bytes for a char array is
        NUL-padded; an enum accepts its enumerator name or an int.
        """
        buf = bytearray(self.size_of(type_ref))
        self._encode_into(self._type(type_ref).type_id, value, buf, 0)
        return bytes(buf)

    def _put_int(self, buf: bytearray, offset: int, size: int, value: int, signed: bool) -> None:
        order = self.byte_order
        try:
            buf[offset : offset + size] = int(value).to_bytes(
                size, order, signed=signed and value < 0
            )
        except OverflowError as exc:
            raise BtfError(f"value {value} does not fit in {size} bytes") from exc

    def _encode_into(self, type_id: int, value: Any, buf: bytearray, offset: int) -> None:
        t = self.resolve(type_id)
        if isinstance(value, (bytes, bytearray)) and t.kind not in (Kind.ARRAY,):
            size = self.size_of(type_id)
            if len(value) > size:
                raise BtfError(
                    f"{len(value)} bytes do not fit {self.type_name(type_id)} ({size} bytes)"
                )
            buf[offset : offset + len(value)] = value
            return
        if t.kind is Kind.INT:
            self._put_int(buf, offset, t.size, int(value), bool(t.int_encoding & INT_SIGNED))
        elif t.kind is Kind.PTR:
            self._put_int(buf, offset, 8, int(value), False)
        elif t.kind in (Kind.ENUM, Kind.ENUM64):
            if isinstance(value, str):
                matches = [m.value for m in t.members if m.name == value]
                if not matches:
                    raise BtfError(
                        f"'{value}' is not an enumerator of {self.type_name(type_id)}",
                        hint="one of: " + ", ".join(m.name for m in t.members),
                    )
                value = matches[0]
            self._put_int(buf, offset, t.size, int(value), True)
        elif t.kind is Kind.FLOAT:
            struct.pack_into(self.endian + {4: "f", 8: "d"}[t.size], buf, offset, value)
        elif t.kind is Kind.ARRAY:
            step = self.size_of(t.ref)
            if isinstance(value, str):
                value = value.encode()
            if isinstance(value, (bytes, bytearray)):
                if len(value) > t.nelems * step:
                    raise BtfError(f"{len(value)} bytes do not fit {self.type_name(type_id)}")
                buf[offset : offset + len(value)] = value
                return
            if len(value) > t.nelems:
                raise BtfError(f"{len(value)} elements do not fit {self.type_name(type_id)}")
            for i, item in enumerate(value):
                self._encode_into(t.ref, item, buf, offset + i * step)
        elif t.kind in (Kind.STRUCT, Kind.UNION):
            self._encode_aggregate(t, dict(value), buf, offset)
        else:
            raise BtfError(f"cannot encode a value of {self.type_name(type_id)}")

    def _encode_aggregate(
        self, t: BtfType, value: dict[str, Any], buf: bytearray, offset: int
    ) -> None:
        known = self._field_names(t)
        unknown = set(value) - known
        if unknown:
            raise BtfError(
                f"{self.type_name(t.type_id)} has no field(s) {', '.join(sorted(unknown))}",
                hint="fields: " + ", ".join(sorted(known)),
            )
        for m in t.members:
            member_type = self.resolve(m.type_id)
            if not m.name and member_type.kind in (Kind.STRUCT, Kind.UNION):
                inner = {k: v for k, v in value.items() if k in self._field_names(member_type)}
                if inner:
                    self._encode_aggregate(member_type, inner, buf, offset + m.bit_offset // 8)
                continue
            if m.name not in value:
                continue
            bits = self._member_bits(m)
            if bits:
                self._set_bits(buf, offset, t.size, m.bit_offset, bits, int(value[m.name]))
            else:
                self._encode_into(m.type_id, value[m.name], buf, offset + m.bit_offset // 8)

    def _field_names(self, t: BtfType) -> set[str]:
        names: set[str] = set()
        for m in t.members:
            member_type = self.resolve(m.type_id)
            if not m.name and member_type.kind in (Kind.STRUCT, Kind.UNION):
                names |= self._field_names(member_type)
            else:
                names.add(m.name)
        return names

    def _set_bits(
        self, buf: bytearray, offset: int, size: int, bit_offset: int, bits: int, value: int
    ) -> None:
        order = self.byte_order
        whole = int.from_bytes(buf[offset : offset + size], order)
        shift = bit_offset if order == "little" else size * 8 - bit_offset - bits
        mask = ((1 << bits) - 1) << shift
        whole = (whole & ~mask) | ((value << shift) & mask)
        buf[offset : offset + size] = whole.to_bytes(size, order)


@dataclass(frozen=True)
class Variable:
    """A global variable of a BPF object, as its DATASEC describes it."""

    name: str
    section: str
    offset: int
    size: int
    type_id: int


@dataclass(frozen=True)
class Field:
    """One field of a struct layout, for display and offset checks."""

    name: str
    offset: int
    """Byte offset (for a bitfield: of the byte holding its first bit)."""
    size: int
    type_name: str
    bit_offset: int
    bitfield_size: int


class BtfStruct:
    """The layout of one struct or union, read from BTF; decodes and encodes values."""

    def __init__(self, btf: Btf, t: BtfType) -> None:
        self.btf = btf
        self.type = t
        self.name = t.name
        self.size = t.size

    @property
    def fields(self) -> list[Field]:
        out = []
        for m in self.type.members:
            bits = self.btf._member_bits(m)
            out.append(
                Field(
                    m.name,
                    m.bit_offset // 8,
                    0 if bits else self.btf.size_of(m.type_id),
                    self.btf.type_name(m.type_id),
                    m.bit_offset,
                    bits,
                )
            )
        return out

    def offset_of(self, name: str) -> int:
        for f in self.fields:
            if f.name == name:
                return f.offset
        raise BtfError(f"struct {self.name} has no field '{name}'")

    def decode(self, raw: bytes) -> dict[str, Any]:
        return self.btf.decode(self.type.type_id, raw)

    def encode(self, value: dict[str, Any]) -> bytes:
        return self.btf.encode(self.type.type_id, value)

    def __repr__(self) -> str:
        return f"BtfStruct({self.name!r}, size={self.size}, fields={[f.name for f in self.fields]})"


class FormatLayout:
    """A user-given layout: a `struct` module format and one name per field.

    For values without BTF, or to read only a prefix:
    `FormatLayout("<QQ8s", ["packets", "bytes", "tag"])`. Padding fields ("x") take no
    name; a "4s"-style field gives bytes.
    """

    def __init__(self, fmt: str, names: Sequence[str]) -> None:
        self.struct = struct.Struct(fmt)
        self.names = list(names)
        count = len(self.struct.unpack(bytes(self.struct.size)))
        if count != len(self.names):
            raise BtfError(
                f"format '{fmt}' has {count} fields but {len(self.names)} names were given",
                hint="give exactly one name per field of the format",
            )
        self.size = self.struct.size

    def decode(self, raw: bytes) -> dict[str, Any]:
        if len(raw) < self.size:
            raise BtfError(f"{len(raw)} bytes are too few for layout of {self.size} bytes")
        return dict(zip(self.names, self.struct.unpack(raw[: self.size]), strict=True))

    def encode(self, value: dict[str, Any]) -> bytes:
        return self.struct.pack(*(value[name] for name in self.names))
