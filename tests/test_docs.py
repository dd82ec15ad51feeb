"""The documentation cannot drift from the code: README.md and docs/*.md are read as the
code they describe (the conventions are in docs/index.md, "Writing these pages"). Every
failure names the page and line."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from bpfbuild.cli import main as cli
from bpfbuild.errors import BpfBuildError
from bpfbuild.pipeline import config
from bpfbuild.pipeline.config import load_config
from bpfbuild.pipeline.names import CONFIG_NAME

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
NOT_CONFIG = "<!-- docs-test: not bpfbuild.toml -->"
"""The line before a ```toml block that is not (part of) a bpfbuild.toml."""
PENDING_PAGES: dict[Path, str] = {}
"""Pages docs/index.md links to that another branch adds; a link to one is an expected
failure only while the page is absent."""


def shown(path: Path) -> str:
    return str(path.relative_to(REPO))


# -- the pages, read as markdown -----------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language and text, and the line before its fence."""

    page: Path
    line: int
    """The line of its first line of text."""
    lang: str
    text: str
    before: str

    def where(self, offset: int = 0) -> str:
        return f"{shown(self.page)}:{self.line + offset}"


@dataclass(frozen=True)
class Span:
    """An inline code span (or a link) of the prose, with the line it starts on."""

    page: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"


@dataclass(frozen=True)
class Page:
    path: Path
    blocks: list[Block]
    paragraphs: list[tuple[int, str]]
    """Prose outside fenced blocks, a paragraph at a time: (first line, text)."""
    headings: list[tuple[int, str]]


FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")


def read_page(path: Path) -> Page:
    blocks: list[Block] = []
    paragraphs: list[tuple[int, str]] = []
    headings: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    paragraph: list[str] = []
    start = 0
    i = 0

    def end_paragraph() -> None:
        if paragraph:
            paragraphs.append((start, "\n".join(paragraph)))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            end_paragraph()
            mark = fence.group(1)
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(mark):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{shown(path)}:{i}: a fenced block is never closed"
            blocks.append(Block(path, i - len(body) + 1, fence.group(2), "\n".join(body), before))
            i += 1
            continue
        number = i + 1
        if not line.strip():
            end_paragraph()
        elif re.match(r"^#{1,6}\s", line):
            end_paragraph()
            headings.append((number, line.lstrip("#").strip()))
            paragraphs.append((number, line))
        else:
            if not paragraph:
                start = number
            paragraph.append(line)
        i += 1
    end_paragraph()
    return Page(path, blocks, paragraphs, headings)


READ = {path: read_page(path) for path in PAGES}


def spans(page: Page) -> Iterator[Span]:
    """The inline code spans of the prose, a span across a line break made one line."""
    for first, text in page.paragraphs:
        for match in CODE_SPAN.finditer(text):
            line = first + text.count("\n", 0, match.start())
            yield Span(page.path, line, " ".join(match.group(2).split()))


def without_code(text: str) -> str:
    """text with its code spans blanked out (line breaks kept), for finding links."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def blocks_of(*langs: str) -> list[Block]:
    return [block for page in READ.values() for block in page.blocks if block.lang in langs]


def ids(blocks: list[Block]) -> list[str]:
    return [block.where() for block in blocks]


def page_ids() -> list[str]:
    return [shown(path) for path in PAGES]


# -- (a) TOML examples load through bpfbuild's config loader --------------------------

TOML_BLOCKS = blocks_of("toml")
CONFIG_BLOCKS = [block for block in TOML_BLOCKS if block.before != NOT_CONFIG]


def toml_problem(block: Block) -> str | None:
    try:
        tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as err:
        at = re.search(r"at line (\d+)", str(err))
        return f"{block.where(int(at.group(1)) - 1 if at else 0)}: not TOML: {err}"
    return None


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=ids(TOML_BLOCKS))
def test_toml_example_is_toml(block: Block) -> None:
    problem = toml_problem(block)
    assert problem is None, problem


@pytest.mark.parametrize("block", CONFIG_BLOCKS, ids=ids(CONFIG_BLOCKS))
def test_toml_example_loads_as_bpfbuild_toml(block: Block, tmp_path: Path) -> None:
    """Written into a project of its own, the example loads through load_config; an
    error's `bpfbuild.toml:N` is reported as the page's line."""
    if toml_problem(block):
        pytest.skip("not TOML: test_toml_example_is_toml reports it")
    path = tmp_path / "project" / CONFIG_NAME
    path.parent.mkdir()
    path.write_text(block.text + "\n")
    try:
        load_config(path)
        return
    except BpfBuildError as err:
        message = re.sub(
            re.escape(str(path)) + r"(?::(\d+))?",
            lambda m: block.where(int(m.group(1)) - 1) if m.group(1) else block.where(),
            err.describe(),
        )
    pytest.fail(
        f"{block.where()}: this bpfbuild.toml example does not load: {message}\n"
        f"(mark a block that is no bpfbuild.toml with {NOT_CONFIG} on the line before it)",
        pytrace=False,
    )


def documented_keys(data: dict[str, Any]) -> set[tuple[str, ...]]:
    """The keys a bpfbuild.toml example sets, with `*` for a table named by the user."""
    keys: set[tuple[str, ...]] = set()
    for table, value in data.items():
        if table in ("app", "object", "bpflib") and isinstance(value, dict):
            for named in value.values():
                keys |= {(table, "*", key) for key in named}
        elif table == "vmlinux" and isinstance(value, dict):
            keys |= {("vmlinux", "*")} if value else set()
        elif isinstance(value, dict):
            keys |= {(table, key) for key in value}
        else:
            keys.add((table,))
    return keys


def test_toml_examples_show_every_key() -> None:
    """Every key load_config accepts appears in some example: nothing of the
    configuration goes undocumented."""
    shown_keys: set[tuple[str, ...]] = set()
    for block in CONFIG_BLOCKS:
        if not toml_problem(block):
            shown_keys |= documented_keys(tomllib.loads(block.text))
    tables: dict[tuple[str, ...], type] = {
        ("build",): config.BuildConfig,
        ("app", "*"): config.AppConfig,
        ("object", "*"): config.ObjectConfig,
        ("bpflib", "*"): config.BpflibConfig,
        ("libbpf",): config.LibbpfConfig,
        ("toolchain",): config.ToolchainConfig,
        ("verify",): config.VerifyConfig,
    }
    accepted = {("project", "name"), ("vmlinux", "*")}
    accepted |= {
        table + (f.name,) for table, cls in tables.items() for f in dataclasses.fields(cls)
    }
    missing = sorted(".".join(key) for key in accepted - shown_keys)
    assert not missing, (
        "keys of bpfbuild.toml that no ```toml example of README.md or docs/ shows: "
        + ", ".join(missing)
    )


