"""Stages remember when their message was last sent and how often their worker was lost.

`sent_at` lets any worker's reaper tell "sent recently, not yet picked up" from "lost", so it
re-sends at most once per period whatever the queue depth; `takeovers` bounds the retries of a
stage whose worker keeps dying or losing the database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stages") as batch:
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("stages") as batch:
        batch.drop_column("takeovers")
        batch.drop_column("sent_at")
