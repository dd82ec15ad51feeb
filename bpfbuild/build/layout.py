"""Where every build output lives: one place for all paths, per arch."""

from __future__ import annotations

from pathlib import Path

OUTPUT_DIR = "output"
"""Build outputs, one folder per arch: output/<arch>/."""
STATE_DIR = ".bpfbuild"
"""Build state (doit database, lock): never shipped, safe to delete."""


class Layout:
    """Paths of one project's outputs for one arch."""

    def __init__(self, root: Path, arch: str) -> None:
        self.root = root
        self.arch = arch
        self.arch_dir = root / OUTPUT_DIR / arch

    def executable(self, app: str) -> Path:
        """The deployable binary of an app."""
        return self.arch_dir / app

    @property
    def vmlinux_header(self) -> Path:
        return self.arch_dir / "include" / "vmlinux.h"

    @property
    def vmlinux_pch(self) -> Path:
        """vmlinux.h precompiled with this arch's BPF flags."""
        return self.arch_dir / "include" / "vmlinux.h.pch"

    @property
    def vmlinux_pch_key(self) -> Path:
        """What the PCH was built from (flags, clang, vmlinux.h's MD5); written after it."""
        return self.arch_dir / "include" / "vmlinux.h.pch.key"

    @property
    def include_dir(self) -> Path:
        """Generated headers: vmlinux.h and every NAME.skel.h."""
        return self.arch_dir / "include"

    def bpf_object(self, name: str) -> Path:
        """The linked BPF object (after `bpftool gen object`)."""
        return self.arch_dir / "bpf" / f"{name}.bpf.o"

    def bpf_compiled(self, name: str) -> Path:
        """clang's output before `bpftool gen object`."""
        return self.arch_dir / "bpf" / f"{name}.tmp.bpf.o"

    def bpf_depfile(self, name: str) -> Path:
        return self.arch_dir / "bpf" / f"{name}.bpf.d"

    def skeleton_header(self, name: str) -> Path:
        return self.include_dir / f"{name}.skel.h"

    def user_object(self, source: str) -> Path:
        """Object of a user-space source, named by its path relative to the root."""
        return self.arch_dir / "user" / (source.replace("/", "__") + ".o")

    def user_depfile(self, source: str) -> Path:
        return self.arch_dir / "user" / (source.replace("/", "__") + ".d")

    def verify_dir(self, name: str) -> Path:
        """Full verifier logs of one object: verify/<object>/<program>.log."""
        return self.arch_dir / "verify" / name

    def verify_report(self, name: str) -> Path:
        """The saved verdicts and statistics of one object's programs."""
        return self.arch_dir / "verify" / f"{name}.json"

    def vm_verify_dir(self, release: str) -> Path:
        """Reports and logs of a VM's kernel: verify/<release>/<object>.json and
        verify/<release>/<object>/<program>.log."""
        return self.arch_dir / "verify" / release

    @property
    def verifier_runner(self) -> Path:
        """bpfverify: the static runner that loads programs in the kernel."""
        return self.arch_dir / "tools" / "bpfverify"


def state_dir(root: Path) -> Path:
    return root / STATE_DIR