# -- (b) relative links resolve ----------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    page = READ.get(path) or read_page(path)
    for _line, heading in page.headings:
        name = slug(heading)
        suffix = 0
        while (f"{name}-{suffix}" if suffix else name) in found:
            suffix += 1
        found.add(f"{name}-{suffix}" if suffix else name)
    return found


def links(page: Page) -> Iterator[Span]:
    for first, text in page.paragraphs:
        plain = without_code(text)
        for match in LINK.finditer(plain):
            yield Span(page.path, first + plain.count("\n", 0, match.start()), match.group(1))
        for offset, line in enumerate(plain.splitlines()):
            reference = REFERENCE.match(line)
            if reference:
                yield Span(page.path, first + offset, reference.group(1))


def link_problem(link: Span) -> str | None:
    target = link.text
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
        return None
    file_part, _, fragment = target.partition("#")
    path = (link.page.parent / file_part).resolve() if file_part else link.page
    if not path.is_relative_to(REPO):
        return f"{link.where()}: link to {target} leaves the repository"
    if not path.exists():
        return f"{link.where()}: link to {target}: {shown(path)} does not exist"
    if fragment and path.suffix == ".md" and fragment not in anchors(path):
        return (
            f"{link.where()}: link to {target}: {shown(path)} has no heading "
            f"#{fragment} (its anchors: {', '.join(sorted(anchors(path)))})"
        )
    return None


