"""Sample media made by the ffmpeg command line from its built-in test sources.

The demo uploads these, and the test suite builds its fixtures from them: nothing is downloaded,
and a few seconds of 320x240 take well under a second to encode.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SAMPLE_TIMEOUT_S = 120


def make_video(
    path: Path,
    *,
    seconds: float = 4.0,
    size: str = "320x240",
    rate: int = 25,
    codec: str = "libx264",
    audio: bool = True,
    rotate_deg: int | None = None,
    sar: str | None = None,
    faststart: bool = True,
    gop_frames: int | None = None,
) -> Path:
    """Encode a test-pattern video with a 440 Hz tone; the container follows the suffix.

    ``rotate_deg`` writes a display-matrix rotation, ``sar`` an anamorphic sample aspect ratio,
    ``faststart`` moves the MP4 index to the front.
    """
    args = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", codec, "-pix_fmt", "yuv420p"]
    if codec == "libx264":
        args += ["-preset", "ultrafast"]
    if codec == "libvpx-vp9":
        args += ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"]
    if gop_frames:
        args += ["-g", str(gop_frames)]
    if sar:
        # ``-vf setsar`` does not reach libx264 in ffmpeg 5.1; the display aspect ratio does.
        width, height = (int(n) for n in size.split("x"))
        num, den = (int(n) for n in sar.split(":"))
        args += ["-aspect", f"{width * num}:{height * den}"]
    if audio:
        args += ["-c:a", "libopus" if path.suffix == ".webm" else "aac", "-shortest"]
    if faststart and path.suffix in {".mp4", ".mov"}:
        args += ["-movflags", "+faststart"]
    encoded = path.with_name(f".encoding-{path.name}") if rotate_deg is not None else path
    args.append(str(encoded))
    subprocess.run(args, check=True, timeout=SAMPLE_TIMEOUT_S)
    if rotate_deg is not None:
        # ffmpeg 5.1 writes a display matrix only when the stream is copied, not while encoding.
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(encoded),
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={rotate_deg}",
                str(path),
            ],
            check=True,
            timeout=SAMPLE_TIMEOUT_S,
        )
        encoded.unlink()
    return path


def make_not_a_video(path: Path) -> Path:
    """Write a text file with a video's name: what a careless upload looks like."""
    path.write_text("This is a shopping list, not a video.\n- milk\n- eggs\n")
    return path


def make_empty(path: Path) -> Path:
    """Write a zero-byte file: an upload that was interrupted before any data."""
    path.write_bytes(b"")
    return path
