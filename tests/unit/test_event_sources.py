"""Every event source, from the documented example bodies to malformed ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from producer.events.sources import parse_body, parse_minio, parse_r2, parse_s3
from schema.errors import InvalidEvent
from schema.message import Action, ObjectEvent
from tests.factories import (
    R2_DOC_EXAMPLE,
    documented_body,
    minio_body,
    r2_body,
    s3_body,
)

ODD_KEYS = [
    "uploads/my holiday.mp4",
    "uploads/a+b.mp4",
    "uploads/100%25 done.mp4",
    "uploads/caf\u00e9 \u00e0 la cr\u00e8me/\u5bff\u53f8 \U0001f363.mp4",
    "uploads/a%2Bb.mp4",
    "uploads/?&=#;.mp4",
]


# -- the documented examples ------------------------------------------------------------------


def test_documented_r2_example_is_a_create_of_the_copy_destination() -> None:
    body = documented_body("r2-copy-object.json")
    assert body == R2_DOC_EXAMPLE
    assert parse_body(body) == [
        ObjectEvent(
            bucket="my-bucket",
            key="my-new-object",
            action=Action.CREATED,
            size=65536,
            etag="c846ff7a18f28c2e262116d6e8719ef0",
            event_time="2024-05-24T19:36:44.379Z",
            source="r2",
        )
    ]


def test_documented_s3_put_example_is_one_create() -> None:
    assert parse_body(documented_body("s3-put.json")) == [
        ObjectEvent(
            bucket="mybucket",
            key="HappyFace.jpg",
            action=Action.CREATED,
            size=1024,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            event_time="1970-01-01T00:00:00.000Z",
            source="s3",
        )
    ]


def test_documented_s3_test_event_is_acknowledged_with_no_events() -> None:
    assert parse_body(documented_body("s3-test-event.json")) == []


def test_documented_minio_example_is_one_create_with_its_multipart_etag() -> None:
    assert parse_body(documented_body("minio-put.json")) == [
        ObjectEvent(
            bucket="images",
            key="myphoto.jpg",
            action=Action.CREATED,
            size=6474,
            etag="430f89010c77aa34fc8760696da62d08-1",
            event_time="2019-09-10T17:41:54Z",
            source="minio",
        )
    ]


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS)
def test_s3_keys_are_form_decoded(key: str) -> None:
    [event] = parse_s3(s3_body(bucket="bkt", key=key))
    assert event.key == key


@pytest.mark.parametrize("key", ODD_KEYS)
def test_minio_keys_are_query_unescaped(key: str) -> None:
    [event] = parse_minio(minio_body(bucket="bkt", key=key))
    assert event.key == key


@pytest.mark.parametrize("key", ODD_KEYS)
def test_r2_keys_are_taken_as_written(key: str) -> None:
    assert parse_r2(r2_body(bucket="bkt", key=key)).key == key


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("a%2Bb.mp4", "a+b.mp4"),
        ("a+%2B+b.mp4", "a + b.mp4"),
        ("uploads%2Fclip.mp4", "uploads/clip.mp4"),
        ("caf%C3%A9.mp4", "caf\u00e9.mp4"),
    ],
)
def test_s3_documented_key_encodings(encoded: str, key: str) -> None:
    body = s3_body(bucket="bkt", key="placeholder")
    body["Records"][0]["s3"]["object"]["key"] = encoded
    assert parse_body(body)[0].key == key


def test_a_key_of_1024_bytes_is_accepted_and_1025_refused() -> None:
    longest = "a" * 1020 + ".mp4"
    assert parse_s3(s3_body(bucket="bkt", key=longest))[0].key == longest
    with pytest.raises(InvalidEvent, match="1025 bytes"):
        parse_s3(s3_body(bucket="bkt", key="\u00e9" + longest[1:]))


@pytest.mark.parametrize("encoded", ["a%00b.mp4", "a%ED%A0%80.mp4"])
def test_keys_with_nul_or_surrogates_are_refused(encoded: str) -> None:
    body = s3_body(bucket="bkt", key="x")
    body["Records"][0]["s3"]["object"]["key"] = encoded
    with pytest.raises(InvalidEvent, match=r"NUL|invalid UTF-8"):
        parse_body(body)


def test_r2_key_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="not valid UTF-8"):
        parse_r2(r2_body(bucket="bkt", key="a\ud800.mp4"))


def test_a_key_that_decodes_to_invalid_utf8_is_refused() -> None:
    body = s3_body(bucket="bkt", key="x")
    body["Records"][0]["s3"]["object"]["key"] = "bad%FF.mp4"
    with pytest.raises(InvalidEvent, match="invalid UTF-8"):
        parse_body(body)


# -- actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
    ],
)
def test_s3_object_created_events_are_creates(name: str) -> None:
    assert parse_s3(s3_body(bucket="bkt", key="k.mp4", event_name=name))[0].action is Action.CREATED


@pytest.mark.parametrize(
    "name",
    ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "LifecycleExpiration:Delete"],
)
def test_s3_removals_are_deletes_without_size_or_etag(name: str) -> None:
    body = s3_body(bucket="bkt", key="k.mp4", size=None, etag=None, event_name=name)
    [event] = parse_s3(body)
    assert (event.action, event.size, event.etag) == (Action.DELETED, None, None)


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("s3:ObjectCreated:Put", Action.CREATED),
        ("s3:ObjectCreated:CompleteMultipartUpload", Action.CREATED),
        ("s3:ObjectRemoved:Delete", Action.DELETED),
        ("s3:ObjectRemoved:DeleteMarkerCreated", Action.DELETED),
    ],
)
def test_minio_event_names_carry_the_s3_prefix(name: str, action: Action) -> None:
    body = minio_body(bucket="bkt", key="k.mp4", event_name=name, size=None, etag=None)
    assert parse_body(body)[0].action is action


@pytest.mark.parametrize("action", ["PutObject", "CopyObject", "CompleteMultipartUpload"])
def test_r2_create_actions(action: str) -> None:
    assert parse_r2(r2_body(bucket="bkt", key="k.mp4", action=action)).action is Action.CREATED


@pytest.mark.parametrize("action", ["DeleteObject", "LifecycleDeletion"])
def test_r2_delete_actions_without_size_or_etag(action: str) -> None:
    event = parse_r2(r2_body(bucket="bkt", key="k.mp4", size=None, etag=None, action=action))
    assert (event.action, event.size, event.etag) == (Action.DELETED, None, None)


@pytest.mark.parametrize("version", ["2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"])
def test_any_s3_event_version_2x_is_accepted(version: str) -> None:
    assert len(parse_s3(s3_body(bucket="bkt", key="k.mp4", version=version))) == 1


def test_etags_lose_their_quotes_in_every_source() -> None:
    quoted = '"c846ff7a18f28c2e262116d6e8719ef0"'
    bodies = [
        r2_body(bucket="bkt", key="k.mp4", etag=quoted),
        s3_body(bucket="bkt", key="k.mp4", etag=quoted),
        minio_body(bucket="bkt", key="k.mp4", etag=quoted),
    ]
    assert {parse_body(b)[0].etag for b in bodies} == {"c846ff7a18f28c2e262116d6e8719ef0"}


def test_the_same_object_from_three_sources_is_one_task() -> None:
    # given one upload reported by R2, by S3 and by MinIO (keys encoded each source's way)
    key = "uploads/my film+cut \u00e9.mp4"
    etag = "9b2cf535f27731c974343645a3985328"
    bodies = [
        r2_body(bucket="videos", key=key, etag=etag),
        s3_body(bucket="videos", key=key, etag=f'"{etag}"'),
        minio_body(bucket="videos", key=key, etag=etag.upper()),
    ]
    # then every source names the same task
    events = [e for b in bodies for e in parse_body(b)]
    assert {e.source for e in events} == {"r2", "s3", "minio"}
    assert len({e.task_id for e in events}) == 1


def test_a_record_list_with_several_records_gives_one_event_each() -> None:
    body = s3_body(bucket="bkt", key="a.mp4")
    body["Records"] += s3_body(bucket="bkt", key="b.mp4", event_name="ObjectRemoved:Delete")[
        "Records"
    ]
    assert [(e.key, e.action) for e in parse_body(body)] == [
        ("a.mp4", Action.CREATED),
        ("b.mp4", Action.DELETED),
    ]


# -- routing and raw input --------------------------------------------------------------------


def test_raw_bytes_and_text_are_decoded_as_json() -> None:
    raw = json.dumps(s3_body(bucket="bkt", key="k.mp4"))
    assert parse_body(raw.encode()) == parse_body(raw) == parse_s3(json.loads(raw))


def test_a_json_list_of_bodies_from_mixed_sources_is_parsed_in_order() -> None:
    bodies = [
        r2_body(bucket="bkt", key="1.mp4"),
        documented_body("s3-test-event.json"),
        minio_body(bucket="bkt", key="2.mp4"),
    ]
    assert [e.key for e in parse_body(bodies)] == ["1.mp4", "2.mp4"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        ("{", "not UTF-8 JSON"),
        (b"[[]]", "item 0"),
        ("42", "JSON object, got a number"),
        (None, "JSON object, got null"),
        ({}, "not a recognised event notification"),
        ({"Event": "s3:ObjectCreated:Put"}, "not a recognised"),
        ({"Records": "nope"}, "'Records' list"),
        ({"Records": [7]}, "record 0: s3 record must be a JSON object"),
    ],
)
def test_unrecognised_bodies_are_refused_with_the_reason(body: Any, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        parse_body(body)


def _mutated_s3(path: list[str | int], value: Any) -> dict[str, Any]:
    body = s3_body(bucket="bkt", key="k.mp4")
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()
_RECORD = ["Records", 0]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ([*_RECORD, "eventName"], "ObjectRestore:Post", "unknown event name"),
        ([*_RECORD, "eventName"], "ObjectAccessed:Get", "unknown event name"),
        ([*_RECORD, "eventName"], "s3:ObjectCreated:Put", "unknown event name"),
        ([*_RECORD, "eventName"], "ObjectCreated", "unknown event name"),
        ([*_RECORD, "eventName"], _DELETE, "eventName is missing"),
        ([*_RECORD, "eventName"], 5, "eventName is missing or not"),
        ([*_RECORD, "eventVersion"], "1.0", "eventVersion"),
        ([*_RECORD, "eventVersion"], 2.1, "eventVersion"),
        ([*_RECORD, "s3"], _DELETE, "'s3' must be a JSON object"),
        ([*_RECORD, "s3", "bucket"], "b", "'s3.bucket' must be a JSON object"),
        ([*_RECORD, "s3", "bucket", "name"], "", "bucket name"),
        ([*_RECORD, "s3", "bucket", "name"], "b\x00", "not a bucket name"),
        ([*_RECORD, "s3", "bucket", "name"], "b" * 256, "not a bucket name"),
        ([*_RECORD, "s3", "object"], [], "'s3.object' must be a JSON object"),
        ([*_RECORD, "s3", "object", "key"], _DELETE, "object key"),
        ([*_RECORD, "s3", "object", "key"], 12, "object key"),
        ([*_RECORD, "s3", "object", "size"], "1024", "object size"),
        ([*_RECORD, "s3", "object", "size"], -1, "object size"),
        ([*_RECORD, "s3", "object", "size"], 1.5, "object size"),
        ([*_RECORD, "s3", "object", "eTag"], ["x"], "object eTag"),
        ([*_RECORD, "s3", "object", "eTag"], "ab\x00", "not an entity tag"),
    ],
)
def test_malformed_s3_records_are_refused_naming_the_field(
    path: list[str | int], value: Any, message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message):
        parse_body(_mutated_s3(path, value))


def test_minio_record_without_the_s3_prefix_is_refused() -> None:
    body = minio_body(bucket="bkt", key="k.mp4", event_name="ObjectCreated:Put")
    with pytest.raises(InvalidEvent, match="does not start with 's3:'"):
        parse_body(body)


def test_r2_body_with_a_non_string_action_is_refused() -> None:
    body = r2_body(bucket="bkt", key="k.mp4")
    body["action"] = ["PutObject"]
    with pytest.raises(InvalidEvent, match="unknown R2 action"):
        parse_body(body)


BUILDERS = [r2_body, s3_body, minio_body]


@pytest.mark.parametrize("build", BUILDERS, ids=["r2", "s3", "minio"])
@pytest.mark.parametrize(
    "bucket",
    ["x", "Bad_Bucket", "a" * 64, "uploads/..%2f..%2fx.mp4", "192.168.1.10", "a..b", "-ab", "ab-"],
)
def test_a_name_no_store_accepts_is_refused_as_a_bucket_name(build: Any, bucket: str) -> None:
    with pytest.raises(InvalidEvent, match="is not a bucket name"):
        parse_body(build(bucket=bucket, key="uploads/a.mp4"))


@pytest.mark.parametrize("build", BUILDERS, ids=["r2", "s3", "minio"])
@pytest.mark.parametrize("etag", ["made-up", "zzzz", "abc-", "0x12", "<b>", "12 34", "ab-cd"])
def test_an_etag_that_is_not_hex_is_refused(build: Any, etag: str) -> None:
    with pytest.raises(InvalidEvent, match="is not an entity tag"):
        parse_body(build(bucket="bkt", key="uploads/a.mp4", etag=etag))


@pytest.mark.parametrize("build", BUILDERS, ids=["r2", "s3", "minio"])
def test_single_and_multipart_hex_etags_are_kept(build: Any) -> None:
    for etag in ("d41d8cd98f00b204e9800998ecf8427e", "430f89010c77aa34fc8760696da62d08-12"):
        [event] = parse_body(build(bucket="my.bucket-1", key="uploads/a.mp4", etag=etag))
        assert (event.bucket, event.etag) == ("my.bucket-1", etag)