@pytest.mark.parametrize("path", PAGES, ids=page_ids())
def test_relative_links_resolve(path: Path) -> None:
    broken, pending = [], []
    for link in links(READ[path]):
        problem = link_problem(link)
        target = (path.parent / link.text.partition("#")[0]).resolve()
        if problem and target in PENDING_PAGES and not target.exists():
            pending.append(f"{problem} ({PENDING_PAGES[target]})")
        elif problem:
            broken.append(problem)
    assert not broken, "\n".join(broken)
    if pending:
        pytest.xfail("; ".join(pending))


def test_pending_pages_are_pending() -> None:
    """A page listed in PENDING_PAGES once it exists must leave that list."""
    landed = [shown(page) for page in PENDING_PAGES if page.exists()]
    assert not landed, f"remove from PENDING_PAGES in tests/test_docs.py: {', '.join(landed)}"


def test_every_page_is_listed_and_opens_with_an_introduction() -> None:
    """README.md links docs/index.md, which links every page; each page opens with its
    title and a paragraph saying what it covers."""
    problems = []
    index_links = {
        (DOCS / link.text.partition("#")[0]).resolve() for link in links(READ[DOCS / "index.md"])
    }
    readme_links = {
        (REPO / link.text.partition("#")[0]).resolve() for link in links(READ[REPO / "README.md"])
    }
    if DOCS / "index.md" not in readme_links:
        problems.append("README.md: no link to docs/index.md")
    for path in PAGES:
        if path.parent == DOCS and path.name != "index.md" and path not in index_links:
            problems.append(f"{shown(path)}: not listed in docs/index.md")
        lines = path.read_text().splitlines()
        if not lines or not lines[0].startswith("# "):
            problems.append(f"{shown(path)}:1: a page opens with its `# title`")
            continue
        opening = next((line for line in lines[1:] if line.strip()), "")
        if not opening or opening.startswith(("#", "|", "```", "- ", "* ", "<!--")):
            problems.append(f"{shown(path)}: the title is followed by a paragraph of introduction")
    assert not problems, "\n".join(problems)


# -- (c) every `bpfbuild ...` names real commands and options -------------------------

WRAPPERS = {"sudo", "env", "time", "exec", "nohup"}
SEPARATORS = {"&&", "||", "|", "|&", ";", "&", "(", ")"}
REDIRECTION = re.compile(r"^[<>&]*[<>][<>&]*$")
PLACEHOLDER = re.compile(r"^(<.*>|\$.*|[A-Z][A-Z0-9_,\[\]]*|\.\.\.)$")


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, without redirections and comments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    tokens = list(lexer)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in SEPARATORS:
            commands.append([])
        elif REDIRECTION.match(token):
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()  # 2>...: the descriptor
            i += 1  # and the file
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def bpfbuild_arguments(command: list[str]) -> list[str] | None:
    """The arguments of a simple command that runs bpfbuild, else None."""
    words = list(command)
    completion = False
    while words:
        word = words[0]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
            completion |= word.split("=", 1)[0].endswith("_COMPLETE")
            words.pop(0)
        elif word in WRAPPERS:
            words.pop(0)
            while words and words[0].startswith("-"):
                words.pop(0)
        else:
            break
    if not words or Path(words[0]).name != "bpfbuild" or completion:
        return None  # not bpfbuild, or click's completion protocol (no arguments)
    return words[1:]


def options_of(command: click.Command) -> dict[str, click.Option]:
    found = {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }
    help_flag = click.Option(["-h", "--help"], is_flag=True)
    return {"-h": help_flag, "--help": help_flag, **found}


def takes_value(option: click.Option) -> bool:
    return not (option.is_flag or option.count)


def value_problem(path: str, name: str, option: click.Option, value: str) -> str | None:
    if PLACEHOLDER.match(value):
        return None
    if isinstance(
        option.type, click.Choice | click.types.IntParamType | click.types.FloatParamType
    ):
        try:
            option.type.convert(value, option, None)
        except click.BadParameter as err:
            return f"`{path} {name} {value}`: {err.format_message()}"
    return None


