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

from ..arch import Arch, host_arch
from ..errors import ToolchainError
from . import linker as linkers

MIN_CLANG = 11
"""Oldest clang whose BTF and CO-RE relocations libbpf can rely on."""

DEBIAN_PACKAGE = {
    "clang": "clang",
    "bpftool": "bpftool",
    "cc": "gcc",
    "llvm-strip": "llvm",
    "pkg-config": "pkg-config",
    "libbpf": "libbpf-dev",
}


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str


@dataclass
class Libbpf:
    """Compile and link flags for libbpf, from pkg-config."""

    version: str
    cflags: list[str]
    libs: list[str]
    static_libs: list[str]


@dataclass
class Toolchain:
    """Everything a build runs, for one arch."""

    arch: Arch
    clang: Tool
    bpftool: Tool
    cc: Tool
    libbpf: Libbpf
    strip: Tool | None
    """binutils strip for the executables (llvm-strip 14 rejects static glibc binaries)."""
    cflags: list[str] = field(default_factory=list)
    """$CFLAGS, split like a shell would."""
    ldflags: list[str] = field(default_factory=list)
    """$LDFLAGS."""
    linker: linkers.Linker | None = None
    """The linker of the apps ([build] linker); None: the compiler's default, unprobed."""

    @property
    def system_include_dirs(self) -> list[str]:
        """Added with -idirafter to BPF compiles: -target bpf drops the multiarch dir,
        so <linux/*.h> uapi headers (which include <asm/*.h>) would not be found."""
        return [f"/usr/include/{self.arch.gnu_triplet}", "/usr/include"]


class _VersionCache:
    """Tool versions keyed by the binary's path, size and mtime, kept in .bpfbuild/.

    A no-op build then runs no subprocess to learn versions it already knows.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        self.dirty = False
        if path and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def get(self, key: str, stamp_paths: list[str], compute) -> dict:
        stamp = [_stamp(p) for p in stamp_paths]
        entry = self.entries.get(key)
        if entry and entry.get("stamp") == stamp:
            return entry["value"]
        value = compute()
        self.entries[key] = {"stamp": stamp, "value": value}
        self.dirty = True
        return value

    def save(self) -> None:
        if self.dirty and self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One temporary file per process: two builds starting at once both save.
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
            self.dirty = False


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
        raise ToolchainError(f"cannot run {argv[0]}: {err.strerror}",
                             hint="check that the path points to an executable") from None
    if done.returncode != 0:
        raise ToolchainError(
            f"`{shlex.join(argv)}` failed with exit code {done.returncode}: "
            + (done.stderr.strip().splitlines() or ["no output"])[-1],
        )
    return done.stdout


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


def find_clang(cache: _VersionCache) -> Tool:
    candidates = ["clang"] + [f"clang-{v}" for v in range(21, MIN_CLANG - 1, -1)]
    path = _find("clang", "CLANG", candidates)

    def probe() -> dict:
        version_text = _capture([path, "--version"])
        targets = _capture([path, "-print-targets"])
        match = re.search(r"clang version (\d+)\.(\d+)\.(\d+)", version_text)
        return {
            "version": ".".join(match.groups()) if match else "unknown",
            "bpf": bool(re.search(r"^\s*bpf\b", targets, re.M)),
        }

    info = cache.get("clang:" + path, [path], probe)
    if not info["bpf"]:
        raise ToolchainError(
            f"{path} has no BPF target (`clang -print-targets` does not list bpf)",
            hint="apt-get install clang (Debian's clang includes the BPF backend), or set $CLANG",
        )
    major = int(info["version"].split(".")[0]) if info["version"][0].isdigit() else 0
    if major < MIN_CLANG:
        raise ToolchainError(
            f"{path} is clang {info['version']}; CO-RE needs clang {MIN_CLANG} or newer",
            hint="apt-get install clang (or a newer clang-NN) and set $CLANG to it",
        )
    return Tool("clang", path, info["version"])


def find_bpftool(cache: _VersionCache) -> Tool:
    path = _find("bpftool", "BPFTOOL", ["bpftool"])

    def probe() -> dict:
        text = _capture([path, "version"])
        match = re.search(r"v?(\d+\.\d+\.\d+)", text)
        return {"version": match.group(1) if match else "unknown"}

    return Tool("bpftool", path, cache.get("bpftool:" + path, [path], probe)["version"])


def _version_of(path: str, cache: _VersionCache, name: str) -> str:
    def probe() -> dict:
        first = _capture([path, "--version"]).splitlines()
        match = re.search(r"(\d+\.\d+(\.\d+)?)", first[0] if first else "")
        return {"version": match.group(1) if match else "unknown"}

    return cache.get(f"{name}:{path}", [path], probe)["version"]


def find_cc(arch: Arch, cache: _VersionCache) -> Tool:
    """$CC, or cc for the host arch, or the Debian cross compiler <triplet>-gcc."""
    if arch == host_arch():
        path = _find("cc", "CC", ["cc", "gcc"])
    else:
        cross = f"{arch.gnu_triplet}-gcc"
        path = _which([os.environ.get(f"CC_{arch.name}", cross)])
        if not path:
            raise ToolchainError(
                f"no C compiler for {arch.name} (looked for {cross}, $CC_{arch.name})",
                hint=f"apt-get install gcc-{arch.gnu_triplet}",
            )
    return Tool("cc", path, _version_of(path, cache, "cc"))


def find_llvm_strip(cache: _VersionCache) -> Tool | None:
    candidates = ["llvm-strip"] + [f"llvm-strip-{v}" for v in range(21, MIN_CLANG - 1, -1)]
    path = os.environ.get("LLVM_STRIP") or _which(candidates)
    if not path:
        return None
    return Tool("llvm-strip", path, _version_of(path, cache, "llvm-strip"))


def find_strip(arch: Arch, cache: _VersionCache) -> Tool | None:
    """$STRIP, or binutils' strip for the arch; None when absent (only `strip = true` needs it)."""
    name = "strip" if arch == host_arch() else f"{arch.gnu_triplet}-strip"
    path = _which([os.environ.get("STRIP", name)])
    return Tool("strip", path, _version_of(path, cache, "strip")) if path else None


