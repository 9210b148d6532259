"""Runs remember their optimizer; stages remember how their lr moves (their shape).

Every existing run is plain SGD and every existing stage a constant lr, which the server
defaults say, so old databases upgrade without touching a row.

Revision ID: 0006
Revises: 0005 (the lead re-chains it after 0005 at merge)
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPTIMIZER = [
    ("optimizer", sa.String(16), "sgd"),
    ("momentum", sa.Float(), "0.9"),
    ("beta1", sa.Float(), "0.9"),
    ("beta2", sa.Float(), "0.999"),
    ("eps", sa.Float(), "1e-08"),
    ("weight_decay", sa.Float(), "0"),
    ("reset_optimizer", sa.Boolean(), "0"),
]


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, kind, default in OPTIMIZER:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=default))
    with op.batch_alter_table("stages") as batch:
        batch.add_column(sa.Column("shape", sa.String(80), nullable=False, server_default=""))


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops a column itself): a batch rebuild of `runs` on SQLite, with
    # foreign keys on, would cascade into deleting every stage of every run.
    op.execute("ALTER TABLE stages DROP COLUMN shape")
    for name, _, _ in reversed(OPTIMIZER):
        op.execute(f"ALTER TABLE runs DROP COLUMN {name}")
