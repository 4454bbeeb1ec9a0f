"""Make a storyboard you can look at: sprite, WebVTT, thumbnails and a scrubbing page.

Generates a 2-minute 640x360 video whose picture shows a running counter (ffmpeg's ``testsrc``),
runs the worker's capture over HTTP with the default storyboard settings, and writes to
``bench/.media/storyboard/``:

- ``storyboard.jpg`` (the sprite) and ``storyboard.vtt`` (cues with ``#xywh=``),
- ``000.jpg`` ... the thumbnails (the poster is named in ``index.html``),
- ``index.html``: the video with a scrub bar showing the tile under the cursor.

Open ``bench/.media/storyboard/index.html`` in a browser (or just the sprite in a viewer).
"""

from __future__ import annotations

import argparse
import html
import subprocess

import urllib3

from bench import media
from bench.fileserver import FileServer
from schema.settings import Settings
from workers.media import storyboard
from workers.media.probe import plan_thumbnails
from workers.media.rangereader import ReadLimits
from workers.media.thumbnails import capture

SECONDS = 120
PAGE = """<!doctype html>
<meta charset="utf-8"><title>videofleet storyboard</title>
<style>body{{font:14px sans-serif;margin:2em}}#bar{{width:640px;height:14px;background:#ccc;
cursor:pointer}}#tip{{width:{w}px;height:{h}px;border:1px solid #333;
background:url(storyboard.jpg) no-repeat}}</style>
<video src="video.mp4" width="640" controls></video>
<p>Move the mouse over the bar: the tile comes from the sprite, the cue from the VTT.</p>
<div id="bar"></div><div id="tip"></div><p id="cue"></p>
<h3>Thumbnails (poster: {poster})</h3>{thumbs}
<script>
const cues = [];
fetch("storyboard.vtt").then(r => r.text()).then(text => {{
  for (const block of text.split("\\n\\n")) {{
    const m = block.match(/([\\d:.]+) --> ([\\d:.]+)\\n(\\S+)#xywh=(\\d+),(\\d+),(\\d+),(\\d+)/);
    if (!m) continue;
    const secs = t => t.split(":").reduce((a, v) => a * 60 + parseFloat(v), 0);
    cues.push({{start: secs(m[1]), end: secs(m[2]), x: +m[4], y: +m[5], text: block}});
  }}
}});
document.getElementById("bar").addEventListener("mousemove", e => {{
  const t = e.offsetX / 640 * {duration};
  const cue = cues.find(c => c.start <= t && t < c.end) || cues[cues.length - 1];
  if (!cue) return;
  document.getElementById("tip").style.backgroundPosition = `-${{cue.x}}px -${{cue.y}}px`;
  document.getElementById("cue").textContent = cue.text;
}});
</script>
"""


def main() -> None:
    """Generate the video, capture, and write the files."""
    argparse.ArgumentParser(prog="python -m bench.storyboard", description=__doc__).parse_args()
    out = media.MEDIA_DIR / "storyboard"
    out.mkdir(parents=True, exist_ok=True)
    video = out / "video.mp4"
    if not video.exists():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc=size=640x360:rate=25:duration={SECONDS}", "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", str(video)],
            check=True,
        )  # fmt: skip
    settings = Settings()
    tile_w = settings.storyboard_tile_width_px
    board = storyboard.plan_storyboard(
        SECONDS,
        min_interval_s=settings.storyboard_min_interval_s,
        max_tiles=settings.storyboard_max_tiles,
        columns=settings.storyboard_columns,
        tile_width=tile_w,
        tile_height=round(tile_w * 9 / 16 / 2) * 2,
    )
    with FileServer(out) as server:
        result = capture(
            server.url(video.name),
            plan_thumbnails(SECONDS, 10),
            video_key="video.mp4",
            width_px=settings.thumbnail_width_px,
            jpeg_quality=settings.thumbnail_jpeg_quality,
            search_attempts=settings.thumbnail_search_attempts,
            board=board,
            limits=ReadLimits(128 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024, 30),
            pool=urllib3.PoolManager(),
            decoders=settings.thumbnail_decoders,
            max_pixels=settings.max_video_pixels,
        )
    assert result.sprite_jpeg is not None
    assert result.vtt is not None
    (out / storyboard.SPRITE_NAME).write_bytes(result.sprite_jpeg)
    (out / storyboard.VTT_NAME).write_text(result.vtt)
    names = []
    for index, shot in enumerate(result.shots):
        name = f"{index:03d}.jpg"
        (out / name).write_bytes(shot.jpeg)
        names.append(name)
    thumbs = "".join(f'<img src="{html.escape(n)}" title="{n}"> ' for n in names)
    page = PAGE.format(
        w=board.tile_width,
        h=board.tile_height,
        duration=SECONDS,
        poster=names[result.poster_index],
        thumbs=thumbs,
    )
    (out / "index.html").write_text(page)
    print(f"sprite {out / storyboard.SPRITE_NAME}: {len(board.tiles)} tiles")
    print(f"page   {out / 'index.html'}")
    print(f"read {result.bytes_read / 1e6:.2f} MB of {result.object_bytes / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
