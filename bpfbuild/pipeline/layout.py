"""Where every build output lives: one place for all paths, per arch."""

from __future__ import annotations

from pathlib import Path

from .names import OUTPUT_DIR, STATE_DIR

INCLUDE, BPF, USER, TOOLS, VERIFY = "include", "bpf", "user", "tools", "verify"
"""The folders bpfbuild writes in output/<arch>/, beside the apps' executables."""
RESERVED_NAMES = frozenset({INCLUDE, BPF, USER, TOOLS, VERIFY, "libbpf"})
"""Names no app may take: output/<arch>/<app> would be one of bpfbuild's own folders
("libbpf" is kept for a libbpf built per arch). A folder added under output/<arch>/
must be added here."""


def name_problem(name: str, kind: str = "app") -> str | None:
    """Why name cannot name an app (or a BPF object), or None when it can.

    It becomes a file name under output/<arch>/ and part of C identifiers (the
    skeleton's type NAME_bpf): an ASCII C identifier that is none of bpfbuild's own
    output folders, so it can neither leave output/<arch>/ nor replace a folder."""
    if not (name.isascii() and name.isidentifier()):
        return f"'{name}' is not a valid {kind} name: it must be a C identifier"
    if kind == "app" and name in RESERVED_NAMES:
        return (
            f"'{name}' is not a valid app name: output/<arch>/{name}/ is a folder bpfbuild writes"
        )
    return None


NAME_HINT = (
    "use letters, digits and underscores, not starting with a digit, and none of: "
    + ", ".join(sorted(RESERVED_NAMES))
)
"""The hint of every name_problem."""


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
        return self.arch_dir / INCLUDE / "vmlinux.h"

    @property
    def vmlinux_pch(self) -> Path:
        """vmlinux.h precompiled with this arch's BPF flags."""
        return self.arch_dir / INCLUDE / "vmlinux.h.pch"

    @property
    def vmlinux_pch_key(self) -> Path:
        """What the PCH was built from (flags, clang, vmlinux.h's digest); written after it."""
        return self.arch_dir / INCLUDE / "vmlinux.h.pch.key"

    @property
    def include_dir(self) -> Path:
        """Generated headers: vmlinux.h and every skeleton (NAME.skel.h by default)."""
        return self.arch_dir / INCLUDE

    def bpf_object(self, name: str) -> Path:
        """The linked BPF object (after `bpftool gen object`)."""
        return self.arch_dir / BPF / f"{name}.bpf.o"

    def bpf_compiled(self, name: str) -> Path:
        """clang's output before `bpftool gen object`."""
        return self.arch_dir / BPF / f"{name}.tmp.bpf.o"

    def bpf_depfile(self, name: str) -> Path:
        return self.arch_dir / BPF / f"{name}.bpf.d"

    def bpf_source_object(self, source: str) -> Path:
        """clang's output for a BPF source that is not the first of its object (an
        object's other sources, a [bpflib]'s): named by its path relative to the root,
        so no two sources share one (bpf/sources/src/lib/x.bpf.o for src/lib/x.bpf.c)."""
        return self.arch_dir / BPF / "sources" / (source.removesuffix(".c") + ".o")

    def bpf_source_depfile(self, source: str) -> Path:
        return self.arch_dir / BPF / "sources" / (source.removesuffix(".c") + ".d")

    def skeleton_header(self, file_name: str) -> Path:
        """A skeleton: file_name is the object's (BpfObject.skeleton_header)."""
        return self.include_dir / file_name

    def user_object(self, source: str, app: str | None = None) -> Path:
        """Object of a user-space source, named by its path relative to the root; in
        user/<app>/ when the app has flags of its own."""
        return self.arch_dir / USER / (app or "") / (source.replace("/", "__") + ".o")

    def user_depfile(self, source: str, app: str | None = None) -> Path:
        return self.arch_dir / USER / (app or "") / (source.replace("/", "__") + ".d")

    @property
    def libbpf_dir(self) -> Path:
        """libbpf built from [libbpf] source: libbpf.a, include/bpf/, obj/."""
        return self.arch_dir / "libbpf"

    @property
    def libbpf_include_dir(self) -> Path:
        """Holds bpf/*.h, found with -I ahead of the system's <bpf/...>."""
        return self.libbpf_dir / "include"

    @property
    def libbpf_archive(self) -> Path:
        return self.libbpf_dir / "libbpf.a"

    def libbpf_object(self, source: str) -> Path:
        """Object of one libbpf source (src/NAME.c of the tree)."""
        return self.libbpf_dir / "obj" / (Path(source).stem + ".o")

    def libbpf_depfile(self, source: str) -> Path:
        return self.libbpf_dir / "obj" / (Path(source).stem + ".d")

    def verify_dir(self, name: str) -> Path:
        """Full verifier logs of one object: verify/<object>/<program>.log."""
        return self.arch_dir / VERIFY / name

    def verify_report(self, name: str) -> Path:
        """The saved verdicts and statistics of one object's programs."""
        return self.arch_dir / VERIFY / f"{name}.json"

    def vm_verify_dir(self, release: str) -> Path:
        """Reports and logs of a VM's kernel: verify/<release>/<object>.json and
        verify/<release>/<object>/<program>.log."""
        return self.arch_dir / "verify" / release

    @property
    def verifier_runner(self) -> Path:
        """bpfverify: the static runner that loads programs in the kernel."""
        return self.arch_dir / TOOLS / "bpfverify"


def state_dir(root: Path) -> Path:
    return root / STATE_DIR
