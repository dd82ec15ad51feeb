"""Every bad input a new user can give: one `error:` line, one `hint:` line, a non-zero
exit, no traceback, no "internal error", and no output written. One table, one test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from buildutil import ARCH, BPF_SKIP_REASON, bpfbuild, bpfbuild_command, build, require_tool
from click.testing import CliRunner

from bpfbuild.arch import ARCHES, host_arch
from bpfbuild.cli import main

OTHER_ARCH = next(name for name in ARCHES if name != host_arch().name)
OTHER_SPELLING = ARCHES[ARCH].machines[-1]  # amd64 for x86_64, arm64 for arm64
TOML = "bpfbuild.toml"


def invoke(*args: str, env: dict[str, str] | None = None):
    """The CLI in-process, for errors raised before any build starts."""
    return CliRunner().invoke(main, list(args), env=env)


def assert_error(output: str, exit_code: int, error: str, hint: str, code: int = 1) -> None:
    """Exactly one error line and one hint line, with the expected text, and no traceback."""
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert exit_code == code, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert len(errors) == 1 and error in errors[0], output
    assert len(hints) == 1 and hint in hints[0], output


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `bpfbuild init` project, copied by each case."""
    root = tmp_path_factory.mktemp("template") / "hello"
    result = invoke("init", "--name", "hello", str(root))
    assert result.exit_code == 0, result.output
    return root


def new_project(folder: Path, name: str = "hello") -> Path:
    result = invoke("init", "--name", name, str(folder / name))
    assert result.exit_code == 0, result.output
    return folder / name


# -- setups: what a case does to a fresh project before running bpfbuild ---------


def fake_tool(name: str, script: str = "exit 0") -> Callable[[Path, Path], dict[str, str]]:
    """A tool `name` in a temporary PATH folder that runs script (default: exits 0 and
    prints nothing); returns the environment that puts it first."""

    def setup(root: Path, tmp: Path) -> dict[str, str]:
        folder = tmp / "fakebin"
        folder.mkdir(exist_ok=True)
        tool = folder / name
        tool.write_text(f"#!/bin/sh\n{script}\n")
        tool.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k not in ("CLANG", "BPFTOOL", "PKG_CONFIG")}
        return {**env, "PATH": f"{folder}:{os.environ['PATH']}"}

    return setup


def link_out(name: str, target: str = "outside") -> Callable[[Path, Path], None]:
    """name in the project is a symbolic link to a folder outside it."""

    def setup(root: Path, tmp: Path) -> None:
        (tmp / target).mkdir(exist_ok=True)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.rmtree(path)
        path.symlink_to(tmp / target)

    return setup


def outside_file(link: str) -> Callable[[Path, Path], None]:
    """link in the project is a symbolic link to a C file outside it."""

    def setup(root: Path, tmp: Path) -> None:
        (tmp / "outside.c").write_text("int outside;\n")
        (root / link).symlink_to(tmp / "outside.c")

    return setup


def built(root: Path, tmp: Path) -> None:
    build(root)


def corrupt_baseline(root: Path, tmp: Path) -> None:
    (root / "verify-baseline.json").write_text('{"format": 1, "programs": ')


def run_read_only(folder: Path, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run argv with folder read-only. Root ignores permissions, so as root the folder
    is bind-mounted read-only in a private mount namespace; otherwise it is chmod'ed."""
    kwargs = {"capture_output": True, "text": True, "timeout": 120, **kwargs}
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            return subprocess.run(argv, **kwargs)
        finally:
            folder.chmod(mode)
    require_tool("unshare", "util-linux")  # as root, a read-only folder is a read-only mount
    mount = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind -o ro "$0" "$0" && exec "$@"',
        str(folder),
    ]
    done = subprocess.run([*mount, *argv], **kwargs)
    if "mount:" in done.stderr and done.returncode == 32:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    return done


@dataclass
class Case:
    """One bad input. args run in the project folder ("{root}", "{tmp}" filled in)."""

    id: str
    args: list[str]
    error: str
    """Part of the one `error:` line."""
    hint: str
    """Part of the one `hint:` line."""
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    """Files to write (None: delete) in a fresh `bpfbuild init` project."""
    append: str = ""
    """Text appended to bpfbuild.toml."""
    setup: Callable | None = None
    """setup(root, tmp) before the run; may return the environment to run with."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to the environment."""
    subprocess: bool = False
    """Run bpfbuild as a subprocess (errors that come from a running build)."""
    read_only: str | None = None
    """Run with this folder of the project read-only (implies subprocess)."""
    code: int = 1
    skip: str | None = None


