"""The core API behind `bpfbuild build`, `verify` and `test` (each returns an exit code),
and `task_bpfbuild` for a project's dodo.py: where the build and the verification meet."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .arch import get_arch, host_arch
from .errors import BpfBuildError, VerifyError
from .pipeline import fastpath
from .pipeline.engine import (
    RunOptions,
    replaced_by_the_run,
    require_arches,
    run_doit,
    select_arches,
    tasks_of_project,
)
from .pipeline.files import kind_problem
from .pipeline.layout import Layout
from .pipeline.project import Project, load_project
from .pipeline.steps import task_id
from .pipeline.tasks import StepSource

if TYPE_CHECKING:
    from .verify.results import VerifyReport
    from .vm.targets import VerifyPlan


@replaced_by_the_run
def task_bpfbuild(
    root: Path | None = None, prefix: str = "", verify: bool = False
) -> Iterator[dict]:
    """doit task creator for a project: import it in a dodo.py to extend the graph.
    verify: also the verification steps of the running kernel's arch."""
    sources: tuple[StepSource, ...] = ()
    if verify:
        from .verify.steps import verification_steps

        sources = (verification_steps(),)
    yield from tasks_of_project(root, prefix, sources)


def _load(root: Path, arches: Sequence[str]) -> Project:
    return select_arches(load_project(root), [get_arch(a) for a in arches])


def build_project(
    root: Path,
    apps: Sequence[str] = (),
    jobs: int | None = None,
    verbose: bool = False,
    arches: Sequence[str] = (),
    keep_going: bool = False,
) -> int:
    """Validate the project, then run its build tasks; doit's exit code. With
    keep_going, build all that does not depend on a failed step, then summarize."""
    stamp = fastpath.Recorder(root, apps, arches)  # first: inputs edited from now are suspect
    project = _load(root, arches)
    unknown = [a for a in apps if a not in project.apps]
    if unknown:
        raise BpfBuildError(
            f"no app named {', '.join(unknown)}",
            hint="apps: " + (", ".join(project.apps) or "none"),
        )
    return run_doit(
        project,
        ["run", *[task_id("app", a) for a in apps]],
        RunOptions(
            jobs=jobs,
            verbose=verbose,
            keep_going=keep_going,
            on_success=lambda tasks: stamp.write(project, tasks),
        ),
    )


def verify_project(
    root: Path,
    objects: Sequence[str] = (),
    jobs: int | None = None,
    verbose: bool = False,
    fmt: str = "table",
    update_baseline: bool = False,
    require: bool = False,
    kernels: Sequence[str] = (),
    arches: Sequence[str] = (),
) -> int:
    """Build the objects, load each program in the running kernel and in a VM of each
    other kernel and arch, report, and check budgets and the baseline. Raises
    VerifyError listing every failure."""
    project = load_project(root)
    specs, arch_names = verify_matrix(project, kernels, arches)
    unknown = [o for o in objects if o not in project.bpf_objects]
    if unknown:
        raise BpfBuildError(
            f"no BPF object named {', '.join(unknown)}",
            hint="objects: " + ", ".join(project.bpf_objects),
        )
    selected = list(objects) or list(project.bpf_objects)
    if update_baseline and "host" not in specs:
        raise BpfBuildError(
            "--update-baseline records the running kernel's verdicts",
            hint="add --kernel host, or drop --update-baseline",
        )
    plan = _resolve_plan(project, specs, arch_names)
    project.arches = [get_arch(a) for a in dict.fromkeys(t.arch for t in plan.targets)]
    from .verify.steps import host_verify_id, verification_steps, vm_verify_id
    from .vm.qemu import stop_all

    host = host_arch()
    names = [host_verify_id(name, host.name) for name in selected] if plan.host else []
    names += [vm_verify_id(t.kernel.release, t.arch) for t in plan.targets if t.kernel]

    vms = any(t.kernel for t in plan.targets)
    try:
        # With VMs, one that fails does not stop the others (vmtest's lesson).
        code = run_doit(
            project,
            ["run", *names],
            RunOptions(
                jobs=jobs,
                verbose=verbose,
                step_sources=(verification_steps(plan if vms else None),),
                steps_to_stderr=fmt != "table",
                continue_on_failure=vms,
            ),
        )
    finally:
        stop_all()  # a Ctrl-C leaves no VM behind
    if code and vms:
        # Show the verdicts of the cells that finished; a failed VM left no report.
        try:
            _report(project, plan, selected, fmt, False, False, partial=True)
        except VerifyError as err:
            click.echo(f"error: {err.describe()}", err=True)
    if code:
        return code
    return _report(project, plan, selected, fmt, update_baseline, require)


