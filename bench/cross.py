#!/usr/bin/env python3
"""What a second arch costs: clean builds of the examples for x86_64 alone and for
x86_64 + arm64 (arm64's vmlinux.h from the Debian kernel `debian:6.1`), in the same
run. Prints a markdown table: wall and CPU time (median), and the commands each arch
ran, by kind.

    python3 bench/cross.py [--jobs J] [--repeat R] [--examples netwatch execsnoop]

Needs the arm64 cross toolchain (scripts/setup --arch arm64); the arm64 kernel is
fetched into the user's cache before timing starts.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {
    "x86_64": (["x86_64"], {}),
    "x86_64 + arm64": (["x86_64", "arm64"], {"arm64": "debian:6.1"}),
}
_STEP = re.compile(r"^  ([A-Z]+) +\S+(?: \((\w+)\))?$")


def bpfbuild_command() -> list[str]:
    script = Path(sys.executable).parent / "bpfbuild"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bpfbuild.cli"]


def configure(root: Path, arches: list[str], vmlinux: dict[str, str]) -> None:
    config = root / "bpfbuild.toml"
    text = config.read_text()
    line = "arches = [" + ", ".join(f'"{a}"' for a in arches) + "]\n"
    text = (
        text.replace("[build]\n", "[build]\n" + line)
        if "[build]\n" in text
        else text + "\n[build]\n" + line
    )
    if vmlinux:
        text += "\n[vmlinux]\n" + "".join(f'{a} = "{v}"\n' for a, v in vmlinux.items())
    config.write_text(text)


def run(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process tree, stdout) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"bench: `{' '.join(argv)}` in {cwd} failed:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def steps_by_arch(stdout: str, default_arch: str) -> Counter:
    """(arch, kind) -> number of commands, from the kbuild lines of one build."""
    counts: Counter = Counter()
    for line in stdout.splitlines():
        match = _STEP.match(line)
        if match and match[1] != "BIN":
            counts[(match[2] or default_arch, match[1])] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", nargs="+", default=["netwatch", "execsnoop"])
    args = parser.parse_args()

    from bpfbuild.arch import get_arch
    from bpfbuild.kernels import get_kernel

    kernel = get_kernel("debian:6.1", get_arch("arm64"))
    command = bpfbuild_command()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bpfbuild-cross-") as scratch:
        trees = {}
        for name, (arches, vmlinux) in CONFIGS.items():
            for example in args.examples:
                root = Path(scratch) / name.replace(" + ", "-") / example
                shutil.copytree(
                    REPO / "examples" / example,
                    root,
                    ignore=shutil.ignore_patterns("output", ".bpfbuild"),
                )
                configure(root, arches, vmlinux)
                trees.setdefault(name, []).append(root)
        walls: dict[str, list[float]] = {name: [] for name in CONFIGS}
        cpus: dict[str, list[float]] = {name: [] for name in CONFIGS}
        counts: dict[str, Counter] = {}
        for _ in range(args.repeat):
            for name in CONFIGS:  # alternate, so that noise hits both
                wall = cpu = 0.0
                total: Counter = Counter()
                for root in trees[name]:
                    run([*command, "clean"], root)
                    w, c, out = run([*command, "build", "-j", str(args.jobs)], root)
                    wall, cpu = wall + w, cpu + c
                    total += steps_by_arch(out, "x86_64")
                walls[name].append(wall)
                cpus[name].append(cpu)
                counts[name] = total
        for name in CONFIGS:
            results[name] = {
                "wall": statistics.median(walls[name]),
                "cpu": statistics.median(cpus[name]),
                "counts": counts[name],
            }

    kinds = sorted({kind for r in results.values() for _, kind in r["counts"]})
    print(
        f"Clean builds of examples/{', examples/'.join(args.examples)} at -j{args.jobs}, "
        f"median of {args.repeat}; arm64 vmlinux.h from {kernel.package} {kernel.version}.\n"
    )
    print("| arches | wall | CPU (user + sys) | commands per arch (" + ", ".join(kinds) + ") |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        per_arch = "; ".join(
            f"{arch}: {sum(n for (a, _), n in r['counts'].items() if a == arch)} ("
            + ", ".join(str(r["counts"].get((arch, k), 0)) for k in kinds)
            + ")"
            for arch in sorted({a for a, _ in r["counts"]}, key=lambda a: a != "x86_64")
        )
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {per_arch} |")
    one, two = results["x86_64"], results["x86_64 + arm64"]
    print(
        f"\nthe second arch adds {two['wall'] - one['wall']:.2f} s wall "
        f"({(two['wall'] - one['wall']) / one['wall']:.0%} of the first) and "
        f"{two['cpu'] - one['cpu']:.2f} s CPU ({(two['cpu'] - one['cpu']) / one['cpu']:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
