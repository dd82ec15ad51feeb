"""The precompiled vmlinux.h: objects byte-identical to a build without it, used only
by sources whose first directive includes vmlinux.h."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from buildutil import ARCH, REPO, build

from bpfbuild.tasks import includes_vmlinux_first

EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/bpfbuild.toml"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n', True),
        ("#include <vmlinux.h>\n", True),
        ('// SPDX\n/* a\n   comment */\n  #  include "vmlinux.h"\n', True),
        ('#define BPF_NO_PRESERVE_ACCESS_INDEX\n#include "vmlinux.h"\n', False),
        ("#include <linux/bpf.h>\n", False),
        ('#include "common.h"\n#include "vmlinux.h"\n', False),
        ("", False),
    ],
)
def test_includes_vmlinux_first(tmp_path: Path, source: str, expected: bool) -> None:
    path = tmp_path / "x.bpf.c"
    path.write_text(source)
    assert includes_vmlinux_first(path) is expected


def _bpf_objects(root: Path) -> dict[str, bytes]:
    folder = root / "output" / ARCH / "bpf"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.o"))}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_pch_objects_are_byte_identical(tmp_path: Path, example: str) -> None:
    root = tmp_path / example
    shutil.copytree(REPO / "examples" / example, root,
                    ignore=shutil.ignore_patterns("output", ".bpfbuild"))
    with_pch = build(root, "-v")
    assert "-include-pch" in with_pch.stdout, with_pch.describe()
    objects_with_pch = _bpf_objects(root)

    config = root / "bpfbuild.toml"
    text = config.read_text()
    if "[build]" in text:
        text = text.replace("[build]", "[build]\npch = false", 1)
    else:
        text += "\n[build]\npch = false\n"
    config.write_text(text)
    without_pch = build(root, "-v")
    assert "-include-pch" not in without_pch.stdout, without_pch.describe()
    assert _bpf_objects(root) == objects_with_pch
    assert objects_with_pch, "the example has BPF objects"


def test_source_defining_macros_first_builds_without_pch(tmp_path: Path) -> None:
    root = tmp_path / "macro_first"
    (root / "src").mkdir(parents=True)
    (root / "bpfbuild.toml").write_text('[project]\nname = "macro_first"\n')
    (root / "src" / "early.bpf.c").write_text(
        "#define BPF_NO_PRESERVE_ACCESS_INDEX\n"
        '#include "vmlinux.h"\n'
        "#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    (root / "src" / "late.bpf.c").write_text(
        '#include "vmlinux.h"\n'
        "#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    run = build(root, "-v")
    commands = {line.split(" -c ")[1].split()[0]: line for line in run.stdout.splitlines()
                if " -c src/" in line}
    assert "-include-pch" not in commands["src/early.bpf.c"]
    assert "-include-pch" in commands["src/late.bpf.c"]
    assert (root / "output" / ARCH / "bpf" / "early.bpf.o").is_file()
