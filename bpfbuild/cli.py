"""The `bpfbuild` command line: a thin click layer over the core API."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click
import click.shell_completion

from . import __version__
from .errors import BpfBuildError
from .pipeline.fastpath import MAX_JOBS
from .pipeline.layout import Layout, state_dir
from .pipeline.names import LOCK_NAME, OUTPUT_DIR
from .pipeline.project import find_root, load_project


def fail(message: str, hint: str | None, code: int = 1) -> NoReturn:
    """Print the one `error:` line and the one `hint:` line, and exit with code. Bytes of
    a name that are not UTF-8 (os's surrogates) show as backslash-x and two hex digits."""
    click.echo(f"error: {_bytes_shown(message)}", err=True)
    if hint:
        click.echo(f"hint: {_bytes_shown(hint)}", err=True)
    sys.exit(code)


def _bytes_shown(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def handle_errors(func):
    """The one door of every error a command raises: a BpfBuildError (or an OSError naming
    its file) is one `error:` line and one `hint:` line, exit 1, never a traceback.
    Anything else is a bug in bpfbuild, and says so (report_bug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            # from here Ctrl-C stops the command's steps (launcher.early_interrupt before)
            before = signal.signal(signal.SIGINT, _first_interrupt)
            _interrupted[0] = False
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            _say_interrupted()
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - every error goes through the one door
            report(err, verbose=bool(kwargs.get("verbose")))
        finally:
            if main_thread and not _interrupted[0] and before is not None:
                signal.signal(signal.SIGINT, before)  # a caller in-process gets its own back

    return wrapper


_interrupted = [False]
"""Whether `interrupted` was said: one line, however many Ctrl-C."""


def _say_interrupted() -> None:
    """The one line of Ctrl-C; later Ctrl-C are ignored while bpfbuild exits (Python's
    own handler is gone by then: one would kill it by SIGINT, not exit 130)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _interrupted[0]:
        _interrupted[0] = True
        click.echo("interrupted", err=True)


def _first_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C in a command: KeyboardInterrupt, which stops its steps and cleans up."""
    signal.signal(signal.SIGINT, _another_interrupt)
    raise KeyboardInterrupt


def _another_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C again while the first one is handled: stop now, as a kill would (builds
    are safe to kill), with the one line and 130 still."""
    _say_interrupted()
    sys.stderr.flush()
    os._exit(130)


def report(err: Exception, verbose: bool = False) -> NoReturn:
    """Print an error the way every command does, and exit with its code."""
    if isinstance(err, BpfBuildError):
        fail(err.message, err.hint)
    if isinstance(err, BrokenPipeError) or (isinstance(err, OSError) and err.errno == errno.EPIPE):
        # `bpfbuild build | head -1`: the reader is gone; stop quietly, as a shell's
        # SIGPIPE would
        _drop_stdout()
        sys.exit(BROKEN_PIPE_EXIT)
    if isinstance(err, OSError) and err.filename is None and err.errno in _OUTPUT_FULL:
        _drop_stdout()
        fail(
            f"cannot write bpfbuild's output: {err.strerror}",
            "free space where its standard output goes (a file, a disk), or send it "
            "elsewhere (`>/dev/null` drops it)",
        )
    if isinstance(err, RuntimeError) and str(err).startswith(_LINK_LOOP):
        # Path.resolve() of a link loop (Python < 3.13), wherever a path is resolved
        fail(
            f"{str(err)[len(_LINK_LOOP) :].strip(chr(39))} is a symbolic link loop",
            "remove or replace the link: it leads, through others or itself, back to itself",
        )
    if isinstance(err, FileNotFoundError) and err.filename is None and _cwd_gone():
        fail(
            "the current folder no longer exists (it was deleted or moved)",
            "cd into the project again, or give its folder with -C DIR",
        )
    if isinstance(err, OSError) and err.errno in _NO_PERMISSION:
        # A folder bpfbuild must write (.bpfbuild/, output/, an init target)
        # is read-only or belongs to another user.
        fail(
            f"cannot access {err.filename or 'a file'}: {err.strerror}",
            "run bpfbuild as a user who can write the project folder, "
            "or fix its permissions (it may be on a read-only mount)",
        )
    if isinstance(err, OSError) and err.filename is not None:
        # A full disk, a file removed while bpfbuild ran, a link loop...
        fail(
            f"cannot access {err.filename}: {err.strerror}",
            "check that file and the free space of its file system, then run again",
        )
    report_bug(err, verbose)


BROKEN_PIPE_EXIT = 141
"""The exit code when the reader of bpfbuild's output went away: a shell's for SIGPIPE."""
_OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)
"""Errors of a write to standard output (an OSError naming no file)."""


_LINK_LOOP = "Symlink loop from "
"""How pathlib's resolve() begins the RuntimeError of a link loop."""


def _drop_stdout() -> None:
    """Send what is left in stdout's buffer to /dev/null: Python's flush at exit would
    fail again, with a message of its own."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def _cwd_gone() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


INTERNAL_ERROR_EXIT = 2
"""The exit code of a bug in bpfbuild (an exception of no BpfBuildError kind)."""


def report_bug(err: BaseException, verbose: bool = False) -> NoReturn:
    """An exception bpfbuild did not expect: one line naming it, and its traceback only
    with -v or BPFBUILD_DEBUG=1."""
    if verbose or os.environ.get("BPFBUILD_DEBUG"):
        traceback.print_exception(err)
    lines = str(err).strip().splitlines() or [""]
    text = lines[0] + (" ..." if len(lines) > 1 else "")
    fail(
        f"internal error: {type(err).__name__}: {text}".rstrip(": "),
        "this is a bug in bpfbuild; run again with -v (or BPFBUILD_DEBUG=1) to see "
        "the traceback, and report it",
        INTERNAL_ERROR_EXIT,
    )


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""click >= 8.2 raises it for a bare `bpfbuild`; its message is the help text."""


class _Group(click.Group):
    """click's usage errors (unknown option, bad value) as `error:` + `hint:` lines too."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Abort:
            _say_interrupted()
            sys.exit(130)
        except _NO_ARGS_IS_HELP as err:
            click.echo(err.format_message(), err=True)  # the help text, as click shows it
            sys.exit(err.exit_code)
        except click.ClickException as err:
            context = getattr(err, "ctx", None)
            command = context.command_path if context else "bpfbuild"
            fail(err.format_message(), f"see `{command} --help`", err.exit_code)


@click.group(name="bpfbuild", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    return [
        name for name in (project.bpf_objects if project else ()) if name.startswith(incomplete)
    ]


def _complete_arches(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from .arch import ARCHES

    project = _completing_project(ctx)
    names = [a.name for a in project.arches] if project else list(ARCHES)
    return [name for name in names if name.startswith(incomplete)]


def _complete_templates(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from .scaffold import available_templates

    return [t.name for t in available_templates() if t.name.startswith(incomplete)]


def _complete_folders(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Let the shell complete folder names."""
    return [click.shell_completion.CompletionItem(incomplete, type="dir")]


def _no_blank(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    """A repeatable option whose value (or an item of its comma list) is blank names
    nothing: a usage error, not the default silently."""
    for value in values:
        if not value.strip() or any(not item.strip() for item in value.split(",")):
            raise click.BadParameter(f"{value!r} names nothing (a blank item)", ctx, param)
    return values


dir_option = click.option(
    "-C",
    "--directory",
    metavar="DIR",
    shell_complete=_complete_folders,
    type=click.Path(exists=True, file_okay=False),
    help="Project folder (default: the nearest with bpfbuild.toml).",
)
jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1, max=MAX_JOBS),
    default=None,
    help="Parallel jobs (default: number of cores).",
)
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show full commands.")
keep_going_option = click.option(
    "-k",
    "--keep-going",
    is_flag=True,
    help="Build everything that does not depend on a failed step, then list what failed.",
)
arch_option = click.option(
    "--arch",
    "arches",
    multiple=True,
    metavar="ARCH",
    callback=_no_blank,
    shell_complete=_complete_arches,
    help="Only these arches (default: all of the project's).",
)


