"""The upload policy: video types, sizes, safe keys and part plans, without any service."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.uploads.policy import (
    MAX_PARTS,
    MIN_PART_BYTES,
    check_completed_parts,
    check_filename,
    check_size,
    content_type_for,
    object_key,
    plan_parts,
    safe_filename,
    upload_types,
)
from schema.errors import UploadRejected
from schema.settings import DEFAULT_MULTIPART_BYTES, DEFAULT_UPLOAD_MAX_BYTES, Settings
from schema.video_types import VIDEO_TYPES

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("a.mp4", "video/mp4", "video/mp4"),
        ("A.MOV", "video/quicktime", "video/quicktime"),
        ("clip.avi", "video/x-msvideo", "video/x-msvideo"),
        ("clip.mkv", "video/x-matroska", "video/x-matroska"),
        ("clip.webm", "VIDEO/WEBM; codecs=vp9", "video/webm"),
    ],
)
def test_each_design_video_type_is_accepted_with_its_mime_type(
    filename: str, declared: str, expected: str
) -> None:
    assert content_type_for(filename, declared) == expected


@pytest.mark.parametrize(
    ("filename", "declared"),
    [
        ("notes.txt", "text/plain"),
        ("photo.jpg", "image/jpeg"),
        ("clip", "video/mp4"),
        ("clip.mp4", "video/webm"),
        ("clip.mp4", "application/octet-stream"),
        ("clip.mp4.txt", "video/mp4"),
    ],
)
def test_non_videos_and_mismatched_types_are_refused_as_unsupported(
    filename: str, declared: str
) -> None:
    with pytest.raises(UploadRejected) as caught:
        content_type_for(filename, declared)
    assert caught.value.code == "unsupported_type"


def test_sizes_are_checked_against_the_limit_and_the_single_put_threshold() -> None:
    check_size(1, max_bytes=10)
    check_size(10, max_bytes=10, single_max_bytes=10)
    codes = []
    for size, single in [(0, None), (11, None), (6, 5)]:
        with pytest.raises(UploadRejected) as caught:
            check_size(size, max_bytes=10, single_max_bytes=single)
        codes.append(caught.value.code)
    assert codes == ["empty_file", "file_too_large", "use_multipart"]


def test_the_defaults_are_the_designs_5_gb_and_50_mib() -> None:
    settings = Settings()
    assert settings.upload_max_bytes == DEFAULT_UPLOAD_MAX_BYTES == 5_000_000_000
    assert settings.multipart_threshold_bytes == DEFAULT_MULTIPART_BYTES == 50 * MIB
    assert settings.multipart_part_size_bytes == 50 * MIB
    assert settings.presign_expiry_s == 3600


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("holiday.mp4", "holiday.mp4"),
        ("Été à Paris (final).MOV", "Ete-a-Paris-final.mov"),
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("C:\\Users\\ada\\clip.mkv", "clip.mkv"),
        ("...hidden.webm", "hidden.webm"),
        ("视频.mp4", "video.mp4"),
        ("a b+c%20d.mp4", "a-b-c-20d.mp4"),
        (".mp4", "video.mp4"),
        ("\\.MP4", "video.mp4"),
        ("archive.tar.mkv", "archive.tar.mkv"),
    ],
)
def test_file_names_are_reduced_to_a_safe_subset_keeping_the_extension(
    name: str, safe: str
) -> None:
    assert safe_filename(name) == safe


@given(st.text(min_size=1, max_size=300))
def test_any_name_gives_a_bounded_safe_key_under_uploads(name: str) -> None:
    key = object_key(f"{name}.mp4")
    assert re.fullmatch(r"uploads/[0-9a-f-]{36}-[A-Za-z0-9._-]+", key)
    assert key.endswith(".mp4")
    assert len(key) <= len("uploads/") + 36 + 1 + 80 + 4


def test_the_key_is_a_random_uuid_then_the_safe_name() -> None:
    unique = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert object_key("My Clip.mp4", unique=unique) == f"uploads/{unique}-My-Clip.mp4"
    assert object_key("a.mp4") != object_key("a.mp4")


def test_empty_and_overlong_file_names_are_refused() -> None:
    assert check_filename("  a.mp4 ") == "a.mp4"
    for bad in ["", "   ", "x" * 252 + ".mp4"]:
        with pytest.raises(UploadRejected) as caught:
            check_filename(bad)
        assert caught.value.code == "bad_filename"


def test_parts_are_the_preferred_size_with_a_smaller_last_part() -> None:
    plan = plan_parts(120 * MIB + 7, preferred_part_bytes=50 * MIB)
    assert (plan.part_size, plan.part_count) == (50 * MIB, 3)
    assert [plan.part_length(n) for n in (1, 2, 3)] == [50 * MIB, 50 * MIB, 20 * MIB + 7]


def test_parts_never_go_below_r2s_5_mib_minimum() -> None:
    plan = plan_parts(11 * MIB, preferred_part_bytes=1)
    assert (plan.part_size, plan.part_count) == (5 * MIB, 3)


def test_part_size_grows_to_fit_10000_parts() -> None:
    size = 5 * 1024**4  # 5 TiB would need 100,000+ parts of 50 MiB
    plan = plan_parts(size, preferred_part_bytes=50 * MIB)
    assert plan.part_count <= MAX_PARTS
    assert plan.part_size % MIB == 0
    assert plan.part_size > 50 * MIB


@given(
    size=st.integers(min_value=1, max_value=5 * 1024**4),
    preferred=st.integers(min_value=1, max_value=5 * 1024**3),
)
def test_any_plan_covers_the_file_in_equal_parts_within_r2s_rules(
    size: int, preferred: int
) -> None:
    plan = plan_parts(size, preferred_part_bytes=preferred)
    assert plan.part_size >= MIN_PART_BYTES
    assert 1 <= plan.part_count <= MAX_PARTS
    lengths = [plan.part_length(1), plan.part_length(plan.part_count)]
    assert plan.part_size * (plan.part_count - 1) + lengths[-1] == size
    assert 0 < lengths[-1] <= plan.part_size


def test_part_numbers_outside_the_plan_are_refused() -> None:
    plan = plan_parts(11 * MIB, preferred_part_bytes=5 * MIB)
    for number in (0, 4):
        with pytest.raises(UploadRejected) as caught:
            plan.part_length(number)
        assert caught.value.code == "bad_part_number"


def test_completion_must_list_every_part_once_in_order() -> None:
    plan = plan_parts(11 * MIB, preferred_part_bytes=5 * MIB)
    check_completed_parts(plan, [1, 2, 3])
    for numbers in ([1, 2], [1, 3, 2], [1, 2, 2, 3], [1, 2, 3, 4]):
        with pytest.raises(UploadRejected) as caught:
            check_completed_parts(plan, numbers)
        assert caught.value.code == "bad_parts"


def test_upload_types_are_the_ingest_extensions_video_types() -> None:
    # every default ingest extension can be uploaded, with a MIME type
    assert set(upload_types(Settings().ingest_extensions)) == set(Settings().ingest_extensions)
    # a narrower INGEST_EXTENSIONS narrows the upload API too; empty means every video type
    assert upload_types((".mp4", ".txt")) == {".mp4": "video/mp4"}
    assert upload_types(()) == dict(VIDEO_TYPES)
    assert content_type_for("cam.ts", "video/mp2t") == "video/mp2t"
