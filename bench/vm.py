#!/usr/bin/env python3
"""VM verification benchmark: the BPF objects of the examples and every template,
verified by `bpfbuild verify --kernel` on Debian 5.10, 6.1 and 6.12 for x86_64 and on
6.12 for arm64, with a warm kernel cache. Prints where the time goes (kernel lookup,
busybox fetch, initramfs, boot, verify) per VM, and the wall-clock of each step.

    python3 bench/vm.py [--jobs J] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bpfbuild.arch import get_arch  # noqa: E402 - run from a checkout
from bpfbuild.scaffold import available_templates, create_project  # noqa: E402

X86_KERNELS = ("debian:5.10", "debian:6.1", "debian:6.12")
ARM64_KERNELS = ("debian:6.12",)
_VM_LINE = re.compile(
    r"^  VM +(?P<spec>\S+) (?P<arch>\S+): done, (?P<objects>\d+) objects, (?P<programs>\d+) "
    r"programs in (?P<total>[\d.]+) s \(fetch (?P<fetch>[\d.]+) s, initramfs (?P<initramfs>[\d.]+) s, "
    r"boot (?P<boot>[\d.]+) s, verify (?P<verify>[\d.]+) s, (?P<accel>\w+)\)$"
)


def bpfbuild_command() -> list[str]:
    script = Path(sys.executable).parent / "bpfbuild"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bpfbuild.cli"]


def make_project(root: Path, arm64_btf: Path) -> Path:
    """One project with the BPF sources of examples/netwatch and every template."""
    src = root / "src"
    src.mkdir(parents=True)
    for source in (REPO / "examples" / "netwatch" / "src").iterdir():
        shutil.copy(source, src / source.name)
    for template in available_templates():
        made = root.parent / f"t_{template.name}"
        create_project(made, template.name, template.name, force=False)
        for source in (made / "src").iterdir():
            shutil.copy(source, src / source.name)
    shutil.copy(arm64_btf, root / "arm64.btf")
    (root / "bpfbuild.toml").write_text(
        '[project]\nname = "vmbench"\n\n[build]\narches = ["x86_64", "arm64"]\n\n'
        '[vmlinux]\narm64 = "arm64.btf"\n'
    )
    return root


def run(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run([*bpfbuild_command(), *args], cwd=root, capture_output=True, text=True)
    return time.monotonic() - started, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", "-j", type=int, default=None)
    parser.add_argument("--out", type=Path, help="keep the project here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()

    from bpfbuild.kernels import get_kernel

    lookups = {}
    for arch, kernels in (("x86_64", X86_KERNELS), ("arm64", ARM64_KERNELS)):
        for spec in kernels:
            started = time.monotonic()
            kernel = get_kernel(spec, get_arch(arch))
            lookups[(spec, arch)] = (time.monotonic() - started, kernel)
    folder = args.out or Path(tempfile.mkdtemp(prefix="bpfbuild-vmbench-"))
    root = make_project(folder / "vmbench", lookups[("debian:6.12", "arm64")][1].btf)
    jobs = ["-j", str(args.jobs)] if args.jobs else []

    steps = {}
    steps["build objects (both arches)"], done = run(root, "build", *jobs)
    if done.returncode:
        print(done.stdout + done.stderr, file=sys.stderr)
        return 1
    vm_lines = []
    wall = 0.0
    for arch, kernels in (("x86_64", X86_KERNELS), ("arm64", ARM64_KERNELS)):
        kernel_args = [f"--kernel={k}" for k in kernels]
        seconds, done = run(root, "verify", *kernel_args, "--arch", arch, *jobs)
        steps[f"verify {arch} ({len(kernels)} VMs, cold outputs)"] = seconds
        wall += seconds
        if done.returncode:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        vm_lines += [
            m.groupdict() for line in done.stderr.splitlines() if (m := _VM_LINE.match(line))
        ]
        steps[f"verify {arch} again (no-op)"], _ = run(
            root, "verify", *kernel_args, "--arch", arch, *jobs
        )

    print(
        f"VM verification of {vm_lines[0]['objects'] if vm_lines else 0} objects "
        f"(examples/netwatch + {len(available_templates())} templates), warm kernel cache\n"
    )
    print(
        "| VM | objects | programs | kernel lookup | busybox | initramfs | boot | verify | total |"
    )
    print(
        "|----|--------:|---------:|--------------:|--------:|----------:|-----:|-------:|------:|"
    )
    for vm in vm_lines:
        lookup = lookups[(vm["spec"], vm["arch"])][0]
        print(
            f"| {vm['spec']} {vm['arch']} ({vm['accel']}) | {vm['objects']} | {vm['programs']} | "
            f"{lookup:.2f} s | {float(vm['fetch']):.2f} s | {float(vm['initramfs']):.2f} s | "
            f"{vm['boot']} s | {vm['verify']} s | {vm['total']} s |"
        )
    print("\n| step | wall-clock |")
    print("|------|-----------:|")
    for name, seconds in steps.items():
        print(f"| {name} | {seconds:.1f} s |")
    print(f"| **all four VMs (x86_64 then arm64)** | **{wall:.1f} s** |")
    if args.json:
        args.json.write_text(json.dumps({"vms": vm_lines, "steps": steps, "wall": wall}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
