"""Thumbnail methods side by side, in one run, over HTTP from a Range-capable counting server.

For each source (10-minute 1080p H.264 with the index at the front and at the end, 10-minute
720p VP9) it runs, in interleaved rounds so that load from other processes hits all alike:

- ``naive``: one ffmpeg decoding everything through ``-vf fps=1/60`` (tutorials, PeerTube);
- ``ten-ffmpeg``: ten ``ffmpeg -ss T -i URL`` processes, one per thumbnail;
- ``best-cli``: one ffmpeg with ten pre-seeked inputs (``thumbnail_command`` below);
- ``raw-pyav``: one process opening the URL once with PyAV (ffmpeg's HTTP) and seeking ten
  times to keyframes: the fastest raw method;
- ``step``: the worker's thumbnail path (``workers.media.thumbnails.capture``: bounded range reads,
  keyframe seeks, blank-frame avoidance, JPEG encoding) with the default settings
  (``THUMBNAIL_DECODERS`` runs in parallel over one range cache), thumbnails only;
- ``step-2dec``: the same with two decoders in parallel (``THUMBNAIL_DECODERS=2``), which
  overlaps round trips to a distant store at the price of a second demuxer;
- ``step+board``: the same with the default 30-tile storyboard;
- ``probe``: the validate step's in-process probe, for the "probe plus 10 thumbnails" CPU figure;
- ``video``: everything the worker reads for one video with its default settings, all steps:
  the validate step's probe, then the thumbnail step's capture (``THUMBNAIL_COUNT`` thumbnails,
  the poster among them, and the default storyboard), as ``workers.steps`` calls them.

Wall and CPU seconds are medians over the rounds (``naive`` runs once unless asked); bytes and
requests are what the server sent. ``video`` is held to issue 12's targets: bytes per video at
most 1.0% of the object (index at the front), 1.25% (index at the end), 2% (VP9); at most 1.5
requests per decoded keyframe; at most 0.4 CPU-s for the 10-minute 1080p.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import ffmpeg
import urllib3

from bench import media
from bench.fileserver import FileServer
from schema.settings import DEFAULT_MAX_VIDEO_PIXELS, Settings
from workers.media import probe as worker_media
from workers.media import storyboard
from workers.media.pictures import encode_jpeg, output_size
from workers.media.rangereader import RangeSource, ReadLimits
from workers.media.thumbnails import capture

COUNT = 10
DECODERS = Settings().thumbnail_decoders
WIDTH_PX = 320
LIMITS = ReadLimits(
    block_bytes=128 * 1024,
    max_request_bytes=4 * 1024 * 1024,
    cache_bytes=8 * 1024 * 1024,
    timeout_s=30,
)
# Issue 12's targets for one video, all steps.
VIDEO_BYTES_SHARE = {"h264-front": 0.01, "h264-end": 0.0125, "vp9": 0.02}
VIDEO_REQUESTS_PER_KEYFRAME = 1.5
VIDEO_CPU_S = 0.4
SOURCES = {
    "h264-front": (media.h264_front, 600.0),
    "h264-end": (media.h264_end, 600.0),
    "vp9": (media.vp9_long, 600.0),
}


@dataclass
class Runs:
    """Measurements of one method on one source."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = getattr(self, name)
        return float(statistics.median(values)) if values else float("nan")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def naive(url: str, times: list[float], out: Path) -> None:
    """Decode everything; keep one frame a minute."""
    _ffmpeg(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", url, "-vf",
         f"fps=1/60,scale={WIDTH_PX}:-2", "-frames:v", str(len(times)), "-q:v", "3",
         str(out / "%03d.jpg")]
    )  # fmt: skip


def ten_ffmpeg(url: str, times: list[float], out: Path) -> None:
    """One process per thumbnail, input seeking (accurate by default)."""
    for index, at_s in enumerate(times):
        _ffmpeg(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", f"{at_s:.3f}", "-i", url,
             "-frames:v", "1", "-vf", f"scale={WIDTH_PX}:-2", "-q:v", "3",
             str(out / f"{index:03d}.jpg")]
        )  # fmt: skip