def command_problem(args: list[str], partial: bool) -> str | None:
    """Why `bpfbuild ARGS` is not a command line of bpfbuild, or None. partial: inline
    prose, which may name an option without its value, or a group without a command."""
    command: click.Command = cli
    path = "bpfbuild"
    positional = 0
    only_positional = False
    informational = False
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--" and not only_positional:
            only_positional = True
            continue
        if word.startswith("-") and word != "-" and not only_positional:
            options = options_of(command)
            if word.startswith("--"):
                name, equals, attached = word.partition("=")
                attached = attached if equals else None
            elif word in options:
                name, attached = word, None
            else:
                name, attached = word[:2], word[2:]
            option = options.get(name)
            if option is None:
                return (
                    f"`{path}` has no option `{name}` (its options: "
                    + ", ".join(sorted(n for n in options if n.startswith("--")))
                    + ")"
                )
            informational |= name in ("-h", "--help", "--version", "--list")
            if not takes_value(option):
                if attached and not word.startswith("--"):
                    # -vk: a cluster of flags
                    for letter in attached:
                        flag = options.get(f"-{letter}")
                        if flag is None or takes_value(flag):
                            return f"`{path}` has no flag `-{letter}` (in `{word}`)"
                    continue
                if attached is not None:
                    return f"`{path} {name}` is a flag and takes no value (`{word}`)"
                continue
            if not attached:
                if i >= len(args):
                    if partial:
                        return None
                    return f"`{path} {name}` needs a value"
                attached = args[i]
                i += 1
            problem = value_problem(path, name, option, attached)
            if problem:
                return problem
            continue
        if isinstance(command, click.Group) and not only_positional:
            if PLACEHOLDER.match(word):
                return None  # `bpfbuild COMMAND --help`: any command
            if partial and not re.match(r"^[a-z][a-z-]*$", word):
                return None  # prose such as `bpfbuild @ git+https://...`, not a command line
            sub = command.commands.get(word)
            if sub is None:
                return f"`{path}` has no command `{word}` (its commands: {', '.join(sorted(command.commands))})"
            command, path = sub, f"{path} {word}"
            continue
        positional += 1
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        room = sum(float("inf") if p.nargs < 0 else p.nargs for p in arguments)
        if positional > room:
            return f"`{path}` takes {room:g} argument(s), not `{word}` too"
    if isinstance(command, click.Group) and not (partial or informational):
        return f"`{path}` names no command (its commands: {', '.join(sorted(command.commands))})"
    return None


def shell_lines(block: Block) -> Iterator[tuple[int, str]]:
    """(line offset, command line) of a sh block, or of the `$ ` lines of a console
    block; continuation lines joined."""
    lines = block.text.splitlines()
    prompt = block.lang == "console"
    i = 0
    while i < len(lines):
        first, line = i, lines[i]
        i += 1
        if prompt:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i]
            i += 1
        yield first, line


def command_problems(path: Path) -> Iterator[str]:
    page = READ[path]
    for block in page.blocks:
        if block.lang not in ("sh", "bash", "shell", "console"):
            continue
        for offset, line in shell_lines(block):
            try:
                commands = simple_commands(line)
            except ValueError as err:
                yield f"{block.where(offset)}: cannot split `{line}`: {err}"
                continue
            for command in commands:
                args = bpfbuild_arguments(command)
                problem = None if args is None else command_problem(args, partial=False)
                if problem:
                    yield f"{block.where(offset)}: {problem}"
    for span in spans(page):
        try:
            commands = simple_commands(span.text)
        except ValueError:
            continue  # prose in backticks, not a shell line
        for command in commands:
            args = bpfbuild_arguments(command)
            problem = None if args is None else command_problem(args, partial=True)
            if problem:
                yield f"{span.where()}: {problem}"


