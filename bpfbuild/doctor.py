"""`bpfbuild doctor`: the detected toolchain and kernel facts, and whether a build can work."""

from __future__ import annotations

import platform
from pathlib import Path

import click

from .arch import host_arch
from .errors import BpfBuildError
from .kernels.host import can_load_bpf, kernel_btf, tracefs_mount
from .build.layout import state_dir
from .build.project import find_root, load_project
from .build.toolchain import (
    KFUNC_BPFTOOL, find_bpftool, find_cc, find_clang, find_libbpf, find_llvm_strip,
    libbpf_from_source, _VersionCache,
)


def warn_old_bpftool(cache: _VersionCache, configured: str, root: Path | None) -> None:
    """bpftool before 7.3 writes vmlinux.h without kfunc prototypes (__ksym externs)."""
    try:
        tool = find_bpftool(cache, configured, root)
        version = tuple(int(p) for p in tool.version.split(".")[:2])
    except (BpfBuildError, ValueError):
        return
    if version < KFUNC_BPFTOOL:
        click.echo(f"{'':<11} warning: bpftool {tool.version} is older than "
                   f"{'.'.join(map(str, KFUNC_BPFTOOL))}: the vmlinux.h it generates has no "
                   "kfunc prototypes (programs calling kfuncs must declare them)")
        click.echo(f"{'':<11} hint: ./scripts/setup --backports installs bpftool 7.5 from "
                   "bookworm-backports; or set [toolchain] bpftool or $BPFTOOL")


def run_doctor(directory: str | None) -> int:
    """Print one line per check; return 1 when a build cannot work."""
    arches = [host_arch()]
    cache_dir = None
    project = None
    try:
        project = load_project(find_root(Path(directory) if directory else Path.cwd()))
        arches, cache_dir = project.arches, state_dir(project.root)
        click.echo(f"project:    {project.root}")
    except BpfBuildError:
        pass
    cache = _VersionCache(cache_dir / "toolchain.json" if cache_dir else None)
    failures = 0

    def check(label: str, probe, required: bool = True) -> None:
        nonlocal failures
        try:
            result = probe()
        except BpfBuildError as err:
            if required:
                failures += 1
            click.echo(f"{label:<11} {'MISSING' if required else 'missing'}: {err.message}")
            if err.hint:
                click.echo(f"{'':<11} hint: {err.hint}")
            return
        if result is None:
            click.echo(f"{label:<11} not found (optional)")
        elif hasattr(result, "path"):
            click.echo(f"{label:<11} {result.path} ({result.version})")
        else:
            click.echo(f"{label:<11} {result}")

    check("clang:", lambda: find_clang(cache))
    configured = project.config.toolchain.bpftool if project else ""
    check("bpftool:", lambda: find_bpftool(cache, configured, project.root if project else None))
    warn_old_bpftool(cache, configured, project.root if project else None)
    check("llvm-strip:", lambda: find_llvm_strip(cache), required=False)
    for arch in arches:
        check(f"cc/{arch.name}:", lambda arch=arch: find_cc(arch, cache))
        if project and project.libbpf:
            check(f"libbpf/{arch.name}:",
                  lambda arch=arch: "libbpf {0.version} from source {1}: {2}".format(
                      project.libbpf, project.libbpf.root.relative_to(project.root),
                      " ".join(libbpf_from_source(arch, project.libbpf, project.root,
                                                  cache).static_libs)))
        else:
            check(f"libbpf/{arch.name}:",
                  lambda arch=arch: "libbpf {0.version}: {1}".format(
                      lib := find_libbpf(arch, cache), " ".join(lib.static_libs)))
    cache.save()
    click.echo(f"kernel:     {platform.release()} ({platform.machine()})")
    click.echo(f"kernel BTF: {'/sys/kernel/btf/vmlinux' if kernel_btf() else 'absent (set [vmlinux] in bpfbuild.toml)'}")
    loadable, how = can_load_bpf()
    click.echo(f"load BPF:   {how}")
    mount = tracefs_mount()
    click.echo(f"tracefs:    {mount or 'not mounted (mount -t tracefs nodev /sys/kernel/tracing)'}")
    if failures:
        click.echo(f"doctor: {failures} required tool(s) missing: builds cannot work")
        return 1
    click.echo("doctor: builds can work" + ("" if loadable else "; loading BPF here cannot"))
    return 0
