"""One plan for thumbnails and tiles, and the keyframe pictures its decoders share."""

from __future__ import annotations

import threading

import av

from workers.media.pictures import KeyframePictures, Picture
from workers.media.storyboard import plan_storyboard
from workers.media.thumbnails import THUMB, TILE, Want, plan_pictures


def _picture() -> Picture:
    frame = av.VideoFrame(16, 16, "yuvj420p")
    return Picture(1.0, 1.0, frame, 100.0, 40.0, "keyframe")


def test_the_plan_holds_thumbnails_and_tiles_in_time_order() -> None:
    board = plan_storyboard(
        8.0, min_interval_s=2, max_tiles=4, columns=4, tile_width=16, tile_height=9
    )
    assert plan_pictures([2.0, 6.0], board) == [
        Want(1.0, TILE, 0),
        Want(2.0, THUMB, 0),
        Want(3.0, TILE, 1),
        Want(5.0, TILE, 2),
        Want(6.0, THUMB, 1),
        Want(7.0, TILE, 3),
    ]


def test_a_keyframe_picture_is_made_once_for_every_caller() -> None:
    pictures = KeyframePictures()
    made: list[int] = []

    def make() -> Picture:
        made.append(1)
        return _picture()

    first = pictures.get(7, make)
    assert pictures.get(7, make) is first
    assert pictures.get(8, make) is not first
    assert len(made) == 2


def test_a_second_decoder_waits_for_the_picture_the_first_is_making() -> None:
    # given a first decoder inside the making of keyframe 7
    pictures = KeyframePictures()
    making, release = threading.Event(), threading.Event()
    calls: list[str] = []
    got: dict[str, Picture | None] = {}

    def make_slowly() -> Picture:
        calls.append("first")
        making.set()
        release.wait()
        return _picture()

    def make_again() -> Picture:
        calls.append("second")
        return _picture()

    first = threading.Thread(target=lambda: got.update(first=pictures.get(7, make_slowly)))
    first.start()
    making.wait()
    # when a second decoder asks for the same keyframe meanwhile
    second = threading.Thread(target=lambda: got.update(second=pictures.get(7, make_again)))
    second.start()
    release.set()
    first.join()
    second.join()
    # then the picture was made once and both got it
    assert calls == ["first"]
    assert got["first"] is got["second"] is not None
