"""Find the toolchain (clang, bpftool, cc, llvm-strip, libbpf), with versions and per-arch flags."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import safefs
from ..arch import LIBRARIES, Arch, host_arch
from ..errors import ToolchainError
from . import linker as linkers
from .layout import Layout
from .libbpf_source import LibbpfTree
from .names import TOOLCHAIN_CACHE_NAME

if TYPE_CHECKING:
    from .project import Project

KFUNC_BPFTOOL = (7, 3)
"""bpftool from 7.3 on emits kfunc prototypes in the vmlinux.h it dumps."""
MIN_CLANG = 11
"""Oldest clang whose BTF and CO-RE relocations libbpf can rely on."""
BPF_CPU = "v3"
"""The BPF instruction set of every BPF compile (-mcpu), unless bpf_cflags name another
(a later -mcpu= wins, and the PCH key follows the flags). v3 is v1 (clang's default up
to clang 19) plus 32-bit jumps and ALU32: every kernel bpfbuild targets (5.10 and
later; jmp32 came in 5.1) runs it, 32-bit values stay in 32-bit registers (bounds the
verifier can follow), and clang needs it for 32-bit atomics that return a value
(`__sync_fetch_and_add` on an int: "Invalid usage of the XADD return value" with v1).
v4 (clang 18, kernel 6.6) would leave out the kernels before 6.6."""
PCH_SAME_BYTES_CLANG = 14
"""The newest clang major whose objects are the same bytes with the precompiled
vmlinux.h as without it. clang 19 emits the BTF forward declarations of a source
(`struct cfs_rq;`...) in another order when vmlinux.h comes from a PCH: the same types
under other ids, so other bytes; bpfbuild promises that the PCH changes nothing, so it
is not used with a later clang (tests/test_pch.py compares every example's objects)."""


def pch_keeps_bytes(clang: Tool) -> bool:
    """Whether objects built by clang with the PCH are the same bytes (PCH_SAME_BYTES_CLANG)."""
    major = clang.version.split(".")[0]
    return major.isdigit() and int(major) <= PCH_SAME_BYTES_CLANG


MCPU_V4_SOURCE = "int probe(void) { return 0; }\n"
"""Compiled with -mcpu=v4: clang 18 and later accept it (sign-extending loads, ...)."""
ARENA_SOURCE = """#ifndef __BPF_FEATURE_ADDR_SPACE_CAST
#error "no address_space casts"
#endif
int __attribute__((address_space(1))) *counter;
int read_counter(void) { return *(int *)counter; }
"""
"""Compiled for BPF: clang 19 and later predefine __BPF_FEATURE_ADDR_SPACE_CAST and
turn such a cast into addr_space_cast, which BPF arena programs (__arena pointers,
kernel 6.9) need."""

DEBIAN_PACKAGE = {
    "clang": "clang",
    "bpftool": "bpftool",
    "cc": "gcc",
    "llvm-strip": "llvm",
    "pkg-config": "pkg-config",
}


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str


@dataclass(frozen=True)
class Bpftool(Tool):
    """bpftool, with the libbpf it runs (`bpftool version`: "using libbpf v1.1"):
    which ELF sections it reads, so which objects it can make skeletons of."""

    libbpf_version: str = ""


@dataclass(frozen=True)
class ClangFeatures:
    """What a clang can compile for BPF, probed by compiling a tiny source."""

    mcpu_v4: bool
    """-mcpu=v4 accepted (clang 18 and later)."""
    arena: bool
    """Address space casts for BPF arenas (clang 19 and later)."""


@dataclass
class Libbpf:
    """Compile and link flags for libbpf, from pkg-config or from a source tree."""

    version: str
    cflags: list[str]
    libs: list[str]
    """`pkg-config --libs`; the --static list instead when libbpf is only an archive
    (a dynamic link of libbpf.a needs its private deps, libelf and zlib, too)."""
    static_libs: list[str]
    tree: LibbpfTree | None = None
    """[libbpf] source: the tree built into output/<arch>/libbpf/ (None: pkg-config)."""
    archive: str | None = None
    """With a tree: libbpf.a, relative to the project root (first in libs)."""


@dataclass
class Toolchain:
    """Everything a build runs, for one arch."""

    arch: Arch
    clang: Tool
    bpftool: Bpftool
    cc: Tool | None
    """None when the build links nothing for this arch (a project with no app):
    BPF objects need no user-space (cross) toolchain."""
    libbpf: Libbpf
    """For BPF-only builds, the host's libbpf: its headers are the same for every arch."""
    strip: Tool | None
    """binutils strip for the executables (llvm-strip 14 rejects static glibc binaries)."""
    ar: Tool | None = None
    """The arch's binutils ar: archives libbpf.a when libbpf is built from source."""
    cflags: list[str] = field(default_factory=list)
    """$CFLAGS, split like a shell would."""
    ldflags: list[str] = field(default_factory=list)
    """$LDFLAGS."""
    library_dirs: list[str] = field(default_factory=list)
    """Where cc looks for -l libraries after the -L dirs (`cc -print-search-dirs`)."""
    linker: linkers.Linker | None = None
    """The linker of the apps ([build] linker); None: the compiler's default, unprobed."""
    gen_bpftool: Bpftool | None = None
    """The bpftool of `gen object` and `gen skeleton` when it is not bpftool: one
    fetched into the cache because bpftool drops a section the sources use
    (bpfcheck.bpftool_for_sections); None: bpftool."""

    @property
    def skeleton_bpftool(self) -> Bpftool:
        """The bpftool that links BPF objects and writes their skeletons."""
        return self.gen_bpftool or self.bpftool

    def link_libraries(self, static: bool, ldflags: list[str]) -> tuple[list[str], list[str]]:
        """libbpf's link flags for a static or dynamic link, and the library files they
        resolve to (the link depends on them). ldflags: the link's other flags, whose -L
        dirs the linker searches too."""
        flags = self.libbpf.static_libs if static else self.libbpf.libs
        return flags, resolve_libraries([*ldflags, *flags], self.library_dirs, static)

    @property
    def system_include_dirs(self) -> list[str]:
        """Added with -idirafter to BPF compiles (Arch.bpf_include_dirs)."""
        return list(self.arch.bpf_include_dirs)


def resolve_libraries(flags: list[str], library_dirs: list[str], static: bool) -> list[str]:
    """The files a linker would take for the -l options of flags: each -lNAME is the
    first libNAME.so (unless static) or libNAME.a in the -L dirs of flags, then in
    library_dirs; `-l:FILE` and absolute paths to libraries are taken as they are (a
    relative one is a build output, which its own task tracks). A library not found
    is left out (the linker reports it)."""
    search = [flag[2:] for flag in flags if flag.startswith("-L") and len(flag) > 2]
    search += library_dirs
    found: list[str] = []
    for flag in flags:
        if flag.startswith("-l:"):
            names = [flag[3:]]
        elif flag.startswith("-l") and len(flag) > 2:
            names = ([] if static else [f"lib{flag[2:]}.so"]) + [f"lib{flag[2:]}.a"]
        elif flag.endswith((".a", ".so")) and os.path.isabs(flag) and os.path.isfile(flag):
            names = [flag]
        else:
            continue
        path = next(
            (
                os.path.normpath(os.path.join(d, n))
                for d in search
                for n in names
                if os.path.isfile(os.path.join(d, n))
            ),
            None,
        )
        if path and path not in found:
            found.append(path)
    return found


def compiler_library_dirs(cc: str, cache: _VersionCache) -> list[str]:
    """The dirs cc passes to the linker as -L: the `libraries:` of -print-search-dirs."""

    def probe() -> dict:
        try:
            text = _capture([cc, "-print-search-dirs"])
        except ToolchainError:  # not gcc-like: only the -L dirs are searched
            text = ""
        line = next((ln for ln in text.splitlines() if ln.startswith("libraries:")), "")
        dirs = line.partition(":")[2].strip().lstrip("=").split(":")
        return {"dirs": list(dict.fromkeys(os.path.normpath(d) for d in dirs if d))}

    return cache.get("library-dirs:" + cc, [cc], probe)["dirs"]


class _VersionCache:
    """Tool versions keyed by the binary's path, size and mtime, kept in .bpfbuild/.

    A no-op build then runs no subprocess to learn versions it already knows.
    """

    FORMAT = 3
    """Bumped when a probe changes what it records: older entries are dropped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        self.dirty = False
        text = safefs.read_regular(path) if path else None  # never a FIFO's, a link's
        if text is not None:
            try:
                data = json.loads(text)
            except ValueError:
                data = {}
            if isinstance(data, dict) and data.get("format") == self.FORMAT:
                entries = data.get("entries")
                if isinstance(entries, dict):  # a malformed entry is a miss
                    self.entries = {k: e for k, e in entries.items() if _well_formed(e)}

    def get(self, key: str, stamp_paths: list[str], compute) -> dict:
        """The cached value while the files of stamp_paths, and those the value names in
        its `stamp_paths` (files found by the probe itself), are as they were."""
        entry = self.entries.get(key)
        if entry:
            paths = stamp_paths + entry["value"].get("stamp_paths", [])
            if entry.get("stamp") == [_stamp(p) for p in paths]:
                return entry["value"]
        value = compute()
        paths = stamp_paths + value.get("stamp_paths", [])
        self.entries[key] = {"stamp": [_stamp(p) for p in paths], "value": value}
        self.dirty = True
        return value

    def stamped_paths(self) -> set[str]:
        """Every file and folder whose stat keys an entry: the tools' binaries, and what
        each probe found (pkg-config's folders and .pc files)."""
        paths: set[str] = set()
        for entry in self.entries.values():
            paths.update(item[0] for item in entry["stamp"])
            paths.update(entry["value"].get("stamp_paths", []))
        return paths

    def save(self) -> None:
        if self.dirty and self.path:
            # One temporary file per process: two builds starting at once both save.
            # .partial: what a killed run leaves, the next build deletes (remove_partials)
            # safefs: under the checked state folder, never through a link.
            data = {"format": self.FORMAT, "entries": self.entries}
            text = json.dumps(data, indent=1, sort_keys=True).encode()
            try:
                safefs.write_file(self.path.parent.parent, self.path, text)
            except safefs.UnsafePathError:
                pass  # only a cache of probes: the next run probes again. An error
                # being raised (a missing tool) is what the user must see.
            self.dirty = False


def _well_formed(entry: object) -> bool:
    """An entry as get() writes it: {"stamp": [[path, size, mtime], ...], "value":
    {..., "stamp_paths": [path, ...]}}."""
    if not isinstance(entry, dict):
        return False
    stamp, value = entry.get("stamp"), entry.get("value")
    return (
        isinstance(stamp, list)
        and all(isinstance(item, list) and item and isinstance(item[0], str) for item in stamp)
        and isinstance(value, dict)
        and isinstance(value.get("stamp_paths", []), list)
        and all(isinstance(path, str) for path in value.get("stamp_paths", []))
    )


def probed_paths(version_cache: str) -> set[str]:
    """The paths whose stat keys the version cache at version_cache (.bpfbuild/
    toolchain.json): the no-op stamp watches them too (fastpath.py)."""
    return _VersionCache(Path(version_cache)).stamped_paths()


def _stamp(path: str) -> list:
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, None, None]


def _which(candidates: list[str]) -> str | None:
    for name in candidates:
        found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if found:
            return found
    return None


def _missing(what: str, looked: list[str], env: str | None) -> ToolchainError:
    where = ", ".join(looked)
    env_hint = f", or set ${env} to its path" if env else ""
    return ToolchainError(
        f"{what} not found (looked for: {where})",
        hint=f"apt-get install {DEBIAN_PACKAGE[what]}{env_hint}",
    )


def _capture(argv: list[str], env: dict | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
    except OSError as err:
        raise ToolchainError(
            f"cannot run {argv[0]}: {err.strerror}",
            hint="check that the path points to an executable",
        ) from None
    if done.returncode != 0:
        raise ToolchainError(
            f"`{shlex.join(argv)}` failed with exit code {done.returncode}: "
            + (done.stderr.strip().splitlines() or ["no output"])[-1],
            hint=f"check that {argv[0]} is the tool bpfbuild expects (`bpfbuild doctor` "
            "lists each tool it found)",
        )
    return done.stdout


def _not_the_tool(
    path: str, what: str, argv: list[str], output: str, env: str, label: str | None = None
) -> ToolchainError:
    """A tool that ran but did not answer as `what` (shown as label) does: name what it
    printed."""
    lines = output.strip().splitlines()
    said = f"printed {lines[0].strip()!r}" if lines else "printed nothing"
    label = label or what
    return ToolchainError(
        f"{path} is not {label}: `{shlex.join(argv)}` {said}",
        hint=f"set ${env} to {label}'s path, or unset it; or apt-get install "
        f"{DEBIAN_PACKAGE[what]}",
    )


def _find(name: str, env: str | None, candidates: list[str]) -> str:
    """The path of a tool: $ENV when set (it must exist), else the first candidate in PATH."""
    override = os.environ.get(env) if env else None
    if override:
        path = _which([override])
        if not path:
            raise ToolchainError(
                f"${env} is set to '{override}', which is not an executable",
                hint=f"fix or unset ${env}; or apt-get install {DEBIAN_PACKAGE[name]}",
            )
        return path
    path = _which(candidates)
    if not path:
        raise _missing(name, ([f"${env}"] if env else []) + candidates, env)
    return path


CLANG_CANDIDATES = ["clang"] + [f"clang-{v}" for v in range(21, MIN_CLANG - 1, -1)]
"""What discovery looks for in PATH, in order: clang, then the newest clang-NN."""


def _configured(what: str, env: str, configured: str, root: Path | None, hint: str) -> str:
    """The path of the tool [toolchain] names: a name in PATH, or a path (relative to
    the project root when it has a slash)."""
    path = _which([_project_tool(configured, root)])
    if not path:
        raise ToolchainError(
            f"[toolchain] {what} = '{configured}' in bpfbuild.toml is not an executable",
            hint=f"{hint}; or fix the path in [toolchain] of bpfbuild.toml (relative to the "
            f"project, or a name in PATH), or remove the key (${env} still wins over it)",
        )
    return path


def find_clang(cache: _VersionCache, configured: str = "", root: Path | None = None) -> Tool:
    """$CLANG, else [toolchain] clang, else clang or the newest clang-NN in PATH."""
    if configured and not os.environ.get("CLANG"):
        numbered = re.fullmatch(r"clang-(\d+)", configured)
        path = _configured(
            "clang",
            "CLANG",
            configured,
            root,
            f"scripts/setup --clang {numbered.group(1)} installs Debian's {configured}"
            if numbered
            else "apt-get install clang (or clang-NN)",
        )
    else:
        path = _find("clang", "CLANG", CLANG_CANDIDATES)
    return clang_at(path, cache)


def clang_at(path: str, cache: _VersionCache) -> Tool:
    """The clang at path, checked: its version, a BPF target, new enough for CO-RE."""

    def probe() -> dict:
        version_text = _capture([path, "--version"])
        match = re.search(r"clang version (\d+)\.(\d+)\.(\d+)", version_text)
        if not match:
            raise _not_the_tool(path, "clang", [path, "--version"], version_text, "CLANG")
        targets = _capture([path, "-print-targets"])
        return {
            "version": ".".join(match.groups()),
            "bpf": bool(re.search(r"^\s*bpf\b", targets, re.M)),
        }

    info = cache.get("clang:" + path, [path], probe)
    if not info["bpf"]:
        raise ToolchainError(
            f"{path} has no BPF target (`clang -print-targets` does not list bpf)",
            hint="apt-get install clang (Debian's clang includes the BPF backend), or name "
            "another in [toolchain] clang of bpfbuild.toml (or $CLANG)",
        )
    major = int(info["version"].split(".")[0]) if info["version"][0].isdigit() else 0
    if major < MIN_CLANG:
        raise ToolchainError(
            f"{path} is clang {info['version']}; CO-RE needs clang {MIN_CLANG} or newer",
            hint="scripts/setup --clang 19 installs Debian's clang-19; name it in "
            '[toolchain] clang of bpfbuild.toml (clang = "clang-19") or in $CLANG',
        )
    return Tool("clang", path, info["version"])


def clang_features(path: str, cache: _VersionCache) -> ClangFeatures:
    """Whether clang at path accepts -mcpu=v4 and compiles arena address space casts,
    each probed by compiling a tiny source for BPF (cached with the versions)."""

    def compiles(source: str, *flags: str) -> bool:
        argv = [path, "-target", "bpf", "-O2", *flags, "-c", "-x", "c", "-", "-o", os.devnull]
        try:
            done = subprocess.run(argv, input=source, capture_output=True, text=True)
        except OSError:
            return False
        return done.returncode == 0

    def probe() -> dict:
        return {
            "mcpu_v4": compiles(MCPU_V4_SOURCE, "-mcpu=v4"),
            "arena": compiles(ARENA_SOURCE, f"-mcpu={BPF_CPU}"),
        }

    found = cache.get("clang-features:" + path, [path], probe)
    return ClangFeatures(found["mcpu_v4"], found["arena"])


def installed_clangs() -> list[tuple[str, str]]:
    """(name, path) of every clang in PATH that discovery would consider: clang and
    each clang-NN, in discovery's order."""
    found = [(name, _which([name])) for name in CLANG_CANDIDATES]
    return [(name, path) for name, path in found if path]


def chosen_bpftool(configured: str = "", root: Path | None = None) -> str | None:
    """The bpftool the user chose, as find_bpftool takes it: $BPFTOOL, else [toolchain]
    bpftool; None when neither is set (bpftool in PATH)."""
    return os.environ.get("BPFTOOL") or (_project_tool(configured, root) if configured else None)


def _project_tool(configured: str, root: Path | None) -> str:
    """A tool named in bpfbuild.toml: a path relative to the project, or a name in PATH."""
    return str(root / configured) if root and "/" in configured else configured


def find_bpftool(cache: _VersionCache, configured: str = "", root: Path | None = None) -> Bpftool:
    """$BPFTOOL, else [toolchain] bpftool (a path relative to the project, or a name in
    PATH), else bpftool in PATH."""
    if configured and not os.environ.get("BPFTOOL"):
        path = _configured(
            "bpftool",
            "BPFTOOL",
            configured,
            root,
            "scripts/setup --backports installs bpftool 7.5 (Debian 12)",
        )
    else:
        path = _find("bpftool", "BPFTOOL", ["bpftool"])

    def probe() -> dict:
        text = _capture([path, "version"])
        match = re.search(r"v?(\d+\.\d+\.\d+)", text)
        if "bpftool" not in text or not match:
            raise _not_the_tool(path, "bpftool", [path, "version"], text, "BPFTOOL")
        libbpf = re.search(r"using libbpf v?(\d+\.\d+(?:\.\d+)?)", text)
        return {"version": match.group(1), "libbpf": libbpf.group(1) if libbpf else ""}

    found = cache.get("bpftool:" + path, [path], probe)
    return Bpftool("bpftool", path, found["version"], found["libbpf"])


def parse_version(text: str) -> str:
    """The version in a tool's `--version` output: after the word "version" on any
    line (`LLVM version 14.0.6` is llvm-strip's second line), else the first
    dotted number of the first line that has one (`gcc (Debian 12.2.0-14) 12.2.0`)."""
    match = re.search(r"\bversion\s+v?(\d+\.\d+(?:\.\d+)?)", text)
    if not match:
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else "unknown"


def _version_of(path: str, cache: _VersionCache, name: str) -> str:
    def probe() -> dict:
        return {"version": parse_version(_capture([path, "--version"]))}

    return cache.get(f"{name}:{path}", [path], probe)["version"]


def find_cc(arch: Arch, cache: _VersionCache) -> Tool:
    """$CC, or cc for the host arch, or the Debian cross compiler <triplet>-gcc."""
    if arch == host_arch():
        path = _find("cc", "CC", ["cc", "gcc"])
    else:
        cross = arch.cross_cc
        found = _which([os.environ.get(f"CC_{arch.name}", cross)])
        if not found:
            raise ToolchainError(
                f"no C compiler for {arch.name} (looked for {cross}, $CC_{arch.name})",
                hint=f"apt-get install {' '.join(arch.user_space_packages)}, or run "
                f"`scripts/setup --arch {arch.name}` (`bpfbuild doctor --arch "
                f"{arch.name}` lists what is missing)",
            )
        path = found
    env = "CC" if arch == host_arch() else f"CC_{arch.name}"
    # gcc and clang name their target; a program that is no C compiler prints nothing.
    machine = cache.get(
        f"cc-machine:{path}", [path], lambda: {"machine": _capture([path, "-dumpmachine"]).strip()}
    )["machine"]
    if not machine:
        raise _not_the_tool(path, "cc", [path, "-dumpmachine"], machine, env, label="a C compiler")
    return Tool("cc", path, _version_of(path, cache, "cc"))


def find_llvm_strip(cache: _VersionCache) -> Tool | None:
    candidates = ["llvm-strip"] + [f"llvm-strip-{v}" for v in range(21, MIN_CLANG - 1, -1)]
    path = os.environ.get("LLVM_STRIP") or _which(candidates)
    if not path:
        return None
    return Tool("llvm-strip", path, _version_of(path, cache, "llvm-strip"))


def find_strip(arch: Arch, cache: _VersionCache) -> Tool | None:
    """$STRIP (host arch) or binutils' strip for the arch; None when absent (only
    `strip = true` needs it)."""
    name = "strip" if arch == host_arch() else arch.cross_strip
    path = _which([os.environ.get("STRIP", name) if arch == host_arch() else name])
    return Tool("strip", path, _version_of(path, cache, "strip")) if path else None


def find_ar(arch: Arch) -> Tool | None:
    """binutils ar for the arch (<triplet>-ar for a cross arch); $AR for the host."""
    name = "ar" if arch == host_arch() else arch.cross_tool("ar")
    path = _which([os.environ.get("AR", name) if arch == host_arch() else name])
    return Tool("ar", path, "") if path else None


def libbpf_from_source(arch: Arch, tree: LibbpfTree, root: Path, cache: _VersionCache) -> Libbpf:
    """libbpf built from tree into output/<arch>/libbpf/: its headers ahead of the
    system's, libbpf.a, and only libelf and zlib (and what they need) from the system."""
    layout = Layout(root, arch.name)
    # commands run in the root; a tree fetched into the user's cache is named absolute
    rel = lambda path: str(path.relative_to(root) if path.is_relative_to(root) else path)  # noqa: E731
    archive = rel(layout.libbpf_archive)
    cflags = [
        "-I",
        rel(layout.libbpf_include_dir),  # <bpf/*.h> of this tree first
        "-I",
        rel(tree.root / "include" / "uapi"),
    ]  # the uapi its headers expect
    libs, static_libs = _system_libs(arch, ["libelf", "zlib"], ["-lelf", "-lz"], cache)
    return Libbpf(
        tree.version, cflags, [archive, *libs], [archive, *static_libs], tree=tree, archive=archive
    )


def with_libbpf_tree(
    toolchain: Toolchain, tree: LibbpfTree, root: Path, state_dir: Path
) -> Toolchain:
    """toolchain with libbpf built from tree for its arch (and the ar that archives it),
    in place of the system's."""
    from dataclasses import replace

    cache = _VersionCache(state_dir / TOOLCHAIN_CACHE_NAME)
    try:
        libbpf = libbpf_from_source(toolchain.arch, tree, root, cache)
    finally:
        cache.save()
    ar = toolchain.ar or find_ar(toolchain.arch)
    if ar is None:
        arch = toolchain.arch
        raise ToolchainError(
            f"no ar for {arch.name}, needed to archive libbpf.a",
            hint=f"apt-get install {arch.binutils_package}",
        )
    return replace(toolchain, libbpf=libbpf, ar=ar)


SEARCH_VARIABLES = ("PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR")
"""What chooses the .pc files pkg-config reads: part of every cached answer's key."""


@dataclass(frozen=True)
class PkgConfig:
    """pkg-config as bpfbuild runs it for one arch: a cross arch sees only its own .pc
    files (and the arch-independent ones), never the host's."""

    path: str
    arch: Arch
    env: dict[str, str]

    @classmethod
    def for_arch(cls, path: str, arch: Arch) -> PkgConfig:
        env = dict(os.environ)
        if arch != host_arch():
            env["PKG_CONFIG_LIBDIR"] = arch.pkg_config_libdir
        return cls(path, arch, env)

    def cache_key(self, what: str) -> str:
        """The key of a cached answer about what: the arch and the search variables."""
        return ":".join([what, self.arch.name, *(self.env.get(v, "") for v in SEARCH_VARIABLES)])

    def stamp_paths(self) -> list[str]:
        """pkg-config itself and the folders it searches: a .pc file added or removed
        there changes its answers (the .pc files it read are stamped with them)."""
        dirs = [
            f"{self.arch.multiarch_lib_dir}/pkgconfig",
            "/usr/lib/pkgconfig",
            "/usr/share/pkgconfig",
        ]
        dirs += [
            d
            for var in ("PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR")
            for d in self.env.get(var, "").split(":")
            if d
        ]
        return [self.path, *dirs]

    def ask(self, *args: str) -> str:
        """pkg-config's answer; ToolchainError when it fails (a package not found)."""
        return _capture([self.path, *args], env=self.env).strip()

    def check_works(self) -> None:
        """After a failed answer: a ToolchainError naming pkg-config's command and exit
        when pkg-config itself fails (`--version` does not answer: $PKG_CONFIG set to
        /bin/false, a broken wrapper), rather than a package said to be missing."""
        argv = [self.path, "--version"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        except OSError as err:
            code, said = None, err.strerror
        else:
            if done.returncode == 0 and done.stdout.strip():
                return
            code = done.returncode
            said = (done.stderr.strip().splitlines() or ["printing nothing"])[-1]
        chosen = os.environ.get("PKG_CONFIG")
        raise ToolchainError(
            f"pkg-config failed: `{shlex.join(argv)}` "
            + (f"exited with {code}, {said}" if code is not None else f"could not run: {said}"),
            hint=(
                f"$PKG_CONFIG is '{chosen}': set it to a working pkg-config, or unset it"
                if chosen
                else f"fix or reinstall {self.path} (apt-get install pkg-config)"
            )
            + "; `bpfbuild doctor` lists the tools it found",
        )

    def pc_files(self, packages: list[str]) -> list[str]:
        """The .pc files pkg-config reads for packages: theirs and, transitively, those
        of their Requires and Requires.private (libbpf: libelf, zlib)."""
        files: list[str] = []
        seen: set[str] = set()
        todo = list(packages)
        while todo:
            package = todo.pop(0)
            if package in seen:
                continue
            seen.add(package)
            done = subprocess.run(
                [self.path, "--path", package], capture_output=True, text=True, env=self.env
            )
            if done.returncode == 0 and done.stdout.strip():
                files.append(os.path.normpath(done.stdout.strip()))
            for option in ("--print-requires", "--print-requires-private"):
                done = subprocess.run(
                    [self.path, option, package], capture_output=True, text=True, env=self.env
                )
                todo += [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
        return files

    def install_hint(self, packages: list[str]) -> str:
        """The Debian commands that install packages (-dev names) for this arch."""
        if self.arch == host_arch():
            return f"apt-get install {' '.join(packages)}"
        wanted = " ".join(f"{p}:{self.arch.debian_arch}" for p in packages)
        return (
            f"dpkg --add-architecture {self.arch.debian_arch} && apt-get update && "
            f"apt-get install {wanted}"
        )


def _system_libs(
    arch: Arch, packages: list[str], fallback: list[str], cache: _VersionCache
) -> tuple[list[str], list[str]]:
    """pkg-config's (--libs, --static --libs) of packages for arch; fallback when there
    is no pkg-config; an error naming the Debian packages when their .pc files are
    absent. Re-probed when the search variables, the folders or a .pc file read change."""
    path = _which([os.environ.get("PKG_CONFIG", "pkg-config")])
    if not path:
        return fallback, fallback
    pkg_config = PkgConfig.for_arch(path, arch)

    def probe() -> dict:
        try:
            return {
                "libs": shlex.split(pkg_config.ask("--libs", *packages)),
                "static": shlex.split(pkg_config.ask("--static", "--libs", *packages)),
                "stamp_paths": pkg_config.pc_files(packages),
            }
        except ToolchainError:
            pkg_config.check_works()
            debian = [library.package for library in LIBRARIES if library.pkg_config in packages]
            raise ToolchainError(
                f"{' and '.join(packages)} not found by pkg-config for {arch.name}, "
                "needed to link libbpf built from [libbpf] source",
                hint=pkg_config.install_hint(debian),
            ) from None

    key = pkg_config.cache_key(f"syslibs:{' '.join(packages)}")
    info = cache.get(key, pkg_config.stamp_paths(), probe)
    return info["libs"], info["static"]


def find_libbpf(arch: Arch, cache: _VersionCache, library_dirs: list[str] | None = None) -> Libbpf:
    """libbpf's flags through pkg-config; for a cross arch, the multiarch .pc files.
    The cached flags are re-probed when pkg-config's search path (PKG_CONFIG_PATH,
    PKG_CONFIG_LIBDIR, PKG_CONFIG_SYSROOT_DIR: part of the key; their dirs: stamped)
    or a .pc file it read changes. With library_dirs (the compiler's), a libbpf found only as an archive
    links with the --static list even in a dynamic link."""
    pkg_config = PkgConfig.for_arch(_find("pkg-config", "PKG_CONFIG", ["pkg-config"]), arch)

    def probe() -> dict:
        def ask(*args: str) -> str:
            try:
                answer = pkg_config.ask(*args, "libbpf")
            except ToolchainError:
                pkg_config.check_works()
                raise ToolchainError(
                    f"libbpf not found by pkg-config for {arch.name}",
                    hint=pkg_config.install_hint([library.package for library in LIBRARIES]),
                ) from None
            if not answer and args == ("--modversion",):
                raise _not_the_tool(
                    pkg_config.path,
                    "pkg-config",
                    [pkg_config.path, *args, "libbpf"],
                    answer,
                    "PKG_CONFIG",
                )
            return answer

        return {
            "version": ask("--modversion"),
            "cflags": shlex.split(ask("--cflags")),
            "libs": shlex.split(ask("--libs")),
            "static_libs": shlex.split(ask("--static", "--libs")),
            "stamp_paths": pkg_config.pc_files(["libbpf"]),
        }

    info = cache.get(pkg_config.cache_key("libbpf"), pkg_config.stamp_paths(), probe)
    libs = info["libs"]
    if library_dirs is not None:
        shared = resolve_libraries(libs, library_dirs, static=False)
        if shared and all(path.endswith(".a") for path in shared):
            libs = info["static_libs"]
    return Libbpf(info["version"], info["cflags"], libs, info["static_libs"])


def find_linker(choice: str, cc: Tool, cache: _VersionCache) -> linkers.Linker:
    """The linker for `[build] linker = choice`, probed once per compiler and install."""
    found = cache.get(
        f"linker:{choice}:{cc.path}",
        linkers.stamp_paths(cc.path),
        lambda: linkers.to_dict(
            linkers.choose(choice, cc.path, cache.path.parent if cache.path else None)
        ),
    )
    return linkers.from_dict(found)


def _split_env(name: str) -> list[str]:
    """$CFLAGS or $LDFLAGS split as a shell would."""
    try:
        return shlex.split(os.environ.get(name, ""))
    except ValueError as err:
        raise ToolchainError(
            f"${name} cannot be split into flags: {err}",
            hint=f"balance the quotes in ${name}, or unset it",
        ) from None


def find_toolchain(
    arch: Arch,
    state_dir: Path | None = None,
    project: Project | None = None,
    user_space: bool = True,
    linker: str = "auto",
    runner: bool = False,
) -> Toolchain:
    """The whole toolchain for one arch; versions cached under state_dir. A project
    may choose bpftool ([toolchain]) and build libbpf from source ([libbpf]).
    user_space=False (nothing to link for a cross arch): no C compiler, strip or
    cross libbpf is needed, and none is looked for. linker: [build] linker.
    runner: verification builds its runner (a static C program linked with its own
    pinned libbpf, see bpfbuild.verify.runner.build) for this arch, so the arch's C
    compiler is needed even when no app is linked (only it: no libbpf, strip or linker)."""
    cache = _VersionCache(state_dir / TOOLCHAIN_CACHE_NAME if state_dir else None)
    user_space = user_space or arch == host_arch()
    only_for_runner = runner and not user_space
    tree = project.libbpf if project and user_space else None
    try:
        ar = find_ar(arch) if tree else None
        if tree and ar is None:
            raise ToolchainError(
                f"no ar for {arch.name}, needed to archive libbpf.a from [libbpf] source",
                hint=f"apt-get install {arch.binutils_package}",
            )
        clang = find_clang(
            cache,
            project.config.toolchain.clang if project else "",
            project.root if project else None,
        )
        bpftool = find_bpftool(
            cache,
            project.config.toolchain.bpftool if project else "",
            project.root if project else None,
        )
        try:
            cc = find_cc(arch, cache) if user_space or runner else None
        except ToolchainError as err:
            if not only_for_runner:
                raise
            raise ToolchainError(
                f"{err.message}, needed to build the verifier's runner (a C program) for "
                f"{arch.name}",
                hint=err.hint,
            ) from None
        library_dirs = compiler_library_dirs(cc.path, cache) if user_space and cc else []
        if tree and project:  # a tree comes from the project's [libbpf]
            libbpf = libbpf_from_source(arch, tree, project.root, cache)
        else:
            libbpf = find_libbpf(
                arch if user_space else host_arch(), cache, library_dirs if user_space else None
            )
        return Toolchain(
            arch=arch,
            clang=clang,
            bpftool=bpftool,
            cc=cc,
            libbpf=libbpf,
            strip=find_strip(arch, cache) if user_space else None,
            ar=ar,
            cflags=_split_env("CFLAGS"),
            ldflags=_split_env("LDFLAGS"),
            library_dirs=library_dirs,
            linker=find_linker(linker, cc, cache) if user_space and cc else None,
        )
    finally:
        cache.save()
