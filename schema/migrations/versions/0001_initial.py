"""The task table of the reference design, plus the videos table.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types at this revision: migrations never import the live tables.
EPOCH_MS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "video_processing_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("video_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("workflow_id", sa.Text),
        sa.Column("created_at", EPOCH_MS, nullable=False),
        sa.Column("updated_at", EPOCH_MS, nullable=False),
        sa.Column("metadata", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("retry_count", sa.Integer, server_default=sa.text("0")),
        sa.Column("bucket", sa.Text),
        sa.Column("etag", sa.Text),
        sa.Column("video_id", sa.Text),
        sa.Column("step", sa.Text),
    )
    op.create_index("idx_tasks_status", "video_processing_tasks", ["status"])
    op.create_index("idx_tasks_created", "video_processing_tasks", ["created_at"])
    op.create_index("idx_tasks_video_key", "video_processing_tasks", ["video_key"])
    op.create_table(
        "videos",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("r2_key", sa.Text, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("size_bytes", EPOCH_MS),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'uploading'")),
        sa.Column("thumbnail_url", sa.Text),
        sa.Column("created_at", EPOCH_MS, nullable=False),
        sa.Column("updated_at", EPOCH_MS, nullable=False),
    )
    op.create_index("idx_videos_r2_key", "videos", ["r2_key"], unique=True)
    op.create_index("idx_videos_status", "videos", ["status"])


def downgrade() -> None:
    op.drop_table("videos")
    op.drop_table("video_processing_tasks")
