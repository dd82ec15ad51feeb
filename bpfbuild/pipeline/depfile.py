"""Parse the Make-style depfiles that clang and gcc write with -MD -MP -MF."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..safefs import read_regular


def parse_depfile(text: str) -> list[str]:
    """Return the prerequisites of every rule with a non-empty prerequisite list.

    Handles line continuations, `\\ ` and `\\#` escapes, `$$`, several targets per
    rule, and the empty phony rules (`header.h:`) that -MP adds.
    """
    deps: list[str] = []
    seen: set[str] = set()
    for rule in _rules(text):
        colons = rule.count(":")
        if not colons or (colons == 1 and rule.endswith(":")):
            continue  # no rule, or one with no prerequisites (-MP's `header.h:`)
        _, prerequisites = _split_rule(rule)
        for word in _words(prerequisites):
            if word not in seen:
                seen.add(word)
                deps.append(word)
    return deps


def read_depfile(path: Path) -> list[str]:
    """Prerequisites of a depfile on disk; [] if it does not exist yet, or is not a
    regular file of text (a FIFO, a folder, a link, garbage put in its place: never
    opened in a way that blocks). The depfile is a target of its step: one that is not
    as the step wrote it makes the step run again, which writes it anew (its content is
    recorded). One the compiler wrote is UTF-8: bpfbuild refuses project paths and file
    names that are not."""
    data = read_regular(path)
    try:
        return parse_depfile(data.decode()) if data is not None else []
    except UnicodeDecodeError:
        return []


def _rules(text: str) -> list[str]:
    """Join continued lines into one logical line per rule."""
    rules, current = [], ""
    for line in text.splitlines():
        if line.endswith("\\") and not line.endswith("\\\\"):
            current += line[:-1] + " "
        else:
            rules.append(current + line)
            current = ""
    if current:
        rules.append(current)
    return [rule for rule in rules if rule.strip()]


def _split_rule(rule: str) -> tuple[str, str]:
    """Split at the first unescaped colon that is not part of a Windows drive. A regex
    jumps from one backslash or colon to the next: -MP writes one `header.h:` rule
    per header, a few hundred a user source, and a loop over characters cost more
    than the rest of the parse."""
    for match in _SEPARATOR.finditer(rule):
        i = match.start()
        if match.group() == ":" and not (i == 1 and rule[0].isalpha()):
            return rule[:i], rule[i + 1 :]
    return rule, ""


_SEPARATOR = re.compile(r"\\.|:", re.S)


def _words(text: str) -> list[str]:
    """Split on unescaped whitespace, undoing Make's escapes (`\\ `, `\\#`, `\\\\`,
    `\\:`, `$$`). A regex, not a loop over characters: every no-op build reads
    every depfile, and a user source's lists a few hundred system headers."""
    return [
        _ESCAPE.sub(_unescape, word) if ("\\" in word or "$" in word) else word
        for word in _WORD.findall(text)
    ]


_WORD = re.compile(r"(?:\\[ #\\:]|\S)+")
_ESCAPE = re.compile(r"\\([ #\\:])|\$(\$)")


def _unescape(match: re.Match) -> str:
    return match.group(1) or match.group(2)


def existing_deps(root: Path, depfile: Path) -> set[str]:
    """Absolute paths of a depfile's prerequisites that still exist, as ninja does:
    a header deleted since the last compile is dropped instead of breaking the build
    (if it is still included, the compiler says so)."""
    base = str(root)
    return {
        path for path in (_join(base, dep) for dep in read_depfile(depfile)) if os.path.exists(path)
    }


def _join(base: str, dep: str) -> str:
    """str(Path(base) / dep) (which drops `.` parts and doubled slashes, keeping
    `..`), at a third of the cost for the usual clean path."""
    path = os.path.join(base, dep)
    return str(Path(path)) if ("/." in path or "//" in path) else path
