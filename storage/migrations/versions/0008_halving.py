"""Halving sweeps: a `sweeps` table, and each run's sweep and why the sweep stopped it.

`runs.sweep_id` names its sweep without a foreign key: adding one rebuilds `runs` on SQLite,
whose foreign keys would cascade that rebuild into deleting every stage. Existing runs belong to no sweep and were never stopped (both NULL), so old databases upgrade
without touching a row.

Revision ID: 0008
Revises: 0007_fleet_indexes
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007_fleet_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("eta", sa.Integer(), nullable=False),
        sa.Column("rungs", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rung", sa.String(200), nullable=False),
        sa.Column("decided_rung", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.CheckConstraint("eta >= 2", name=op.f("ck_sweeps_eta")),
        sa.CheckConstraint("rungs >= 1 AND size >= 1", name=op.f("ck_sweeps_rungs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    # plain ALTER TABLE on both backends: a batch rebuild of `runs` on SQLite would cascade
    # into deleting every stage, snapshot and metric (its foreign keys are on)
    op.add_column("runs", sa.Column("sweep_id", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("stopped", sa.String(200), nullable=True))
    op.create_index(op.f("ix_runs_sweep_id"), "runs", ["sweep_id"])

def downgrade() -> None:
    op.drop_index(op.f("ix_runs_sweep_id"), table_name="runs")
    for column in ("stopped", "sweep_id"):  # SQLite >= 3.35 drops a column in place
        op.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    op.drop_table("sweeps")
