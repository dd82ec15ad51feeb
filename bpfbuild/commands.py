"""The core API behind `bpfbuild build`, `verify` and `test`: each returns an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from .arch import get_arch, host_arch
from .build import fastpath
from .build.engine import preload, run_doit, select_arches
from .errors import BpfBuildError, VerifyError
from .build.layout import Layout
from .build.project import Project, load_project


def _load(root: Path, arches: Sequence[str]) -> Project:
    return select_arches(load_project(root), [get_arch(a) for a in arches])


def build_project(root: Path, apps: Sequence[str] = (), jobs: int | None = None,
                  verbose: bool = False, arches: Sequence[str] = ()) -> int:
    """Validate the project, then run its build tasks; doit's exit code."""
    stamp = fastpath.Recorder(root, apps, arches)  # first: inputs edited from now are suspect
    project = _load(root, arches)
    unknown = [a for a in apps if a not in project.apps]
    if unknown:
        raise BpfBuildError(f"no app named {', '.join(unknown)}",
                            hint="apps: " + (", ".join(project.apps) or "none"))
    preload(project)
    return run_doit(root, ["run", *[f"app:{a}" for a in apps]], jobs, verbose,
                    on_success=lambda tasks: stamp.write(project, tasks))


def verify_project(root: Path, objects: Sequence[str] = (), jobs: int | None = None,
                   verbose: bool = False, fmt: str = "table", update_baseline: bool = False,
                   require: bool = False) -> int:
    """Build the objects, load each program in the running kernel, report, and check
    budgets and the baseline. Raises VerifyError listing every failure."""
    from .verify.report import (
        NO_PRIVILEGE_HINT, Verdict, VerifyReport, compare_baseline, format_csv, format_json,
        format_rejection, format_table, load_object_report, raise_for_failures, write_baseline,
    )

    host = host_arch()
    project = load_project(root)
    if host not in project.arches:
        raise BpfBuildError(
            f"this project does not build for {host.name}, the running kernel's arch",
            hint=f"add \"{host.name}\" to `arches` in [build] of bpfbuild.toml",
        )
    project.arches = [host]
    unknown = [o for o in objects if o not in project.bpf_objects]
    if unknown:
        raise BpfBuildError(f"no BPF object named {', '.join(unknown)}",
                            hint="objects: " + ", ".join(project.bpf_objects))
    selected = list(objects) or list(project.bpf_objects)
    preload(project)
    code = run_doit(root, ["run", *[f"verify:{host.name}/{name}" for name in selected]],
                    jobs, verbose, verify=True, steps_to_stderr=fmt != "table")
    if code:
        return code
    layout = Layout(root, host.name)
    report = VerifyReport([load_object_report(layout.verify_report(name)) for name in selected])
    sources = {Path(obj.source).name: obj.source for obj in project.bpf_objects.values()}
    for result in report.results:
        # The kernel names a source by its base name; show the project's path.
        result.source_file = sources.get(result.source_file or "", result.source_file)
    machine = fmt != "table"
    notes = lambda text: click.echo(text, err=machine)  # noqa: E731 - keep stdout parseable
    formatted = {"table": lambda: format_table(report.results), "json": lambda: format_json(report),
                 "csv": lambda: format_csv(report.results)}[fmt]().rstrip("\n")
    if not report.privileged:
        if require:
            raise VerifyError(report.skip_message, hint=NO_PRIVILEGE_HINT)
        notes(report.skip_message)
        if machine:  # still a document: status "no privilege", every program skipped
            click.echo(formatted)
        return 0

    click.echo(formatted)
    for result in report.results:
        if result.verdict is Verdict.REJECTED:
            notes("\n" + format_rejection(result).rstrip())
        elif result.verdict is Verdict.UNSUPPORTED:
            notes(f"note: {result.name}: not supported by this kernel: {result.error}")

    settings = project.config.verify
    baseline = root / settings.baseline
    comparison = None
    if update_baseline:
        write_baseline(baseline, report.results)
        notes(f"wrote baseline {baseline.relative_to(root)} ({len(report.results)} programs)")
    elif baseline.is_file():
        comparison = compare_baseline(baseline, report.results, settings.max_growth)
        notes(f"\ncompared with {baseline.relative_to(root)}:\n{comparison.format().rstrip()}")
    raise_for_failures(report, max_share=settings.max_insn_share, comparison=comparison)
    return 0


def test_project(root: Path, jobs: int | None = None, verbose: bool = False,
                 junit_xml: str | None = None, pytest_args: Sequence[str] = (),
                 require: bool = False) -> int:
    """What a project's CI runs: build, verify, then the project's tests/ with pytest."""
    if junit_xml:
        # Relative to where the user ran bpfbuild: the build changes into the root.
        junit_xml = str(Path(junit_xml).resolve())
    steps = (
        ("build", lambda: build_project(root, (), jobs, verbose)),
        ("verify", lambda: verify_project(root, (), jobs, verbose, require=require)),
    )
    for name, step in steps:
        click.echo(f"==> bpfbuild test: {name}")
        code = step()
        if code:
            click.echo(f"==> bpfbuild test: {name} failed")
            return code
    if not (root / "tests").is_dir():
        click.echo("==> bpfbuild test: no tests/ folder, nothing more to run")
        return 0
    click.echo("==> bpfbuild test: pytest")
    argv = [sys.executable, "-m", "pytest", "tests", "-ra"]
    if junit_xml:
        argv.append(f"--junit-xml={junit_xml}")
    argv += pytest_args
    env = dict(os.environ, BPFBUILD_PROJECT=str(root))
    code = subprocess.call(argv, cwd=root, env=env)
    if code == 5:
        click.echo("==> bpfbuild test: pytest collected no tests")
        return 0
    return code
