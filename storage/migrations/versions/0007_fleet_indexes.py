"""Indexes a fleet needs: deleting a snapshot, and asking whether a stage is blocked.

A snapshot's delete (`gradq prune`, `gradq rm`) sets `stages.start_snapshot_id` and
`end_snapshot_id` to NULL where they point at it; without an index on each, every deleted
snapshot scanned the whole stages table twice. `blocked_by_earlier` (the reaper's scan, the
ready-stage counts) looks only at a run's stages that have not succeeded: a partial index holds
just those. `python bench/explain.py` shows the plans before and after.

Revision ID: 0007_fleet_indexes
Revises: 0006 (the merger re-chains it if another migration lands first)
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_fleet_indexes"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = sa.text("status <> 'succeeded'")


def upgrade() -> None:
    op.create_index("ix_stages_start_snapshot_id", "stages", ["start_snapshot_id"])
    op.create_index("ix_stages_end_snapshot_id", "stages", ["end_snapshot_id"])
    op.create_index(
        "ix_stages_unfinished",
        "stages",
        ["run_id", "position"],
        postgresql_where=UNFINISHED,
        sqlite_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_stages_unfinished", "stages")
    op.drop_index("ix_stages_end_snapshot_id", "stages")
    op.drop_index("ix_stages_start_snapshot_id", "stages")