@main.command()
@click.argument("apps", nargs=-1, shell_complete=_complete_apps)
@jobs_option
@verbose_option
@keep_going_option
@arch_option
@dir_option
@handle_errors
def build(
    apps: tuple[str, ...],
    jobs: int | None,
    verbose: bool,
    keep_going: bool,
    arches: tuple[str, ...],
    directory: str | None,
) -> None:
    """Build every app (or APPS) for every arch."""
    from .commands import build_project

    sys.exit(build_project(_project_root(directory), apps, jobs, verbose, arches, keep_going))


@main.command()
@click.argument("objects", nargs=-1, shell_complete=_complete_objects)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Write the baseline file (commit it) instead of comparing with it.",
)
@click.option(
    "--require",
    is_flag=True,
    help="Fail instead of skipping when BPF programs cannot be loaded (CI).",
)
@click.option(
    "--kernel",
    "kernels",
    multiple=True,
    metavar="KERNEL",
    callback=_no_blank,
    help="Verify on this kernel: host, debian:5.10, debian:6.1, debian:6.12, debian:7.3, a Debian "
    "kernel package, or a kernel image; repeatable (default: [verify] kernels, "
    "else host). Other kernels than host boot in a VM.",
)
@click.option(
    "--arch",
    "arches",
    multiple=True,
    metavar="ARCH[,ARCH]",
    callback=_no_blank,
    help="Verify for these arches (default: [verify] arches, else the project's).",
)
@click.option(
    "--matrix-json",
    is_flag=True,
    help="Print the (kernel, arch) matrix for GitHub Actions' strategy.matrix and exit.",
)
@click.option(
    "--list-kernels",
    is_flag=True,
    help="Print what each kernel resolves to per arch (package, version, suite, release), "
    "from the cache, and exit.",
)
@click.option(
    "--merge",
    "merge",
    is_flag=True,
    help="Treat the arguments as --format json results of matrix jobs: print them "
    "combined with the matrix, exit non-zero on any failure.",
)
@jobs_option
@verbose_option
@dir_option
@handle_errors
def verify(
    objects: tuple[str, ...],
    fmt: str,
    update_baseline: bool,
    require: bool,
    kernels: tuple[str, ...],
    arches: tuple[str, ...],
    matrix_json: bool,
    list_kernels: bool,
    merge: bool,
    jobs: int | None,
    verbose: bool,
    directory: str | None,
) -> None:
    """Load every program (of OBJECTS) in the running kernel, or in VMs of other
    kernels and arches, and check the verifier's verdicts."""
    from . import commands

    if merge:
        sys.exit(commands.merge_results([Path(o) for o in objects], fmt, require))
    root = _project_root(directory)
    if list_kernels:
        sys.exit(commands.list_kernels(root, kernels, arches))
    if matrix_json:
        import json

        cells = commands.matrix_cells(load_project(root), kernels, arches)
        click.echo(json.dumps({"include": cells}))
        return
    sys.exit(
        commands.verify_project(
            root, objects, jobs, verbose, fmt, update_baseline, require, kernels, arches
        )
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--junit-xml", metavar="PATH", help="Write a JUnit XML report of the tests.")
@click.option("--require", is_flag=True, help="Fail when BPF programs cannot be loaded.")
@jobs_option
@verbose_option
@keep_going_option
@dir_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def test(
    junit_xml: str | None,
    require: bool,
    jobs: int | None,
    verbose: bool,
    keep_going: bool,
    directory: str | None,
    pytest_args: tuple[str, ...],
) -> None:
    """Build, verify, then run the project's tests/ with pytest (args after -- go to pytest)."""
    from .commands import test_project

    sys.exit(
        test_project(
            _project_root(directory), jobs, verbose, junit_xml, pytest_args, require, keep_going
        )
    )


@main.command()
@dir_option
@handle_errors
def clean(directory: str | None) -> None:
    """Delete build outputs (output/) and build state (.bpfbuild/).

    A symbolic link is removed as a link, never followed: what it points to is left
    alone, wherever it is."""
    root = _project_root(directory)
    from .pipeline.engine import acquire_lock

    click.echo(f"cleaning the project in {root}")  # never a parent's by surprise
    folders = (root / OUTPUT_DIR, state_dir(root))
    for path in folders:
        if path.is_symlink():  # before the lock, which would be written through it
            path.unlink()
            click.echo(f"  CLEAN   {path.name} (a symbolic link; removed, its target left alone)")
        elif path.exists() and not path.is_dir():
            path.unlink()
            click.echo(f"  CLEAN   {path.name} (a file where bpfbuild keeps a folder)")
    acquire_lock(root)
    for path in folders:
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                if path == state_dir(root) and child.name == LOCK_NAME:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)  # never follows the links inside
                else:
                    child.unlink()
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
    if project.libbpf:
        click.echo(
            f"libbpf {project.libbpf.version}: built from "
            f"{project.libbpf.root.relative_to(project.root)} ([libbpf] source)"
        )
    else:
        click.echo("libbpf: the system's, through pkg-config")
    folders = ", ".join(f"{folder}/" for folder in project.src_folders) or "none"
    click.echo(f"sources discovered in: {folders} ([build] src)")
    for app in project.apps.values():
        click.echo(f"app {app.name}")
        click.echo(f"  bpf objects: {', '.join(app.bpf_objects) or '-'}")
        click.echo(f"  sources:     {', '.join(app.sources)}")
        if app.aliases:
            click.echo(f"  aliases:     {', '.join(app.aliases)}")
        for label, flags in (("cflags", app.cflags), ("ldflags", app.ldflags), ("libs", app.libs)):
            if flags:
                click.echo(f"  {label + ':':<12} {' '.join(flags)}")
        for arch in project.arches:
            click.echo(
                f"  output:      {Layout(project.root, arch.name).executable(app.name).relative_to(project.root)}"
            )
    for obj in project.bpf_objects.values():
        click.echo(
            f"bpf object {obj.name}: {', '.join(obj.sources)} -> skeleton "
            f"{obj.skeleton_header} ({obj.skeleton_name})"
        )
        if obj.libs:
            click.echo(f"  libs:        {', '.join(obj.libs)}")
        if obj.bpf_cflags:
            click.echo(f"  bpf_cflags:  {' '.join(obj.bpf_cflags)}")
        for arch in project.arches:
            click.echo(
                f"  output:      {Layout(project.root, arch.name).bpf_object(obj.name).relative_to(project.root)}"
            )
    for lib in project.bpf_libs.values():
        users = [obj.name for obj in project.bpf_objects.values() if lib.name in obj.libs]
        click.echo(
            f"bpf lib {lib.name}: {', '.join(lib.sources)} -> linked into "
            + (", ".join(users) or "no object")
        )
    for source, pattern in project.excluded.items():
        click.echo(f'excluded {source} (by "{pattern}" in [build] exclude)')
    for header in project.generated:
        click.echo(f"generated {header} ([build] generated)")
    if project.config.build.pch is not False:
        for source, why_not in project.pch_verdicts().items():
            if why_not:
                click.echo(f"no pch for {source}: {why_not}")


