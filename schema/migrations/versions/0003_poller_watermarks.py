"""The bucket poller's watermarks.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_uploads"
branch_labels = None
depends_on = None

# Frozen copy of the type at this revision: migrations never import the live tables.
EPOCH_MS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "poller_watermarks",
        sa.Column("bucket", sa.Text, primary_key=True),
        sa.Column("prefix", sa.Text, primary_key=True),
        sa.Column("since_ms", EPOCH_MS, nullable=False),
        sa.Column("scan_cursor", sa.Text),
        sa.Column("scan_max_ms", EPOCH_MS, nullable=False),
        sa.Column("seen", sa.Text, nullable=False),
        sa.Column("updated_at", EPOCH_MS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("poller_watermarks")