CASES = [
    # -- bpfbuild.toml: syntax, keys and types
    Case(
        "malformed-toml",
        ["build"],
        "{root}/bpfbuild.toml:3: invalid TOML",
        "fix the TOML syntax at that line",
        files={TOML: '[project]\nname = "hello"\n[build\n'},
    ),
    Case(
        "toml-not-utf8",
        ["build"],
        "{root}/bpfbuild.toml:2: not UTF-8 text (byte 0xff)",
        "save the file as UTF-8",
        files={TOML: b'[project]\nname = "h\xffllo"\n'},
    ),
    Case(
        "unknown-table",
        ["build"],
        "bpfbuild.toml:1: unknown table or key 'bogus'",
        "valid top-level tables: app, bpflib, build",
        files={TOML: "[bogus]\nx = 1\n"},
    ),
    Case(
        "unknown-key",
        ["build"],
        "{root}/bpfbuild.toml:2: unknown key 'build.optimise'",
        "valid keys: arches,",
        files={TOML: "[build]\noptimise = 3\n"},
    ),
    Case(
        "unknown-app-key",
        ["build"],
        "unknown key 'app.hello.main'",
        "valid keys: aliases, bpf, cflags, ldflags, libs, sources",
        append='[app.hello]\nmain = "src/hello.c"\n',
    ),
    Case(
        "wrong-type-bool",
        ["list"],
        "bpfbuild.toml:2: 'build.static' must be true or false",
        "change the value of 'build.static'",
        files={TOML: '[build]\nstatic = "no"\n'},
    ),
    Case(
        "build-is-not-a-table",
        ["build"],
        "bpfbuild.toml:1: 'build' must be a table",
        "change the value of 'build'",
        files={TOML: "build = 3\n"},
    ),
    Case(
        "app-is-a-list",
        ["build"],
        "'app.hello' must be a table",
        "change the value of 'app.hello'",
        files={TOML: 'app.hello = ["src/hello.c"]\n'},
    ),
    Case(
        "vmlinux-is-a-string",
        ["build"],
        "'vmlinux' must be a table",
        "change the value of 'vmlinux'",
        files={TOML: 'vmlinux = "btf"\n'},
    ),
    Case(
        "arches-is-a-string",
        ["build"],
        "'build.arches' must be an array",
        "change the value of 'build.arches'",
        files={TOML: f'[build]\narches = "{ARCH}"\n'},
    ),
    Case(
        "cflags-item-not-a-string",
        ["build"],
        "'build.cflags' must be a string, not int 3",
        "change the value of 'build.cflags'",
        files={TOML: '[build]\ncflags = ["-O2", 3]\n'},
    ),
    Case(
        "app-array-of-tables",
        ["build"],
        "'app' must be a table, not list",
        "change the value of 'app'",
        files={TOML: '[[app]]\nsources = ["src/hello.c"]\n'},
    ),
    Case(
        "arches-as-a-table",
        ["build"],
        "'build.arches' must be an array, not dict",
        "change the value of 'build.arches'",
        files={TOML: "[build.arches]\nx86_64 = true\n"},
    ),
    Case(
        "project-name-as-a-table",
        ["list"],
        "'project.name' must be a string, not dict",
        "change the value of 'project.name'",
        files={TOML: '[project.name]\nfull = "x"\n'},
    ),
    Case(
        "rodata-float",
        ["verify"],
        "'verify.rodata.hello.min_pid' must be an integer, not float",
        "change the value",
        files={TOML: "verify.rodata.hello.min_pid = 1.5\n"},
    ),
    Case(
        "pch-unknown-word",
        ["build"],
        "'build.pch' must be true, false or \"auto\"",
        "change the value of 'build.pch'",
        files={TOML: '[build]\npch = "sometimes"\n'},
    ),
    Case(
        "project-name-not-a-string",
        ["build"],
        "'project.name' must be a string",
        "change the value of 'project.name'",
        files={TOML: "[project]\nname = 3\n"},
    ),
    # -- arches
    Case(
        "unknown-arch",
        ["build"],
        "bpfbuild.toml:2: unknown arch 'sparc'",
        "valid arches: x86_64, arm64",
        files={TOML: '[build]\narches = ["sparc"]\n'},
    ),
    Case(
        "duplicated-arch",
        ["build"],
        f"arch '{ARCH}' is listed twice in 'build.arches'",
        "list each arch once",
        files={TOML: f'[build]\narches = ["{ARCH}", "{ARCH}"]\n'},
    ),
    Case(
        "duplicated-arch-two-spellings",
        ["build"],
        f"arch '{OTHER_SPELLING}' is listed twice in 'build.arches' (as '{ARCH}')",
        "list each arch once",
        files={TOML: f'[build]\narches = ["{ARCH}", "{OTHER_SPELLING}"]\n'},
    ),
    Case(
        "cross-arch-without-vmlinux",
        ["build"],
        f"no vmlinux source for arch '{OTHER_ARCH}'",
        f'add `{OTHER_ARCH} = "path/to/',
        files={TOML: f'[build]\narches = ["{OTHER_ARCH}"]\n'},
    ),
    Case(
        "arch-option-unknown", ["build", "--arch", "sparc"], "unknown arch 'sparc'", "valid arches:"
    ),
    Case(
        "arch-option-not-in-project",
        ["build", "--arch", OTHER_ARCH],
        f"arch {OTHER_ARCH} is not in this project's arches",
        "add it to `arches`",
    ),
    # -- [vmlinux]
    Case(
        "vmlinux-file-missing",
        ["build"],
        f'[vmlinux] {ARCH} = "btf/vmlinux": not found',
        "give a BTF file",
        files={TOML: f'[vmlinux]\n{ARCH} = "btf/vmlinux"\n'},
    ),
    Case(
        "vmlinux-is-a-folder",
        ["build"],
        f'[vmlinux] {ARCH} = "src": a folder',
        "give a BTF file",
        files={TOML: f'[vmlinux]\n{ARCH} = "src"\n'},
    ),
    Case(
        "vmlinux-outside",
        ["build"],
        f"'vmlinux.{ARCH}': '/etc/passwd' is outside the project folder",
        "copy or move the file into it",
        files={TOML: f'[vmlinux]\n{ARCH} = "/etc/passwd"\n'},
    ),
    Case(
        "vmlinux-twice",
        ["build"],
        f"arch '{OTHER_SPELLING}' is given twice in [vmlinux]",
        "keep one entry per arch",
        files={TOML: f'[vmlinux]\n{ARCH} = "a.h"\n{OTHER_SPELLING} = "b.h"\n'},
    ),
    # -- app names: C identifiers that are none of bpfbuild's output folders
    *[
        Case(
            f"app-named-{name}",
            ["build"],
            f"bpfbuild.toml:12: '{name}' is not a valid app name: output/<arch>/{name}/ is a folder",
            "none of: bpf, include, libbpf, tools, user, verify",
            append=f'[app.{name}]\nsources = ["src/hello.c"]\n',
        )
        for name in ("include", "user", "bpf", "tools", "verify")
    ],
    Case(
        "app-name-escapes-output",
        ["build"],
        "'../../x' is not a valid app name: it must be a C identifier",
        "use letters, digits and underscores",
        append='[app."../../x"]\nsources = ["src/hello.c"]\n',
    ),
    Case(
        "app-name-is-a-source-path",
        ["build"],
        "'../../src/hello.h' is not a valid app name",
        "use letters, digits and underscores",
        append='[app."../../src/hello.h"]\nsources = ["src/hello.c"]\n',
    ),
    Case(
        "app-name-with-dash",
        ["build"],
        "'my-tool' is not a valid app name",
        "use letters, digits",
        append='[app.my-tool]\nsources = ["src/hello.c"]\n',
    ),
    Case(
        "app-name-starts-with-digit",
        ["build"],
        "'1tool' is not a valid app name",
        "not starting with a digit",
        append='[app.1tool]\nsources = ["src/hello.c"]\n',
    ),
    Case(
        "discovered-app-named-tools",
        ["build"],
        "src/tools.c: 'tools' is not a valid app name",
        "rename src/tools.c and src/tools.bpf.c",
        files={"src/tools.c": "int main(void) { return 0; }\n", "src/tools.bpf.c": ""},
    ),
    Case(
        "object-name-not-an-identifier",
        ["build"],
        "'1bad' is not a valid C identifier",
        "rename the file",
        files={"src/1bad.bpf.c": ""},
    ),
    Case(
        "two-sources-one-object",
        ["build"],
        "two BPF sources make object 'hello'",
        "rename one of them",
        files={"bpf/hello.bpf.c": ""},
        append='[app.hello]\nbpf = ["bpf/hello.bpf.c"]\n',
    ),
    Case("no-such-app", ["build", "nosuch"], "no app named nosuch", "apps: hello"),
    Case("no-such-object", ["verify", "nosuch"], "no BPF object named nosuch", "objects: hello"),
    # -- [app] sources and bpf
    Case(
        "sources-outside-absolute",
        ["build"],
        "'app.hello.sources': '/etc/passwd' is outside the project folder",
        "bpfbuild reads and writes only inside the project folder",
        append='[app.hello]\nsources = ["/etc/passwd"]\n',
    ),
    Case(
        "sources-outside-relative",
        ["build"],
        "'../outside.c' is outside the project folder (it resolves to",
        "copy or move the file into it",
        append='[app.hello]\nsources = ["../outside.c"]\n',
    ),
    Case(
        "sources-outside-through-a-link",
        ["build"],
        "'src/link.c' is outside the project folder (it resolves to {tmp}/outside.c)",
        "copy or move the file into it",
        setup=outside_file("src/link.c"),
        append='[app.hello]\nsources = ["src/hello.c", "src/link.c"]\n',
    ),
    Case(
        "sources-is-a-folder",
        ["build"],
        "app 'hello' lists 'src', which is a folder, not a file",
        'e.g. "src/hello.c"',
        append='[app.hello]\nsources = ["src"]\n',
    ),
    Case(
        "sources-missing",
        ["build"],
        "app 'hello' lists 'src/main.c', which does not exist",
        "fix [app.hello] or create src/main.c",
        append='[app.hello]\nsources = ["src/main.c"]\n',
    ),
    Case(
        "sources-lists-a-bpf-program",
        ["build"],
        "app 'hello' lists 'src/hello.bpf.c' under `sources`, but it is a BPF program",
        "move it to `bpf = [...]`",
        append='[app.hello]\nsources = ["src/hello.c", "src/hello.bpf.c"]\n',
    ),
    Case(
        "sources-lists-a-header",
        ["build"],
        "lists 'src/hello.h' under `sources`, which takes C sources",
        "headers are found through include_dirs",
        append='[app.hello]\nsources = ["src/hello.c", "src/hello.h"]\n',
    ),
    Case(
        "sources-empty-path",
        ["build"],
        "'app.hello.sources' holds an empty path",
        "give a path relative to the project folder",
        append='[app.hello]\nsources = [""]\n',
    ),
    Case(
        "bpf-not-named-bpf-c",
        ["build"],
        "BPF source 'src/hello.c' must be named NAME.bpf.c",
        "rename the file",
        append='[app.hello]\nbpf = ["src/hello.c"]\n',
    ),
    Case(
        "bpf-outside",
        ["build"],
        "'app.hello.bpf': '/tmp/x.bpf.c' is outside the project folder",
        "copy or move the file into it",
        append='[app.hello]\nbpf = ["/tmp/x.bpf.c"]\n',
    ),
    Case(
        "app-without-user-source",
        ["build"],
        "app 'tool' has no user-space source",
        'add `sources = ["src/tool.c"]`',
        append='[app.tool]\nbpf = ["src/hello.bpf.c"]\n',
    ),
    Case(
        "include-dir-outside",
        ["build"],
        "'build.include_dirs': '/usr/include' is outside the project folder",
        "copy or move the file into it",
        files={TOML: '[build]\ninclude_dirs = ["/usr/include"]\n'},
    ),
    Case(
        "missing-src",
        ["build"],
        "{root}: no src/ folder",
        "put NAME.bpf.c and NAME.c in src/",
        files={"src/hello.bpf.c": None, "src/hello.c": None, "src/hello.h": None, "src": None},
    ),
    Case(
        "no-bpf-source",
        ["build"],
        "src: no *.bpf.c source",
        "add src/NAME.bpf.c",
        files={"src/hello.bpf.c": None},
    ),
    Case(
        "sources-listed-twice",
        ["build"],
        "'app.hello.sources' lists 'src/hello.c' twice",
        "list each file once",
        append='[app.hello]\nsources = ["src/hello.c", "src/hello.c"]\n',
    ),
    Case(
        "bpf-listed-twice",
        ["build"],
        "'app.hello.bpf' lists 'src/hello.bpf.c' twice",
        "list each file once",
        append='[app.hello]\nbpf = ["src/hello.bpf.c", "src/hello.bpf.c"]\n',
    ),
    # -- [verify]
    Case(
        "max-insn-share-negative",
        ["verify"],
        "bpfbuild.toml:2: 'verify.max_insn_share' must be more than 0 and at most 1, not -1.0",
        "a share of the 1M-instruction limit",
        files={TOML: "[verify]\nmax_insn_share = -1\n"},
    ),
    Case(
        "max-insn-share-above-one",
        ["verify"],
        "'verify.max_insn_share' must be more than 0 and at most 1",
        "e.g. 0.5",
        files={TOML: "[verify]\nmax_insn_share = 2\n"},
    ),
    Case(
        "max-growth-negative",
        ["verify"],
        "'verify.max_growth' must be 0 or more, not -5.0",
        "a percent of growth",
        files={TOML: "[verify]\nmax_growth = -5\n"},
    ),
    Case(
        "max-growth-not-a-number",
        ["verify"],
        "'verify.max_growth' must be a number, not str",
        "change the value of 'verify.max_growth'",
        files={TOML: '[verify]\nmax_growth = "10%"\n'},
    ),
    Case(
        "baseline-outside",
        ["verify"],
        "'verify.baseline': '../baseline.json' is outside the project",
        "copy or move the file into it",
        files={TOML: '[verify]\nbaseline = "../baseline.json"\n'},
    ),
    Case(
        "rodata-not-an-integer",
        ["verify"],
        "'verify.rodata.hello.min_pid' must be an integer, not str",
        "change the value of 'verify.rodata.hello.min_pid'",
        files={TOML: '[verify.rodata.hello]\nmin_pid = "1"\n'},
    ),
    Case(
        "rodata-is-not-a-table",
        ["verify"],
        "'verify.rodata.hello' must be a table",
        "change the value of 'verify.rodata.hello'",
        files={TOML: "[verify.rodata]\nhello = 1\n"},
    ),
    Case(
        "rodata-unknown-object",
        ["verify"],
        "[verify.rodata.nosuch] names no BPF object",
        "BPF objects: hello",
        files={TOML: "[verify.rodata.nosuch]\nmin_pid = 1\n"},
    ),
    Case(
        "rodata-name-not-an-identifier",
        ["verify"],
        "'verify.rodata.hello': 'min-pid' is not a C identifier",
        "[verify.rodata.OBJECT]",
        files={TOML: '[verify.rodata.hello]\n"min-pid" = 1\n'},
    ),
    Case(
        "rodata-beyond-64-bits",
        ["verify"],
        "'verify.rodata.hello.min_pid' = 36893488147419103232 does not fit in 64 bits",
        "at most 64 bits",
        files={TOML: "[verify.rodata.hello]\nmin_pid = 36893488147419103232\n"},
    ),
    Case(
        "baseline-is-a-folder",
        ["verify"],
        '[verify] baseline = "src" is a folder',
        "name a file",
        files={TOML: '[verify]\nbaseline = "src"\n'},
    ),
    # -- the command line
    Case(
        "directory-does-not-exist",
        ["build", "-C", "{tmp}/nope"],
        "Directory '{tmp}/nope' does not exist",
        "see `bpfbuild build --help`",
        code=2,
    ),
    Case(
        "jobs-too-many",
        ["build", "-j", "100000"],
        "100000 is not in the range 1<=x<=1024",
        "see `bpfbuild build --help`",
        code=2,
    ),
    Case(
        "jobs-zero",
        ["build", "-j", "0"],
        "0 is not in the range 1<=x<=1024",
        "see `bpfbuild build --help`",
        code=2,
    ),
    Case(
        "unknown-option",
        ["build", "--frobnicate"],
        "No such option '--frobnicate'",
        "see `bpfbuild build --help`",
        code=2,
    ),
    Case(
        "unknown-command",
        ["frobnicate"],
        "No such command 'frobnicate'",
        "see `bpfbuild --help`",
        code=2,
    ),
    Case(
        "unknown-verify-format",
        ["verify", "--format", "yaml"],
        "'yaml' is not one of",
        "see `bpfbuild verify --help`",
        code=2,
    ),
    # -- bpfbuild's own folders are links out of the project
    Case(
        "output-links-out",
        ["build"],
        "{root}/output is a symbolic link: bpfbuild writes nothing outside",
        "remove the link (`bpfbuild clean` does",
        setup=link_out("output"),
    ),
    Case(
        "state-links-out",
        ["build"],
        "{root}/.bpfbuild is a symbolic link",
        "remove the link",
        setup=link_out(".bpfbuild"),
    ),
    Case(
        "src-links-out",
        ["build"],
        "src is a symbolic link out of the project (to {tmp}/outside)",
        "in place of the link src",
        setup=link_out("src"),
    ),
    Case(
        "discovered-source-links-out",
        ["build"],
        "src/shared.c is a symbolic link out of the project (to {tmp}/outside.c)",
        "copy or move what it points to into the project",
        setup=outside_file("src/shared.c"),
    ),
    Case(
        "include-links-out",
        ["build"],
        "include is a symbolic link out of the project",
        "in place of the link include",
        setup=link_out("include"),
    ),
    Case(
        "source-is-a-folder",
        ["build"],
        "src/weird.bpf.c is a folder, not a source file",
        "every src/*.c is compiled",
        setup=lambda root, tmp: (root / "src/weird.bpf.c").mkdir(),
    ),
    Case(
        "source-is-a-dangling-link",
        ["build"],
        "src/gone.c is a symbolic link to nothing",
        "remove or rename src/gone.c",
        setup=lambda root, tmp: (root / "src/gone.c").symlink_to("nothing.c"),
    ),
    Case(
        "output-is-a-file",
        ["build"],
        "{root}/output is a file, where bpfbuild keeps a folder",
        "`bpfbuild clean` removes it",
        files={"output": "mine\n"},
    ),
    Case(
        "state-is-a-file",
        ["build"],
        "{root}/.bpfbuild is a file, where bpfbuild keeps a folder",
        "move the file away",
        files={".bpfbuild": "mine\n"},
    ),
    Case(
        "arch-include-is-a-file",
        ["build"],
        f"{{root}}/output/{ARCH}/include is a file",
        "move the file away",
        files={f"output/{ARCH}/include": "mine\n"},
    ),
    Case(
        "arch-output-links-out",
        ["build"],
        f"{{root}}/output/{ARCH}/bpf is a symbolic link",
        "remove the link",
        setup=link_out(f"output/{ARCH}/bpf"),
    ),
    # -- tools that are missing or not what they claim
    Case(
        "cc-missing",
        ["build"],
        "$CC is set to '/nonexistent', which is not an executable",
        "fix or unset $CC; or apt-get install gcc",
        env={"CC": "/nonexistent"},
    ),
    Case(
        "cc-is-true",
        ["build"],
        "/bin/true is not a C compiler: `/bin/true -dumpmachine` printed nothing",
        "set $CC to a C compiler's path",
        env={"CC": "/bin/true"},
    ),
    Case(
        "cflags-unbalanced-quote",
        ["build"],
        "$CFLAGS cannot be split into flags: No closing quotation",
        "balance the quotes in $CFLAGS",
        env={"CFLAGS": '-DNAME="x'},
    ),
    Case(
        "clang-is-gcc",
        ["build"],
        "is not clang: `",
        "set $CLANG to clang's path",
        env={"CLANG": "gcc"},
    ),
    Case(
        "clang-prints-nothing",
        ["build"],
        "/fakebin/clang is not clang: ",
        "set $CLANG to clang's path, or unset it",
        setup=fake_tool("clang"),
    ),
    Case(
        "clang-is-true",
        ["build"],
        "/bin/true is not clang: `/bin/true --version` printed 'true (GNU coreutils)",
        "apt-get install clang",
        env={"CLANG": "/bin/true"},
    ),
    Case(
        "clang-without-bpf-target",
        ["build"],
        "/fakebin/clang has no BPF target",
        "Debian's clang includes the BPF backend",
        setup=fake_tool("clang", 'case "$1" in --version) echo "clang version 14.0.6";; esac'),
    ),
    Case(
        "clang-too-old",
        ["build"],
        "/fakebin/clang is clang 10.0.1; CO-RE needs clang 11 or newer",
        "scripts/setup --clang 19 installs Debian's clang-19",
        setup=fake_tool(
            "clang",
            'case "$1" in --version) echo "clang version 10.0.1";; *) echo "    bpf - BPF";; esac',
        ),
    ),
    Case(
        "clang-fails",
        ["build"],
        "failed with exit code 3",
        "check that",
        setup=fake_tool("clang", "echo broken >&2; exit 3"),
    ),
    Case(
        "bpftool-prints-nothing",
        ["build"],
        "/fakebin/bpftool is not bpftool: ",
        "set $BPFTOOL to bpftool's path",
        setup=fake_tool("bpftool"),
    ),
    Case(
        "bpftool-missing",
        ["build"],
        "$BPFTOOL is set to '/nonexistent', which is not an executable",
        "fix or unset $BPFTOOL; or apt-get install bpftool",
        env={"BPFTOOL": "/nonexistent"},
    ),
    Case(
        "pkg-config-missing",
        ["build"],
        "$PKG_CONFIG is set to '/nonexistent', which is not an executable",
        "fix or unset $PKG_CONFIG",
        env={"PKG_CONFIG": "/nonexistent"},
    ),
    Case(
        "pkg-config-prints-nothing",
        ["build"],
        "is not pkg-config: ",
        "set $PKG_CONFIG to pkg-config's path",
        env={"PKG_CONFIG": "/bin/true"},
    ),
    Case(
        "strip-missing",
        ["build"],
        f"no strip for {ARCH}, needed by `strip = true`",
        "set strip = false",
        files={TOML: "[build]\nstrip = true\n"},
        env={"STRIP": "/nonexistent"},
    ),
    # -- BPF sources with no program: caught after their compile
    Case(
        "empty-bpf-source",
        ["build"],
        "BPF src/hello.bpf.c failed",
        "add a program: a function marked SEC(",
        files={"src/hello.bpf.c": ""},
        subprocess=True,
    ),
    Case(
        "bpf-source-without-a-program",
        ["build"],
        "BPF src/hello.bpf.c failed",
        "add a program",
        files={
            "src/hello.bpf.c": '#include "vmlinux.h"\nint counter;\n'
            "static int add(int a) { return a + 1; }\nint twice(int a) { return add(a) * 2; }\n"
        },
        subprocess=True,
    ),
    # -- a folder bpfbuild must write is read-only
    Case(
        "build-read-only-project",
        ["build"],
        "cannot write .bpfbuild: it is on a read-only file system",
        "remount it read-write, or build a writable copy of the project",
        read_only=".",
    ),
    Case(
        "verify-read-only-state",
        ["verify"],
        "cannot write .bpfbuild/lock: it is on a read-only file system",
        "remount it read-write, or build a writable copy of the project",
        setup=built,
        read_only=".bpfbuild",
    ),
    Case(
        "clean-read-only-state",
        ["clean"],
        "cannot write .bpfbuild/lock: it is on a read-only file system",
        "remount it read-write",
        setup=built,
        read_only=".bpfbuild",
    ),
    # -- a corrupt baseline names the real flag
    Case(
        "corrupt-baseline",
        ["verify"],
        "verify-baseline.json:1: not a verifier baseline",
        "rewrite it with `bpfbuild verify --update-baseline`",
        setup=corrupt_baseline,
        subprocess=True,
        skip=BPF_SKIP_REASON,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, fresh_project: Path, tmp_path: Path) -> None:
    if case.skip:
        pytest.skip(case.skip)
    root = tmp_path / "hello"
    shutil.copytree(fresh_project, root, symlinks=True)
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.rmdir() if path.is_dir() else path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if case.append:
        with open(root / TOML, "a") as config:
            config.write(case.append)
    env = (case.setup(root, tmp_path) if case.setup else None) or dict(os.environ)
    env.update(case.env)
    outputs_before = sorted((root / "output").rglob("*")) if (root / "output").is_dir() else []
    if case.read_only:
        done = run_read_only(
            root / case.read_only, [*bpfbuild_command(), *case.args], cwd=root, env=env
        )
        output, code = done.stdout + done.stderr, done.returncode
    elif case.subprocess:
        run = bpfbuild(root, *case.args, env=env)
        output, code = run.output, run.returncode
    else:
        args = [arg.format(root=root, tmp=tmp_path) for arg in case.args]
        result = invoke(*args, *([] if "-C" in args else ["-C", str(root)]), env=env)
        output, code = result.output, result.exit_code
    fill = {"root": root, "tmp": tmp_path}
    assert_error(output, code, case.error.format(**fill), case.hint.format(**fill), case.code)
    if not case.subprocess:
        # Nothing built: the error came before any output was written.
        outputs_after = sorted((root / "output").rglob("*")) if (root / "output").is_dir() else []
        assert outputs_after == outputs_before, output
    if (tmp_path / "outside").is_dir():
        assert list((tmp_path / "outside").iterdir()) == []  # nothing written through a link


def test_the_table_is_long() -> None:
    assert len(CASES) >= 50


def test_no_project_here(tmp_path: Path) -> None:
    result = invoke("build", "-C", str(tmp_path))
    assert_error(
        result.output,
        result.exit_code,
        f"no bpfbuild.toml in {tmp_path.resolve()}",
        "hint: run `bpfbuild init`",
    )


# (id, folder contents before, init args, error, hint)
BAD_INITS = [
    (
        "name-starts-with-digit",
        {},
        ["--name", "1bad"],
        "'1bad' is not a valid app name: it must be a C identifier",
        "hint: use letters, digits",
    ),
    (
        "name-is-a-c-keyword",
        {},
        ["--name", "int"],
        "'int' is not a valid app name: it is a keyword of C or Python",
        "hint: use letters, digits",
    ),
    (
        "name-is-a-python-keyword",
        {},
        ["--name", "class"],
        "'class' is not a valid app name: it is a keyword of C or Python",
        "hint: use letters",
    ),
    (
        "name-has-a-dash",
        {},
        ["--name", "my-tool"],
        "'my-tool' is not a valid app name",
        "e.g. --name my_tool",
    ),
    (
        "name-is-an-output-folder",
        {},
        ["--name", "include"],
        "'include' is not a valid app name: output/<arch>/include/ is a folder",
        "none of: bpf, include",
    ),
    (
        "unknown-template",
        {},
        ["--name", "tool", "--template", "nope"],
        "unknown template 'nope'",
        "tracepoint",
    ),
    (
        "src-links-out",
        {"src": "->outside"},
        ["--name", "tool"],
        "src is a symbolic link out of",
        "remove the link",
    ),
    (
        "target-is-a-file",
        {"notes.txt": "mine"},
        ["--name", "tool", "{target}/notes.txt"],
        "notes.txt exists and is not a folder",
        "choose another DIR",
    ),
    (
        "template-file-is-a-folder",
        {"README.md/": ""},
        ["--name", "tool", "--force"],
        "README.md is a folder, where the template has a file",
        "move it away",
    ),
]


@pytest.mark.parametrize(
    "contents, args, error, hint",
    [case[1:] for case in BAD_INITS],
    ids=[case[0] for case in BAD_INITS],
)
def test_bad_init(tmp_path: Path, contents: dict, args: list[str], error: str, hint: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, text in contents.items():
        if text == "->outside":
            (target / name).symlink_to(outside)
        elif name.endswith("/"):
            (target / name).mkdir()
        else:
            (target / name).write_text(text)
    own_target = any("{target}" in arg for arg in args)
    args = [arg.format(target=target) for arg in args]
    result = invoke("init", *args, *([] if own_target else [str(target)]))
    assert_error(result.output, result.exit_code, error, hint)
    assert sorted(p.name.rstrip("/") for p in target.iterdir()) == sorted(
        n.rstrip("/") for n in contents
    )
    assert list(outside.iterdir()) == []


def test_init_into_a_read_only_folder(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    done = run_read_only(target, [*bpfbuild_command(), "init", "--name", "tool", str(target)])
    assert_error(
        done.stdout + done.stderr,
        done.returncode,
        f"cannot access {target}/",
        "run bpfbuild as a user who can write the project folder",
    )
    assert list(target.iterdir()) == []


def test_doctor_with_a_read_only_state_folder(tmp_path: Path) -> None:
    """doctor still reports every check, and says that builds cannot keep their state."""
    root = new_project(tmp_path)
    (root / ".bpfbuild").mkdir()
    done = run_read_only(root / ".bpfbuild", [*bpfbuild_command(), "doctor"], cwd=root)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "internal error" not in output
    assert f"state:      MISSING: cannot write {root}/.bpfbuild" in output
    assert "clang:      /" in output
    assert "builds cannot work" in output


def test_c_syntax_error_shows_clangs_diagnostic(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    source = root / "src/hello.bpf.c"
    lines = source.read_text().splitlines() + ["int broken = ;"]
    source.write_text("\n".join(lines) + "\n")
    run = bpfbuild(root, "build")
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.output
    assert "error: BPF src/hello.bpf.c failed" in run.stdout
    assert f"src/hello.bpf.c:{len(lines)}:14: error: expected expression" in run.stdout
    assert "clang exited with 1" in run.stdout
    assert not (root / f"output/{ARCH}/bpf/hello.tmp.bpf.o").exists()
    assert not list((root / "output").rglob("*.partial"))


def test_verbose_failure_shows_the_command(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    (root / "src/hello.bpf.c").write_text("int broken = ;\n")
    run = bpfbuild(root, "build", "-v", "-j1")
    assert run.returncode == 1
    assert f"    cd {root} && " in run.stdout and " -target bpfel " in run.stdout, run.stdout


def test_clang_missing_from_path_with_a_warm_version_cache(tmp_path: Path) -> None:
    """toolchain.json caches versions by path: a tool gone since must still be an error."""
    root = new_project(tmp_path)
    build(root)
    assert "clang:" in (root / ".bpfbuild/toolchain.json").read_text()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CLANG"}
    env["PATH"] = str(empty)
    run = bpfbuild(root, "build", env=env)
    assert_error(
        run.stderr,
        run.returncode,
        "error: clang not found (looked for: $CLANG, clang, clang-",
        "hint: apt-get install clang, or set $CLANG to its path",
    )


@pytest.mark.parametrize(
    "content",
    [
        b'{"format": 1, "programs": ',
        b"\xff\xfe",
        b'{"format": 1}',
        b'{"format": 1, "programs": {"a/b": 3}}',
    ],
)
def test_a_corrupt_baseline_names_the_real_flag(tmp_path: Path, content: bytes) -> None:
    """Without a kernel that loads programs: the baseline is read the same way."""
    from bpfbuild.errors import VerifyError
    from bpfbuild.verify.baseline import load_baseline

    path = tmp_path / "verify-baseline.json"
    path.write_bytes(content)
    with pytest.raises(VerifyError) as caught:
        load_baseline(path)
    assert caught.value.message.startswith(f"{path}")
    assert (
        caught.value.hint == "rewrite it with `bpfbuild verify --update-baseline` (and commit it)"
    )