@main.command()
@click.option(
    "--arch",
    "arches",
    multiple=True,
    metavar="ARCH",
    help="Check what building for ARCH needs, with the Debian commands that "
    "install it (default: the project's arches, or the host's).",
)
@dir_option
@handle_errors
def doctor(arches: tuple[str, ...], directory: str | None) -> None:
    """Check the toolchain and the kernel; exit non-zero when a build cannot work."""
    from .doctor import run_doctor

    sys.exit(run_doctor(directory, arches))


@main.command()
@click.argument("directory", required=False, default=".", shell_complete=_complete_folders)
@click.option("--name", help="App name, a C identifier (default: the folder's name).")
@click.option(
    "--template",
    "-t",
    default="tracepoint",
    show_default=True,
    shell_complete=_complete_templates,
    help="Program type to start from (see --list).",
)
@click.option("--list", "list_templates", is_flag=True, help="List templates and exit.")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the template's files that already exist (default: keep them).",
)
@handle_errors
def init(
    directory: str, name: str | None, template: str, list_templates: bool, force: bool
) -> None:
    """Create a project that builds and runs as is."""
    from .scaffold import available_templates, create_project, installed_source

    if list_templates:
        for entry in available_templates():
            click.echo(f"{entry.name:<12} {entry.description}")
        return
    target = Path(directory)
    source = installed_source()
    created = create_project(target, name, template, force, source)
    for path in created.kept:
        click.echo(f"kept      {path} (it exists; --force overwrites it)")
    for path in created.overwritten:
        click.echo(f"overwrote {path}")
    click.echo(
        f"created {created.name} in {target}: cd {target} && bpfbuild build && "
        f"sudo ./output/{created.arch}/{created.name}"
    )
    if source is None:
        click.echo(
            "note: its CI installs bpfbuild from the repository variable BPFBUILD_SOURCE "
            "(this bpfbuild was not installed from a URL CI can fetch, and bpfbuild is not "
            'on PyPI): set it to e.g. "bpfbuild @ git+https://github.com/OWNER/bpfbuild@COMMIT"'
        )


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
    click.echo(
        f"cache {cache_root()} (${CACHE_ENV}): {_size(total)} of {_size(size_limit())} "
        f"(${SIZE_ENV}), {len(present)} entries"
    )
    for kind in sorted({e.kind for e in present}):
        of_kind = [e for e in present if e.kind == kind]
        click.echo(f"{kind}: {len(of_kind)} entries, {_size(sum(e.size for e in of_kind))}")
        for entry in of_kind:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            click.echo(f"  {entry.key}  {_size(entry.size):>10}  last used {used}")


