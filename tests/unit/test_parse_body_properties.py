"""Whatever arrives, ``parse_body`` returns events or raises ``InvalidEvent``: nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from producer.events.sources import parse_body
from schema.buckets import bucket_name_problem
from schema.errors import InvalidEvent
from schema.message import ObjectEvent
from tests.factories import documented_body, minio_body, r2_body, s3_body

# Any code point, lone surrogates included: JSON can carry them (as \udXXX escapes).
any_text = st.text(st.characters(exclude_categories=()))
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
# Real field names, so that generated objects get past the routing into every parser.
field_names = st.sampled_from(
    [
        "action", "bucket", "object", "key", "size", "eTag", "eventTime", "Records", "EventName",
        "Key", "eventName", "eventSource", "eventVersion", "s3", "name", "Event", "Service",
    ]
)  # fmt: skip
shaped_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(field_names | any_text, children, max_size=6)
    ),
    max_leaves=40,
)
HEX_ETAG = re.compile(r"[0-9A-Fa-f]+(-[0-9]+)?")
VALID_BODIES = [
    r2_body(bucket="bkt", key="uploads/a.mp4"),
    s3_body(bucket="bkt", key="uploads/a b.mp4"),
    minio_body(bucket="bkt", key="uploads/a+b.mp4"),
    documented_body("r2-copy-object.json"),
    documented_body("s3-put.json"),
    documented_body("s3-test-event.json"),
    documented_body("minio-put.json"),
]


def _events_or_invalid(body: Any) -> None:
    try:
        events = parse_body(body)
    except InvalidEvent as exc:
        reason = str(exc)
        assert reason, "an InvalidEvent always says why"
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, ObjectEvent)
        assert event.key
        assert len(event.key.encode()) <= 1024
        assert event.size is None or event.size >= 0
        assert bucket_name_problem(event.bucket) is None
        assert event.etag is None or HEX_ETAG.fullmatch(event.etag)


@settings(max_examples=300)
@given(json_values)
def test_any_json_value(body: Any) -> None:
    _events_or_invalid(body)


@settings(max_examples=300)
@given(shaped_values)
def test_any_json_value_built_from_real_field_names(body: Any) -> None:
    _events_or_invalid(body)


BUILDERS = [r2_body, s3_body, minio_body]


@settings(max_examples=500)
@given(
    st.sampled_from(BUILDERS),
    any_text | st.from_regex(r"[a-z0-9][a-z0-9.-]{0,70}", fullmatch=True),
    any_text | st.from_regex(r"[0-9a-fA-F]{1,40}(-[0-9]{1,3})?", fullmatch=True),
)
def test_any_bucket_and_etag_is_an_event_only_when_a_store_could_have_written_it(
    build: Any, bucket: str, etag: str
) -> None:
    body = json.loads(json.dumps(build(bucket=bucket, key="uploads/a.mp4", etag=etag)))
    _events_or_invalid(body)


@settings(max_examples=300)
@given(st.binary())
def test_any_bytes(raw: bytes) -> None:
    _events_or_invalid(raw)


@settings(max_examples=300)
@given(st.text())
def test_any_text(raw: str) -> None:
    _events_or_invalid(raw)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            paths += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths += _paths(v, (*prefix, i))
    return paths


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    """A valid body of some source with one field replaced by an arbitrary JSON value."""
    body = json.loads(json.dumps(draw(st.sampled_from(VALID_BODIES))))
    path = draw(st.sampled_from(_paths(body)))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = draw(json_values)
    return body


@settings(max_examples=500)
@given(mutated_bodies())
def test_valid_bodies_with_one_field_replaced(body: Any) -> None:
    _events_or_invalid(body)


@settings(max_examples=200)
@given(st.sampled_from(VALID_BODIES), st.integers(min_value=0), st.binary(min_size=1, max_size=4))
def test_valid_raw_bodies_with_bytes_spliced_in(body: Any, at: int, junk: bytes) -> None:
    raw = json.dumps(body).encode()
    at %= len(raw)
    _events_or_invalid(raw[:at] + junk + raw[at:])
