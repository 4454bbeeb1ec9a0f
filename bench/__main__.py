"""Run every benchmark in order: ``python -m bench`` (see bench/README.md).

Each bench is its own process, so one's memory or imports never colour another's figures.
Options after ``--quick`` shorten the run (fewer rounds, no full decode) for a smoke check.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

FULL = [
    ["bench.media"],
    ["bench.thumbs", "--rounds", "5"],
    ["bench.memory", "--runs", "3"],
    ["bench.fleet"],
    ["bench.steps"],
    ["bench.storyboard"],
    ["bench.ingest", "--events", "2000"],
    ["bench.readside"],
]
# The fleet's smoke sizes: the burst and the backfill at a tenth (see bench/README.md).
QUICK_FLEET = (
    "--chains 5 --videos 10 --burst 100 --backfill 100 --uploads 5 --upload-interval-s 1"
    " --versus 100"
)
QUICK = [
    ["bench.media"],
    ["bench.thumbs", "--rounds", "2", "--skip-naive"],
    ["bench.memory", "--runs", "1"],
    ["bench.fleet", *QUICK_FLEET.split()],
    ["bench.steps", "--videos", "5"],
    ["bench.storyboard"],
    ["bench.ingest", "--events", "300"],
    ["bench.readside", "--seconds", "3", "--page-seconds", "15", "--reload-every-s", "3"],
]


def main() -> None:
    """Run the benches one after another, stopping at the first failure."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other option is passed on to bench.fleet (see python -m bench.fleet --help).",
    )
    parser.add_argument("--quick", action="store_true", help="A shorter smoke run.")
    args, extra = parser.parse_known_args()
    plan = QUICK if args.quick else FULL
    for module, *args in plan:
        print(f"\n# python -m {module} {' '.join(args)}", flush=True)
        forwarded = extra if module == "bench.fleet" else []
        subprocess.run([sys.executable, "-m", module, *args, *forwarded], check=True)


if __name__ == "__main__":
    main()
