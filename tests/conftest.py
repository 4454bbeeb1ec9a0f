"""Fixtures every test layer shares: generated media, made once per session by ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from producer import samples


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg and ffprobe must be installed (make install does it)")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def h264_mp4(media_dir: Path) -> Path:
    """4 s of 320x240 H.264 + AAC at 25 fps, index at the front."""
    return samples.make_video(media_dir / "clip.mp4", seconds=4, size="320x240", rate=25)


@pytest.fixture(scope="session")
def long_gop_mp4(media_dir: Path) -> Path:
    """A video whose keyframes are far apart, so that its thumbnail step takes a while."""
    return samples.make_video(
        media_dir / "long-gop.mp4", seconds=40, size="640x360", rate=25, gop_frames=500
    )


@pytest.fixture(scope="session")
def not_a_video(media_dir: Path) -> Path:
    return samples.make_not_a_video(media_dir / "notes.mp4")
