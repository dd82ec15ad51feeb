"""bpfbuild.toml: a typed, validated model whose errors name the file, line and key."""

from __future__ import annotations

import re
import tomllib
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from ..arch import get_arch
from ..errors import ConfigError
from .linker import LINKERS

CONFIG_NAME = "bpfbuild.toml"
PCH_AUTO_MIN = 4
"""With pch = "auto": fewer sources do not pay back the ~0.4 s the PCH takes to build
(each saves 0.1-0.2 s), and the other jobs compile them meanwhile anyway."""


@dataclass
class BuildConfig:
    """[build]: how every app is compiled and linked."""

    arches: list[str] = field(default_factory=list)
    """Target arches (x86_64, arm64, ...); empty means the host's arch."""
    static: bool = True
    """Link each app into one static executable with no runtime dependency."""
    strip: bool = False
    """Strip the final executables with binutils strip (smaller, no symbols)."""
    bpf_cflags: list[str] = field(default_factory=list)
    """Extra clang flags for every BPF object."""
    cflags: list[str] = field(default_factory=list)
    """Extra C compiler flags for user-space sources (after $CFLAGS)."""
    ldflags: list[str] = field(default_factory=list)
    """Extra linker flags for every app (after $LDFLAGS)."""
    pch: bool | str = "auto"
    """Precompile vmlinux.h once per arch (objects are byte-identical without it):
    true, false, or "auto": when at least PCH_AUTO_MIN sources of an arch can take it."""
    include_dirs: list[str] = field(default_factory=lambda: ["src", "include"])
    """Header folders, relative to the project; missing ones are ignored."""
    linker: str = "auto"
    """Linker of the apps: "auto" (mold, then lld, when they link for the arch, else the
    compiler's default), "mold", "lld", "bfd", "gold" or "default"."""


@dataclass
class AppConfig:
    """[app.NAME]: the sources of one app, overriding discovery."""

    bpf: list[str] = field(default_factory=list)
    """BPF sources (*.bpf.c) whose skeletons the app includes."""
    sources: list[str] = field(default_factory=list)
    """User-space C sources linked into the app's executable."""


@dataclass
class VerifyConfig:
    """[verify]: verifier budgets and regression baselines."""

    max_insn_share: float = 0.5
    """Fail when a program processes more than this share of the 1M-insn limit."""
    max_growth: float = 10.0
    """Fail when processed insns or states grow by more than this percent."""
    baseline: str = "verify-baseline.json"
    """Baseline file, relative to the project; meant to be committed."""
    rodata: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per object: .rodata globals to set before verification."""


@dataclass
class ProjectConfig:
    """The whole bpfbuild.toml."""

    path: Path
    name: str
    build: BuildConfig
    vmlinux: dict[str, str]
    """Per arch: where vmlinux.h comes from (a BTF file, or a ready *.h)."""
    apps: dict[str, AppConfig]
    verify: VerifyConfig


_TOP_KEYS = {"project", "build", "vmlinux", "app", "verify"}


def load_config(path: Path) -> ProjectConfig:
    """Read and validate bpfbuild.toml."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found", hint="run `bpfbuild init` to create a project"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib puts the position only in its message: "(at line 3, column 7)"
        # or "(at end of document)".
        match = re.search(r"at line (\d+)", str(err))
        line = int(match.group(1)) if match else max(len(text.splitlines()), 1)
        raise ConfigError(
            f"{path}:{line}: invalid TOML: {err}", hint="fix the TOML syntax at that line"
        ) from None
    locate = _Locator(path, text)
    for key in data:
        if key not in _TOP_KEYS:
            locate.fail((), key, f"unknown table or key '{key}'",
                        "valid top-level tables: " + ", ".join(sorted(_TOP_KEYS)))
    project = _expect(locate, (), "project", data.get("project", {}), dict)
    for key in project:
        if key != "name":
            locate.fail(("project",), key, f"unknown key 'project.{key}'", "valid keys: name")
    name = _expect(locate, ("project",), "name", project.get("name", path.parent.name), str)
    build = _dataclass_from(locate, ("build",), data.get("build", {}), BuildConfig)
    for arch in build.arches:
        _check_arch(locate, ("build",), "arches", arch)
    if isinstance(build.pch, str) and build.pch != "auto":
        locate.fail(("build",), "pch", f"'build.pch' must be true, false or \"auto\", not {build.pch!r}",
                    "change the value of 'build.pch'")
    if build.linker not in LINKERS:
        locate.fail(("build",), "linker", f"'build.linker' must be one of "
                    + ", ".join(f'"{v}"' for v in LINKERS) + f", not {build.linker!r}",
                    "change the value of 'build.linker'")
    vmlinux_table = _expect(locate, (), "vmlinux", data.get("vmlinux", {}), dict)
    vmlinux = {
        arch: _expect(locate, ("vmlinux",), arch, source, str)
        for arch, source in vmlinux_table.items()
    }
    for arch in vmlinux:
        _check_arch(locate, ("vmlinux",), arch, arch)
    apps_table = _expect(locate, (), "app", data.get("app", {}), dict)
    apps = {
        app: _dataclass_from(locate, ("app", app), table, AppConfig)
        for app, table in apps_table.items()
    }
    verify = _dataclass_from(locate, ("verify",), data.get("verify", {}), VerifyConfig)
    return ProjectConfig(path, name, build, vmlinux, apps, verify)