@pytest.mark.parametrize("path", PAGES, ids=page_ids())
def test_bpfbuild_command_lines_are_real(path: Path) -> None:
    problems = list(command_problems(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("args", "partial", "problem"),
    [
        (["build", "-v", "-j4", "mytool"], False, None),
        (["build", "-vk", "--arch=arm64", "-C", "DIR"], False, None),
        (["verify", "--format", "json", "--kernel", "debian:6.1"], False, None),
        (["test", "-k", "--junit-xml", "r.xml", "--", "-x", "-q"], False, None),
        (["cache", "clean", "--kind", "pch"], False, None),
        (["verify", "--kernel"], True, None),
        (["cache"], True, None),
        (["--version"], False, None),
        (["biuld"], False, "`bpfbuild` has no command `biuld`"),
        (["build", "--jobs"], False, "`bpfbuild build --jobs` needs a value"),
        (["build", "--no-such"], False, "`bpfbuild build` has no option `--no-such`"),
        (["verify", "--format", "yaml"], False, "`bpfbuild verify --format yaml`"),
        (["build", "-j", "0"], False, "`bpfbuild build -j 0`"),
        (["init", "a", "b"], False, "`bpfbuild init` takes 1 argument(s), not `b` too"),
        (["test", "-x"], False, "`bpfbuild test` has no option `-x`"),
        (["build", "-vq"], False, "`bpfbuild build` has no flag `-q`"),
        (["cache"], False, "`bpfbuild cache` names no command"),
    ],
)
def test_the_command_check_itself(args: list[str], partial: bool, problem: str | None) -> None:
    """The checker accepts real command lines and names what is wrong in others."""
    found = command_problem(args, partial)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize(
    ("line", "arguments"),
    [
        ("sudo -E bpfbuild test  # CI", [["test"]]),
        ("BPFBUILD_TRACE=1 .venv/bin/bpfbuild build -C x && ls", [["build", "-C", "x"]]),
        ("bpfbuild verify --format json > result.json 2>&1", [["verify", "--format", "json"]]),
        ("_BPFBUILD_COMPLETE=fish_source bpfbuild > out.fish", []),
        ('eval "$(_BPFBUILD_COMPLETE=bash_source bpfbuild)"', []),
        ("cd mytool; bpfbuild list | head", [["list"]]),
    ],
)
def test_shell_lines_are_split_as_a_shell_would(line: str, arguments: list[list[str]]) -> None:
    found = [args for c in simple_commands(line) if (args := bpfbuild_arguments(c)) is not None]
    assert found == arguments


# -- repository paths, Python names and examples exist -----------------------------------

REPO_PATH = re.compile(
    r"^(?:\./)?((?:bpfbuild|tests|bench|scripts|templates|examples|docs|\.ci)/\S*)"
)
PYTHON_NAME = re.compile(r"(?<![\w/.-])bpfbuild(?:\.[A-Za-z_]\w*)+")


def path_problem(where: str, token: str) -> str | None:
    match = REPO_PATH.match(token.strip("\"'(),;:"))
    if not match:
        return None
    path = match.group(1).split("::")[0].rstrip(".,;:)")
    if any(c in path for c in "<>*{$"):
        return None  # a pattern or a placeholder, not one file
    if not (REPO / path).exists():
        return f"{where}: `{path}` does not exist in the repository"
    return None


def python_name_problem(where: str, name: str) -> str | None:
    if name == CONFIG_NAME:
        return None  # the file name, not a module
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return f"{where}: `{name}`: {'.'.join(parts[:cut])} has no `{attribute}`"
            found = getattr(found, attribute)
        return None
    return f"{where}: `{name}` does not import"


@pytest.mark.parametrize("path", PAGES, ids=page_ids())
def test_named_paths_and_python_names_exist(path: Path) -> None:
    """Inline code and shell blocks name files of the repository that exist, and
    Python names that import."""
    page = READ[path]
    problems = []
    for span in spans(page):
        for token in span.text.split():
            problems.append(path_problem(span.where(), token))
        for name in PYTHON_NAME.findall(span.text):
            problems.append(python_name_problem(span.where(), name.rstrip(".")))
    for block in page.blocks:
        if block.lang in ("sh", "bash", "shell", "console"):
            for offset, line in shell_lines(block):
                for token in line.split("#")[0].split():
                    problems.append(path_problem(block.where(offset), token))
    found = [problem for problem in problems if problem]
    assert not found, "\n".join(found)


PYTHON_BLOCKS = blocks_of("python")


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=ids(PYTHON_BLOCKS))
def test_python_example_compiles_and_imports(block: Block) -> None:
    try:
        tree = ast.parse(block.text)
    except SyntaxError as err:
        pytest.fail(f"{block.where((err.lineno or 1) - 1)}: {err.msg}", pytrace=False)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bpfbuild":
            module = importlib.import_module(node.module or "")
            problems += [
                f"{block.where(node.lineno - 1)}: {node.module} has no `{alias.name}`"
                for alias in node.names
                if not hasattr(module, alias.name)
            ]
    assert not problems, "\n".join(problems)


