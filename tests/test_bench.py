"""The build-speed benchmark (bench/run.py) runs end to end on a small workload.

No timing is asserted: CI machines are too noisy. What is asserted is what the
benchmark exists to show: every row of its table, bpfbuild rebuilding exactly the
dependents of an edited header and running nothing after a `touch`, its no-op builds
answered by the fast path, every command of a -j1 build accounted for, and the
reference Makefile missing those dependents (so the comparison measures something).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from buildutil import require_kernel_btf, require_tool

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "run.py"

TABLE_ROWS = (
    "| clean build, empty cache",
    "| clean build, warm cache",
    "| CPU time",
    "| no-op build",
    "| `python -c pass`",
    "| touch `src/app1.bpf.c`",
    "| edit `src/common.h`",
    "| peak RSS",
)


@pytest.fixture(scope="module")
def bench_results(tmp_path_factory) -> tuple[str, dict]:
    for tool in ("clang", "make", "pkg-config", "bpftool"):
        require_tool(tool)
    require_tool("cc", "gcc")
    require_kernel_btf()
    out = tmp_path_factory.mktemp("bench")
    results = out / "results.json"
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--apps",
            "2",
            "--repeat",
            "1",
            "--clean-repeat",
            "1",
            "--jobs",
            "2",
            "--out",
            str(out / "run"),
            "--json",
            str(results),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout, json.loads(results.read_text())


@pytest.mark.slow
def test_table_has_every_row(bench_results):
    table, _ = bench_results
    assert "| | make -j2 | bpfbuild -j2 | make / bpfbuild | target |" in table
    for row in TABLE_ROWS:
        assert any(line.startswith(row) for line in table.splitlines()), (row, table)


@pytest.mark.slow
def test_bpfbuild_header_edit_rebuilds_exactly_the_dependents(bench_results):
    _, results = bench_results
    edit = results["bpfbuild"]["header_edit"]
    # 2 tracing apps: each one's BPF source and loader include common.h; the XDP app
    # and the shared util.c do not.
    assert edit["expected"] == ["src/app1.bpf.c", "src/app1.c", "src/app2.bpf.c", "src/app2.c"]
    assert edit["exact"], edit
    assert edit["missed"] == [] and edit["extra"] == []


@pytest.mark.slow
def test_bpfbuild_touch_and_noop_run_nothing(bench_results):
    _, results = bench_results
    assert results["bpfbuild"]["touch"]["compiles"] == 0
    assert results["bpfbuild"]["touch"]["commands"] == 0
    assert all(run["commands"] == 0 for run in results["bpfbuild"]["noop"]["runs"])


@pytest.mark.slow
def test_bpfbuild_noop_takes_the_fast_path(bench_results):
    """Every no-op build of the benchmark is answered from the stamp (the no-op row
    measures the fast path), and so is the touch (same content)."""
    _, results = bench_results
    assert all(run["fast_path"] for run in results["bpfbuild"]["noop"]["runs"]), results[
        "bpfbuild"
    ]["noop"]
    assert results["bpfbuild"]["touch"]["fast_path"]
    assert results["python"]["startup_seconds"] > 0


@pytest.mark.slow
def test_warm_cache_builds_are_clean_builds(bench_results):
    """The warm-cache row compiles and links everything again: only the cache is kept
    (vmlinux.h and its PCH may come from it)."""
    _, results = bench_results

    def compiles_and_links(run: dict) -> set[str]:
        return {step for step in run["steps"] if step.split()[0] in ("BPF", "CC", "LD")}

    cold = compiles_and_links(results["bpfbuild"]["clean"]["runs"][0])
    assert len(cold) == 3 + 4 + 3, cold
    for run in results["bpfbuild"]["warm"]["runs"]:
        assert compiles_and_links(run) == cold


@pytest.mark.slow
def test_reference_makefile_shows_its_flaws(bench_results):
    """The counting works for make too: it rebuilds after a touch, and misses every
    dependent of the edited header (libbpf-bootstrap's Makefile tracks no headers)."""
    _, results = bench_results
    make = results["make"]
    assert make["touch"]["compiles"] == 2  # app1.bpf.c, then app1.c for the new skeleton
    assert make["header_edit"]["missed"] == make["header_edit"]["expected"]
    assert all(run["commands"] == 0 for run in make["noop"]["runs"])
    assert make["clean"]["runs"][0]["compiles"] == 3 + 4  # 3 BPF objects, 4 user sources


@pytest.mark.slow
def test_steps_table_accounts_for_every_command(bench_results):
    """The -j1 profile of each tool times every command it ran, by kind; the counts
    are those of the workload, so nothing was left out."""
    table, results = bench_results
    assert (
        "| clean build at -j1, by step | make | bpfbuild, empty cache | bpfbuild, warm cache |"
    ) in table
    assert "| the build tool itself: its own CPU (user + sys) |" in table
    assert "no schedule of this work can make bpfbuild more than" in table
    for tool in ("make", "bpfbuild", "bpfbuild-warm"):
        profile = results["steps"][tool]
        assert 0 < profile["own_cpu_seconds"] < profile["cpu_seconds"], profile
        steps = profile["steps"]
        if tool != "bpfbuild-warm":  # a warm cache may hold vmlinux.h
            assert steps["vmlinux"]["commands"] == 1, steps
        assert steps["bpf"]["commands"] == 3, steps  # 2 tracing apps + the XDP app
        assert steps["bpftool"]["commands"] == 6, steps  # gen object + gen skeleton each
        assert steps["cc"]["commands"] == 4, steps  # 3 loaders + util.c
        assert steps["ld"]["commands"] == 3, steps
        assert all(kind["seconds"] > 0 for kind in steps.values() if kind["commands"]), steps
    # 2 sources take vmlinux.h first: fewer than pch = "auto" needs
    assert "pch" not in results["steps"]["bpfbuild"]["steps"]
