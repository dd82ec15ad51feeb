"""Parse the Make-style depfiles that clang and gcc write with -MD -MP -MF."""

from __future__ import annotations

from pathlib import Path


def parse_depfile(text: str) -> list[str]:
    """Return the prerequisites of every rule with a non-empty prerequisite list.

    Handles line continuations, `\\ ` and `\\#` escapes, `$$`, several targets per
    rule, and the empty phony rules (`header.h:`) that -MP adds.
    """
    deps: list[str] = []
    seen: set[str] = set()
    for rule in _rules(text):
        if ":" not in rule:
            continue
        _, prerequisites = _split_rule(rule)
        for word in _words(prerequisites):
            if word not in seen:
                seen.add(word)
                deps.append(word)
    return deps


def read_depfile(path: Path) -> list[str]:
    """Prerequisites of a depfile on disk; [] if it does not exist yet."""
    try:
        return parse_depfile(path.read_text())
    except FileNotFoundError:
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
    """Split at the first unescaped colon that is not part of a Windows drive."""
    i = 0
    while i < len(rule):
        if rule[i] == "\\":
            i += 2
            continue
        if rule[i] == ":" and not (i == 1 and rule[0].isalpha()):
            return rule[:i], rule[i + 1:]
        i += 1
    return rule, ""


def _words(text: str) -> list[str]:
    """Split on unescaped whitespace, undoing Make's escapes."""
    words, current, i = [], "", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in " #\\:":
            current += text[i + 1]
            i += 2
            continue
        if char == "$" and text[i + 1: i + 2] == "$":
            current += "$"
            i += 2
            continue
        if char.isspace():
            if current:
                words.append(current)
            current = ""
        else:
            current += char
        i += 1
    if current:
        words.append(current)
    return words


def existing_deps(root: Path, depfile: Path) -> set[str]:
    """Absolute paths of a depfile's prerequisites that still exist, as ninja does:
    a header deleted since the last compile is dropped instead of breaking the build
    (if it is still included, the compiler says so)."""
    found = set()
    for dep in read_depfile(depfile):
        path = root / dep
        if path.exists():
            found.add(str(path))
    return found
