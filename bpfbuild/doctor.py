"""`bpfbuild doctor`: the detected toolchain and kernel facts, and whether a build can work."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import click

from .arch import host_arch
from .errors import BpfBuildError
from .kernels.host import KERNEL_BTF, can_load_bpf, kernel_btf_status, tracefs_mount
from .build.layout import state_dir
from .build.project import find_root, load_project
from .build.toolchain import find_bpftool, find_cc, find_clang, find_libbpf, find_llvm_strip, _VersionCache


def run_doctor(directory: str | None, btf_path: str = KERNEL_BTF) -> int:
    """Print one line per check; return 1 when a build cannot work.
    btf_path: where the running kernel's BTF is read (tests point it elsewhere)."""
    arches = [host_arch()]
    cache_dir = None
    btf_needed = True
    try:
        project = load_project(find_root(Path(directory) if directory else Path.cwd()))
        arches, cache_dir = project.arches, state_dir(project.root)
        host_source = project.vmlinux.get(host_arch().name)
        btf_needed = host_source is not None and host_source.path == KERNEL_BTF
        click.echo(f"project:    {project.root}")
    except BpfBuildError:
        pass
    failures = 0
    if cache_dir is not None:
        folder = cache_dir if cache_dir.exists() else cache_dir.parent
        if not os.access(folder, os.W_OK):
            failures += 1
            click.echo(f"{'state:':<11} MISSING: cannot write {folder} (builds keep their state there)")
            click.echo(f"{'':<11} hint: run bpfbuild as a user who can write the project folder")
            cache_dir = None
    cache = _VersionCache(cache_dir / "toolchain.json" if cache_dir else None)

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
    check("bpftool:", lambda: find_bpftool(cache))
    check("llvm-strip:", lambda: find_llvm_strip(cache), required=False)
    for arch in arches:
        check(f"cc/{arch.name}:", lambda arch=arch: find_cc(arch, cache))
        check(f"libbpf/{arch.name}:",
              lambda arch=arch: "libbpf {0.version}: {1}".format(
                  lib := find_libbpf(arch, cache), " ".join(lib.static_libs)))
    cache.save()
    click.echo(f"kernel:     {platform.release()} ({platform.machine()})")
    btf_readable, btf_status = kernel_btf_status(btf_path)
    click.echo(f"kernel BTF: {btf_status}")
    if btf_needed and not btf_readable:
        failures += 1  # the host arch's vmlinux.h is made from it
        click.echo(f"{'':<11} hint: vmlinux.h for {host_arch().name} is generated from it: "
                   "make it readable, or set [vmlinux] in bpfbuild.toml to a BTF file or a header")
    loadable, how = can_load_bpf()
    click.echo(f"load BPF:   {how}")
    mount = tracefs_mount()
    click.echo(f"tracefs:    {mount or 'not mounted (mount -t tracefs nodev /sys/kernel/tracing)'}")
    if failures:
        click.echo(f"doctor: {failures} required check(s) failed: builds cannot work")
        return 1
    click.echo("doctor: builds can work" + ("" if loadable else "; loading BPF here cannot"))
    return 0