def thumbnail_command(url: str, times: list[float], *, width_px: int, out_dir: Path) -> list[str]:
    """The fastest command line for N thumbnails: one ffmpeg, one pre-seeked input per time.

    Each input is opened with ``-noaccurate_seek -ss T`` (the keyframe at or before T) and
    ``-fps_mode passthrough`` so no frame up to T is decoded; ``-threads 1 -probesize 32
    -analyzeduration 0`` skip work a single keyframe does not need. The workers use the
    in-process path (``workers.media.thumbnails``); this is the ffmpeg command line it is compared
    with.
    """
    outputs = []
    for index, at_s in enumerate(times):
        stream = (
            ffmpeg.input(
                url,
                ss=f"{at_s:.3f}",
                noaccurate_seek=None,
                threads=1,
                probesize=32,
                analyzeduration=0,
            )
            .video.filter("scale", "trunc(iw*sar/2)*2", "ih")
            .filter("setsar", 1)
            .filter("scale", width_px, -2)
        )
        outputs.append(
            stream.output(
                str(out_dir / f"{index:03d}.jpg"),
                vframes=1,
                fps_mode="passthrough",
                **{"q:v": 3},
            )
        )
    return list(
        ffmpeg.merge_outputs(*outputs)
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd="ffmpeg", overwrite_output=True)
    )


def best_cli(url: str, times: list[float], out: Path) -> None:
    """One ffmpeg, one pre-seeked input per thumbnail, keyframes only."""
    _ffmpeg(thumbnail_command(url, times, width_px=WIDTH_PX, out_dir=out))


def raw_pyav(url: str, times: list[float], out: Path) -> None:
    """Open once with ffmpeg's own HTTP reader and seek to each keyframe."""
    with av.open(url) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        time_base = stream.time_base or Fraction(1, 1000)
        for index, at_s in enumerate(times):
            container.seek(int(at_s / time_base), stream=stream, backward=True)
            stream.codec_context.flush_buffers()
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.size:
                    frames = stream.codec_context.decode(packet) or stream.codec_context.decode(
                        None
                    )
                    break
            frame = frames[0]
            sar = stream.codec_context.sample_aspect_ratio or Fraction(1)
            width, height = output_size(
                frame.width, frame.height, sar=Fraction(sar), rotation=0, width_px=WIDTH_PX
            )
            jpeg = encode_jpeg(frame.reformat(width, height, format="yuvj420p"), quality=3)
            (out / f"{index:03d}.jpg").write_bytes(jpeg)


def _step(
    board: storyboard.StoryboardPlan | None, pool: urllib3.PoolManager, *, decoders: int
) -> Callable[..., None]:
    def run(url: str, times: list[float], out: Path) -> None:
        result = capture(
            url,
            times,
            video_key="bench",
            width_px=WIDTH_PX,
            jpeg_quality=3,
            search_attempts=5,
            board=board,
            limits=LIMITS,
            pool=pool,
            max_pixels=DEFAULT_MAX_VIDEO_PIXELS,
            decoders=decoders,
        )
        for index, shot in enumerate(result.shots):
            (out / f"{index:03d}.jpg").write_bytes(shot.jpeg)
        if result.sprite_jpeg is not None:
            (out / "storyboard.jpg").write_bytes(result.sprite_jpeg)

    return run


def probe(url: str, times: list[float], out: Path) -> None:
    """The validate step's in-process probe over the bounded range reader."""
    source = RangeSource(url, video_key="bench", pool=urllib3.PoolManager())
    worker_media.probe(
        source.cursor(), video_key="bench", size_bytes=None, max_pixels=DEFAULT_MAX_VIDEO_PIXELS
    )


