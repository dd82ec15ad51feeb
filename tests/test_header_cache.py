"""The machine-wide cache of vmlinux.h and its PCH: byte-identical objects from a cold
cache, a warm one and none; two projects filling it at once; a corrupt entry rebuilt;
the size bound; `bpfbuild cache info|clean`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from buildutil import ARCH, bpfbuild, bpfbuild_command, build, copy_project, output_hashes

from bpfbuild.cache import entries, evict, read_entry, write_entry

pytestmark = pytest.mark.slow


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "BPFBUILD_CACHE_DIR": str(cache), **extra}


def pch_bytes(root: Path) -> bytes:
    """The project's PCH: clang records vmlinux.h's mtime in it, so two PCHs built in
    two projects differ, and a copy from the cache is the cached bytes."""
    return (root / "output" / ARCH / "include" / "vmlinux.h.pch").read_bytes()


def cached_pch(cache: Path) -> bytes:
    (entry,) = entries("pch", root=cache)
    return (entry.path / "vmlinux.h.pch").read_bytes()


def kinds(cache: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in entries(root=cache):
        found[entry.kind] = found.get(entry.kind, 0) + 1
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """multi's outputs built with no cache at all (BPFBUILD_CACHE_SIZE=0)."""
    folder = tmp_path_factory.mktemp("nocache")
    root = copy_project("multi", folder)
    build(root, "-j1", env=cache_env(folder / "cache", BPFBUILD_CACHE_SIZE="0"))
    assert not (folder / "cache").exists()
    return output_hashes(root)


def test_cold_and_warm_cache_give_the_same_objects(tmp_path: Path, reference: dict) -> None:
    cache = tmp_path / "cache"
    cold = copy_project("multi", tmp_path / "cold")
    build(cold, "-j1", env=cache_env(cache))
    assert kinds(cache) == {"vmlinux": 1, "pch": 1}
    assert output_hashes(cold) == reference
    for entry in entries(root=cache):
        os.utime(entry.path, (0, 0))  # "never used": a hit must renew it

    warm = copy_project("multi", tmp_path / "warm")
    build(warm, "-j1", env=cache_env(cache))
    assert output_hashes(warm) == reference
    assert kinds(cache) == {"vmlinux": 1, "pch": 1}
    assert all(entry.last_used > 0 for entry in entries(root=cache)), "both were cache hits"
    # The PCH came from the cold project's build; the cold project can go away.
    assert pch_bytes(warm) == pch_bytes(cold) == cached_pch(cache)
    depfile = (warm / "output" / ARCH / "bpf" / "alpha.bpf.d").read_text()
    assert str(cold) not in depfile and str(warm / "output") in depfile
    shutil.rmtree(cold)
    (warm / "output" / ARCH / "bpf" / "alpha.tmp.bpf.o").unlink()  # compile it again
    run = build(warm, "-j1", "-v", env=cache_env(cache))
    assert "-include-pch" in run.stdout and "not ready" not in run.stdout, run.describe()
    assert output_hashes(warm) == reference
    # A project edit of its copy cannot reach the cache.
    (warm / "output" / ARCH / "include" / "vmlinux.h").write_text("broken\n")
    assert all(read_entry(e.kind, e.key, root=cache) for e in entries(root=cache))


