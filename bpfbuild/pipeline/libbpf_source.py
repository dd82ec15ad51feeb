"""libbpf from a source tree: checking the tree, its version, the sources and headers
it installs, and Debian's libbpf source package fetched into the user's cache."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..arch import host_arch
from ..cache import locked
from ..errors import ConfigError

if TYPE_CHECKING:
    pass

MIN_VERSION = (0, 6)
"""libbpf 0.6 is the oldest whose BPF-side headers have everything CO-RE programs use
today (bpf_core_read.h with BPF_CORE_READ_STR_INTO and the bpf_core_type/enum checks,
bpf_tracing.h's BPF_KSYSCALL predecessors) and whose user API has bpf_object__open_file
with opts and the skeleton functions bpftool's skeletons call (bpf_object__open_skeleton,
added in 0.0.7, stable since); older trees also lack libbpf_version.h."""

INSTALLED_HEADERS = (
    "bpf.h",
    "libbpf.h",
    "btf.h",
    "libbpf_common.h",
    "libbpf_legacy.h",
    "libbpf_version.h",
    "bpf_helpers.h",
    "bpf_helper_defs.h",
    "bpf_tracing.h",
    "bpf_endian.h",
    "bpf_core_read.h",
    "skel_internal.h",
    "usdt.bpf.h",
)
"""Used when a tree's Makefile has no readable `HEADERS :=` list."""

DEBIAN_SUITES = {"trixie": "1.5.0", "bookworm-backports": "1.4.6"}
"""Debian suites that carry a libbpf newer than Debian 12's 1.1, and its version."""
CACHE_KIND = "libbpf-src"


@dataclass(frozen=True)
class LibbpfTree:
    """A checked libbpf source tree (the folder that holds src/ and include/)."""

    root: Path
    """Absolute path of the tree."""
    version: str
    """major.minor.patch, from src/libbpf.map (and libbpf_version.h when present)."""
    sources: tuple[str, ...]
    """src/*.c, relative to the tree: what libbpf.a is made of."""
    headers: tuple[str, ...]
    """Public headers (file names in src/) installed as <bpf/NAME>."""

    @property
    def src(self) -> Path:
        return self.root / "src"


def load_tree(root: Path) -> LibbpfTree:
    """Check that root is a libbpf tree new enough for CO-RE and describe it."""
    src = root / "src"
    if not (src / "libbpf.c").is_file() or not (src / "libbpf.map").is_file():
        raise ConfigError(
            f"[libbpf] source: {root} is not a libbpf source tree (no src/libbpf.c and src/libbpf.map)",
            hint="point [libbpf] source at a checkout of https://github.com/libbpf/libbpf "
            "(e.g. `git submodule add https://github.com/libbpf/libbpf`)",
        )
    version = tree_version(root)
    parts = tuple(int(p) for p in version.split(".")[:2])
    if parts < MIN_VERSION:
        raise ConfigError(
            f"[libbpf] source: libbpf {version} in {root} is too old for CO-RE programs "
            f"(bpfbuild needs {'.'.join(map(str, MIN_VERSION))} or newer)",
            hint="update the libbpf submodule (git -C <tree> checkout v1.5.0)",
        )
    sources = tuple(sorted(f"src/{p.name}" for p in src.glob("*.c")))
    return LibbpfTree(root, version, sources, installed_headers(root))


def tree_version(root: Path) -> str:
    """The tree's version: the last LIBBPF_x.y.z node of src/libbpf.map (each release
    adds one), and libbpf_version.h's MAJOR/MINOR when it says more."""
    text = (root / "src" / "libbpf.map").read_text(errors="replace")
    nodes = re.findall(r"^\s*LIBBPF_(\d+)\.(\d+)\.(\d+)\s*\{", text, re.M)
    if not nodes:
        raise ConfigError(
            f"{root}/src/libbpf.map has no LIBBPF_x.y.z version node",
            hint="point [libbpf] source at an unmodified libbpf checkout",
        )
    best = max(tuple(int(n) for n in node) for node in nodes)
    header = root / "src" / "libbpf_version.h"
    if header.is_file():
        text = header.read_text(errors="replace")
        major = re.search(r"#define\s+LIBBPF_MAJOR_VERSION\s+(\d+)", text)
        minor = re.search(r"#define\s+LIBBPF_MINOR_VERSION\s+(\d+)", text)
        if major and minor:
            best = max(best, (int(major.group(1)), int(minor.group(1)), 0))
    return ".".join(map(str, best))


