"""What C sources include, read without running the preprocessor: their directives, the
project headers they reach, and whether vmlinux.h is the first thing a source reads."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

VMLINUX_HEADER = "vmlinux.h"
"""The header bpfbuild generates per arch (and may precompile)."""
VMLINUX_MACROS = frozenset(
    {
        "__VMLINUX_H__",
        "BPF_NO_PRESERVE_ACCESS_INDEX",
        "BPF_NO_KFUNC_PROTOTYPES",
        "__ksym",
        "__weak",
        "__bpf_fastcall",
    }
)
"""The macros a vmlinux.h from bpftool tests (its guard, its switches, the attributes
of its kfunc prototypes): defined before it, they change what it declares."""
_GUARD_NAME = re.compile(r"^\w*_H_*$")
"""An include guard's macro (FOO_H, __FOO_H__, _FOO_BPF_H_): no vmlinux.h identifier."""
_DIRECTIVE = re.compile(r"^\s*#\s*(\w*)\s*(.*?)\s*$", re.S)
_INCLUDE = re.compile(r'^(?:"([^"]+)"|<([^>]+)>)')


@dataclass(frozen=True)
class Line:
    """One logical line of a C file that holds something: a directive, or code."""

    number: int
    """Its first physical line, from 1."""
    directive: str | None
    """The directive's name ("include", "define", ...); None for a line of C code."""
    argument: str = ""
    """What follows the directive's name."""


_COMMENT_OR_LITERAL = re.compile(
    r"//[^\n]*(?:\\\n[^\n]*)*"  # a line comment, and the lines it continues on
    r"|/\*.*?\*/"  # a block comment
    r'|"(?:\\.|[^"\\\n])*"'  # a string literal (ends on its line)
    r"|'(?:\\.|[^'\\\n])*'",  # a character literal
    re.S,
)


def _blank_comment(match: re.Match[str]) -> str:
    """A comment becomes one space (its newlines kept, for the line numbers); a
    literal stays as it is."""
    text = match.group(0)
    if text[0] in "\"'":
        return text
    return " " + "\n" * text.count("\n")


def strip_comments(text: str) -> str:
    """C text with each comment made a space (its newlines kept), literals kept."""
    return _COMMENT_OR_LITERAL.sub(_blank_comment, text)


def logical_lines(text: str) -> Iterator[Line]:
    """The non-blank logical lines of a C text, read lazily: comments removed (not
    inside string or character literals, which end at the end of their line), continued
    lines joined."""
    return _logical(strip_comments(text))


def _logical(stripped: str) -> Iterator[Line]:
    physical = stripped.split("\n")
    number = 0
    while number < len(physical):
        first = number
        joined = physical[number]
        while joined.endswith("\\") and number + 1 < len(physical):
            number += 1
            joined = joined[:-1] + physical[number]
        number += 1
        if not joined.strip():
            continue
        match = _DIRECTIVE.match(joined)
        if match and not match.group(1) and not match.group(2):
            continue  # the null directive: a lone '#'
        if match:
            yield Line(first + 1, match.group(1), match.group(2))
        else:
            yield Line(first + 1, None, joined.strip())


_INCLUDE_LINE = re.compile(r"^[ \t]*#[ \t]*include[ \t]*(.*?)[ \t]*$", re.M)


def _include_lines(stripped: str) -> list[Line]:
    """The #include directives of comment-free C text, found by one regex: a file of
    megabytes (a checked-in vmlinux.h) takes milliseconds."""
    lines: list[Line] = []
    number, position = 1, 0
    for match in _INCLUDE_LINE.finditer(stripped):
        number += stripped.count("\n", position, match.start())
        position = match.start()
        lines.append(Line(number, "include", match.group(1)))
    return lines


def include_target(argument: str) -> tuple[str, bool] | None:
    """The header an #include names and whether it is quoted ("x.h") rather than
    angled (<x.h>); None for a computed include (#include MACRO)."""
    match = _INCLUDE.match(argument)
    if not match:
        return None
    return (match.group(1), True) if match.group(1) is not None else (match.group(2), False)