def verify_matrix(
    project: Project, kernels: Sequence[str], arches: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The kernels and arches to verify on: the command line's, else [verify]'s, else
    the running kernel. VM arches default to every arch of the project a VM boots."""
    return _matrix(project.config.verify, [a.name for a in project.arches], kernels, arches)


def _matrix(
    settings, project_arches: list[str], kernels: Sequence[str], arches: Sequence[str]
) -> tuple[list[str], list[str]]:
    """verify_matrix from [verify] settings and the project's arch names."""
    from .vm.qemu import MACHINES
    from .vm.targets import HOST, check_vm_arch, split_list

    specs = split_list(kernels) or list(settings.kernels) or [HOST]
    host = host_arch().name
    names = [get_arch(a).name for a in split_list(arches) or settings.arches]
    require_arches(project_arches, names)
    if not names:
        names = [
            a
            for a in project_arches
            if (a == host and HOST in specs) or (a in MACHINES and specs != [HOST])
        ]
    if specs == [HOST] and host not in project_arches:
        raise BpfBuildError(
            f"this project does not build for {host}, the running kernel's arch",
            hint=f'add "{host}" to `arches` in [build] of bpfbuild.toml, or verify in a VM '
            "(--kernel debian:6.12)",
        )
    for name in names:
        if any(spec != HOST for spec in specs):
            check_vm_arch(name)
    return specs, names


def matrix_cells(
    project: Project, kernels: Sequence[str], arches: Sequence[str]
) -> list[dict[str, str]]:
    """The (kernel, arch) cells of the matrix, as a GitHub Actions matrix includes them."""
    from .vm.targets import matrix_cells as cells

    specs, names = verify_matrix(project, kernels, arches)
    return [{"kernel": spec, "arch": arch} for spec, arch in cells(specs, names, host_arch().name)]


def list_kernels(root: Path, kernels: Sequence[str] = (), arches: Sequence[str] = ()) -> int:
    """`bpfbuild verify --list-kernels`: what each kernel spec (the command line's, else
    [verify] kernels) resolves to per arch, from the cache alone: package, version,
    suite and release; a spec not resolved yet is said so, and nothing is fetched."""
    import platform

    from .kernels import is_kernel_spec
    from .kernels.debian import cached_resolution
    from .pipeline.config import load_config
    from .pipeline.names import CONFIG_NAME
    from .verify.formats import aligned_columns
    from .vm.targets import HOST, image_release
    from .vm.targets import matrix_cells as cells

    # The configuration only: loading the project would fetch its [vmlinux] kernels.
    config = load_config(root / CONFIG_NAME)
    project_arches = [get_arch(a).name for a in config.build.arches] or [host_arch().name]
    specs, names = _matrix(config.verify, project_arches, kernels, arches)
    rows, unresolved = [], []
    for spec, arch in cells(specs, names, host_arch().name):
        if spec == HOST:
            rows.append((spec, arch, "(the running kernel)", "-", "-", platform.release()))
        elif not is_kernel_spec(spec):
            image = (root / spec).resolve()
            release = image_release(image) if image.is_file() else "(no such image)"
            rows.append((spec, arch, "(an image)", "-", "-", release))
        elif (found := cached_resolution(spec, get_arch(arch))) is None:
            rows.append((spec, arch, "(not resolved yet)", "-", "-", "-"))
            unresolved.append((spec, arch))
        else:
            release = found.release or "(not fetched yet)"
            rows.append((spec, arch, found.package, found.version, found.suite, release))
    click.echo(
        aligned_columns(("Kernel", "Arch", "Package", "Version", "Suite", "Release"), rows, ())
    )
    for spec, arch in unresolved:
        click.echo(
            f"note: {spec} ({arch}) is not resolved yet: `bpfbuild verify --kernel {spec} "
            f"--arch {arch}` resolves it with apt and fetches it once"
        )
    return 0


def _resolve_plan(project: Project, specs: Sequence[str], arch_names: Sequence[str]) -> VerifyPlan:
    """Each cell's kernel, fetched into the cache when needed; two names of one kernel
    (one image) boot it once; two images of one release are refused."""
    from .vm.targets import HOST, Target, VerifyPlan, resolve
    from .vm.targets import matrix_cells as cells

    targets: list[Target] = []
    seen: dict[tuple[str, str], Target] = {}
    for spec, arch in cells(specs, arch_names, host_arch().name):
        kernel = None if spec == HOST else resolve(spec, arch, project.root)
        key = (arch, kernel.release if kernel else HOST)
        first = seen.get(key)
        if first is None:
            seen[key] = Target(spec, arch, kernel)
            targets.append(seen[key])
        elif first.kernel and kernel and first.kernel.image.resolve() != kernel.image.resolve():
            # results are kept per release: two kernels of one release would share them
            raise BpfBuildError(
                f"kernels {first.spec} and {spec} ({arch}) are two images of one release "
                f"'{kernel.release}'",
                hint="verify them in two runs of `bpfbuild verify` (a VM's results are "
                "kept per kernel release), or give only one of them",
            )
    if not targets:
        raise BpfBuildError(
            "nothing to verify: no kernel runs any of the selected arches",
            hint="the running kernel verifies only its own arch; name a VM "
            "kernel with --kernel debian:6.12",
        )
    return VerifyPlan(tuple(targets))


def _report(
    project: Project,
    plan: VerifyPlan,
    selected: Sequence[str],
    fmt: str,
    update_baseline: bool,
    require: bool,
    partial: bool = False,
) -> int:
    """Read the saved reports of the run, print them, and judge them. partial: some
    VMs failed; print the reports there are."""
    from .verify.baseline import compare_baseline, write_baseline
    from .verify.budgets import raise_for_failures
    from .verify.results import VerifyReport, load_object_report

    root = project.root
    objects = []
    for target in plan.targets:
        layout = Layout(root, target.arch)
        for name in selected:
            if target.kernel is None:
                path = layout.verify_report(name)
            else:
                path = layout.vm_verify_dir(target.kernel.release) / f"{name}.json"
            if partial and not path.is_file():
                continue
            objects.append(load_object_report(path))
    if not objects:
        return 1
    report = VerifyReport(objects)
    sources = {Path(obj.source).name: obj.source for obj in project.bpf_objects.values()}
    for result in report.results:
        # The kernel names a source by its base name; show the project's path.
        result.source_file = sources.get(result.source_file or "", result.source_file)
    machine = fmt != "table"
    notes = lambda text: click.echo(text, err=machine)  # noqa: E731 - keep stdout parseable
    host_objects = [o for o in objects if o.kernel_spec == "host"]
    host_report = VerifyReport(host_objects)
    skipped = host_report.skip_message if host_objects else None
    if skipped:
        if require:
            raise VerifyError(skipped, hint=host_report.skip_hint)
        notes(skipped)
        if len(plan.targets) == 1:
            if machine:  # still a document: status "no privilege", every program skipped
                click.echo(format_report(report, fmt))
            return 0
    click.echo(format_report(report, fmt, _tools(project)))
    _print_verdict_notes(objects, notes)

    settings = project.config.verify
    baseline = root / settings.baseline
    comparison = None
    if host_objects and update_baseline:
        write_baseline(baseline, host_report.results)
        notes(f"wrote baseline {baseline.relative_to(root)} ({len(host_report.results)} programs)")
    elif host_objects and os.path.lexists(baseline):  # not a file: load_baseline says so
        comparison = compare_baseline(baseline, host_report.results, settings.max_growth)
        notes(f"\ncompared with {baseline.relative_to(root)}:\n{comparison.format().rstrip()}")
    raise_for_failures(
        report, max_share=settings.max_insn_share, comparison=comparison, require=require
    )
    return 0


def _tools(project: Project) -> dict[str, tuple[str, ...]]:
    """App name -> the BPF objects it loads: what the kernel-support summary is per."""
    return {app.name: app.bpf_objects for app in project.apps.values()}


def _print_verdict_notes(objects: Sequence, notes) -> None:
    """Each rejection with its source line and hint; the unsupported programs and other
    notes once per object and kernel; then the programs no kernel verified at all."""
    from .verify.formats import format_rejection
    from .verify.log import Verdict
    from .verify.results import VerifyReport
    from .verify.summary import object_notes, unverified_line

    for o in objects:
        for result in o.results:
            if result.verdict is Verdict.REJECTED:
                where = "" if o.kernel_spec == "host" else f"on {o.kernel_spec} ({o.arch}): "
                notes("\n" + where + format_rejection(result).rstrip())
        kernel = "this kernel" if o.kernel_spec == "host" else f"{o.kernel_spec} ({o.arch})"
        for line in object_notes(o, kernel):
            notes(line)
    unverified = unverified_line(VerifyReport(list(objects)))
    if unverified:
        notes(f"warning: {unverified}")


def format_report(
    report: VerifyReport, fmt: str, tools: dict[str, tuple[str, ...]] | None = None
) -> str:
    """The report in a format: json and csv as always; a table per (kernel, arch),
    then the matrix when there is more than one, ending with the kernels each tool
    (tools: app -> objects; objects with no app stand for themselves) runs on."""
    from .verify.formats import format_csv, format_matrix, format_table
    from .verify.results import format_json

    if fmt == "json":
        return format_json(report, tools)
    cells: dict[tuple[str, str], list] = {}
    for o in report.objects:
        cells.setdefault((o.kernel_spec, o.arch), []).append(o)
    if fmt == "csv":
        # The columns of before VMs when only the running kernel was asked.
        only_host = all(spec == "host" for spec, _ in cells)
        return format_csv(report.results, None if only_host else report).rstrip("\n")
    if len(cells) == 1 and next(iter(cells))[0] == "host":
        return format_table(report.results)  # as before VMs: the running kernel only
    from .verify.formats import kernel_order

    parts = []
    for (spec, arch), group in sorted(
        cells.items(), key=lambda c: (kernel_order(c[0][0]), c[0][1])
    ):
        kernel = group[0].kernel
        parts.append(
            f"== {spec} {arch} ({kernel})\n" + format_table([r for o in group for r in o.results])
        )
    if len(cells) > 1:
        from .verify.summary import kernel_support, support_lines

        lines = support_lines(kernel_support(report, tools))
        parts.append("== matrix\n" + format_matrix(report) + "\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def merge_results(paths: Sequence[Path], fmt: str = "table", require: bool = False) -> int:
    """Combine the --format json results of matrix jobs: print them with the matrix and
    the notes, and fail on any failure (with require, also on programs that no kernel of
    the whole matrix verified)."""
    from .verify.budgets import raise_for_failures
    from .verify.results import VerifyReport, report_from_json

    if not paths:
        raise BpfBuildError(
            "--merge needs result files", hint="bpfbuild verify --merge results/*.json"
        )
    objects = []
    seen: dict[tuple[str, str, str], Path] = {}
    for path in paths:
        what = kind_problem(path)
        if what and not what.startswith("unreadable"):  # that one: read_bytes says why
            raise BpfBuildError(
                f"{path}: " + ("no such file" if what == "missing" else f"{what}, not a file"),
                hint="give the files the matrix jobs wrote",
            )
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise BpfBuildError(
                f"cannot read {path}: {err.strerror}", hint="give the files the matrix jobs wrote"
            ) from None
        try:
            text = data.decode()
        except UnicodeDecodeError as err:
            raise BpfBuildError(
                f"{path}: not a result of `bpfbuild verify --format json`: byte "
                f"0x{data[err.start]:02x} at offset {err.start} is not UTF-8 text (a binary file?)",
                hint="give the files that each matrix job wrote with --format json",
            ) from None
        found = report_from_json(text, str(path)).objects
        if not found:
            raise BpfBuildError(
                f"{path}: an empty result (no object was verified)",
                hint="check that the matrix job that wrote it verified something "
                "(its log), and give the files of the jobs that did",
            )
        for obj in found:
            key = (obj.object, obj.arch, obj.kernel)
            if key in seen:
                also = "twice" if seen[key] == path else f"also in {seen[key]}"
                raise BpfBuildError(
                    f"{path}: object '{obj.object}' on {obj.arch}, kernel {obj.kernel} is {also}",
                    hint="give each matrix job's file once: merging one (object, arch, "
                    "kernel) twice would count its programs twice",
                )
            seen[key] = path
        objects += found
    report = VerifyReport(objects)
    click.echo(format_report(report, fmt))
    _print_verdict_notes(objects, lambda text: click.echo(text, err=fmt != "table"))
    raise_for_failures(report, require=require)
    return 0


def test_project(
    root: Path,
    jobs: int | None = None,
    verbose: bool = False,
    junit_xml: str | None = None,
    pytest_args: Sequence[str] = (),
    require: bool = False,
    keep_going: bool = False,
) -> int:
    """What a project's CI runs: build, verify, then the project's tests/ with pytest.
    keep_going: the build step lists every failure, not the first only."""
    if junit_xml:
        # Relative to where the user ran bpfbuild: the build changes into the root.
        junit_xml = str(Path(junit_xml).resolve())
        what = kind_problem(junit_xml)
        if what and what != "missing":  # pytest would block on a FIFO, fail on a folder
            raise BpfBuildError(
                f"--junit-xml {junit_xml} is {what}, where pytest writes a file",
                hint="give the path of a file (it is replaced), or remove what is there",
            )
    steps = (
        ("build", lambda: build_project(root, (), jobs, verbose, keep_going=keep_going)),
        ("verify", lambda: verify_project(root, (), jobs, verbose, require=require)),
    )
    for name, step in steps:
        click.echo(f"==> bpfbuild test: {name}")
        code = step()
        if code:
            click.echo(f"==> bpfbuild test: {name} failed")
            return code
    tests = root / "tests"
    if os.path.lexists(tests) and not tests.is_dir():
        raise BpfBuildError(
            f"{tests} is {kind_problem(tests) or 'a file'}, not a folder of tests",
            hint="move it away: `bpfbuild test` runs pytest on the folder tests/ "
            "(a project without one passes after verify)",
        )
    if not tests.is_dir():
        click.echo("==> bpfbuild test: no tests/ folder, nothing more to run")
        return 0
    click.echo("==> bpfbuild test: pytest")
    argv = [sys.executable, "-m", "pytest", "tests", "-ra"]
    if junit_xml:
        argv.append(f"--junit-xml={junit_xml}")
    argv += pytest_args
    env = dict(os.environ, BPFBUILD_PROJECT=str(root))
    code = subprocess.call(argv, cwd=root, env=env)
    if code == PYTEST_NO_TESTS:
        # not a success: `-- -k typo` would pass with nothing tested
        raise BpfBuildError(
            "pytest collected no tests"
            + (f" (with {shlex.join(pytest_args)})" if pytest_args else " in tests/"),
            hint="check the arguments after -- (a -k or a test's name) and the test files "
            "in tests/ (test_*.py); a project without tests has no tests/ folder",
        )
    return PYTEST_EXIT.get(code, 1)


PYTEST_NO_TESTS = 5
"""pytest's exit code when it collected no tests."""


PYTEST_EXIT = {0: 0, 1: 1, 2: 130, 3: 1, 4: 2}
"""bpfbuild's exit code for pytest's: tests failed (1) and pytest's internal error (3)
are a failed step, 1; interrupted (2) is 130, as a Ctrl-C of bpfbuild; a usage error
in the arguments after -- (4) is bpfbuild's usage error, 2."""