def find_libbpf(arch: Arch, cache: _VersionCache) -> Libbpf:
    """libbpf's flags through pkg-config; for a cross arch, the multiarch .pc files."""
    pkg_config = _which([os.environ.get("PKG_CONFIG", "pkg-config")])
    if not pkg_config:
        raise _missing("pkg-config", ["pkg-config"], "PKG_CONFIG")
    env = dict(os.environ)
    if arch != host_arch():
        env["PKG_CONFIG_LIBDIR"] = f"/usr/lib/{arch.gnu_triplet}/pkgconfig"
    key = f"libbpf:{arch.name}:{env.get('PKG_CONFIG_PATH', '')}:{env.get('PKG_CONFIG_LIBDIR', '')}"
    pc_dirs = [f"/usr/lib/{arch.gnu_triplet}/pkgconfig", "/usr/lib/pkgconfig",
               "/usr/share/pkgconfig"]

    def probe() -> dict:
        def ask(*args: str) -> str:
            try:
                return _capture([pkg_config, *args, "libbpf"], env=env).strip()
            except ToolchainError:
                raise ToolchainError(
                    f"libbpf not found by pkg-config for {arch.name}",
                    hint="apt-get install libbpf-dev libelf-dev zlib1g-dev"
                    + (f" (for :{arch.name} multiarch)" if arch != host_arch() else ""),
                ) from None

        return {
            "version": ask("--modversion"),
            "cflags": shlex.split(ask("--cflags")),
            "libs": shlex.split(ask("--libs")),
            "static_libs": shlex.split(ask("--static", "--libs")),
        }

    info = cache.get(key, [pkg_config, *pc_dirs], probe)
    return Libbpf(info["version"], info["cflags"], info["libs"], info["static_libs"])


def find_linker(choice: str, cc: Tool, cache: _VersionCache) -> linkers.Linker:
    """The linker for `[build] linker = choice`, probed once per compiler and install."""
    found = cache.get(f"linker:{choice}:{cc.path}", linkers.stamp_paths(cc.path),
                      lambda: linkers.to_dict(linkers.choose(
                          choice, cc.path, cache.path.parent if cache.path else None)))
    return linkers.from_dict(found)


def find_toolchain(arch: Arch, state_dir: Path | None = None, linker: str = "auto") -> Toolchain:
    """The whole toolchain for one arch; versions cached under state_dir."""
    cache = _VersionCache(state_dir / "toolchain.json" if state_dir else None)
    try:
        return Toolchain(
            arch=arch,
            clang=find_clang(cache),
            bpftool=find_bpftool(cache),
            cc=find_cc(arch, cache),
            libbpf=find_libbpf(arch, cache),
            strip=find_strip(arch, cache),
            cflags=shlex.split(os.environ.get("CFLAGS", "")),
            ldflags=shlex.split(os.environ.get("LDFLAGS", "")),
            linker=find_linker(linker, find_cc(arch, cache), cache),
        )
    finally:
        cache.save()
