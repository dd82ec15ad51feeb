"""The `bpfbuild` command line: a thin click layer over the core API."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import traceback
from pathlib import Path

import click

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


dir_option = click.option("-C", "--directory", metavar="DIR",
                          help="Project folder (default: the nearest with bpfbuild.toml).")
jobs_option = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                           help="Parallel jobs (default: number of cores).")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show full commands.")
arch_option = click.option("--arch", "arches", multiple=True, metavar="ARCH",
                           help="Only these arches (default: all of the project's).")


@main.command()
@click.argument("apps", nargs=-1)
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
@click.argument("objects", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@click.option("--update-baseline", is_flag=True,
              help="Write the baseline file (commit it) instead of comparing with it.")
@click.option("--require", is_flag=True,
              help="Fail instead of skipping when BPF programs cannot be loaded (CI).")
@click.option("--kernel", "kernels", multiple=True, metavar="KERNEL",
              help="Verify on this kernel: host, debian:5.10, debian:6.1, debian:6.12, a Debian "
                   "kernel package, or a kernel image; repeatable (default: [verify] kernels, "
                   "else host). Other kernels than host boot in a VM.")
@click.option("--arch", "arches", multiple=True, metavar="ARCH[,ARCH]",
              help="Verify for these arches (default: [verify] arches, else the project's).")
@click.option("--matrix-json", is_flag=True,
              help="Print the (kernel, arch) matrix for GitHub Actions' strategy.matrix and exit.")
@click.option("--merge", "merge", is_flag=True,
              help="Treat the arguments as --format json results of matrix jobs: print them "
                   "combined with the matrix, exit non-zero on any failure.")
@jobs_option
@verbose_option
@dir_option
@handle_errors
def verify(objects: tuple[str, ...], fmt: str, update_baseline: bool, require: bool,
           kernels: tuple[str, ...], arches: tuple[str, ...], matrix_json: bool, merge: bool,
           jobs: int | None, verbose: bool, directory: str | None) -> None:
    """Load every program (of OBJECTS) in the running kernel, or in VMs of other
    kernels and arches, and check the verifier's verdicts."""
    from . import commands

    if merge:
        sys.exit(commands.merge_results([Path(o) for o in objects], fmt))
    root = _project_root(directory)
    if matrix_json:
        import json

        cells = commands.matrix_cells(load_project(root), kernels, arches)
        click.echo(json.dumps({"include": cells}))
        return
    sys.exit(commands.verify_project(root, objects, jobs, verbose, fmt, update_baseline,
                                     require, kernels, arches))


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
@click.argument("directory", required=False, default=".")
@click.option("--name", help="App name, a C identifier (default: the folder's name).")
@click.option("--template", "-t", default="tracepoint", show_default=True,
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


if __name__ == "__main__":
    main()
