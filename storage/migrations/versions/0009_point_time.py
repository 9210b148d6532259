"""Point time: each metric point keeps the database's time it was written (`metrics.at`).

Points written before this revision have none (NULL): the dashboard draws their curve against
iterations only. A plain ALTER TABLE on both backends, as 0008: a batch rebuild of `metrics` on
SQLite is not needed for a nullable column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("metrics", sa.Column("at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE metrics DROP COLUMN at")  # SQLite >= 3.35 drops a column in place
