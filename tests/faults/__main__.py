"""``python -m tests.faults``: run every fault of the suite and print the table (``make faults``).

Exits 1 when any fault lost, stranded, falsely failed or duplicated work, or when a row's
``retry_count`` disagrees with the retries the workers logged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from tests.faults.fleet import services
from tests.faults.suite import FAULTS, Report, make_clips, run_fault, table

S3_FAULT = "s3 503 to 30% of requests"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--videos", type=int, default=200, help="videos per fault [200]")
    parser.add_argument("--videos-s3", type=int, default=100, help="videos for the 503 run [100]")
    parser.add_argument("--only", action="append", default=[], help="faults whose name has this")
    parser.add_argument("--drain-timeout-s", type=float, default=900.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    chosen = [f for name, f in FAULTS.items() if not args.only or any(o in name for o in args.only)]
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="videofleet-faults-") as tmp:
        workdir = Path(tmp)
        clips = make_clips(workdir / "clips")
        with services(workdir) as found:
            for fault in chosen:
                videos = args.videos_s3 if fault.name == S3_FAULT else args.videos
                print(f"running: {fault.name} ({videos} videos)", file=sys.stderr, flush=True)
                report = run_fault(
                    found, fault, clips, videos=videos, drain_timeout_s=args.drain_timeout_s
                )
                print(table([report]), file=sys.stderr, flush=True)
                reports.append(report)
    print(table(reports))
    return 0 if all(r.clean for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
