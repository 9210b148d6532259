"""Runs get tags and notes, the bookkeeping `gradq tag`, `gradq note` and the dashboard write.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_tags",
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_run_tags_run_id_runs"),
            nullable=False,
        ),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tag", name="pk_run_tags"),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    op.create_table(
        "run_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_run_notes_run_id_runs"),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run_notes"),
    )
    op.create_index("ix_run_notes_run_id", "run_notes", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_notes_run_id", "run_notes")
    op.drop_table("run_notes")
    op.drop_index("ix_run_tags_tag", "run_tags")
    op.drop_table("run_tags")
