"""Whatever `parse_body` accepts, the database stores: keys round-trip on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.events.ingest import Result, ingest
from producer.events.rules import EventRules
from producer.events.sources import parse_body
from schema.errors import InvalidEvent
from schema.tables import tasks
from tests.factories import minio_body, r2_body, s3_body
from tests.integration.conftest import BUCKET, Fleet

pytestmark = pytest.mark.integration

BUILDERS = {"r2": r2_body, "s3": s3_body, "minio": minio_body}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.text(min_size=1, max_size=60),
    source=st.sampled_from(sorted(BUILDERS)),
    etag=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
def test_every_accepted_key_is_stored_exactly(
    fleet: Fleet, name: str, source: str, etag: str
) -> None:
    # given any key a source can carry, under uploads/ with a video extension
    key = f"uploads/{name}.mp4"
    try:
        [event] = parse_body(BUILDERS[source](bucket=BUCKET, key=key, etag=etag))
    except InvalidEvent:
        return  # refused with a reason: nothing was accepted, nothing can be lost
    # when it is ingested
    [outcome] = ingest(fleet.engine, fleet.publisher, [event], rules=EventRules())
    # then its row holds the key exactly as the source meant it
    assert outcome.result in {Result.PUBLISHED, Result.DUPLICATE}
    with fleet.engine.connect() as conn:
        stored = conn.execute(
            sa.select(tasks.c.video_key, tasks.c.etag).where(tasks.c.id == outcome.task_id)
        ).one()
    assert (stored.video_key, stored.etag) == (key, etag)
