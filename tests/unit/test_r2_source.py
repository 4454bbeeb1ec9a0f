"""R2 event notifications, from the exact body Cloudflare documents."""

from __future__ import annotations

from typing import Any

import pytest

from producer.events.sources.r2 import parse_r2
from schema.errors import InvalidEvent
from schema.message import Action, task_id_for
from tests.factories import R2_DOC_EXAMPLE, r2_body


def test_documented_example_body_is_a_create_event() -> None:
    event = parse_r2(R2_DOC_EXAMPLE)
    assert (event.bucket, event.key, event.action) == ("my-bucket", "my-new-object", Action.CREATED)
    assert (event.size, event.etag) == (65536, "c846ff7a18f28c2e262116d6e8719ef0")
    assert event.event_time == "2024-05-24T19:36:44.379Z"


def test_delete_events_have_no_size_or_etag() -> None:
    event = parse_r2(
        r2_body(bucket="bkt", key="k.mp4", size=None, etag=None, action="DeleteObject")
    )
    assert event.action is Action.DELETED
    assert event.size is None
    assert event.etag is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(action="RestoreObject"), "unknown R2 action"),
        (lambda b: b.pop("bucket"), "bucket"),
        (lambda b: b.update(object="k"), "'object'"),
        (lambda b: b["object"].update(key=""), "object key"),
        (lambda b: b["object"].update(key="k" * 1025), "object key"),
        (lambda b: b["object"].update(size=-1), "size"),
        (lambda b: b["object"].update(size=True), "size"),
        (lambda b: b["object"].update(eTag=5), "eTag"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(mutate: Any, message: str) -> None:
    body = r2_body(bucket="bkt", key="uploads/a.mp4")
    mutate(body)
    with pytest.raises(InvalidEvent, match=message):
        parse_r2(body)


def test_non_object_body_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_r2(["PutObject"])


def test_one_object_version_is_one_task_id_however_the_etag_is_quoted() -> None:
    assert task_id_for("b", "k", '"ABC"') == task_id_for("b", "k", "abc")
    assert task_id_for("b", "k", "abc") != task_id_for("b", "k", "abd")
    assert task_id_for("b", "k", "abc") != task_id_for("b2", "k", "abc")
