"""`[build] linker`: each installed linker links static apps that behave the same; the
choice is part of the link's up-to-date key; "auto" takes mold, then lld."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import ARCH, Run, build, require_cross, steps_of

from bpfbuild.arch import get_arch
from bpfbuild.errors import ConfigError, ToolchainError
from bpfbuild.pipeline.actions import needed_libraries
from bpfbuild.pipeline.config import load_config
from bpfbuild.pipeline.linker import choose

ARM64 = get_arch("arm64")


def available(name: str) -> bool:
    try:
        choose(name, "cc")
    except ToolchainError:
        return False
    return True


LINKERS = [name for name in ("mold", "lld", "bfd", "gold", "default") if available(name)]


def set_linker(root: Path, linker: str) -> None:
    config = root / "bpfbuild.toml"
    text = config.read_text().replace("[build]\n", f'[build]\nlinker = "{linker}"\n', 1)
    config.write_text(text)


@pytest.fixture(scope="module")
def project(multi_built: tuple[Path, Run]) -> dict:
    """multi built with "auto"; "linker" is the choice its last build used."""
    return {"root": multi_built[0], "linker": choose("auto", "cc")}


@pytest.mark.parametrize("linker", LINKERS)
def test_each_linker_links_static_apps_that_run(project: dict, linker: str) -> None:
    """Switching linker relinks every app and nothing else; the same linker under
    another name ("auto" is mold) relinks nothing."""
    root = project["root"]
    original = (root / "bpfbuild.toml").read_text()
    chosen = choose(linker, "cc")
    try:
        set_linker(root, linker)
        run = build(root, "-v")
        relinked = {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
        assert steps_of(run, "LD") == (relinked if chosen != project["linker"] else set()), (
            run.describe()
        )
        assert steps_of(run, "BPF") == set() and steps_of(run, "CC") == set(), run.describe()
        project["linker"] = chosen
        link_lines = [line for line in run.stdout.splitlines() if "/alpha.partial" in line]
        assert link_lines or not steps_of(run, "LD"), run.stdout
        for line in link_lines:
            assert all(flag in line.split() for flag in chosen.flags), line
        executable = root / "output" / ARCH / "alpha"
        assert needed_libraries(str(executable)) == []
        done = subprocess.run([executable, "--version"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.startswith("alpha "), done
        if linker in ("mold", "lld"):
            comment = subprocess.run(
                ["readelf", "-p", ".comment", executable], capture_output=True, text=True
            ).stdout.lower()
            assert linker in comment
        assert build(root).steps == []
    finally:
        (root / "bpfbuild.toml").write_text(original)


def test_auto_prefers_mold_then_lld() -> None:
    expected = next((n for n in ("mold", "lld") if n in LINKERS), "default")
    assert choose("auto", "cc").name == expected


def test_cross_compiler_gets_a_linker_that_links_its_arch() -> None:
    linker = choose("auto", require_cross(ARM64))
    assert linker.name in ("mold", "lld", "default")
    if shutil.which("mold") and Path("/usr/libexec/mold/ld").exists():
        assert linker.name == "mold" and linker.flags == ("-B", "/usr/libexec/mold")


def test_unknown_linker_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bpfbuild.toml"
    config.write_text('[build]\nlinker = "fast"\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "bpfbuild.toml:2: 'build.linker' must be one of" in err.value.message
    assert err.value.hint == "change the value of 'build.linker'"


def test_missing_explicit_linker_is_an_error_with_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATH with the assembler and GNU ld but no ld.lld: the compiler cannot use lld."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("as", "ld", "ld.bfd"):
        (folder / tool).symlink_to(shutil.which(tool))
    gcc = shutil.which("gcc")
    monkeypatch.setenv("PATH", str(folder))
    assert choose("auto", gcc).name in ("mold", "default")  # mold may come through -B
    with pytest.raises(ToolchainError) as err:
        choose("lld", gcc)
    assert err.value.message == "linker 'lld' (from [build] linker) does not link for gcc"
    assert err.value.hint.startswith("apt-get install lld")
