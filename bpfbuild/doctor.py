"""`bpfbuild doctor`: the detected toolchain and kernel facts, and whether a build can work."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

import click

from .arch import LIBRARIES, Arch, get_arch, host_arch
from .errors import BpfBuildError
from .kernels.host import (
    KERNEL_BTF,
    MOUNT_TRACEFS,
    can_load_bpf,
    kernel_btf_status,
    tracefs_mount,
)
from .pipeline.layout import state_dir
from .pipeline.names import TOOLCHAIN_CACHE_NAME
from .pipeline.project import Project, find_root, load_project
from .pipeline.toolchain import (
    KFUNC_BPFTOOL,
    Libbpf,
    _VersionCache,
    clang_at,
    clang_features,
    find_bpftool,
    find_cc,
    find_clang,
    find_libbpf,
    find_llvm_strip,
    installed_clangs,
    libbpf_from_source,
)


def warn_old_bpftool(cache: _VersionCache, configured: str, root: Path | None) -> None:
    """bpftool before 7.3 writes vmlinux.h without kfunc prototypes (__ksym externs)."""
    try:
        tool = find_bpftool(cache, configured, root)
        version = tuple(int(p) for p in tool.version.split(".")[:2])
    except (BpfBuildError, ValueError):
        return
    if version < KFUNC_BPFTOOL:
        click.echo(
            f"{'':<11} warning: bpftool {tool.version} is older than "
            f"{'.'.join(map(str, KFUNC_BPFTOOL))}: the vmlinux.h it generates has no "
            "kfunc prototypes (programs calling kfuncs must declare them)"
        )
        click.echo(
            f"{'':<11} hint: ./scripts/setup --backports installs bpftool 7.5 from "
            "bookworm-backports; or set [toolchain] bpftool or $BPFTOOL"
        )


def report_dropped_sections(cache: _VersionCache, project: Project) -> None:
    """The sections the project's sources name that the found bpftool drops, and which
    bpftool writes their skeletons instead (bpfcheck.bpftool_for_sections)."""
    from .cache import read_entry
    from .kernels.tools import TOOLS_KIND, bpftool_key
    from .pipeline.bpfcheck import sections_named, unreadable_sections
    from .pipeline.toolchain import chosen_bpftool

    configured = project.config.toolchain.bpftool
    try:
        tool = find_bpftool(cache, configured, project.root)
    except BpfBuildError:
        return
    dropped = unreadable_sections(sections_named(project), tool)
    if not dropped:
        return
    names = ", ".join(need.name for need in dropped)
    if chosen_bpftool(configured, project.root) is not None:
        instead = "the build refuses their skeletons (you chose this bpftool)"
    elif read_entry(TOOLS_KIND, bpftool_key(host_arch().debian_arch)):
        instead = "skeletons are written with bookworm-backports' bpftool, in the cache"
    else:
        instead = "the build fetches bookworm-backports' bpftool 7.5 for the skeletons"
    click.echo(
        f"{'':<11} note: the sources name {names}, which bpftool {tool.version} drops: {instead}"
    )


def report_clangs(cache: _VersionCache) -> None:
    """One line per clang in PATH (clang, clang-NN): its version and the BPF features
    it compiles (-mcpu=v4: clang 18; arena address space casts: clang 19), so that a
    project can choose one with [toolchain] clang."""
    yes = {True: "yes", False: "no"}
    for name, path in installed_clangs():
        try:
            tool = clang_at(path, cache)
        except BpfBuildError as err:
            click.echo(f"{'':<11} {name}: not usable: {err.message}")
            continue
        features = clang_features(path, cache)
        click.echo(
            f"{'':<11} {name:<9} {tool.version:<7} -mcpu=v4: {yes[features.mcpu_v4]:<3} "
            f"arena: {yes[features.arena]:<3} {path}"
            + (f" -> {os.path.realpath(path)}" if os.path.islink(path) else "")
        )


def cross_checks(arch: Arch) -> list[tuple[str, bool, str, bool]]:
    """(what, present, Debian package, required) for what building (and testing) a
    cross arch needs beyond clang and bpftool, read from the arch table."""
    lib = arch.multiarch_lib_dir
    sysroot = arch.cross_libc_dir
    checks = [
        (
            f"C compiler {arch.cross_cc}",
            bool(shutil.which(arch.cross_cc)),
            arch.cc_package,
            True,
        ),
        (
            f"C library {sysroot}/lib/libc.a",
            Path(sysroot, "lib/libc.a").is_file(),
            arch.libc_package,
            True,
        ),
        (
            f"strip {arch.cross_strip}",
            bool(shutil.which(arch.cross_strip)),
            arch.binutils_package,
            False,
        ),
        (
            f"uapi headers {arch.multiarch_include_dir}/asm",
            Path(arch.multiarch_include_dir, "asm/types.h").is_file(),
            arch.uapi_package,
            True,
        ),
    ]
    for library in LIBRARIES:
        files = [Path(lib, library.archive)]
        if library.pkg_config == "libbpf":  # its flags come from pkg-config
            files.append(Path(lib, "pkgconfig", "libbpf.pc"))
        present = all(path.is_file() for path in files)
        what = f"{library.pkg_config} {files[0]}"
        checks.append((what, present, arch.library_package(library), True))
    runner = bool(shutil.which(arch.qemu_user))
    checks.append((f"runner {arch.qemu_user}", runner, arch.qemu_user_package, False))
    return checks


def install_commands(arch: Arch, packages: list[str]) -> list[str]:
    """The Debian commands that install packages (adding the dpkg arch if needed)."""
    commands = []
    foreign = any(p.endswith(f":{arch.debian_arch}") for p in packages)
    if foreign and arch != host_arch() and arch.debian_arch not in _dpkg_arches():
        commands.append(f"dpkg --add-architecture {arch.debian_arch}")
    commands += ["apt-get update", "apt-get install -y " + " ".join(packages)]
    return commands


def _dpkg_arches() -> set[str]:
    try:
        native = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True
        ).stdout.split()
        foreign = subprocess.run(
            ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True
        ).stdout.split()
    except OSError:
        return set()
    return set(native) | set(foreign)


def _report_cross(arch: Arch) -> int:
    """Print the cross checks of arch; the number of required items missing."""
    missing: list[str] = []
    optional: list[str] = []
    for what, present, package, required in cross_checks(arch):
        state = "ok" if present else ("MISSING" if required else "missing (optional)")
        click.echo(f"{arch.name + ':':<11} {what}: {state} ({package})")
        if not present:
            (missing if required else optional).append(package)
    if missing or optional:
        click.echo(
            f"{'':<11} to build apps for {arch.name} (BPF objects alone need none of "
            "these but the uapi headers, and those only for <linux/*.h>), run:"
        )
        for command in install_commands(arch, missing + optional):
            click.echo(f"{'':<11}   {command}")
        click.echo(f"{'':<11} or: scripts/setup --arch {arch.name}")
    return len(missing)


def run_doctor(
    directory: str | None, arch_names: tuple[str, ...] = (), btf_path: str = KERNEL_BTF
) -> int:
    """Print one line per check; return 1 when a build cannot work.
    arch_names: check these arches (a cross arch: what its build needs, with the
    Debian commands); btf_path: where the running kernel's BTF is read (tests point it
    elsewhere)."""
    arches = [host_arch()]
    cache_dir = None
    has_apps = True
    btf_needed = True
    project = None
    try:
        project = load_project(find_root(Path(directory) if directory else Path.cwd()))
        arches, cache_dir = project.arches, state_dir(project.root)
        has_apps = bool(project.apps) or bool(arch_names)
        host_source = project.vmlinux.get(host_arch().name)
        btf_needed = host_source is not None and host_source.path == KERNEL_BTF
        click.echo(f"project:    {project.root}")
    except BpfBuildError:
        pass
    if arch_names:
        arches = [get_arch(name) for name in arch_names]
    failures = 0
    if cache_dir is not None:
        folder = cache_dir if cache_dir.exists() else cache_dir.parent
        if not os.access(folder, os.W_OK):
            failures += 1
            click.echo(
                f"{'state:':<11} MISSING: cannot write {folder} (builds keep their state there)"
            )
            click.echo(f"{'':<11} hint: run bpfbuild as a user who can write the project folder")
            cache_dir = None
    cache = _VersionCache(cache_dir / TOOLCHAIN_CACHE_NAME if cache_dir else None)

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
            libbpf = getattr(result, "libbpf_version", "")  # bpftool's
            click.echo(
                f"{label:<11} {result.path} ({result.version}"
                + (f", libbpf {libbpf})" if libbpf else ")")
            )
        else:
            click.echo(f"{label:<11} {result}")

    configured_clang = project.config.toolchain.clang if project else ""
    check(
        "clang:",
        lambda: find_clang(cache, configured_clang, project.root if project else None),
    )
    if configured_clang and os.environ.get("CLANG"):
        click.echo(f"{'':<11} ($CLANG wins over [toolchain] clang = '{configured_clang}')")
    report_clangs(cache)
    configured = project.config.toolchain.bpftool if project else ""
    check("bpftool:", lambda: find_bpftool(cache, configured, project.root if project else None))
    warn_old_bpftool(cache, configured, project.root if project else None)
    if project:
        report_dropped_sections(cache, project)
    check("llvm-strip:", lambda: find_llvm_strip(cache), required=False)
    for arch in arches:
        if arch != host_arch() and not has_apps:
            click.echo(f"{arch.name + ':':<11} BPF objects only: no cross toolchain needed")
            continue
        if arch != host_arch():
            failures += _report_cross(arch)
            continue
        check(f"cc/{arch.name}:", lambda arch=arch: find_cc(arch, cache))
        if project and project.libbpf:
            check(
                f"libbpf/{arch.name}:",
                lambda arch=arch: _libbpf_source_line(project, arch, cache),
            )
        else:
            check(
                f"libbpf/{arch.name}:",
                lambda arch=arch: _libbpf_line(find_libbpf(arch, cache)),
            )
    cache.save()
    click.echo(f"kernel:     {platform.release()} ({platform.machine()})")
    btf_readable, btf_status = kernel_btf_status(btf_path)
    click.echo(f"kernel BTF: {btf_status}")
    if btf_needed and not btf_readable:
        failures += 1  # the host arch's vmlinux.h is made from it
        click.echo(
            f"{'':<11} hint: vmlinux.h for {host_arch().name} is generated from it: "
            "make it readable, or set [vmlinux] in bpfbuild.toml to a BTF file or a header"
        )
    loadable, how = can_load_bpf()
    click.echo(f"load BPF:   {how}")
    mount = tracefs_mount()
    click.echo(f"tracefs:    {mount or f'not mounted ({shlex.join(MOUNT_TRACEFS)})'}")
    if failures:
        click.echo(f"doctor: {failures} required check(s) failed: builds cannot work")
        return 1
    click.echo("doctor: builds can work" + ("" if loadable else "; loading BPF here cannot"))
    return 0


def _libbpf_line(libbpf: Libbpf) -> str:
    return f"libbpf {libbpf.version}: {' '.join(libbpf.static_libs)}"


def _libbpf_source_line(project: Project, arch: Arch, cache: _VersionCache) -> str:
    assert project.libbpf is not None
    tree = project.libbpf
    libs = libbpf_from_source(arch, tree, project.root, cache).static_libs
    return (
        f"libbpf {tree.version} from source {tree.root.relative_to(project.root)}: {' '.join(libs)}"
    )