ENV_READ = (
    re.compile(r'environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'^[A-Z_]*ENV\s*=\s*"([A-Z][A-Z0-9_]*)"', re.M),
)


def test_every_environment_variable_is_documented() -> None:
    """Each variable bpfbuild's code reads by name is named in the documentation."""
    read = {
        (name, shown(source))
        for source in sorted((REPO / "bpfbuild").rglob("*.py"))
        for pattern in ENV_READ
        for name in pattern.findall(source.read_text())
    }
    assert ("BPFBUILD_CACHE_DIR", "bpfbuild/cache.py") in read, "the scan of the code finds nothing"
    text = "\n".join(path.read_text() for path in PAGES)
    missing = sorted(f"{name} (read in {source})" for name, source in read if name not in text)
    assert not missing, "environment variables no page documents: " + ", ".join(missing)


# -- (d) every proving test of docs/guarantees.md exists ---------------------------------

GUARANTEES = DOCS / "guarantees.md"


def functions_of_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            found.add(node.name)
    return found


def string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def proof_problems(line: int, cell: str) -> Iterator[str]:
    """What is wrong with the `proved by` cell of one row of the table."""
    where = f"{shown(GUARANTEES)}:{line}"
    test_file: Path | None = None
    named_tests = 0
    for match in CODE_SPAN.finditer(cell):
        text = match.group(2).strip()
        if text.startswith(("python", "bench/")):
            words = text.split()
            script = REPO / next(w for w in words if w.startswith("bench/"))
            if not script.is_file():
                yield f"{where}: `{text}`: {shown(script)} does not exist"
                continue
            source = script.read_text()
            for word in words:
                if word.startswith("--") and f'"{word}"' not in source:
                    yield f"{where}: `{text}`: {shown(script)} has no option {word}"
            named_tests += 1
        elif text.startswith("tests/") or text.startswith("::"):
            file_part, _, function = text.partition("::")
            if file_part:
                test_file = REPO / file_part
                if not test_file.is_file():
                    yield f"{where}: the proving test {file_part} does not exist"
                    test_file = None
                    continue
            elif test_file is None:
                yield f"{where}: `{text}` follows no test file in its row"
                continue
            function = function.split("[")[0]
            if function and function not in functions_of_tests(test_file):
                yield f"{where}: {shown(test_file)} has no test `{function}`"
            named_tests += 1
        elif test_file is not None:
            cases = string_constants(test_file)
            if not any(fnmatch.fnmatchcase(case, text) for case in cases):
                yield f"{where}: {shown(test_file)} has no case `{text}`"
    if not named_tests:
        yield f"{where}: a promise with no proving test"


def test_every_proving_test_exists() -> None:
    rows = [
        (number, line)
        for number, line in enumerate(GUARANTEES.read_text().splitlines(), 1)
        if line.startswith("|") and not re.match(r"^\|\s*(-+\s*\|\s*)+$", line)
    ]
    assert rows[0][1].replace(" ", "") == "|promise|provedby|", "the table's header changed"
    assert len(rows) > 10, "the table of guarantees is not found"
    problems = [
        problem
        for number, line in rows[1:]
        for problem in proof_problems(number, line.rstrip().rstrip("|").rsplit("|", 1)[1])
    ]
    assert not problems, "\n".join(problems)
