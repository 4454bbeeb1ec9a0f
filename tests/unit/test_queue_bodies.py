"""Decoding pulled Queue message bodies by their content type, and parsing what comes out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.events.intake import Incoming, events_of
from producer.transports.queues_api import PulledMessage, decode_body
from schema.errors import InvalidEvent
from tests.factories import R2_DOC_EXAMPLE


def message(body: Any, content_type: str | None = "json") -> PulledMessage:
    metadata = {} if content_type is None else {"CF-Content-Type": content_type}
    return PulledMessage(id="m", lease_id="l", attempts=1, body=body, metadata=metadata)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


DOC = json.dumps(R2_DOC_EXAMPLE)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b64(DOC.encode()), "json"),  # the documented form
        (DOC, "json"),  # plain JSON, as seen in production by others
        (DOC, None),  # no content type: json is the default
        (DOC, "text"),  # JSON sent as text
        (b64(DOC.encode()), "bytes"),
        (R2_DOC_EXAMPLE, "json"),  # already decoded by the API
    ],
)
def test_every_encoding_of_an_r2_notification_decodes_to_the_same_object(
    body: Any, content_type: str | None
) -> None:
    assert decode_body(message(body, content_type)) == R2_DOC_EXAMPLE


def test_a_plain_text_body_stays_text() -> None:
    assert decode_body(message("hello", "text")) == "hello"


def test_an_all_digit_base64_json_body_prefers_the_decoded_object() -> None:
    # "1234" is both the JSON number 1234 and base64; base64 giving JSON wins over a scalar
    encoded = b64(b'{"a": 1}')
    assert decode_body(message(encoded, "json")) == {"a": 1}
    assert decode_body(message("1234", "json")) == 1234


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ("AAAA", "v8", "v8"),
        ("%%%", "json", "neither JSON nor base64"),
        ("not base64!", "bytes", "not valid base64"),
        (b64(b"\xff\xfe\xfd"), "bytes", "not UTF-8 JSON"),
        (None, "json", "must be a string"),
        (12, "text", "must be a string"),
        ("{}", "avro", "unknown message content type"),
    ],
)
def test_undecodable_bodies_raise_invalid_event_with_the_reason(
    body: Any, content_type: str, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_body(message(body, content_type))


def test_events_with_text_no_database_can_store_are_invalid() -> None:
    body = {**R2_DOC_EXAMPLE, "object": {"key": "a\x00b", "size": 1, "eTag": "e"}}
    with pytest.raises(InvalidEvent, match="NUL"):
        events_of(Incoming("m", None, body=body))
    body = {**R2_DOC_EXAMPLE, "object": {"key": "a\ud800", "size": 1, "eTag": "e"}}
    with pytest.raises(InvalidEvent, match="not valid UTF-8"):
        events_of(Incoming("m", None, body=body))
    body = {**R2_DOC_EXAMPLE, "bucket": "b\udfff"}
    with pytest.raises(InvalidEvent, match="not a bucket name"):
        events_of(Incoming("m", None, body=body))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)
BODIES = st.one_of(
    st.text(),
    st.binary().map(b64),
    JSON.map(json.dumps),
    JSON.map(lambda v: b64(json.dumps(v).encode())),
    JSON,
)
CONTENT_TYPES = st.sampled_from(["json", "text", "bytes", "v8", "", "JSON"]) | st.text() | st.none()


@given(body=BODIES, content_type=CONTENT_TYPES)
def test_any_body_decodes_or_raises_invalid_event_only(body: Any, content_type: str | None) -> None:
    try:
        decoded = decode_body(message(body, content_type))
        events_of(Incoming("m", None, body=decoded))
    except InvalidEvent as exc:
        reason = str(exc)
    else:
        reason = "decoded"
    assert reason