def _video(pool: urllib3.PoolManager) -> Callable[..., int]:
    """One video through both media steps with the worker's default settings.

    Mirrors ``workers.steps``: the validate step probes through a ``ReadLimits`` source; the
    thumbnail step plans thumbnails and the storyboard (tile height from the probe's display
    size) from the probe and captures them in one pass. Returns the keyframes decoded.
    """
    settings = Settings()
    limits = ReadLimits(
        block_bytes=settings.range_read_block_bytes,
        max_request_bytes=settings.range_read_max_request_bytes,
        cache_bytes=settings.range_read_cache_bytes,
        timeout_s=settings.s3_read_timeout_s,
        max_attempts=settings.s3_max_attempts,
    )

    def run(url: str, times: list[float], out: Path) -> int:
        source = limits.source(url, video_key="bench", pool=pool)
        info = worker_media.probe(
            source.cursor(),
            video_key="bench",
            size_bytes=None,
            max_pixels=settings.max_video_pixels,
        )
        tile_w = settings.storyboard_tile_width_px // 2 * 2
        tile_h = max(2, round(tile_w * info.display_height / info.display_width / 2) * 2)
        board = storyboard.plan_storyboard(
            info.duration_s,
            min_interval_s=settings.storyboard_min_interval_s,
            max_tiles=settings.storyboard_max_tiles,
            columns=settings.storyboard_columns,
            tile_width=tile_w,
            tile_height=tile_h,
        )
        result = capture(
            url,
            worker_media.plan_thumbnails(info.duration_s, settings.thumbnail_count),
            video_key="bench",
            width_px=settings.thumbnail_width_px,
            jpeg_quality=settings.thumbnail_jpeg_quality,
            search_attempts=settings.thumbnail_search_attempts,
            board=board,
            limits=limits,
            pool=pool,
            max_pixels=settings.max_video_pixels,
            decoders=settings.thumbnail_decoders,
        )
        for index, shot in enumerate(result.shots):
            (out / f"{index:03d}.jpg").write_bytes(shot.jpeg)
        if result.sprite_jpeg is not None:
            (out / "storyboard.jpg").write_bytes(result.sprite_jpeg)
        return result.keyframes

    return run


def measure(
    fn: Callable[..., int | None], url: str, times: list[float], server: FileServer
) -> tuple[float, float, int, int, int]:
    """Wall s, CPU s (this process and its children), bytes sent, requests and keyframes
    decoded (when the method tells) of one call."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        server.reset()
        cpu0, child0, wall0 = time.process_time(), _children_cpu(), time.perf_counter()
        keyframes = fn(url, times, Path(tmp))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0 + _children_cpu() - child0
        time.sleep(0.2)  # let the server notice hang-ups and stop counting
        counted = server.stats()
        return wall, cpu, counted.bytes_sent, counted.requests, keyframes or 0


def main() -> None:
    """Run every method on every source and print medians, ratios and the targets."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--naive-runs", type=int, default=1)
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--only", nargs="*", help="run only these methods (e.g. --only video probe step)"
    )
    args = parser.parse_args()
    pool = urllib3.PoolManager(maxsize=4)
    media.MEDIA_DIR.mkdir(exist_ok=True)
    for name in args.sources:
        make, duration = SOURCES[name]
        path = make()
        size = path.stat().st_size
        times = worker_media.plan_thumbnails(duration, COUNT)
        board = storyboard.plan_storyboard(
            duration, min_interval_s=2.0, max_tiles=30, columns=6, tile_width=160, tile_height=90
        )
        methods: dict[str, Callable[..., int | None]] = {
            "video": _video(pool),
            "probe": probe,
            "ten-ffmpeg": ten_ffmpeg,
            "best-cli": best_cli,
            "raw-pyav": raw_pyav,
            "step": _step(None, pool, decoders=DECODERS),
            "step-2dec": _step(None, pool, decoders=2),
            "step+board": _step(board, pool, decoders=DECODERS),
        }
        if not args.skip_naive:
            methods["naive"] = naive
        if args.only:
            methods = {m: fn for m, fn in methods.items() if m in args.only}
        runs = {m: Runs() for m in methods}
        with FileServer(path.parent) as server:
            url = server.url(path.name)
            for round_ in range(args.rounds):
                for method, fn in methods.items():
                    if method == "naive" and round_ >= args.naive_runs:
                        continue
                    wall, cpu, sent, requests, keyframes = measure(fn, url, times, server)
                    r = runs[method]
                    r.wall_s.append(wall)
                    r.cpu_s.append(cpu)
                    r.bytes_sent.append(sent)
                    r.requests.append(requests)
                    r.keyframes.append(keyframes)
        _report(name, path, size, runs)


HEADER = "method         wall s    CPU s   sent MB  % object  requests  runs"


def _report(name: str, path: Path, size: int, runs: dict[str, Runs]) -> None:
    print(f"\n## {name}: {path.name}, {size / 1e6:.0f} MB, {COUNT} thumbnails {WIDTH_PX} px wide")
    print(HEADER)
    for method, r in runs.items():
        sent = r.median("bytes_sent")
        print(
            f"{method:<12} {r.median('wall_s'):>8.3f} {r.median('cpu_s'):>8.3f} {sent / 1e6:>9.2f}"
            f" {100 * sent / size:>8.2f}% {r.median('requests'):>9.0f} {len(r.wall_s):>5}"
        )
    checks: list[tuple[str, bool | None]] = []
    if "step" in runs:
        checks += _step_checks(name, size, runs)
    if "video" in runs:
        checks += _video_checks(name, size, runs["video"])
    for label, ok in checks:
        verdict = "----" if ok is None else "PASS" if ok else "FAIL"
        print(f"  [{verdict}] {label}")


