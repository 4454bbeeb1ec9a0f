"""Who asked for an upload, and the multipart upload id, on the videos row.

The upload API binds every multipart call to the row (and so to its key and its owner) through
``upload_id``, and answers a video's status only to its ``owner``.

Revision ID: 0002_uploads
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_uploads"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("owner", sa.Text))
    op.add_column("videos", sa.Column("upload_id", sa.Text))
    op.create_index("idx_videos_upload_id", "videos", ["upload_id"], unique=True)


def downgrade() -> None:
    op.drop_index("idx_videos_upload_id", table_name="videos")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("upload_id")
        batch.drop_column("owner")
