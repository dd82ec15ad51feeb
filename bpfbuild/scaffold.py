"""`bpfbuild init`: create a project from a template folder."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import keyword
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .arch import host_arch
from .errors import BpfBuildError
from .pipeline.files import kind_problem, shown_name
from .pipeline.layout import NAME_HINT, name_problem

PLACEHOLDER = "{{name}}"
"""Replaced by the app name in file contents and file names."""
VERSION_PLACEHOLDER = "{{bpfbuild_version}}"
"""Replaced by the version of bpfbuild that makes the project."""
SOURCE_PLACEHOLDER = "{{bpfbuild_source}}"
"""Replaced by the pip requirement the project's CI installs bpfbuild with (see
installed_source), or by nothing: the CI then asks for the BPFBUILD_SOURCE variable."""
KERNELS_PLACEHOLDER = "{{verify_kernels}}"
"""Replaced by the `--kernel` options of the kernels the project's verify-kernels
workflow boots: the template's `verify_kernels` (template.toml), else DEFAULT_KERNELS."""
DEFAULT_KERNELS = ("debian:5.10", "debian:6.1", "debian:6.12")
"""The kernels a project's CI verifies on: Debian's stable and LTS kernels."""
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
    kernels: tuple[str, ...] = DEFAULT_KERNELS
    """What its CI verifies on (template.toml's verify_kernels): a sched_ext scheduler
    needs kernels that have sched_ext, and one without it to show what happens there."""


@dataclass(frozen=True)
class Created:
    name: str
    arch: str
    kept: list[str] = field(default_factory=list)
    """Files of the template that existed and were left as they were."""
    overwritten: list[str] = field(default_factory=list)
    """Files that existed and were replaced (--force)."""


_FETCHABLE_URL = re.compile(r"https://[A-Za-z0-9._~:/?@%+=,-]+")
"""A URL a CI machine can fetch, in characters that need no quoting in the workflow's
YAML or in its expression's string (no quote, space, brace, `$` or `#`)."""
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_VCS = ("git", "hg", "bzr", "svn")


def source_from_direct_url(text: str) -> str | None:
    """The pip requirement that installs again the bpfbuild that pip installed, from its
    PEP 610 record (direct_url.json): a VCS URL at its commit,
    `bpfbuild @ git+https://HOST/REPO@COMMIT`, or an archive URL with its hash,
    `bpfbuild @ https://HOST/bpfbuild.whl#sha256=HASH`. None for what a CI machine
    cannot fetch or could get other bytes from: a local folder (editable or not), a
    file:// or plain http URL, an archive without its sha256, a branch without a commit."""
    try:
        record = json.loads(text)
        url = record["url"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(url, str) or not _FETCHABLE_URL.fullmatch(url):
        return None
    fragment = ""
    subdirectory = record.get("subdirectory")
    if subdirectory is not None:
        if not isinstance(subdirectory, str) or not re.fullmatch(r"[\w./-]+", subdirectory):
            return None
        fragment = f"subdirectory={subdirectory}"
    vcs, archive = record.get("vcs_info"), record.get("archive_info")
    if isinstance(vcs, dict):
        commit = vcs.get("commit_id")
        if vcs.get("vcs") not in _VCS or not isinstance(commit, str) or not _HEX.fullmatch(commit):
            return None
        requirement = f"bpfbuild @ {vcs['vcs']}+{url}@{commit}"
        return requirement + (f"#{fragment}" if fragment else "")
    if isinstance(archive, dict):
        hashes = archive.get("hashes") or {}
        legacy = archive.get("hash") or ""
        digest = hashes.get("sha256") if isinstance(hashes, dict) else None
        if digest is None and isinstance(legacy, str) and legacy.startswith("sha256="):
            digest = legacy.removeprefix("sha256=")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        return f"bpfbuild @ {url}#sha256={digest}" + (f"&{fragment}" if fragment else "")
    return None  # dir_info: a folder on the machine that installed it


def installed_source() -> str | None:
    """The pip requirement of the running bpfbuild's own source, when pip recorded one a CI
    machine can install (source_from_direct_url); bpfbuild is not on PyPI, so a plain
    `bpfbuild==VERSION` could install only someone else's package of that name."""
    try:
        text = importlib.metadata.distribution("bpfbuild").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    return source_from_direct_url(text) if text else None


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
            settings = tomllib.loads(meta.read_text())
            kernels = tuple(settings.get("verify_kernels", DEFAULT_KERNELS))
            found.append(Template(folder.name, settings.get("description", ""), folder, kernels))
    return found


def create_project(
    target: Path, name: str | None, template: str, force: bool, bpfbuild_source: str | None = None
) -> Created:
    """Copy a template into target with NAME filled in; its CI installs bpfbuild from
    bpfbuild_source (a pip requirement, see installed_source), else from the repository
    variable BPFBUILD_SOURCE, which it asks for.

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
            shown_name(problem) + ("" if given else " (taken from the folder's name)"),
            hint=f"{NAME_HINT}; e.g. --name my_tool",
        )
    templates = {t.name: t for t in available_templates()}
    if template not in templates:
        raise BpfBuildError(
            f"unknown template '{template}'", hint="templates: " + ", ".join(templates)
        )
    if os.path.lexists(target) and not target.is_dir():
        raise BpfBuildError(
            f"{target} exists and is not a folder ({kind_problem(target) or 'a file'})",
            hint="choose another DIR",
        )
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
    kernels = " ".join(f"--kernel {kernel}" for kernel in templates[template].kernels)
    for relative, path in sorted(files.items()):
        output = target / relative
        if os.path.lexists(output):
            if not force:
                created.kept.append(str(relative))
                continue
            created.overwritten.append(str(relative))
        output.parent.mkdir(parents=True, exist_ok=True)
        text = (
            path.read_text()
            .replace(PLACEHOLDER, name)
            .replace(VERSION_PLACEHOLDER, __version__)
            .replace(SOURCE_PLACEHOLDER, bpfbuild_source or "")
            .replace(KERNELS_PLACEHOLDER, kernels)
        )
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
