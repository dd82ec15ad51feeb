"""Inputs that change outputs are dependencies: the archives an app links (resolved from
pkg-config's -L/-l), and the .pc files and PKG_CONFIG_PATH that chose the flags."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import ARCH, build, copy_project, steps_of
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.toolchain import _system_libs, _VersionCache, resolve_libraries


def _system_archive(name: str) -> Path:
    done = subprocess.run(["cc", f"-print-file-name=lib{name}.a"], capture_output=True, text=True)
    path = Path(done.stdout.strip())
    if not path.is_absolute() or not path.is_file():
        pytest.skip(f"no static lib{name}.a (apt-get install libbpf-dev)")
    return path


def make_prefix(base: Path, version: str = "1.1.2", cflags: str = "") -> Path:
    """A libbpf install prefix with only the archive (a copy of the system's) and a
    .pc file pointing at it; returns its pkgconfig dir."""
    lib = base / "lib"
    (lib / "pkgconfig").mkdir(parents=True)
    shutil.copyfile(_system_archive("bpf"), lib / "libbpf.a")
    write_pc(lib / "pkgconfig", version, cflags)
    return lib / "pkgconfig"


def write_pc(pc_dir: Path, version: str, cflags: str = "") -> None:
    (pc_dir / "libbpf.pc").write_text(
        f"prefix={pc_dir.parent.parent}\nlibdir=${{prefix}}/lib\n\n"
        f"Name: libbpf\nDescription: libbpf for a test\nVersion: {version}\n"
        f"Libs: -L${{libdir}} -lbpf\nRequires.private: libelf zlib\nCflags: {cflags}\n"
    )


def env_with(pc_dir: Path) -> dict[str, str]:
    return {**os.environ, "PKG_CONFIG_PATH": str(pc_dir)}


def cached_libbpf_version(root: Path) -> set[str]:
    data = json.loads((root / ".bpfbuild" / "toolchain.json").read_text())
    return {
        entry["value"]["version"]
        for key, entry in data["entries"].items()
        if key.startswith(f"libbpf:{ARCH}:")
    }


def needed(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [
            tag.needed
            for s in ELFFile(f).iter_sections()
            if isinstance(s, DynamicSection)
            for tag in s.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]


@pytest.mark.parametrize(
    "flags, static, expected",
    [
        (["-L{a}", "-lfoo"], True, ["{a}/libfoo.a"]),
        (["-L{a}", "-lfoo"], False, ["{a}/libfoo.so"]),
        (["-L{b}", "-L{a}", "-lfoo"], False, ["{b}/libfoo.a"]),  # first dir with either wins
        (["-L{b}", "-L{a}", "-lfoo"], True, ["{b}/libfoo.a"]),
        (["-lfoo", "-L{a}"], True, ["{a}/libfoo.a"]),  # -L applies wherever it is
        (["-lfoo"], True, ["{c}/libfoo.a"]),  # then the compiler's dirs
        (["-L{a}", "-lfoo", "-lfoo", "-lmissing"], True, ["{a}/libfoo.a"]),
        (["-l:libfoo.so", "-L{a}"], True, ["{a}/libfoo.so"]),
        (["{b}/libfoo.a", "-Wl,--as-needed"], True, ["{b}/libfoo.a"]),
        (["output/x86_64/libbpf/libbpf.a", "-lfoo"], True, ["{c}/libfoo.a"]),
    ],
)
def test_resolve_libraries(
    tmp_path: Path, flags: list[str], static: bool, expected: list[str]
) -> None:
    dirs = {k: tmp_path / k for k in "abc"}
    for d in dirs.values():
        d.mkdir()
    for name in ("a/libfoo.a", "a/libfoo.so", "b/libfoo.a", "c/libfoo.a"):
        (tmp_path / name).write_bytes(b"")
    fmt = {k: str(v) for k, v in dirs.items()}
    assert resolve_libraries([f.format(**fmt) for f in flags], [fmt["c"]], static) == [
        e.format(**fmt) for e in expected
    ]


def test_replaced_libbpf_archive_relinks(tmp_path: Path) -> None:
    pc_dir = make_prefix(tmp_path / "prefix")
    env = env_with(pc_dir)
    root = copy_project("multi", tmp_path)
    first = build(root, env=env)
    assert steps_of(first, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert build(root, env=env).steps == []  # nothing changed: nothing runs

    # "Rebuild" libbpf.a into the same prefix: different content.
    extra = tmp_path / "extra.c"
    extra.write_text("int bpfbuild_test_marker(void) { return 1; }\n")
    subprocess.run(["cc", "-c", str(extra), "-o", str(tmp_path / "extra.o")], check=True)
    subprocess.run(
        ["ar", "r", str(pc_dir.parent / "libbpf.a"), str(tmp_path / "extra.o")],
        check=True,
        capture_output=True,
    )
    rebuilt = build(root, env=env)
    assert rebuilt.steps and set(kind for kind, _ in rebuilt.steps) == {"LD"}, rebuilt.describe()
    assert steps_of(rebuilt, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}
    assert build(root, env=env).steps == []


def test_changed_pkg_config_path_reprobes(tmp_path: Path) -> None:
    one = make_prefix(tmp_path / "one", version="1.1.2")
    two = make_prefix(tmp_path / "two", version="1.1.99", cflags="-DLIBBPF_FROM_PREFIX_TWO")
    root = copy_project("multi", tmp_path)
    build(root, env=env_with(one))
    assert cached_libbpf_version(root) == {"1.1.2"}
    switched = build(root, env=env_with(two))
    # The new -D reaches every compile: they all rerun, and so do the links.
    assert steps_of(switched, "CC") == {"src/alpha.c", "src/gamma.c", "src/util.c"}, (
        switched.describe()
    )
    assert steps_of(switched, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}, (
        switched.describe()
    )
    assert "1.1.99" in cached_libbpf_version(root)


def test_edited_pc_file_reprobes(tmp_path: Path) -> None:
    pc_dir = make_prefix(tmp_path / "prefix")
    env = env_with(pc_dir)
    root = copy_project("multi", tmp_path)
    build(root, env=env)
    assert build(root, env=env).steps == []
    write_pc(pc_dir, "1.1.3", cflags="-DLIBBPF_PC_EDITED")  # same path, new content
    edited = build(root, env=env)
    assert steps_of(edited, "CC") == {"src/alpha.c", "src/gamma.c", "src/util.c"}, edited.describe()
    assert cached_libbpf_version(root) == {"1.1.3"}


def test_dynamic_link_with_static_only_libbpf(tmp_path: Path) -> None:
    pc_dir = make_prefix(tmp_path / "prefix")
    root = copy_project("multi", tmp_path)
    config = root / "bpfbuild.toml"
    config.write_text(config.read_text().replace("[build]\n", "[build]\nstatic = false\n", 1))
    run = build(root, env=env_with(pc_dir))
    executable = root / "output" / ARCH / "alpha"
    libs = needed(executable)
    assert libs, "static = false makes a dynamic executable"
    assert not any(lib.startswith("libbpf") for lib in libs), libs  # libbpf.a linked in
    assert any(lib.startswith("libelf") for lib in libs), libs  # its private deps too
    assert steps_of(run, "LD") == {f"output/{ARCH}/alpha", f"output/{ARCH}/gamma"}


def test_libbpf_source_system_libs_follow_pc_files_and_search_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libbpf built from source links libelf and zlib as pkg-config says; the cached
    answer is probed again when a .pc file it read is edited, or when a search variable
    (here PKG_CONFIG_SYSROOT_DIR) changes: one pkg-config environment, as find_libbpf's."""
    pc_dir = tmp_path / "pc"
    pc_dir.mkdir()
    libelf = pc_dir / "libelf.pc"
    monkeypatch.setenv("PKG_CONFIG_PATH", str(pc_dir))
    monkeypatch.delenv("PKG_CONFIG_LIBDIR", raising=False)
    monkeypatch.delenv("PKG_CONFIG_SYSROOT_DIR", raising=False)

    def libs() -> list[str]:
        cache = _VersionCache(tmp_path / "toolchain.json")
        found = _system_libs(host_arch(), ["libelf", "zlib"], ["-lelf", "-lz"], cache)[0]
        cache.save()
        return found

    libelf.write_text("Name: libelf\nDescription: test\nVersion: 0.188\nLibs: -L/opt/e -lelf1\n")
    assert libs()[:2] == ["-L/opt/e", "-lelf1"]
    libelf.write_text("Name: libelf\nDescription: test\nVersion: 0.188\nLibs: -L/opt/e -lelf22\n")
    assert libs()[:2] == ["-L/opt/e", "-lelf22"]
    monkeypatch.setenv("PKG_CONFIG_SYSROOT_DIR", "/sysroot")
    assert libs()[:2] == ["-L/sysroot/opt/e", "-lelf22"]
