"""Randomized fault injection: kill real builds of tests/projects/multi COUNT times at
random moments (SIGKILL or SIGINT of the process group; from nothing, after an edit, or
after an edit that is then undone), build normally, and compare every file of the project
with a clean build of the same sources: the outputs bpfbuild knows and whatever else is
there (a tool's temporary, such as mold's .mold-XXXXXX, counts). Prints each kill and what
went wrong; exits 1 on any failure.

    .venv/bin/python bench/killtest.py --count 40 --seed 1
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from killutil import EDITS, SCENARIOS, SIGNALS, Kill, KillLab  # noqa: E402

STEP_LINES = ("  GEN ", "  PCH ", "  BPF ", "  GENOBJ ", "  SKEL ", "  CC ", "  LD ")


def random_kill(rng: random.Random, lab: KillLab) -> Kill:
    """Half the kills come a random time after a random step starts, half at a random
    time into the build (up to how long such a build took: a clean one, or the one
    after the edit)."""
    scenario, edit, signal = (
        rng.choice(SCENARIOS),
        rng.choice(list(EDITS)),
        rng.choice(list(SIGNALS)),
    )
    if rng.random() < 0.5:
        return Kill(scenario, edit, signal, rng.choice(STEP_LINES), rng.uniform(0, 0.3))
    longest = lab.durations["original" if scenario == "clean" else edit]
    return Kill(scenario, edit, signal, None, rng.uniform(0, longest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="kills to inflict (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="build jobs (default 2)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bpfbuild-killtest-") as workdir:
        lab = KillLab(Path(workdir), jobs=args.jobs)
        lab.measure_rebuilds()
        print(
            "builds take "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in lab.durations.items()),
            flush=True,
        )
        failures = 0
        for number in range(1, args.count + 1):
            kill = random_kill(rng, lab)
            problems = lab.run(kill)
            failures += bool(problems)
            print(
                f"{number:3}/{args.count} {kill.describe()}: {'FAILED' if problems else 'ok'}",
                flush=True,
            )
            for problem in problems:
                print("      " + problem.replace("\n", "\n      "), flush=True)
    print(
        f"{failures} of {args.count} kills left a wrong output "
        f"(seed {args.seed}, {time.monotonic() - started:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
