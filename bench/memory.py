"""Worker peak memory with a 10 MB source vs a 2 GB source.

Each measurement is a fresh process that imports the worker (Celery app, tasks, PyAV), probes
the source in-process and runs the thumbnail step's capture (10 thumbnails and the default
storyboard) over HTTP, then reports its peak RSS (``ru_maxrss``). A fresh process per run keeps
one run's peak from hiding the next one's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

from bench import media
from bench.fileserver import FileServer

RUNS = 3


def child(url: str) -> None:
    """Run probe + capture once in this process and print the peaks as JSON."""
    import urllib3

    import workers.tasks  # noqa: F401  (load what a worker process holds)
    from schema.settings import Settings
    from workers.media import storyboard
    from workers.media.probe import plan_thumbnails, probe
    from workers.media.rangereader import RangeSource, ReadLimits
    from workers.media.thumbnails import capture

    settings = Settings()
    pool = urllib3.PoolManager()
    source = RangeSource(url, video_key="bench", pool=pool)
    info = probe(
        source.cursor(), video_key="bench", size_bytes=None, max_pixels=settings.max_video_pixels
    )
    board = storyboard.plan_storyboard(
        info.duration_s, min_interval_s=2, max_tiles=30, columns=6, tile_width=160, tile_height=90
    )
    result = capture(
        url,
        plan_thumbnails(info.duration_s, 10),
        video_key="bench",
        width_px=320,
        jpeg_quality=3,
        search_attempts=5,
        board=board,
        limits=ReadLimits(128 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024, 30),
        pool=pool,
        decoders=settings.thumbnail_decoders,
        max_pixels=settings.max_video_pixels,
    )
    peak = {
        "worker_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes_read": source.bytes_read + result.bytes_read,
    }
    print(json.dumps(peak))


def main() -> None:
    """Measure both sources ``--runs`` times and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sources = {"10 MB": media.small(), "2 GB": media.big()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    with FileServer(media.MEDIA_DIR) as server:
        for _ in range(args.runs):
            for name, path in sources.items():
                out = subprocess.run(
                    [sys.executable, "-m", "bench.memory", "--child", server.url(path.name)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\n## Worker peak RSS (probe + 10 thumbnails + 30-tile storyboard, fresh process)")
    print("source    size MB   worker MB   read MB  runs")
    medians = {}
    for name, path in sources.items():
        rows = results[name]
        medians[name] = statistics.median(r["worker_mb"] for r in rows)
        print(
            f"{name:<8} {path.stat().st_size / 1e6:>8.0f} {medians[name]:>11.1f}"
            f" {statistics.median(r['bytes_read'] for r in rows) / 1e6:>9.2f} {len(rows):>5}"
        )
    ratio = medians["2 GB"] / medians["10 MB"]
    print(
        f"  [{'PASS' if ratio <= 1.2 else 'FAIL'}] 2 GB / 10 MB peak RSS = {ratio:.2f}x (<= 1.2x)"
    )
    ok = medians["2 GB"] < 150
    print(f"  [{'PASS' if ok else 'FAIL'}] 2 GB peak RSS {medians['2 GB']:.0f} MB (< 150 MB)")


if __name__ == "__main__":
    main()