def _step_checks(name: str, size: int, runs: dict[str, Runs]) -> list[tuple[str, bool | None]]:
    """The thumbnail step against the other methods (issue 2's targets)."""
    step = runs["step"].median("wall_s")
    step_cpu = runs["step"].median("cpu_s")
    print("ratios (method / step, medians of the same run):     wall      CPU")
    for method in ("naive", "ten-ffmpeg", "best-cli", "raw-pyav", "step-2dec", "step+board"):
        if method in runs:
            wall_ratio = runs[method].median("wall_s") / step
            cpu_ratio = runs[method].median("cpu_s") / step_cpu
            print(f"  {method:<11} / step {'':<30} {wall_ratio:8.2f}x {cpu_ratio:8.2f}x")
    checks: list[tuple[str, bool | None]] = []
    if "naive" in runs:
        naive_ratio = runs["naive"].median("wall_s") / step
        checks.append((f"step {naive_ratio:.0f}x faster than naive (>= 100x)", naive_ratio >= 100))
    else:
        checks.append(("step vs naive: not measured (--skip-naive)", None))
    if "raw-pyav" in runs:
        raw_ratio = step / runs["raw-pyav"].median("wall_s")
        raw_cpu = step_cpu / runs["raw-pyav"].median("cpu_s")
        checks += [
            (f"step at {raw_ratio:.2f}x of raw-pyav's wall (<= 1.25x)", raw_ratio <= 1.25),
            (f"step at {raw_cpu:.2f}x of raw-pyav's CPU (<= 1.25x)", raw_cpu <= 1.25),
        ]
    if "probe" in runs:
        cpu = runs["probe"].median("cpu_s") + step_cpu
        checks.append((f"probe + {COUNT} thumbnails CPU {cpu:.2f} s < 1 s", cpu < 1.0))
    share = runs["step"].median("bytes_sent") / size
    per_thumb = runs["step"].median("requests") / COUNT
    checks.append(
        (
            f"step sent {100 * share:.2f}% of the object (<= 1.5% front, 2% end)",
            share <= (0.015 if "front" in name else 0.02),
        )
    )
    checks.append((f"step requests per thumbnail {per_thumb:.1f} <= 2", per_thumb <= 2))
    return checks


def _video_checks(name: str, size: int, video: Runs) -> list[tuple[str, bool | None]]:
    """One video, all steps, default settings (issue 12's targets)."""
    settings = Settings()
    sent = video.median("bytes_sent")
    requests = video.median("requests")
    keyframes = video.median("keyframes")
    cpu = video.median("cpu_s")
    print(
        f"per video, all steps (probe; {settings.thumbnail_count} thumbnails, poster,"
        f" {settings.storyboard_max_tiles}-tile storyboard): {sent / 1e6:.2f} MB"
        f" = {100 * sent / size:.2f}% of the object, {requests:.0f} requests,"
        f" {keyframes:.0f} keyframes decoded, {cpu:.3f} CPU-s, {video.median('wall_s'):.3f} s"
    )
    share_limit = VIDEO_BYTES_SHARE[name]
    per_keyframe = requests / keyframes if keyframes else math.inf
    cpu_label = f"video: probe + thumbnails + storyboard {cpu:.3f} CPU-s"
    return [
        (
            f"video: {100 * sent / size:.2f}% of the object sent (<= {100 * share_limit:.2f}%)",
            sent / size <= share_limit,
        ),
        (
            f"video: {per_keyframe:.2f} requests per decoded keyframe (<= 1.5)",
            per_keyframe <= VIDEO_REQUESTS_PER_KEYFRAME,
        ),
        (f"{cpu_label} (<= 0.4 for the 10-minute 1080p)", cpu <= VIDEO_CPU_S)
        if name.startswith("h264")
        else (f"{cpu_label} (720p VP9: no target)", None),
    ]


if __name__ == "__main__":
    main()
