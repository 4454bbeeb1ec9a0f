"""The ffmpeg command line the thumbnail bench compares the workers' in-process path with."""

from __future__ import annotations

from pathlib import Path

from bench.thumbs import thumbnail_command


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
