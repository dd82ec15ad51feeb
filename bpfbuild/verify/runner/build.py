"""Building bpfverify for one arch: always against one pinned libbpf, compiled from
Debian's libbpf source package with the arch's C compiler and linked statically.

Why pinned and not the system's or the project's libbpf: Debian 12's libbpf 1.1 cannot
open objects with `.struct_ops.link` maps (sched_ext schedulers; libbpf 1.2+), a
project's `[libbpf] source` may be any version from 0.6, and how a struct_ops program is
loaded on its own depends on the libbpf version (1.4+ ties struct_ops programs' autoload
to their maps). One version everywhere gives the same verdicts on every machine and arch.

The runner is bpfbuild's own tool, not the project's: it is kept in the user's cache,
keyed by its source, the libbpf version, the compiler and the arch, so a new project
copies it instead of compiling libbpf again.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from doit.exceptions import TaskFailed

from ...arch import Arch, get_arch, host_arch
from ...errors import BpfBuildError, ToolchainError
from ...pipeline import header_cache
from ...pipeline.actions import check_arch, partial, signature_once
from ...pipeline.elfcheck import ElfExpectation
from ...pipeline.libbpf_source import LibbpfTree, compile_flags, fetch_debian_libbpf, load_tree
from ...pipeline.toolchain import Tool, _VersionCache, find_cc
from . import RUNNER_SOURCE, build_runner_command

RUNNER_LIBBPF_SUITE = "trixie"
"""The Debian suite whose libbpf source the runner is built with (libbpf 1.5.0, see
bpfbuild.pipeline.libbpf_source.DEBIAN_SUITES)."""
RUNNER_KIND = "runner"
"""Cache kind of built runners."""
SYSTEM_LIBRARIES = ("libelf", "zlib")
"""What libbpf itself links with; pkg-config says which archives (and their own deps)."""


def runner_compiler(arch: Arch) -> Tool:
    """The arch's C compiler ($CC, cc, or the Debian cross gcc), for a project whose
    toolchain has none (nothing to link for that arch but the runner)."""
    return find_cc(arch, _VersionCache(None))


def runner_libbpf() -> LibbpfTree:
    """The pinned libbpf source tree, fetched into the user's cache on first use."""
    return load_tree(fetch_debian_libbpf(RUNNER_LIBBPF_SUITE))


def static_system_libs(arch_name: str) -> list[str]:
    """`pkg-config --static --libs libelf zlib` for the arch (its multiarch .pc files
    for a cross arch); `-lelf -lz` when there is no pkg-config."""
    arch = get_arch(arch_name)
    env = dict(os.environ)
    if arch != host_arch():
        env["PKG_CONFIG_LIBDIR"] = arch.pkg_config_libdir
    command = [os.environ.get("PKG_CONFIG", "pkg-config"), "--static", "--libs", *SYSTEM_LIBRARIES]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    except OSError:
        return ["-lelf", "-lz"]
    if done.returncode:
        wanted = ["libelf-dev", "zlib1g-dev"]
        if arch != host_arch():
            wanted = [f"{p}:{arch.debian_arch}" for p in wanted]
        raise ToolchainError(
            f"libelf and zlib not found by pkg-config for {arch.name}, needed to link "
            "the verifier runner",
            hint=f"apt-get install {' '.join(wanted)}",
        )
    return shlex.split(done.stdout)


@signature_once
def build_runner(
    cc: str,
    cc_version: str,
    arch_name: str,
    output: str,
    cwd: str | None = None,
    expect: ElfExpectation | None = None,
) -> TaskFailed | None:
    """doit action: bpfverify for arch_name at output, from the user's cache or compiled
    (libbpf's sources, then the runner linked statically with their objects). With
    expect, it must be an ELF of that arch (cwd: what a mismatch names it relative to)."""
    try:
        tree = runner_libbpf()
        libs = static_system_libs(arch_name)
    except BpfBuildError as err:
        return TaskFailed(err.describe())
    source_digest = hashlib.sha256(RUNNER_SOURCE.read_bytes()).hexdigest()
    key = header_cache.key_of(
        "bpfverify", source_digest, tree.version, cc, cc_version, arch_name, libs
    )
    meta = header_cache.stamp(
        libbpf=tree.version, cc=cc, cc_version=cc_version, arch=arch_name, source=source_digest
    )

    def make() -> TaskFailed | None:
        failed = _compile_and_link(cc, tree, libs, Path(output))
        return failed or check_arch(output, cwd or str(Path(output).parent), expect)

    if not header_cache.enabled():
        failed = make()
        if failed:
            Path(partial(output)).unlink(missing_ok=True)
            return failed
        Path(partial(output)).replace(output)
        return None
    try:
        failed = header_cache.fetch_or_make(RUNNER_KIND, key, "bpfverify", output, make, meta, cwd)
    except BpfBuildError as err:  # a link or a file where its folders go (safefs)
        return TaskFailed(err.describe())
    if failed is None:
        os.chmod(output, 0o755)  # a copy from the cache is not executable
    return failed


def _compile_and_link(
    cc: str, tree: LibbpfTree, libs: list[str], output: Path
) -> TaskFailed | None:
    """libbpf's sources compiled as its Makefile does (in parallel), its public headers
    installed as <bpf/*.h>, then the runner linked with those objects into
    OUTPUT.partial. The intermediate files live in a scratch folder next to output."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bpfverify-", dir=output.parent) as scratch:
        work = Path(scratch)
        include = work / "include" / "bpf"
        include.mkdir(parents=True)
        for header in tree.headers:
            (include / header).write_bytes((tree.src / header).read_bytes())
        flags = compile_flags(str(tree.root))
        commands = [
            [cc, *flags, "-c", str(tree.root / source), "-o", str(work / f"{Path(source).stem}.o")]
            for source in tree.sources
        ]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for failed in pool.map(_run, commands):
                if failed:
                    return failed
        link = build_runner_command(
            cc,
            Path(partial(str(output))),
            RUNNER_SOURCE,
            cflags=[
                "-I",
                str(work / "include"),  # <bpf/libbpf.h> of the pinned libbpf
                "-I",
                str(tree.root / "include" / "uapi"),  # the uapi its headers expect
            ],
            ldflags=[*(cmd[-1] for cmd in commands), *libs],
        )
        return _run(link)


def _run(argv: list[str]) -> TaskFailed | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    except OSError as err:
        return TaskFailed(f"cannot run {argv[0]}: {err.strerror}")
    if done.returncode:
        return TaskFailed(
            f"{done.stderr.rstrip()}\n{Path(argv[0]).name} exited with {done.returncode}: "
            + shlex.join(argv)
        )
    return None
