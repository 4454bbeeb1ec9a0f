"""The tables both sides share, as SQLAlchemy Core ``Table`` objects.

``video_processing_tasks`` mirrors the reference design's D1 table column for column; the
columns after ``retry_count`` are videofleet's additions (all nullable, so a D1 database can
hold the same rows). Times are INTEGER milliseconds since the Unix epoch, UTC; on PostgreSQL
they are BIGINT because milliseconds overflow a 32-bit INTEGER (SQLite's INTEGER is 64-bit).
``metadata`` is a JSON document stored as TEXT on both databases, as D1 stores it
(``schema.metadata`` declares it).
"""

from __future__ import annotations

import sqlalchemy as sa

from schema.metadata import MetadataColumn

metadata_obj = sa.MetaData()

EpochMs = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

tasks = sa.Table(
    "video_processing_tasks",
    metadata_obj,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("video_key", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
    sa.Column("workflow_id", sa.Text),
    sa.Column("created_at", EpochMs, nullable=False),
    sa.Column("updated_at", EpochMs, nullable=False),
    sa.Column("metadata", MetadataColumn),
    sa.Column("error_message", sa.Text),
    sa.Column("retry_count", sa.Integer, server_default=sa.text("0")),
    # videofleet additions
    sa.Column("bucket", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("video_id", sa.Text),
    sa.Column("step", sa.Text),
    sa.Index("idx_tasks_status", "status"),
    sa.Index("idx_tasks_created", "created_at"),
    sa.Index("idx_tasks_video_key", "video_key"),
)

videos = sa.Table(
    "videos",
    metadata_obj,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("r2_key", sa.Text, nullable=False),
    sa.Column("filename", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("size_bytes", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'uploading'")),
    sa.Column("thumbnail_url", sa.Text),
    sa.Column("created_at", EpochMs, nullable=False),
    sa.Column("updated_at", EpochMs, nullable=False),
    # upload API additions (revision 0002_uploads)
    sa.Column("owner", sa.Text),
    sa.Column("upload_id", sa.Text),
    sa.Index("idx_videos_r2_key", "r2_key", unique=True),
    sa.Index("idx_videos_status", "status"),
    sa.Index("idx_videos_upload_id", "upload_id", unique=True),
)

# The bucket poller's progress per (bucket, prefix); see ``producer.transports.poller`` for the
# scheme.
poller_watermarks = sa.Table(
    "poller_watermarks",
    metadata_obj,
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("prefix", sa.Text, primary_key=True),
    sa.Column("since_ms", EpochMs, nullable=False),
    sa.Column("scan_cursor", sa.Text),
    sa.Column("scan_max_ms", EpochMs, nullable=False),
    sa.Column("seen", sa.Text, nullable=False),
    sa.Column("updated_at", EpochMs, nullable=False),
)

rejected_events = sa.Table(
    "rejected_events",
    metadata_obj,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("received_at", EpochMs, nullable=False),
    sa.Index("idx_rejected_received", "received_at"),
)
