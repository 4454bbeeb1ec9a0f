"""The shapes a webhook body may take."""

from __future__ import annotations

from typing import Any

import pytest

from producer.events.sources import decode_json
from producer.web.envelope import unpack
from schema.errors import InvalidEvent
from tests.factories import R2_DOC_EXAMPLE


def test_a_single_notification_is_one_message_without_id() -> None:
    unpacked = unpack(R2_DOC_EXAMPLE, b"{}")
    assert not unpacked.batch
    [message] = unpacked.messages
    assert (message.message_id, message.body) == (None, R2_DOC_EXAMPLE)


@pytest.mark.parametrize("wrap", [lambda items: items, lambda items: {"messages": items}])
def test_forwarded_batches_keep_ids_and_parse_string_bodies(wrap: Any) -> None:
    items = [
        {"id": "a", "attempts": 1, "timestamp": "t", "body": R2_DOC_EXAMPLE},
        {"id": "b", "attempts": 1, "timestamp": "t", "body": '{"k": 1}'},
        {"id": 7, "body": "not json"},
        R2_DOC_EXAMPLE,
    ]
    unpacked = unpack(wrap(items), b"")
    assert unpacked.batch
    ids = [m.message_id for m in unpacked.messages]
    assert ids == ["a", "b", None, None]
    assert unpacked.messages[1].body == {"k": 1}
    assert unpacked.messages[2].error == "a message body that is a string, not JSON"
    assert unpacked.messages[3].body == R2_DOC_EXAMPLE


def test_the_aws_test_event_is_ignored() -> None:
    unpacked = unpack({"Service": "Amazon S3", "Event": "s3:TestEvent"}, b"")
    assert (unpacked.ignored, unpacked.messages) == ("s3:TestEvent", [])


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "empty batch"),
        ({"messages": {}}, "must be a list"),
        ("x", "got a string"),
        (None, "got null"),
        (1.5, "got a number"),
    ],
)
def test_other_shapes_are_invalid(document: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        unpack(document, b"")


def test_decode_json_names_the_body_and_the_problem() -> None:
    with pytest.raises(InvalidEvent, match="the request body is not UTF-8 JSON"):
        decode_json(b"{", what="the request body")
    with pytest.raises(InvalidEvent, match="the body is nested too deeply"):
        decode_json(b"[" * 200_000)
