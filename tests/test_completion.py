"""Shell completion for bash, zsh and fish through the `bpfbuild` console script (click's
_BPFBUILD_COMPLETE protocol): commands, app, object, arch, template and cache kind names."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from buildutil import bpfbuild_command

from bpfbuild.cache import write_entry
from bpfbuild.scaffold import available_templates


def complete(shell: str, words: str, cwd: Path, **env: str) -> list[str]:
    """What the shell would offer for the last word of `words` (bash/zsh: the index of
    the word being completed; fish: the word itself)."""
    parts = words.split(" ")
    environ = {
        **os.environ,
        "_BPFBUILD_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": parts[-1] if shell == "fish" else str(len(parts) - 1),
        **env,
    }
    done = subprocess.run(
        bpfbuild_command(), cwd=cwd, env=environ, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and not done.stderr, done
    lines = [line for line in done.stdout.splitlines() if line]
    if shell == "bash":  # type,value per line
        return [line.split(",", 1)[1] for line in lines]
    if shell == "zsh":  # type, value, help: three lines per item
        return [lines[i + 1] for i in range(0, len(lines), 3)]
    return [line.split(",", 1)[1].split("\t")[0] for line in lines]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_sourcing_script(shell: str, tmp_path: Path) -> None:
    done = subprocess.run(
        bpfbuild_command(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "_BPFBUILD_COMPLETE": f"{shell}_source"},
    )
    assert done.returncode == 0, done
    assert "_BPFBUILD_COMPLETE" in done.stdout and f"{shell}_complete" in done.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_app_object_and_arch_names(shell: str, multi_source: Path) -> None:
    assert complete(shell, "bpfbuild build ", multi_source) == ["alpha", "gamma"]
    assert complete(shell, "bpfbuild build g", multi_source) == ["gamma"]
    assert complete(shell, "bpfbuild verify ", multi_source) == ["alpha", "beta", "gamma"]
    assert complete(shell, "bpfbuild build --arch x", multi_source) == ["x86_64"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_names_of_a_project_named_by_directory(
    shell: str, multi_source: Path, tmp_path: Path
) -> None:
    assert complete(shell, f"bpfbuild verify -C {multi_source} b", tmp_path) == ["beta"]
    assert complete(shell, "bpfbuild build ", tmp_path) == []  # no project here: nothing


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_template_names_commands_and_cache_kinds(shell: str, tmp_path: Path) -> None:
    templates = sorted(t.name for t in available_templates())
    assert sorted(complete(shell, "bpfbuild init --template ", tmp_path)) == templates
    assert complete(shell, "bpfbuild init -t tr", tmp_path) == ["tracepoint"]
    assert {"build", "verify", "init", "cache"} <= set(complete(shell, "bpfbuild ", tmp_path))
    cache = tmp_path / "cache"
    write_entry("pch", "k", {}, root=cache)  # an entry bpfbuild signed
    assert complete(
        shell, "bpfbuild cache clean --kind ", tmp_path, BPFBUILD_CACHE_DIR=str(cache)
    ) == ["pch"]
