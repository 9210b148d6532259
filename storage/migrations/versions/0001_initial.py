"""Initial schema: runs, snapshots, stages, metrics.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")
STAGE_STATUS = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
STAGE_REQUEST = ("cancel", "pause")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # runs <-> snapshots reference each other: SQLite takes the forward reference inline,
    # PostgreSQL gets the foreign key once snapshots exists.
    parent_fk = (
        [
            sa.ForeignKeyConstraint(
                ["parent_snapshot_id"],
                ["snapshots.id"],
                name="fk_runs_parent_snapshot_id_snapshots",
                ondelete="RESTRICT",
            )
        ]
        if sqlite
        else []
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hidden_sizes", sa.String(200), nullable=False),
        sa.Column("activations", sa.String(200), nullable=False),
        sa.Column("init", sa.String(16), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(500), nullable=False),
        sa.Column("dev_size", sa.Integer(), nullable=False),
        sa.Column("eval_every", sa.Integer(), nullable=False),
        sa.Column("snapshot_every", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("parent_snapshot_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("init IN ('uniform', 'he')", name="ck_runs_init"),
        sa.CheckConstraint("dtype IN ('float32', 'float64')", name="ck_runs_dtype"),
        sa.CheckConstraint("eval_every > 0 AND snapshot_every > 0", name="ck_runs_cadence"),
        sa.CheckConstraint("batch_size IS NULL OR batch_size > 0", name="ck_runs_batch_size"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        *parent_fk,
    )
    op.create_index("ix_runs_parent_snapshot_id", "runs", ["parent_snapshot_id"])

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_snapshots_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.UniqueConstraint("run_id", "iteration", name="uq_snapshots_run_id_iteration"),
    )
    if not sqlite:
        op.create_foreign_key(
            "fk_runs_parent_snapshot_id_snapshots",
            "runs",
            "snapshots",
            ["parent_snapshot_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    op.create_table(
        "stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *STAGE_STATUS,
                name="stage_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "requested",
            sa.Enum(
                *STAGE_REQUEST,
                name="stage_request",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_snapshot_id", sa.Integer(), nullable=True),
        sa.Column("end_snapshot_id", sa.Integer(), nullable=True),
        sa.Column("start_iteration", sa.Integer(), nullable=True),
        sa.Column("iterations_done", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("lr > 0", name="ck_stages_lr"),
        sa.CheckConstraint("iterations > 0", name="ck_stages_iterations"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_stages_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["start_snapshot_id"],
            ["snapshots.id"],
            name="fk_stages_start_snapshot_id_snapshots",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["end_snapshot_id"],
            ["snapshots.id"],
            name="fk_stages_end_snapshot_id_snapshots",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stages"),
        sa.UniqueConstraint("run_id", "position", name="uq_stages_run_id_position"),
    )
    op.create_index("ix_stages_status", "stages", ["status"])

    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("train_acc", sa.Float(), nullable=False),
        sa.Column("dev_acc", sa.Float(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=False),
        sa.Column("wall", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_metrics_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "iteration", name="pk_metrics"),
    )


def downgrade() -> None:
    op.drop_table("metrics")
    op.drop_index("ix_stages_status", table_name="stages")
    op.drop_table("stages")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_runs_parent_snapshot_id_snapshots", "runs", type_="foreignkey")
    op.drop_table("snapshots")
    op.drop_index("ix_runs_parent_snapshot_id", table_name="runs")
    op.drop_table("runs")
