"""Augmentation: each run's `augment`, the pixels its mini-batch images may be moved by.

Existing runs never moved an image: the column defaults to 0 on the server, so old databases
upgrade without touching a row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE on both backends: a batch rebuild of `runs` on SQLite would cascade
    # into deleting every stage, snapshot and metric (its foreign keys are on)
    op.add_column(
        "runs", sa.Column("augment", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.execute("ALTER TABLE runs DROP COLUMN augment")  # SQLite >= 3.35 drops a column in place
