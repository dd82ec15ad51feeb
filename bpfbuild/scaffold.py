"""`bpfbuild init`: create a project from a template folder."""

from __future__ import annotations

import importlib.util
import keyword
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .arch import host_arch
from .errors import BpfBuildError

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
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double",
    "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
    "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
    "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "main",
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
    """Copy a template into target with NAME filled in; refuse a non-empty folder."""
    name = name or target.resolve().name.replace("-", "_")
    if not name.isidentifier() or not name.isascii() or name in C_KEYWORDS or keyword.iskeyword(name):
        raise BpfBuildError(
            f"'{name}' is not a valid app name: it must be a C identifier",
            hint="use letters, digits and underscores, not starting with a digit, "
            "e.g. --name my_tool",
        )
    templates = {t.name: t for t in available_templates()}
    if template not in templates:
        raise BpfBuildError(f"unknown template '{template}'",
                            hint="templates: " + ", ".join(templates))
    if target.exists() and not target.is_dir():
        raise BpfBuildError(f"{target} exists and is not a folder", hint="choose another DIR")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BpfBuildError(f"{target} is not empty",
                            hint="use an empty folder, or --force to write into it")
    files: dict[Path, Path] = {}
    for source in (templates_root() / COMMON, templates[template].path):
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name != "template.toml" and "__pycache__" not in path.parts:
                files[path.relative_to(source)] = path
    for relative, path in sorted(files.items()):
        output = target / _output_name(relative, name)
        output.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text().replace(PLACEHOLDER, name).replace(VERSION_PLACEHOLDER, __version__)
        partial = output.with_name(output.name + ".partial")
        partial.write_text(text)
        os.replace(partial, output)
    return Created(name, host_arch().name)


def _output_name(relative: Path, name: str) -> Path:
    parts = []
    for part in relative.parts:
        part = part.replace(PLACEHOLDER, name).removesuffix(".tmpl")
        if part.startswith("dot-"):
            part = "." + part[len("dot-"):]
        parts.append(part)
    return Path(*parts)