def _check_arch(locate: _Locator, table: tuple[str, ...], key: str, name: str) -> None:
    """An arch name must be in the arch table; the error names the line that uses it."""
    try:
        get_arch(name)
    except ConfigError as err:
        locate.fail(table, key, err.message, err.hint or "")


def _dataclass_from(locate: _Locator, table: tuple[str, ...], data: Any, cls: type) -> Any:
    """Build a config dataclass from a TOML table, checking keys and types."""
    data = _expect(locate, table[:-1], table[-1], data, dict)
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            locate.fail(table, key, f"unknown key '{'.'.join(table + (key,))}'",
                        "valid keys: " + ", ".join(sorted(known)))
        values[key] = _check_type(locate, table, key, value, hints[key])
    return cls(**values)


def _check_type(locate: _Locator, table: tuple[str, ...], key: str, value: Any, hint: Any) -> Any:
    """Check a value against a field's annotation (bool, int, float, str, list, dict)."""
    origin = getattr(hint, "__origin__", hint)
    if origin is list:
        (item_type,) = hint.__args__
        _expect(locate, table, key, value, list)
        for item in value:
            _expect(locate, table, key, item, item_type)
        return value
    if origin is dict:
        _, value_type = hint.__args__
        _expect(locate, table, key, value, dict)
        return {k: _check_type(locate, table + (key,), k, v, value_type) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, types.UnionType):   # bool | str: one of them
        if any(isinstance(value, option) for option in hint.__args__):
            return value
        dotted = ".".join(table + (key,))
        locate.fail(table, key, f"'{dotted}' must be "
                    + " or ".join(_TYPE_NAMES[option] for option in hint.__args__)
                    + f", not {type(value).__name__} {value!r}", f"change the value of '{dotted}'")
    return _expect(locate, table, key, value, hint)


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer",
               float: "a number", list: "an array", dict: "a table"}


def _expect(locate: _Locator, table: tuple[str, ...], key: str, value: Any, expected: type) -> Any:
    """Return value if it has the expected TOML type, else fail naming the key's line."""
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        dotted = ".".join(table + (key,))
        locate.fail(table, key, f"'{dotted}' must be {_TYPE_NAMES[expected]}, "
                    f"not {type(value).__name__} {value!r}",
                    f"change the value of '{dotted}'")
    return value


class _Locator:
    """Finds the line of a key in the TOML text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: tuple[str, ...], key: str) -> int | None:
        current: tuple[str, ...] = ()
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        for number, line in enumerate(self.lines, 1):
            match = header.match(line)
            if match:
                current = tuple(part.strip().strip('"') for part in match.group(1).split("."))
                if current == table + (key,):
                    return number
                continue
            if re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
                if current == table:
                    return number
            dotted = ".".join(table[len(current):] + (key,)) if table[: len(current)] == current else None
            if dotted and re.match(rf"^\s*{re.escape(dotted)}\s*=", line):
                return number
        return None

    def fail(self, table: tuple[str, ...], key: str, message: str, hint: str) -> None:
        line = self.line_of(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        raise ConfigError(f"{where}: {message}", hint=hint)
