"""The event rules: which events are processed, deleted or ignored, and why."""

from __future__ import annotations

import pytest

from producer.events.rules import EventRules, Verdict
from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent
from schema.settings import Settings


def _created(key: str, size: int | None = 1024) -> ObjectEvent:
    return ObjectEvent(bucket="bkt", key=key, action=Action.CREATED, size=size, etag="e")


def _deleted(key: str) -> ObjectEvent:
    return ObjectEvent(bucket="bkt", key=key, action=Action.DELETED)


@pytest.mark.parametrize(
    "key",
    [
        "uploads/a.mp4", "a.MOV", "x/y/z.avi", "clip.mkv", "clip.WebM", "clip.m4v", "a b+c.mp4",
        # common containers ffmpeg reads, which users upload from cameras, phones and TV
        "cam.ts", "cam.m2ts", "CAM.MTS", "phone.3gp", "dvd.mpg", "dvd.mpeg", "free.ogv",
        "old.flv", "old.wmv",
    ],
)  # fmt: skip
def test_video_creates_are_processed_by_default(key: str) -> None:
    assert EventRules().decide(_created(key)).verdict is Verdict.PROCESS


@pytest.mark.parametrize("key", ["notes.txt", "clip.mp4.part", "mp4", "image.jpg"])
def test_other_extensions_are_ignored_with_a_reason(key: str) -> None:
    decision = EventRules().decide(_created(key))
    assert decision.verdict is Verdict.IGNORE
    assert decision.reason is not None
    assert "extension" in decision.reason


def test_thumbnails_are_never_processed_even_with_a_matching_extension() -> None:
    rules = EventRules(extensions=(), thumbnails_prefix="thumbnails/")
    decision = rules.decide(_created("thumbnails/uploads/a.mp4/000.jpg"))
    assert decision.verdict is Verdict.IGNORE
    assert decision.reason == "under the thumbnails prefix 'thumbnails/'"
    assert rules.decide(_deleted("thumbnails/uploads/a.mp4/000.jpg")).verdict is Verdict.IGNORE


def test_key_prefix_filters_creates_and_deletes() -> None:
    rules = EventRules(key_prefix="uploads/")
    assert rules.decide(_created("uploads/a.mp4")).verdict is Verdict.PROCESS
    assert rules.decide(_deleted("uploads/a.mp4")).verdict is Verdict.DELETE
    outside = rules.decide(_created("other/a.mp4"))
    assert (outside.verdict, outside.reason) == (
        Verdict.IGNORE,
        "outside the key prefix 'uploads/'",
    )
    assert rules.decide(_deleted("other/a.mp4")).verdict is Verdict.IGNORE


def test_size_limits_are_inclusive_and_unknown_sizes_pass() -> None:
    rules = EventRules(min_size_bytes=10, max_size_bytes=100)
    assert rules.decide(_created("a.mp4", 10)).verdict is Verdict.PROCESS
    assert rules.decide(_created("a.mp4", 100)).verdict is Verdict.PROCESS
    assert rules.decide(_created("a.mp4", None)).verdict is Verdict.PROCESS
    small = rules.decide(_created("a.mp4", 9))
    assert (small.verdict, small.reason) == (Verdict.IGNORE, "9 bytes is below the minimum of 10")
    big = rules.decide(_created("a.mp4", 101))
    assert (big.verdict, big.reason) == (Verdict.IGNORE, "101 bytes is above the maximum of 100")


def test_deletes_have_no_size_and_are_not_size_filtered() -> None:
    assert EventRules(min_size_bytes=10).decide(_deleted("a.mp4")).verdict is Verdict.DELETE


def test_an_empty_extension_list_accepts_every_key() -> None:
    assert EventRules(extensions=()).decide(_created("README")).verdict is Verdict.PROCESS


def test_rules_come_from_the_settings() -> None:
    settings = Settings(
        ingest_key_prefix="in/",
        ingest_extensions=".MP4, mov",  # type: ignore[arg-type]
        ingest_min_size_bytes=1,
        ingest_max_size_bytes=2048,
        thumbnails_prefix="thumbs/",
    )
    assert EventRules.from_settings(settings) == EventRules(
        buckets=(settings.s3_bucket,),
        key_prefix="in/",
        extensions=(".mp4", ".mov"),
        min_size_bytes=1,
        max_size_bytes=2048,
        thumbnails_prefix="thumbs/",
    )


def test_default_settings_give_the_default_rules() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert EventRules.from_settings(settings) == EventRules(buckets=(settings.s3_bucket,))


def test_settings_refuse_a_minimum_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="INGEST_MIN_SIZE_BYTES"):
        Settings(ingest_min_size_bytes=10, ingest_max_size_bytes=5)


def test_a_foreign_bucket_is_refused_and_never_processed() -> None:
    rules = EventRules.from_settings(
        Settings(s3_bucket="uploads-a", ingest_buckets="uploads-a,bkt")
    )
    served = ObjectEvent(bucket="bkt", key="a.mp4", action=Action.CREATED, size=1)
    foreign = ObjectEvent(bucket="someone-else", key="a.mp4", action=Action.CREATED, size=1)
    rules.refuse_foreign([served])
    with pytest.raises(InvalidEvent, match="bucket 'someone-else' is not served here"):
        rules.refuse_foreign([served, foreign])
    assert rules.decide(foreign).verdict is Verdict.IGNORE


def test_only_s3_bucket_is_served_by_default() -> None:
    assert Settings(s3_bucket="uploads-a").served_buckets == ("uploads-a",)
    assert EventRules.from_settings(Settings(s3_bucket="uploads-a")).buckets == ("uploads-a",)