def test_two_projects_fill_the_cache_at_once(tmp_path: Path, reference: dict) -> None:
    cache = tmp_path / "cache"
    roots = [copy_project("multi", tmp_path / name) for name in ("one", "two")]
    runs = [
        subprocess.Popen(
            [*bpfbuild_command(), "build", "-j2"],
            cwd=root,
            env=cache_env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root in roots
    ]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, out + err
        assert "warning" not in err, err
    assert kinds(cache) == {"vmlinux": 1, "pch": 1}
    assert not list(cache.rglob("*.partial"))
    for root in roots:
        assert output_hashes(root) == reference


def test_corrupt_entry_is_detected_and_rebuilt(tmp_path: Path, reference: dict) -> None:
    cache = tmp_path / "cache"
    first = copy_project("multi", tmp_path / "first")
    build(first, "-j1", env=cache_env(cache))
    for entry in entries(root=cache):
        data = next(p for p in entry.path.iterdir() if p.name != "manifest.json")
        content = bytearray(data.read_bytes())
        content[len(content) // 2] ^= 0xFF
        data.write_bytes(bytes(content))

    second = copy_project("multi", tmp_path / "second")
    build(second, "-j1", env=cache_env(cache))
    assert output_hashes(second) == reference
    assert pch_bytes(second) == cached_pch(cache) != pch_bytes(first), "a new PCH was built"
    assert kinds(cache) == {"vmlinux": 1, "pch": 1}
    assert all(read_entry(e.kind, e.key, root=cache) for e in entries(root=cache))


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    """Over the bound, a build's new entry pushes out the entries used longest ago."""
    cache = tmp_path / "cache"
    root = copy_project("multi", tmp_path)
    build(root, "-j1", env=cache_env(cache))
    (old_pch,) = entries("pch", root=cache)
    for entry in entries(root=cache):
        os.utime(entry.path, (1, 1))
    config = root / "bpfbuild.toml"
    config.write_text(config.read_text() + 'bpf_cflags = ["-DOTHER"]\n')  # a new PCH key
    build(root, "-j1", env=cache_env(cache, BPFBUILD_CACHE_SIZE="5M"))
    # vmlinux.h was up to date, so its entry went unused: both old entries went.
    assert kinds(cache) == {"pch": 1}
    assert old_pch.key not in {e.key for e in entries("pch", root=cache)}
    run = bpfbuild(root, "cache", "info", env=cache_env(cache, BPFBUILD_CACHE_SIZE="5M"))
    assert run.returncode == 0, run.describe()
    assert f"cache {cache} ($BPFBUILD_CACHE_DIR): " in run.stdout and "of 5.0 MiB" in run.stdout
    assert "pch: 1 entries" in run.stdout and "vmlinux" not in run.stdout


def test_evict_order_and_what_it_keeps(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 1000)
    for key, age in (("old", 10_000), ("older", 20_000), ("recent", 5), ("kept", 30_000)):
        entry = write_entry("things", key, {"blob": blob}, root=cache)
        os.utime(entry.path, (time.time() - age,) * 2)
    removed = evict(1500, keep=("things", "kept"), root=cache)
    assert [e.key for e in removed] == ["older", "old"]
    assert {e.key for e in entries(root=cache)} == {"recent", "kept"}
    assert read_entry("things", "recent", root=cache) is not None
    assert not list(cache.rglob("*.partial"))


def test_cache_info_and_clean(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = copy_project("multi", tmp_path)
    build(root, env=cache_env(cache))
    info = bpfbuild(root, "cache", "info", env=cache_env(cache))
    assert info.returncode == 0, info.describe()
    assert "pch: 1 entries" in info.stdout and "vmlinux: 1 entries" in info.stdout
    cleaned = bpfbuild(root, "cache", "clean", "--kind", "pch", env=cache_env(cache))
    assert cleaned.returncode == 0 and cleaned.stdout.startswith("removed 1 entries"), (
        cleaned.describe()
    )
    assert kinds(cache) == {"vmlinux": 1}
    assert bpfbuild(root, "cache", "clean", env=cache_env(cache)).returncode == 0
    assert kinds(cache) == {}
    bad = bpfbuild(root, "cache", "clean", "--kind", "../etc", env=cache_env(cache))
    assert bad.returncode == 1 and "error: invalid cache kind '../etc'" in bad.stderr
    assert "hint: " in bad.stderr
    typo = bpfbuild(root, "cache", "clean", "--kind", "pchs", env=cache_env(cache))
    assert typo.returncode == 1 and "error: the cache has no entries of kind 'pchs'" in typo.stderr
    for command in (("cache", "info"), ("build",)):
        size = bpfbuild(root, *command, env=cache_env(cache, BPFBUILD_CACHE_SIZE="lots"))
        assert size.returncode == 1, size.describe()
        assert size.stderr.splitlines() == [
            "error: $BPFBUILD_CACHE_SIZE is 'lots', not a size",
            "hint: set $BPFBUILD_CACHE_SIZE to a size such as 2G, 500M or 0, or unset it",
        ]
