"""The `bpfbuild` command line: a thin click layer over the core API."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import traceback
from pathlib import Path

import click
import click.shell_completion

from . import __version__
from .errors import BpfBuildError
from .build.layout import OUTPUT_DIR, Layout, state_dir
from .build.project import find_root, load_project


def handle_errors(func):
    """Print expected errors as `error:` + `hint:` lines and exit 1; never a traceback.
    Anything else is a bug in bpfbuild, and says so."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BpfBuildError as err:
            click.echo(f"error: {err.message}", err=True)
            if err.hint:
                click.echo(f"hint: {err.hint}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - the last resort: report a bug
            if os.environ.get("BPFBUILD_DEBUG"):
                traceback.print_exc()
            click.echo(f"error: internal error: {type(err).__name__}: {err}", err=True)
            click.echo("hint: this is a bug in bpfbuild; rerun with BPFBUILD_DEBUG=1 "
                       "and report the traceback", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bpfbuild")
def main() -> None:
    """Build, verify and test libbpf/eBPF C projects."""


def _project_root(directory: str | None) -> Path:
    return find_root(Path(directory) if directory else Path.cwd())


# -- shell completion (click's: `_BPFBUILD_COMPLETE=bash_source bpfbuild`) --------------

def _completing_project(ctx: click.Context):
    """The project the command line names (-C) or the one around the current folder;
    None when there is none or it does not load: completion never prints an error."""
    try:
        return load_project(_project_root(ctx.params.get("directory")))
    except (BpfBuildError, OSError):
        return None


def _complete_apps(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    project = _completing_project(ctx)
    return [name for name in (project.apps if project else ()) if name.startswith(incomplete)]


def _complete_objects(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    project = _completing_project(ctx)
    return [name for name in (project.bpf_objects if project else ())
            if name.startswith(incomplete)]


def _complete_arches(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from .arch import ARCHES

    project = _completing_project(ctx)
    names = [a.name for a in project.arches] if project else list(ARCHES)
    return [name for name in names if name.startswith(incomplete)]


def _complete_templates(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from .scaffold import available_templates

    return [t.name for t in available_templates() if t.name.startswith(incomplete)]


def _complete_folders(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[click.shell_completion.CompletionItem]:
    """Let the shell complete folder names."""
    return [click.shell_completion.CompletionItem(incomplete, type="dir")]


dir_option = click.option("-C", "--directory", metavar="DIR", shell_complete=_complete_folders,
                          help="Project folder (default: the nearest with bpfbuild.toml).")
jobs_option = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                           help="Parallel jobs (default: number of cores).")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show full commands.")
arch_option = click.option("--arch", "arches", multiple=True, metavar="ARCH",
                           shell_complete=_complete_arches,
                           help="Only these arches (default: all of the project's).")


@main.command()
@click.argument("apps", nargs=-1, shell_complete=_complete_apps)
@jobs_option
@verbose_option
@arch_option
@dir_option
@handle_errors
def build(apps: tuple[str, ...], jobs: int | None, verbose: bool, arches: tuple[str, ...],
          directory: str | None) -> None:
    """Build every app (or APPS) for every arch."""
    from .commands import build_project

    sys.exit(build_project(_project_root(directory), apps, jobs, verbose, arches))


@main.command()
@click.argument("objects", nargs=-1, shell_complete=_complete_objects)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@click.option("--update-baseline", is_flag=True,
              help="Write the baseline file (commit it) instead of comparing with it.")
@click.option("--require", is_flag=True,
              help="Fail instead of skipping when BPF programs cannot be loaded (CI).")
@jobs_option
@verbose_option
@dir_option
@handle_errors
def verify(objects: tuple[str, ...], fmt: str, update_baseline: bool, require: bool,
           jobs: int | None, verbose: bool, directory: str | None) -> None:
    """Load every program (of OBJECTS) in the running kernel and check the verifier."""
    from .commands import verify_project

    sys.exit(verify_project(_project_root(directory), objects, jobs, verbose, fmt,
                            update_baseline, require))


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--junit-xml", metavar="PATH", help="Write a JUnit XML report of the tests.")
@click.option("--require", is_flag=True, help="Fail when BPF programs cannot be loaded.")
@jobs_option
@verbose_option
@dir_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def test(junit_xml: str | None, require: bool, jobs: int | None, verbose: bool,
         directory: str | None, pytest_args: tuple[str, ...]) -> None:
    """Build, verify, then run the project's tests/ with pytest (args after -- go to pytest)."""
    from .commands import test_project

    sys.exit(test_project(_project_root(directory), jobs, verbose, junit_xml, pytest_args, require))


@main.command()
@dir_option
@handle_errors
def clean(directory: str | None) -> None:
    """Delete build outputs (output/) and build state (.bpfbuild/)."""
    root = _project_root(directory)
    from .build.engine import acquire_lock

    acquire_lock(root)
    for path in (root / OUTPUT_DIR, state_dir(root)):
        if path.is_dir():
            for child in path.iterdir():
                if child.name == "lock":
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            click.echo(f"  CLEAN   {path.relative_to(root)}/")


@main.command("list")
@dir_option
@handle_errors
def list_(directory: str | None) -> None:
    """Show apps, BPF objects, sources, outputs and vmlinux.h sources."""
    project = load_project(_project_root(directory))
    click.echo(f"project {project.name} ({project.root})")
    for arch in project.arches:
        click.echo(f"arch {arch.name}: vmlinux.h from {project.vmlinux[arch.name].describe()}")
    for app in project.apps.values():
        click.echo(f"app {app.name}")
        click.echo(f"  bpf objects: {', '.join(app.bpf_objects) or '-'}")
        click.echo(f"  sources:     {', '.join(app.sources)}")
        for arch in project.arches:
            click.echo(f"  output:      {Layout(project.root, arch.name).executable(app.name).relative_to(project.root)}")
    for obj in project.bpf_objects.values():
        click.echo(f"bpf object {obj.name}: {obj.source} -> skeleton {obj.name}.skel.h ({obj.skeleton_name})")
        for arch in project.arches:
            click.echo(f"  output:      {Layout(project.root, arch.name).bpf_object(obj.name).relative_to(project.root)}")


@main.command()
@dir_option
@handle_errors
def doctor(directory: str | None) -> None:
    """Check the toolchain and the kernel; exit non-zero when a build cannot work."""
    from .doctor import run_doctor

    sys.exit(run_doctor(directory))


@main.command()
@click.argument("directory", required=False, default=".", shell_complete=_complete_folders)
@click.option("--name", help="App name, a C identifier (default: the folder's name).")
@click.option("--template", "-t", default="tracepoint", show_default=True,
              shell_complete=_complete_templates,
              help="Program type to start from (see --list).")
@click.option("--list", "list_templates", is_flag=True, help="List templates and exit.")
@click.option("--force", is_flag=True, help="Write into a non-empty folder.")
@handle_errors
def init(directory: str, name: str | None, template: str, list_templates: bool, force: bool) -> None:
    """Create a project that builds and runs as is."""
    from .scaffold import available_templates, create_project

    if list_templates:
        for entry in available_templates():
            click.echo(f"{entry.name:<12} {entry.description}")
        return
    target = Path(directory)
    created = create_project(target, name, template, force)
    click.echo(f"created {created.name} in {target}: cd {target} && bpfbuild build && "
               f"sudo ./output/{created.arch}/{created.name}")


@main.group()
def cache() -> None:
    """Show or empty the user's cache (vmlinux.h, PCH, kernels), shared by every project."""


def _size(n: float) -> str:
    """Bytes for people: 812 B, 2.7 MiB, 1.9 GiB."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


@cache.command("info")
@handle_errors
def cache_info() -> None:
    """The cache's folder, its size per kind and its entries, least recently used first."""
    import time

    from .cache import CACHE_ENV, SIZE_ENV, cache_root, entries, size_limit

    present = entries()
    total = sum(e.size for e in present)
    click.echo(f"cache {cache_root()} (${CACHE_ENV}): {_size(total)} of {_size(size_limit())} "
               f"(${SIZE_ENV}), {len(present)} entries")
    for kind in sorted({e.kind for e in present}):
        of_kind = [e for e in present if e.kind == kind]
        click.echo(f"{kind}: {len(of_kind)} entries, {_size(sum(e.size for e in of_kind))}")
        for entry in of_kind:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            click.echo(f"  {entry.key}  {_size(entry.size):>10}  last used {used}")


@cache.command("clean")
@click.option("--kind", shell_complete=lambda _ctx, _param, incomplete: _cache_kinds(incomplete),
              help="Only this kind of entry (see `bpfbuild cache info`).")
@handle_errors
def cache_clean(kind: str | None) -> None:
    """Delete every entry of the cache (or of one kind); builds refill it as needed."""
    from .cache import cache_root, clean

    if kind is not None and (not kind or "/" in kind or kind.startswith(".")):
        raise BpfBuildError(f"invalid cache kind '{kind}'",
                            hint="kinds: " + (", ".join(_cache_kinds("")) or "none yet"))
    removed = clean(kind)
    click.echo(f"removed {len(removed)} entries, {_size(sum(e.size for e in removed))} "
               f"from {cache_root()}")


def _cache_kinds(incomplete: str) -> list[str]:
    from .cache import entries

    return sorted({e.kind for e in entries() if e.kind.startswith(incomplete)})


if __name__ == "__main__":
    main()
