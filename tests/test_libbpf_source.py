"""libbpf built from a source tree ([libbpf] source): Debian's libbpf 1.5 source fetched
into the cache, built per arch as tasks, linked into every app and the verify runner;
a uprobe program using BPF_UPROBE (libbpf 1.2+) builds, verifies and runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from buildutil import (
    ARCH,
    assert_build_is_noop,
    bpfbuild,
    build,
    copy_project,
    needs_root,
    require_cross,
    require_kernel_btf,
    skip_when_unreachable,
)
from elftools.elf.elffile import ELFFile

from bpfbuild.pipeline.actions import needed_libraries
from bpfbuild.pipeline.libbpf_source import installed_headers, load_tree, tree_version


@pytest.fixture(scope="module")
def libbpf_tree() -> Path:
    """Debian's libbpf source tree, fetched once into the user's cache."""
    from bpfbuild.pipeline.libbpf_source import fetch_debian_libbpf

    with skip_when_unreachable("the libbpf source package"):
        tree = fetch_debian_libbpf()
    return tree


@pytest.fixture
def project(tmp_path: Path, libbpf_tree: Path) -> Path:
    root = copy_project("libbpf_source", tmp_path)
    shutil.copytree(libbpf_tree, root / "libbpf")  # [libbpf] source must be inside
    return root


def test_the_debian_tree_is_libbpf_1_5_with_its_install_headers(libbpf_tree: Path) -> None:
    tree = load_tree(libbpf_tree)
    assert tree.version == tree_version(libbpf_tree) == "1.5.0"
    assert "src/libbpf.c" in tree.sources and "src/bpf.c" in tree.sources
    # The Makefile's HEADERS list, read from the tree itself.
    assert {
        "bpf_tracing.h",
        "bpf_helpers.h",
        "libbpf.h",
        "usdt.bpf.h",
        "libbpf_version.h",
        "skel_internal.h",
    } <= set(installed_headers(libbpf_tree))


@needs_root
def test_uprobe_app_builds_verifies_runs_and_a_second_build_runs_nothing(project: Path) -> None:
    run = build(project)
    out = project / "output" / ARCH
    assert ("AR", f"output/{ARCH}/libbpf/libbpf.a") in run.steps
    assert ("INSTALL", f"output/{ARCH}/libbpf/include/bpf/bpf_tracing.h") in run.steps
    # The BPF compile read the tree's bpf_tracing.h, not the system's (1.1 has no BPF_UPROBE).
    depfile = (out / "bpf" / "uprobecount.bpf.d").read_text()
    assert f"output/{ARCH}/libbpf/include/bpf/bpf_tracing.h" in depfile
    assert "/usr/include/bpf/" not in depfile
    done = subprocess.run([out / "uprobecount"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "calls=3 sum=66 last_result=33 total=66\n"
    version = subprocess.run([out / "version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout == "libbpf 1.5\n", version.stderr
    assert needed_libraries(str(out / "uprobecount")) == []
    verify = bpfbuild(project, "verify", "-v")
    assert verify.returncode == 0, verify.describe()
    for program in ("uprobecount/on_add ", "uprobecount/on_add_return", "version/count_syscalls"):
        line = next(line for line in verify.stdout.splitlines() if line.startswith(program))
        assert " passed " in line, verify.stdout
    # The verify runner is linked against the tree's libbpf.a too.
    runner_link = next(line for line in verify.stdout.splitlines() if "bpfverify.c" in line)
    assert f"output/{ARCH}/libbpf/libbpf.a" in runner_link and "-lbpf" not in runner_link
    assert_build_is_noop(project)


def test_editing_a_libbpf_source_rebuilds_libbpf_and_relinks_every_app(project: Path) -> None:
    build(project)
    assert_build_is_noop(project)
    source = project / "libbpf" / "src" / "strset.c"
    source.write_text(source.read_text() + "\nint bpfbuild_test_marker(void) { return 42; }\n")
    run = build(project)
    assert sorted(run.steps) == [
        ("AR", f"output/{ARCH}/libbpf/libbpf.a"),
        ("CC", "libbpf/src/strset.c"),
        ("LD", f"output/{ARCH}/uprobecount"),
        ("LD", f"output/{ARCH}/version"),
    ], run.describe()
    assert_build_is_noop(project)


def test_list_and_doctor_show_the_trees_version(project: Path) -> None:
    listing = bpfbuild(project, "list")
    assert "libbpf 1.5.0: built from libbpf ([libbpf] source)" in listing.stdout, listing.describe()
    assert "aliases:     upcount, addcount" in listing.stdout
    doctor = bpfbuild(project, "doctor")
    assert f"libbpf 1.5.0 from source libbpf: output/{ARCH}/libbpf/libbpf.a" in doctor.stdout, (
        doctor.describe()
    )


def _arm64_vmlinux_header(root: Path) -> None:
    """An arm64 vmlinux.h for the BPF side of this build: the running kernel's types plus
    arm64's user_pt_regs, which bpf_tracing.h reads for arm64. This test checks the
    user-space link against the arm64 libbpf; the BPF objects are not loaded."""
    bpftool = shutil.which("bpftool", path="/usr/sbin:/usr/bin:/sbin:/bin")
    text = subprocess.run(
        [bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tail = text.rindex("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop")
    regs = "struct user_pt_regs {\n\t__u64 regs[31];\n\t__u64 sp;\n\t__u64 pc;\n\t__u64 pstate;\n};\n\n"
    (root / "vmlinux-arm64.h").write_text(text[:tail] + regs + text[tail:])


def test_arm64_apps_link_the_arm64_libbpf_built_from_the_same_tree(project: Path) -> None:
    require_cross("arm64", libraries=True)
    require_kernel_btf()  # the arm64 test header is made from it
    _arm64_vmlinux_header(project)
    config = project / "bpfbuild.toml"
    config.write_text(
        config.read_text().replace(
            "[libbpf]",
            '[build]\narches = ["arm64"]\n\n[vmlinux]\narm64 = "vmlinux-arm64.h"\n\n[libbpf]',
        )
    )
    run = build(project)
    assert ("AR", "output/arm64/libbpf/libbpf.a") in run.steps, run.describe()
    out = project / "output" / "arm64"
    for path in (out / "libbpf" / "obj" / "libbpf.o", out / "uprobecount", out / "version"):
        with open(path, "rb") as f:
            elf = ELFFile(f)
            assert elf["e_machine"] == "EM_AARCH64", path
            assert not any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments()), path
    assert needed_libraries(str(out / "version")) == []
    assert (out / "upcount").resolve() == (out / "uprobecount").resolve()
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu:  # it prints the linked libbpf's version before trying to load BPF
        done = subprocess.run([qemu, out / "version"], capture_output=True, text=True, timeout=60)
        assert done.stdout.startswith("libbpf 1.5\n"), done.stdout + done.stderr
    assert_build_is_noop(project)


def _fake_tree(
    root: Path, map_text: str, version_h: str | None = None, makefile: str | None = None
) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "libbpf.c").write_text("")
    (root / "src" / "libbpf.map").write_text(map_text)
    for header in ("bpf.h", "libbpf.h", "bpf_helpers.h"):
        (root / "src" / header).write_text("")
    if version_h is not None:
        (root / "src" / "libbpf_version.h").write_text(version_h)
    if makefile is not None:
        (root / "src" / "Makefile").write_text(makefile)
    return root


@pytest.mark.parametrize(
    "map_text, version_h, expected",
    [
        (
            "LIBBPF_0.0.1 {\n};\nLIBBPF_1.2.0 {\n} LIBBPF_0.0.1;\nLIBBPF_1.10.0 {\n} LIBBPF_1.2.0;\n",
            None,
            "1.10.0",
        ),
        (
            "LIBBPF_1.4.0 {\n};\n",
            "#define LIBBPF_MAJOR_VERSION 1\n#define LIBBPF_MINOR_VERSION 5\n",
            "1.5.0",
        ),
        (
            "LIBBPF_1.4.0 {\n};\n",
            "#define LIBBPF_MAJOR_VERSION 1\n#define LIBBPF_MINOR_VERSION 3\n",
            "1.4.0",
        ),
    ],
)
def test_tree_version_is_the_newest_map_node_or_version_header(
    tmp_path: Path, map_text: str, version_h: str | None, expected: str
) -> None:
    assert tree_version(_fake_tree(tmp_path / "t", map_text, version_h)) == expected


def test_installed_headers_follow_the_makefile_list(tmp_path: Path) -> None:
    makefile = "HEADERS := bpf.h libbpf.h \\\n\t   bpf_helpers.h absent.h\nOTHER := x.h\n"
    tree = _fake_tree(tmp_path / "t", "LIBBPF_1.0.0 {\n};\n", makefile=makefile)
    assert installed_headers(tree) == ("bpf.h", "libbpf.h", "bpf_helpers.h")
    no_makefile = _fake_tree(tmp_path / "u", "LIBBPF_1.0.0 {\n};\n")
    assert installed_headers(no_makefile) == ("bpf.h", "libbpf.h", "bpf_helpers.h")


def test_a_tarball_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    from bpfbuild.pipeline.libbpf_source import _extract

    orig = tmp_path / "libbpf_9.9.9.orig.tar.gz"
    with tarfile.open(orig, "w:gz") as archive:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    from bpfbuild.archive import ArchiveError

    with pytest.raises(ArchiveError, match="refused to unpack member '../escape'") as refused:
        _extract(orig, tmp_path / "tree")
    assert "a '..' component" in refused.value.message
    assert "cache clean --kind libbpf-src" in (refused.value.hint or "")
    # the staging folder is in tmp_path: `../escape` would have landed in tmp_path itself
    assert not (tmp_path / "escape").exists() and not (tmp_path / "tree").exists()
    assert not list(tmp_path.glob(".tree.*"))
