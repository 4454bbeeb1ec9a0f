"""Pure media logic: display sizes, the aspect-ratio rule, thumbnail plans."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

from workers.media.containers import sample_aspect
from workers.media.probe import display_size, plan_thumbnails


def test_anamorphic_pixels_stretch_the_display_width() -> None:
    assert display_size(720, 576, sar=Fraction(16, 15), rotation=0) == (768, 576)
    assert display_size(240, 240, sar=Fraction(4, 3), rotation=0) == (320, 240)
    assert display_size(320, 240, sar=Fraction(0), rotation=0) == (320, 240)


def test_a_quarter_turn_swaps_the_display_size() -> None:
    assert display_size(320, 240, sar=Fraction(1), rotation=90) == (240, 320)
    assert display_size(320, 240, sar=Fraction(1), rotation=270) == (240, 320)
    assert display_size(320, 240, sar=Fraction(1), rotation=180) == (320, 240)


def test_the_containers_aspect_ratio_wins_over_the_codecs() -> None:
    # given a stream whose container says 4:3 pixels and whose codec says 12:11 (H.263 style)
    codec = SimpleNamespace(sample_aspect_ratio=Fraction(12, 11))
    stream = SimpleNamespace(sample_aspect_ratio=Fraction(4, 3), codec_context=codec)
    # then the one rule (ffmpeg's av_guess_sample_aspect_ratio) takes the container's
    assert sample_aspect(stream) == Fraction(4, 3)  # type: ignore[arg-type]
    # and falls back to the codec's, then to square pixels
    stream.sample_aspect_ratio = None
    assert sample_aspect(stream) == Fraction(12, 11)  # type: ignore[arg-type]
    codec.sample_aspect_ratio = Fraction(0)
    assert sample_aspect(stream) == Fraction(1)  # type: ignore[arg-type]


def test_thumbnails_sit_in_the_middle_of_equal_slices() -> None:
    assert plan_thumbnails(10.0, 5) == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert plan_thumbnails(4.0, 1) == [2.0]
    assert plan_thumbnails(0.0, 5) == []
    assert all(0 < t < 3.3 for t in plan_thumbnails(3.3, 7))
