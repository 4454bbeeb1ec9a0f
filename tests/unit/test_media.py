"""Pure media logic: reading ffprobe's JSON, display sizes, thumbnail plans, failure classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schema.errors import NotAVideo, ObjectMissing, StorageUnavailable
from workers.media import (
    classify_failure,
    display_size,
    parse_probe,
    plan_thumbnails,
    thumbnail_command,
)


def _probe(**video: Any) -> dict[str, Any]:
    stream = {
        "codec_type": "video",
        "codec_name": "h264",
        "width": 320,
        "height": 240,
        "avg_frame_rate": "25/1",
        "sample_aspect_ratio": "1:1",
    } | video
    return {
        "format": {
            "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
            "duration": "4.000000",
            "bit_rate": "200000",
            "size": "100000",
        },
        "streams": [stream, {"codec_type": "audio", "codec_name": "aac"}],
    }


def test_probe_json_becomes_media_info() -> None:
    info = parse_probe(_probe(), video_key="a.mp4")
    assert (info.duration_s, info.display_width, info.display_height) == (4.0, 320, 240)
    assert (info.video_codec, info.audio_codec, info.frame_rate) == ("h264", "aac", 25.0)
    assert (info.bit_rate, info.size_bytes, info.rotation) == (200000, 100000, 0)


def test_display_matrix_rotation_swaps_the_display_size() -> None:
    info = parse_probe(
        _probe(side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}]),
        video_key="a.mp4",
    )
    assert (info.display_width, info.display_height) == (240, 320)
    assert info.rotation == 270


def test_rotate_tag_of_older_files_is_honoured() -> None:
    info = parse_probe(_probe(tags={"rotate": "90"}), video_key="a.mp4")
    assert (info.display_width, info.display_height) == (240, 320)


def test_anamorphic_pixels_stretch_the_display_width() -> None:
    assert display_size(720, 576, sar="16:15", rotation=0) == (768, 576)
    assert display_size(240, 240, sar="4:3", rotation=0) == (320, 240)
    assert display_size(320, 240, sar="0:1", rotation=0) == (320, 240)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            {
                "format": {"format_name": "mp3", "duration": "3"},
                "streams": [{"codec_type": "audio"}],
            },
            "no video stream",
        ),
        (
            {
                "format": {"format_name": "png_pipe"},
                "streams": [{"codec_type": "video", "width": 9, "height": 9}],
            },
            "still image",
        ),
        (
            {
                "format": {"format_name": "mp4"},
                "streams": [{"codec_type": "video", "width": 9, "height": 9}],
            },
            "no duration",
        ),
        (
            {
                "format": {"format_name": "mp3", "duration": "3"},
                "streams": [
                    {
                        "codec_type": "video",
                        "disposition": {"attached_pic": 1},
                        "width": 9,
                        "height": 9,
                    }
                ],
            },
            "no video stream",
        ),
    ],
)
def test_files_that_are_not_videos_are_refused_with_a_reason(
    data: dict[str, Any], reason: str
) -> None:
    with pytest.raises(NotAVideo, match=reason):
        parse_probe(data, video_key="x")


def test_thumbnails_sit_in_the_middle_of_equal_slices() -> None:
    assert plan_thumbnails(10.0, 5) == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert plan_thumbnails(4.0, 1) == [2.0]
    assert plan_thumbnails(0.0, 5) == []
    assert all(0 < t < 3.3 for t in plan_thumbnails(3.3, 7))


def test_thumbnail_command_seeks_each_input_before_opening_it(tmp_path: Path) -> None:
    args = thumbnail_command("http://s3/x.mp4?sig", [1.0, 3.0], width_px=160, out_dir=tmp_path)
    assert args[0] == "ffmpeg"
    # every input option, the keyframe seek included, stands before its own -i
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    assert len(inputs) == 2
    first = args[: inputs[0]]
    assert first[first.index("-ss") + 1] == "1.000"
    assert "-noaccurate_seek" in first
    assert args[args.index("-ss", inputs[0]) + 1] == "3.000"
    assert args.count("passthrough") == 2  # -fps_mode: no decoding of frames before T
    assert str(tmp_path / "000.jpg") in args
    assert str(tmp_path / "001.jpg") in args


def test_ffmpeg_failures_are_classified_and_the_url_is_redacted() -> None:
    url = "http://s3/a.mp4?X-Amz-Signature=secret"
    bad = classify_failure(
        f"{url}: Invalid data found when processing input".encode(), url=url, video_key="a.mp4"
    )
    assert isinstance(bad, NotAVideo)
    assert "secret" not in str(bad)
    assert "a.mp4: Invalid data" in str(bad)
    down = classify_failure(f"{url}: Connection refused".encode(), url=url, video_key="a.mp4")
    assert isinstance(down, StorageUnavailable)
    gone = classify_failure(b"Server returned 404 Not Found", url=url, video_key="a.mp4")
    assert isinstance(gone, ObjectMissing)