def installed_headers(root: Path) -> tuple[str, ...]:
    """The headers `make install_headers` installs: the Makefile's HEADERS list when it
    can be read (with its line continuations), else INSTALLED_HEADERS; only those that
    exist in src/."""
    makefile = root / "src" / "Makefile"
    names: list[str] = []
    if makefile.is_file():
        text = makefile.read_text(errors="replace").replace("\\\n", " ")
        match = re.search(r"^HEADERS\s*:?=\s*(.*)$", text, re.M)
        if match:
            names = [n for n in match.group(1).split() if n.endswith(".h") and "/" not in n]
    names = names or list(INSTALLED_HEADERS)
    return tuple(n for n in names if (root / "src" / n).is_file())


def compile_flags(tree_rel: str) -> list[str]:
    """What libbpf's own src/Makefile compiles its static objects with (tree_rel: the
    tree relative to where the compiler runs). -fvisibility=hidden is in the Makefile's
    SHARED_CFLAGS only: the static archive's objects keep default visibility."""
    return [
        "-g",
        "-O2",  # the Makefile's default CFLAGS
        "-std=gnu89",  # ... which also pins the C dialect
        "-D_LARGEFILE64_SOURCE",
        "-D_FILE_OFFSET_BITS=64",
        "-Wno-format-overflow",
        "-I",
        f"{tree_rel}/src",  # INCLUDES := -I. (sources run in src/)
        "-I",
        f"{tree_rel}/include",  # the tree's linux/ helpers (err.h, ...)
        "-I",
        f"{tree_rel}/include/uapi",  # uapi newer than the system's
    ]


# -- Debian's libbpf source package, for tests and CI --------------------------


def fetch_debian_libbpf(suite: str | None = None, root: Path | None = None) -> Path:
    """A libbpf source tree from Debian's source package of suite (default: the first
    of DEBIAN_SUITES that can be fetched), extracted into the user's cache once (apt
    with bpfbuild's own sources list; the machine's is never read or changed).
    Returns the tree's folder (it holds src/ and include/)."""
    from ..kernels.apt import AptError

    if suite is None:
        failures = []
        for candidate in DEBIAN_SUITES:
            try:
                return fetch_debian_libbpf(candidate, root)
            except AptError as err:
                failures.append(f"{candidate}: {err.message}")
        raise AptError(
            "cannot fetch Debian's libbpf source: " + "; ".join(failures),
            hint="check that deb.debian.org (or $BPFBUILD_DEBIAN_MIRROR) is reachable",
        )
    return _fetch_suite(suite, root)


def _fetch_suite(suite: str, root: Path | None) -> Path:
    from ..kernels.apt import Apt, AptError
    from ..kernels.fetch import Made, cached_fetch

    if suite not in DEBIAN_SUITES:
        raise AptError(
            f"no libbpf source known for suite {suite!r}",
            hint="suites: " + ", ".join(DEBIAN_SUITES),
        )

    def make(scratch: Path) -> Made:
        # A source package is the same for every arch: any arch's lists name it.
        apt = Apt([suite], host_arch().debian_arch, sources=True, root=root)
        files = apt.download_source("libbpf", None, scratch)
        origs = [f for f in files if re.fullmatch(r"libbpf_[^_]+\.orig\.tar\.\w+", f.name)]
        if not origs:
            raise AptError(
                f"Debian's libbpf source package in {suite} has no orig tarball",
                hint=apt.network_hint(),
            )
        meta = {"suite": suite, "orig": origs[0].name, "files": [f.name for f in files]}
        return {f.name: f for f in files}, meta

    key = f"{suite}-{DEBIAN_SUITES[suite]}"
    entry = cached_fetch(CACHE_KIND, key, make, root, derived=("tree",))
    with locked(CACHE_KIND, key, root):  # one process unpacks; the others wait
        tree = entry.path / "tree"
        if not tree.is_dir():
            _extract(entry.file(entry.meta["orig"]), tree)
    return tree


def _extract(orig: Path, tree: Path) -> None:
    """Unpack the orig tarball's single top folder as tree, atomically (bpfbuild.archive
    keeps every path inside; a killed run leaves only a .partial folder)."""
    import tarfile  # only when a tarball is unpacked, not at every build

    from ..archive import unpack
    from ..kernels.apt import AptError

    staging = Path(tempfile.mkdtemp(prefix=".tree.", suffix=".partial", dir=tree.parent))
    try:
        hint = (
            "delete it with `bpfbuild cache clean --kind libbpf-src`; the next use fetches it again"
        )
        try:
            with tarfile.open(orig) as archive:
                unpack(archive, staging, origin=orig.name, hint=hint)
        except (tarfile.TarError, OSError) as err:
            raise AptError(
                f"cannot unpack Debian's libbpf source {orig.name}: {err}",
                hint="delete it with `bpfbuild cache clean --kind libbpf-src`; "
                "the next use fetches it again",
            ) from None
        tops = [p for p in staging.iterdir()]
        top = tops[0] if len(tops) == 1 and tops[0].is_dir() else staging
        load_tree(top)
        top.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
