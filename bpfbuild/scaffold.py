"""`bpfbuild init`: create a project from a template folder."""

from __future__ import annotations

import importlib.util
import keyword
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .arch import host_arch
from .errors import BpfBuildError
from .pipeline.layout import NAME_HINT, name_problem

PLACEHOLDER = "{{name}}"
"""Replaced by the app name in file contents and file names."""
VERSION_PLACEHOLDER = "{{bpfbuild_version}}"
"""Replaced by the version of bpfbuild that makes the project (its CI installs it)."""
COMMON = "_common"
"""Files every template gets (the CI workflow), unless it has its own at that path."""
# Template file names: a trailing ".tmpl" is dropped and a leading "dot-" becomes
# ".", so that the template folder's tests, CI files and .gitignore stay inert in
# this repo (pytest, GitHub and git would otherwise act on them).

C_KEYWORDS = {
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "main",
}


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    path: Path


@dataclass(frozen=True)
class Created:
    name: str
    arch: str
    kept: list[str] = field(default_factory=list)
    """Files of the template that existed and were left as they were."""
    overwritten: list[str] = field(default_factory=list)
    """Files that existed and were replaced (--force)."""


def templates_root() -> Path:
    """templates/ as installed in the wheel (bpfbuild.templates), or in a source tree.

    bpfbuild.templates has no __init__.py: it is a namespace package, for which
    importlib.resources.files() gives a MultiplexedPath whose str() is no path, so
    the folder is taken from the import spec. An editable install finds no spec."""
    spec = importlib.util.find_spec("bpfbuild.templates")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "templates"


def available_templates() -> list[Template]:
    found = []
    for folder in sorted(templates_root().iterdir()):
        meta = folder / "template.toml"
        if meta.is_file():
            description = tomllib.loads(meta.read_text()).get("description", "")
            found.append(Template(folder.name, description, folder))
    return found


def create_project(target: Path, name: str | None, template: str, force: bool) -> Created:
    """Copy a template into target with NAME filled in.

    Like `cargo init`, files that exist are kept (listed in Created.kept); with force
    they are replaced (Created.overwritten). Nothing is written through a symbolic link
    that leads out of target."""
    given = name
    name = name or target.resolve().name.replace("-", "_")
    problem = name_problem(name)
    if not problem and (name in C_KEYWORDS or keyword.iskeyword(name)):
        problem = f"'{name}' is not a valid app name: it is a keyword of C or Python"
    if problem:
        raise BpfBuildError(
            problem + ("" if given else " (taken from the folder's name)"),
            hint=f"{NAME_HINT}; e.g. --name my_tool",
        )
    templates = {t.name: t for t in available_templates()}
    if template not in templates:
        raise BpfBuildError(
            f"unknown template '{template}'", hint="templates: " + ", ".join(templates)
        )
    if target.exists() and not target.is_dir():
        raise BpfBuildError(f"{target} exists and is not a folder", hint="choose another DIR")
    files: dict[Path, Path] = {}
    for source in (templates_root() / COMMON, templates[template].path):
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name != "template.toml" and "__pycache__" not in path.parts:
                files[_output_name(path.relative_to(source), name)] = path
    for relative in files:
        _refuse_links_out(target, relative)
        output = target / relative
        if force and output.is_dir() and not output.is_symlink():
            raise BpfBuildError(
                f"{output} is a folder, where the template has a file",
                hint="move it away, or init another folder",
            )
    created = Created(name, host_arch().name)
    for relative, path in sorted(files.items()):
        output = target / relative
        if os.path.lexists(output):
            if not force:
                created.kept.append(str(relative))
                continue
            created.overwritten.append(str(relative))
        output.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text().replace(PLACEHOLDER, name).replace(VERSION_PLACEHOLDER, __version__)
        _write_atomically(output, text)
    return created


def _refuse_links_out(target: Path, relative: Path) -> None:
    """Refuse when a folder on the way to target/relative is a link out of target."""
    inside = target.resolve()
    folder = target
    for part in relative.parts[:-1]:
        folder = folder / part
        if folder.is_symlink() and not folder.resolve().is_relative_to(inside):
            raise BpfBuildError(
                f"{folder} is a symbolic link out of {target} (to {folder.resolve()}): "
                "init writes nothing outside the project folder",
                hint=f"remove the link {folder}, or init another folder",
            )


def _write_atomically(output: Path, text: str) -> None:
    """A new file under a fresh name, renamed over output: a link at output is replaced,
    never written through, and an interrupted init leaves no half-written file."""
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)
        os.replace(partial, output)
    except BaseException:
        os.unlink(partial)
        raise


def _output_name(relative: Path, name: str) -> Path:
    parts = []
    for part in relative.parts:
        part = part.replace(PLACEHOLDER, name).removesuffix(".tmpl")
        if part.startswith("dot-"):
            part = "." + part[len("dot-") :]
        parts.append(part)
    return Path(*parts)
