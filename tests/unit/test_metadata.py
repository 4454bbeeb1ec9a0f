"""The task metadata contract (``schema.metadata``): old rows decode, nothing stored is lost."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from schema.lifecycle import transition
from schema.metadata import (
    MediaInfo,
    Requeue,
    TaskMetadata,
    Thumbnails,
    as_document,
    decode,
    encode,
    merge,
)
from schema.status import Step, TaskStatus
from schema.tables import tasks
from tests.unit.tasktable import one_task_row

# A row as the first release wrote it (0ff976a): no poster, blank flags, reads or media times.
FIRST_RELEASE_ROW = {
    "probe": {
        "duration_s": 3.0,
        "width": 320,
        "height": 240,
        "display_width": 320,
        "display_height": 240,
        "rotation": 0,
        "video_codec": "h264",
        "audio_codec": None,
        "frame_rate": 25.0,
        "bit_rate": 123456,
        "size_bytes": 98765,
        "container": "mov,mp4,m4a,3gp,3g2,mj2",
    },
    "thumbnails": {"keys": ["thumbnails/a.mp4/0.jpg", "thumbnails/a.mp4/1.jpg"], "times_s": [1, 2]},
    "timings_s": {"validate-video": 0.2, "generate-thumbnails": 0.4},
    "runs": {"validate-video": 1, "generate-thumbnails": 1},
}


def test_a_first_release_row_decodes_with_its_facts_typed() -> None:
    meta = decode(json.dumps(FIRST_RELEASE_ROW))
    assert meta.probe is not None
    assert meta.probe.duration_s == 3.0
    assert meta.probe.display_size == (320, 240)
    assert meta.thumbnails is not None
    assert meta.thumbnails.poster == "thumbnails/a.mp4/0.jpg"  # no poster_key yet: the first
    assert meta.first_unsaved_step() is Step.UPDATE
    assert as_document(meta) == FIRST_RELEASE_ROW  # nothing defaulted is added


def test_a_probe_without_display_size_falls_back_to_the_stored_size() -> None:
    probe = MediaInfo.model_validate({"duration_s": 1.0, "width": 640, "height": 360})
    assert probe.display_size == (640, 360)


def test_keys_this_version_does_not_know_survive_a_rewrite() -> None:
    stored = {"probe": {**FIRST_RELEASE_ROW["probe"], "hdr": "pq"}, "d1_mirrored_at": 5}
    meta = merge(decode(json.dumps(stored)), TaskMetadata(error_class="NotAVideo"))
    assert json.loads(encode(meta)) == {**stored, "error_class": "NotAVideo"}


def test_an_unreadable_section_is_untyped_but_written_back_as_stored() -> None:
    stored = {"probe": {"width": "wide"}, "runs": {"validate-video": 2}}
    meta = decode(json.dumps(stored))
    assert meta.probe is None
    assert meta.runs == {"validate-video": 2}
    assert meta.first_unsaved_step() is Step.VALIDATE
    rewritten = merge(meta, TaskMetadata(error_class="X"))
    assert as_document(rewritten) == {**stored, "error_class": "X"}
    # a step that learns the section again replaces it
    probe = MediaInfo(duration_s=1.0, width=2, height=2)
    assert as_document(merge(meta, TaskMetadata(probe=probe)))["probe"]["width"] == 2


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]"])
def test_an_empty_or_foreign_column_is_an_empty_document(text: str | None) -> None:
    assert as_document(decode(text)) == {}


def test_patches_merge_objects_and_replace_lists() -> None:
    base = TaskMetadata(
        timings_s={Step.VALIDATE.value: 0.1},
        requeues=[Requeue(at=1, by="ann")],
        thumbnails=Thumbnails(keys=["a"], times_s=[1.0]),
    )
    patch = TaskMetadata(
        timings_s={Step.UPDATE.value: 0.3},
        requeues=[Requeue(at=2, by="bob")],
        thumbnails=Thumbnails(keys=["b"]),
    )
    merged = merge(base, patch)
    assert merged.timings_s == {Step.VALIDATE.value: 0.1, Step.UPDATE.value: 0.3}
    assert [r.by for r in merged.requeues] == ["bob"]
    assert merged.thumbnails == Thumbnails(keys=["b"], times_s=[1.0])


def test_encoding_is_key_sorted_json_of_what_was_set() -> None:
    text = encode(TaskMetadata(runs={"b": 1, "a": 2}, error_class=None))
    assert text == '{"error_class": null, "runs": {"a": 2, "b": 1}}'


@pytest.fixture
def conn() -> Iterator[sa.Connection]:
    with one_task_row(metadata=json.dumps(FIRST_RELEASE_ROW)) as connection:
        yield connection


def test_the_column_reads_typed_documents_and_stores_text(conn: sa.Connection) -> None:
    transition(conn, "t1", TaskStatus.PROCESSING, metadata_patch=TaskMetadata(error_class="X"))
    row = conn.execute(sa.select(tasks.c.metadata)).one()
    assert isinstance(row.metadata, TaskMetadata)
    assert row.metadata.error_class == "X"
    raw = conn.execute(sa.text("SELECT metadata FROM video_processing_tasks")).scalar_one()
    assert json.loads(raw) == {**FIRST_RELEASE_ROW, "error_class": "X"}