@cache.command("clean")
@click.option(
    "--kind",
    shell_complete=lambda _ctx, _param, incomplete: _cache_kinds(incomplete),
    help="Only this kind of entry (see `bpfbuild cache info`).",
)
@handle_errors
def cache_clean(kind: str | None) -> None:
    """Delete every entry of the cache (or of one kind); builds refill it as needed."""
    from .cache import cache_root, clean, older_entries

    kinds = ", ".join(_cache_kinds("")) or "none yet"
    if kind is not None and (not kind or "/" in kind or kind.startswith(".")):
        raise BpfBuildError(f"invalid cache kind '{kind}'", hint=f"kinds: {kinds}")
    if kind is not None and kind not in _cache_kinds(""):
        # a typo must not read as "removed 0 entries"
        raise BpfBuildError(
            f"the cache has no entries of kind '{kind}'",
            hint=f"kinds in the cache: {kinds} (see `bpfbuild cache info`)",
        )
    removed = clean(kind)
    click.echo(
        f"removed {len(removed)} entries, {_size(sum(e.size for e in removed))} from {cache_root()}"
    )
    older = older_entries()
    if older:  # never deleted: they carry no signature of this bpfbuild
        click.echo(
            f"note: {len(older)} entries of an older bpfbuild are left in {cache_root()} "
            "(builds replace them as they need them; delete that folder to drop them all)"
        )


def _cache_kinds(incomplete: str) -> list[str]:
    from .cache import entries

    return sorted({e.kind for e in entries() if e.kind.startswith(incomplete)})


if __name__ == "__main__":
    main()
