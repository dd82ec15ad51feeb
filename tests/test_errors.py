"""Bad input gives one `error:` line, one `hint:` line and a non-zero exit, never a
traceback; a failed compile shows the compiler's own diagnostics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfbuild.arch import ARCHES, host_arch
from bpfbuild.cli import main

from buildutil import ARCH, bpfbuild, build

OTHER_ARCH = next(name for name in ARCHES if name != host_arch().name)


def invoke(*args: str):
    """The CLI in-process, for errors raised before any build starts."""
    return CliRunner().invoke(main, list(args))


def assert_error(output: str, exit_code: int, error: str, hint: str) -> None:
    """Exactly one error line and one hint line, with the expected text, and no traceback."""
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert exit_code == 1, output
    assert "Traceback" not in output
    assert len(errors) == 1 and error in errors[0], output
    assert len(hints) == 1 and hint in hints[0], output


def new_project(folder: Path, name: str = "hello") -> Path:
    result = invoke("init", "--name", name, str(folder / name))
    assert result.exit_code == 0, result.output
    return folder / name


# (id, change to a fresh `bpfbuild init` project, CLI args after -C ROOT, error, hint);
# "{root}" in the error stands for the project folder.
BAD_PROJECTS = [
    ("malformed-toml", {"bpfbuild.toml": '[project]\nname = "hello"\n[build\n'}, ["build"],
     "{root}/bpfbuild.toml:3: invalid TOML", "hint: fix the TOML syntax at that line"),
    ("unknown-key", {"bpfbuild.toml": "[build]\noptimise = 3\n"}, ["build"],
     "{root}/bpfbuild.toml:2: unknown key 'build.optimise'", "hint: valid keys: arches,"),
    ("wrong-type", {"bpfbuild.toml": '[build]\nstatic = "no"\n'}, ["list"],
     "{root}/bpfbuild.toml:2: 'build.static' must be true or false", "change the value of 'build.static'"),
    ("unknown-arch", {"bpfbuild.toml": '[build]\narches = ["sparc"]\n'}, ["build"],
     "{root}/bpfbuild.toml:2: unknown arch 'sparc'", "hint: valid arches: x86_64, arm64"),
    ("cross-arch-without-vmlinux", {"bpfbuild.toml": f'[build]\narches = ["{OTHER_ARCH}"]\n'}, ["build"],
     f"no vmlinux source for arch '{OTHER_ARCH}'", f'hint: add `{OTHER_ARCH} = "path/to/'),
    ("app-lists-missing-file", {"bpfbuild.toml": '[app.hello]\nsources = ["src/main.c"]\n'}, ["build"],
     "app 'hello' lists 'src/main.c', which does not exist", "hint: fix [app.hello] or create src/main.c"),
    ("missing-src", {"src": None}, ["build"],
     "{root}: no src/ folder", "hint: put NAME.bpf.c and NAME.c in src/"),
    ("no-such-app", {}, ["build", "nosuch"],
     "no app named nosuch", "hint: apps: hello"),
    ("arch-option-unknown", {}, ["build", "--arch", "sparc"],
     "unknown arch 'sparc'", "hint: valid arches:"),
    ("arch-option-not-in-project", {}, ["build", "--arch", OTHER_ARCH],
     f"arch {OTHER_ARCH} is not in this project's arches", "hint: add it to `arches`"),
]


@pytest.mark.parametrize("change, args, error, hint", [case[1:] for case in BAD_PROJECTS],
                         ids=[case[0] for case in BAD_PROJECTS])
def test_bad_project(tmp_path: Path, change: dict, args: list[str], error: str, hint: str) -> None:
    root = new_project(tmp_path)
    for name, text in change.items():
        path = root / name
        if text is None:
            for child in sorted(path.rglob("*"), reverse=True):
                child.unlink()
            path.rmdir()
        else:
            path.write_text(text)
    result = invoke(*args, "-C", str(root))
    assert_error(result.output, result.exit_code, error.format(root=root.resolve()), hint)
    assert not (root / "output").exists()


def test_no_project_here(tmp_path: Path) -> None:
    result = invoke("build", "-C", str(tmp_path))
    assert_error(result.output, result.exit_code, f"no bpfbuild.toml in {tmp_path.resolve()}",
                 "hint: run `bpfbuild init`")


# (id, folder contents before, init args, error, hint)
BAD_INITS = [
    ("non-empty-folder", {"notes.txt": "mine"}, ["--name", "tool"],
     "is not empty", "hint: use an empty folder, or --force"),
    ("name-starts-with-digit", {}, ["--name", "1bad"],
     "'1bad' is not a valid app name: it must be a C identifier", "hint: use letters, digits"),
    ("name-is-a-c-keyword", {}, ["--name", "int"],
     "'int' is not a valid app name", "hint: use letters, digits"),
    ("name-has-a-dash", {}, ["--name", "my-tool"],
     "'my-tool' is not a valid app name", "e.g. --name my_tool"),
    ("unknown-template", {}, ["--name", "tool", "--template", "nope"],
     "unknown template 'nope'", "tracepoint"),
]


@pytest.mark.parametrize("contents, args, error, hint", [case[1:] for case in BAD_INITS],
                         ids=[case[0] for case in BAD_INITS])
def test_bad_init(tmp_path: Path, contents: dict, args: list[str], error: str, hint: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    for name, text in contents.items():
        (target / name).write_text(text)
    result = invoke("init", *args, str(target))
    assert_error(result.output, result.exit_code, error, hint)
    assert sorted(p.name for p in target.iterdir()) == sorted(contents)


def test_init_force_and_default_name(tmp_path: Path) -> None:
    target = tmp_path / "my-tool"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = invoke("init", "--force", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "src" / "my_tool.bpf.c").is_file()    # dashes become underscores
    assert (target / "notes.txt").read_text() == "mine"
    assert 'name = "my_tool"' in (target / "bpfbuild.toml").read_text()


def test_init_lists_templates() -> None:
    result = invoke("init", "--list")
    assert result.exit_code == 0
    assert any(line.startswith("tracepoint ") for line in result.output.splitlines())


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
    assert_error(run.stderr, run.returncode, "error: clang not found (looked for: $CLANG, clang, clang-",
                 "hint: apt-get install clang, or set $CLANG to its path")


def test_bpftool_missing(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    run = bpfbuild(root, "build", env={**os.environ, "BPFTOOL": "/nonexistent"})
    assert_error(run.stderr, run.returncode,
                 "error: $BPFTOOL is set to '/nonexistent', which is not an executable",
                 "hint: fix or unset $BPFTOOL; or apt-get install bpftool")
    assert not (root / "output").exists()


def test_clang_without_bpf_target(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    run = bpfbuild(root, "build", env={**os.environ, "CLANG": "/bin/true"})
    assert_error(run.stderr, run.returncode, "/bin/true has no BPF target",
                 "hint: apt-get install clang")
