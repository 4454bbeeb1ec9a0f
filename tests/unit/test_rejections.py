"""How a rejected body is stored: as text a database column can hold, at most 64 KiB."""

from __future__ import annotations

from producer.events.rejections import MAX_BODY_BYTES, Rejection, body_text


def test_invalid_utf8_and_nul_are_escaped() -> None:
    assert body_text(b"a\xffb\x00c") == "a\\xffb\\x00c"
    assert body_text("x\x00y") == "x\\x00y"
    assert body_text("\ud800") == "\\ud800"
    assert body_text(None) is None


def test_long_bodies_are_cut_at_64_kib_on_a_character_boundary() -> None:
    text = body_text("é" * MAX_BODY_BYTES)
    assert text is not None
    assert len(text.encode()) <= MAX_BODY_BYTES
    assert set(text) == {"é"}


def test_a_redelivered_message_is_one_row_and_anonymous_ones_are_distinct() -> None:
    assert Rejection("q", "r", None, "m1").row_id == Rejection("q", "other", b"", "m1").row_id
    assert Rejection("q", "r", None, "m1").row_id != Rejection("w", "r", None, "m1").row_id
    assert Rejection("q", "r", None).row_id != Rejection("q", "r", None).row_id
