"""vmlinux.h of Linux 6.19 and later, whose types use tagged anonymous members (a
Microsoft extension the kernel builds with): every BPF compile reads them as members,
with the kernel's own sizes and offsets, not as empty declarations that drop fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from buildutil import build, skip_when_unreachable

from bpfbuild.arch import host_arch
from bpfbuild.kernels import get_kernel

LAYOUT_CHECK = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* struct filename begins with `struct __filename_head;`: dropped, iname would be at 0
   and the kernel's own assertion on the size would fail */
_Static_assert(sizeof(struct filename) % 64 == 0, "struct filename as the kernel has it");
_Static_assert(__builtin_offsetof(struct filename, iname) > 0, "iname after the head");

SEC("socket")
int read_owned(struct __sk_buff *skb)
{
	socket_lock_t lock = {};
	return lock.owned; /* a field of the tagged anonymous `struct slock_owned;` */
}

char LICENSE[] SEC("license") = "GPL";
"""

OWN_HEADER = """\
struct inner { int a; int b; };
struct outer { struct inner; int c; };   /* as bpftool writes a 6.19+ type */
"""

OWN_CHECK = """\
#include "vmlinux.h"
#include "tagged.h"
#include <bpf/bpf_helpers.h>

_Static_assert(sizeof(struct outer) == 12, "the tagged member is a member");

SEC("socket")
int sum(struct __sk_buff *skb)
{
	struct outer o = {};
	return o.b + o.c;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _project(root: Path, vmlinux: str, files: dict[str, str]) -> Path:
    (root / "src").mkdir(parents=True)
    for name, text in files.items():
        (root / "src" / name).write_text(text)
    (root / "bpfbuild.toml").write_text(f'[vmlinux]\n{host_arch().name} = "{vmlinux}"\n')
    return root


def test_a_tagged_anonymous_member_is_a_member(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "own",
        "/sys/kernel/btf/vmlinux",
        {"tagged.h": OWN_HEADER, "layout.bpf.c": OWN_CHECK},
    )
    if not Path("/sys/kernel/btf/vmlinux").is_file():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux)")
    run = build(root)
    assert "declaration does not declare anything" not in run.output, run.describe()
    assert (root / "output" / host_arch().name / "bpf" / "layout.bpf.o").is_file()


def test_a_7x_vmlinux_h_keeps_the_kernels_layout(tmp_path: Path) -> None:
    with skip_when_unreachable("the debian:7.3 kernel"):
        get_kernel("debian:7.3", host_arch())
    root = _project(tmp_path / "k73", "debian:7.3", {"layout.bpf.c": LAYOUT_CHECK})
    run = build(root)
    assert "declaration does not declare anything" not in run.output, run.describe()
    assert (root / "output" / host_arch().name / "bpf" / "layout.bpf.o").is_file()