class IncludeScanner:
    """Reads the project's C files once each and follows their includes through the
    project's header folders, as clang does for -I: a quoted name first beside the
    file that includes it. Headers outside the project are not followed."""

    def __init__(self, root: Path, include_dirs: Sequence[str]) -> None:
        self.root = root
        self.search = [root / folder for folder in include_dirs]
        self._stripped: dict[Path, str] = {}
        self._includes: dict[Path, list[Line]] = {}

    def _text(self, path: Path) -> str:
        """A file of the project without its comments ("" when it cannot be read)."""
        if path not in self._stripped:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                text = ""
            self._stripped[path] = strip_comments(text)
        return self._stripped[path]

    def lines(self, path: Path) -> Iterator[Line]:
        """The logical lines of a file of the project, read lazily."""
        return _logical(self._text(path))

    def include_lines(self, path: Path) -> list[Line]:
        """The #include directives of a file of the project."""
        if path not in self._includes:
            self._includes[path] = _include_lines(self._text(path))
        return self._includes[path]

    def candidates(self, name: str, quoted: bool, including: Path) -> list[Path]:
        """Where an include of name would be looked for, in order."""
        folders = ([including.parent] if quoted else []) + self.search
        return [Path(os.path.normpath(folder / name)) for folder in folders]

    def resolve(self, name: str, quoted: bool, including: Path) -> Path | None:
        """The project file an include reaches, or None (a system header, or none yet)."""
        for candidate in self.candidates(name, quoted, including):
            if candidate.is_file():
                return (
                    candidate if candidate.resolve().is_relative_to(self.root.resolve()) else None
                )
        return None

    def includes(self, source: Path) -> Iterator[tuple[Path, Line, str, bool]]:
        """Every #include read from source and, transitively, from the project headers
        it reaches, whatever #if surrounds them: (file, line, name, quoted)."""
        seen = {source}
        todo = [source]
        while todo:
            path = todo.pop(0)
            for line in self.include_lines(path):
                target = include_target(line.argument)
                if target is None:
                    continue
                yield path, line, *target
                found = self.resolve(*target, path)
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)

    def rel(self, path: Path) -> str:
        return (
            path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        )

    def why_not_vmlinux_first(self, source: str, generated: Sequence[str] = ()) -> str | None:
        """None when vmlinux.h is the first thing source reads, so that the precompiled
        vmlinux.h gives the same object: its first directive includes vmlinux.h, or a
        project header whose first directive does (and so on), with nothing before on
        that path but include guards (#ifndef FOO_H / #define FOO_H, #pragma once) and
        comments. Else one line saying why not, naming the file and line."""
        path, seen = self.root / source, set()
        while True:
            seen.add(path)
            where = self.rel(path)
            line, problem = self._first_include(path)
            if line is None:
                return problem or (
                    f"{where}: includes no header"
                    if path == self.root / source
                    else f"{where}: ends before any #include"
                )
            target = include_target(line.argument)
            if target is None:
                return f"{where}:{line.number}: #include {line.argument} (a macro) comes first"
            name, quoted = target
            shown = f'"{name}"' if quoted else f"<{name}>"
            if name == VMLINUX_HEADER:
                own = path.parent / VMLINUX_HEADER
                if quoted and own.is_file():
                    return (
                        f"{where}:{line.number}: includes {self.rel(own)}, a vmlinux.h of the "
                        "project, not bpfbuild's"
                    )
                return None
            found = self.resolve(name, quoted, path)
            if found is None:
                planned = {self.rel(c) for c in self.candidates(name, quoted, path)}
                what = "generated by the build" if planned & set(generated) else "no project header"
                return f"{where}:{line.number}: its first include {shown} is {what}"
            if found in seen:
                return f"{where}:{line.number}: its first include {shown} includes itself again"
            path = found

    def _first_include(self, path: Path) -> tuple[Line | None, str | None]:
        """The first #include of a file when only include guards come before it; else
        (None, why), or (None, None) when the file has no directive before its end."""
        lines = self.lines(path)
        where = self.rel(path)
        for line in lines:
            if line.directive is None:
                return None, f"{where}:{line.number}: code before vmlinux.h"
            if line.directive == "include":
                return line, None
            if line.directive == "pragma" and line.argument == "once":
                continue
            words = line.argument.split()
            if line.directive == "ifndef" and words:
                guard = words[0]
                if guard in VMLINUX_MACROS:
                    return None, f"{where}:{line.number}: #ifndef {guard}, a macro of vmlinux.h"
                following = next(lines, None)
                if (
                    _GUARD_NAME.match(guard)
                    and following is not None
                    and following.directive == "define"
                    and following.argument.split()[:1] == [guard]
                    and following.argument.split()[1:] in ([], ["1"])
                ):
                    continue
            shown = " ".join([f"#{line.directive}", *words[:1]])
            return None, f"{where}:{line.number}: {shown} before vmlinux.h"
        return None, None
