"""The bucket layout of derived objects: one folder per video, keys versioned by content."""

from __future__ import annotations

import hashlib

from schema.derived_keys import derived_folder, storyboard_key, thumbnail_key


def test_thumbnails_and_storyboard_live_in_the_video_folder_versioned_by_their_bytes() -> None:
    digest = hashlib.sha256(b"jpeg").hexdigest()[:16]
    folder = derived_folder("thumbnails/", "uploads/a.mp4")
    assert folder == "thumbnails/uploads/a.mp4/"
    assert thumbnail_key("thumbnails/", "uploads/a.mp4", 3, b"jpeg") == f"{folder}003.{digest}.jpg"
    assert storyboard_key("thumbnails/", "uploads/a.mp4", "storyboard.vtt", b"jpeg") == (
        f"{folder}storyboard.{digest}.vtt"
    )


def test_a_name_without_extension_gets_the_hash_appended() -> None:
    digest = hashlib.sha256(b"x").hexdigest()[:16]
    assert storyboard_key("t/", "k.d/v", "map", b"x") == f"t/k.d/v/map.{digest}"
