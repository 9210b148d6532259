"""ORM models: a run is a training lineage, a stage one job on it, plus snapshots and metrics."""

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.clock import UTCDateTime, utcnow

# Stable constraint names, so Alembic can find them again on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SERVER_NOW = text("CURRENT_TIMESTAMP")


class StageStatus(StrEnum):
    """Where a stage is in its life; only the first three can still change."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StageRequest(StrEnum):
    """What the CLI asks of a running stage; the worker reads it at its next heartbeat."""

    CANCEL = "cancel"
    PAUSE = "pause"


ACTIVE = (StageStatus.QUEUED, StageStatus.RUNNING, StageStatus.PAUSED)
FINISHED = (StageStatus.SUCCEEDED, StageStatus.FAILED, StageStatus.CANCELLED)


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Meta(Base):
    """Facts about the database itself; `database_id` (a uuid hex) is set when it is created."""

    __tablename__ = "gradq_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Run(Base):
    """One training lineage: the network and data it trains on; stages schedule its lr."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("init IN ('uniform', 'he')", name="init"),
        CheckConstraint("dtype IN ('float32', 'float64')", name="dtype"),
        CheckConstraint("eval_every > 0 AND snapshot_every > 0", name="cadence"),
        CheckConstraint("batch_size IS NULL OR batch_size > 0", name="batch_size"),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    hidden_sizes: Mapped[str] = mapped_column(String(200))  # "10,10": widths of hidden layers
    activations: Mapped[str] = mapped_column(String(200))  # "relu,relu": one per hidden layer
    init: Mapped[str] = mapped_column(String(16))  # "uniform" | "he"
    dtype: Mapped[str] = mapped_column(String(16))  # "float32" | "float64"
    seed: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(500))  # path or name of the training data
    dev_size: Mapped[int] = mapped_column(Integer)  # examples held out for dev accuracy
    eval_every: Mapped[int] = mapped_column(Integer)  # iterations between metric points
    snapshot_every: Mapped[int] = mapped_column(Integer)  # iterations between snapshots
    batch_size: Mapped[int | None] = mapped_column(Integer)  # None = full batch
    # The Celery queue its stages are sent to; a worker's reaper only re-sends its own queue's.
    queue: Mapped[str] = mapped_column(String(200), default="gradq", server_default="gradq")
    # The snapshot this run was forked from; RESTRICT keeps lineage from being deleted.
    parent_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="RESTRICT", use_alter=True), index=True
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), server_default=SERVER_NOW
    )
    # The update rule (worker/core/optim.py), the same for every stage of the run.
    optimizer: Mapped[str] = mapped_column(String(16), default="sgd", server_default="sgd")
    momentum: Mapped[float] = mapped_column(Float, default=0.9, server_default="0.9")
    beta1: Mapped[float] = mapped_column(Float, default=0.9, server_default="0.9")  # adam
    beta2: Mapped[float] = mapped_column(Float, default=0.999, server_default="0.999")  # adam
    eps: Mapped[float] = mapped_column(Float, default=1e-8, server_default="1e-08")  # adam
    weight_decay: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # L2
    # A fork that starts its optimizer from zero instead of the parent snapshot's state.
    reset_optimizer: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Mini-batch images moved by up to this many pixels (worker/core/augment.py); 0: none.
    augment: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The halving sweep it belongs to (sweeps.id; no foreign key: adding one rebuilds `runs` on
    # SQLite, whose foreign keys would cascade that into deleting every stage), and why that
    # sweep stopped it (None: not stopped).
    sweep_id: Mapped[int | None] = mapped_column(Integer, index=True)
    stopped: Mapped[str | None] = mapped_column(String(200))

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(width) for width in self.hidden_sizes.split(",") if width)

    @property
    def activation_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.activations.split(",") if name)


class Sweep(Base):
    """A successive-halving sweep: after each rung, the best 1/eta of its runs go on."""

    __tablename__ = "sweeps"
    __table_args__ = (
        CheckConstraint("eta >= 2", name="eta"),
        CheckConstraint("rungs >= 1 AND size >= 1", name="rungs"),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    eta: Mapped[int] = mapped_column(Integer)  # keep ceil(n / eta) of n runs at each rung
    rungs: Mapped[int] = mapped_column(Integer)  # at most this many rungs (stages) per run
    size: Mapped[int] = mapped_column(Integer)  # runs in rung 1: none decides before all exist
    rung: Mapped[str] = mapped_column(String(200))  # the rung as typed, e.g. "5e@cosine"
    decided_rung: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), server_default=SERVER_NOW
    )


class Snapshot(Base):
    """Parameters of a run at one global iteration, as `.npz` bytes with their sha256."""

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("run_id", "iteration"),)
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # get_snapshot_bytes reads it
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), server_default=SERVER_NOW
    )


class Stage(Base):
    """One queued piece of work: `iterations` steps at `lr`, at `position` in its run's schedule."""

    __tablename__ = "stages"
    __table_args__ = (
        UniqueConstraint("run_id", "position"),
        CheckConstraint("lr > 0", name="lr"),
        CheckConstraint("iterations > 0", name="iterations"),
        # blocked_by_earlier reads only a run's stages that have not succeeded
        Index(
            "ix_stages_unfinished",
            "run_id",
            "position",
            postgresql_where=text("status <> 'succeeded'"),
            sqlite_where=text("status <> 'succeeded'"),
        ),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in the run's schedule
    lr: Mapped[float] = mapped_column(Float)
    iterations: Mapped[int] = mapped_column(Integer)
    # How the lr moves within the stage (worker/core/schedule.py): "" constant, "cosine",
    # "step,every=300,gamma=0.1", "linear,warmup=100", ...
    shape: Mapped[str] = mapped_column(String(80), default="", server_default="")
    status: Mapped[StageStatus] = mapped_column(
        Enum(
            StageStatus,
            name="stage_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_values,
        ),
        default=StageStatus.QUEUED,
        index=True,
    )
    requested: Mapped[StageRequest | None] = mapped_column(
        Enum(
            StageRequest,
            name="stage_request",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_values,
        )
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims: one per slice
    # times a worker took the stage over from one that stopped beating (crash, kill, lost
    # database); past a bound the stage fails instead of being retried forever
    takeovers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its last message, db clock
    worker: Mapped[str | None] = mapped_column(String(200))  # id of the lease holder
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # database clock
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first claim
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # indexed so that deleting a snapshot (SET NULL here) does not scan every stage
    start_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL"), index=True
    )
    end_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL"), index=True
    )
    start_iteration: Mapped[int | None] = mapped_column(Integer)  # global iteration at start
    iterations_done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), server_default=SERVER_NOW
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), onupdate=utcnow(), server_default=SERVER_NOW
    )


class Metric(Base):
    """One point of a run's learning curve; at most one per (run, iteration)."""

    __tablename__ = "metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    iteration: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_acc: Mapped[float] = mapped_column(Float)
    dev_acc: Mapped[float | None] = mapped_column(Float)  # None when the dev split is empty
    loss: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    wall: Mapped[float] = mapped_column(Float)  # seconds since the slice (train call) began
    # the database's time the point was written; None for points older than migration 0009
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunTag(Base):
    """A label on a run (`gradq tag 3 baseline`), for filtering `gradq runs --tag`."""

    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class RunNote(Base):
    """A free-text note on a run, kept with the database's time it was written."""

    __tablename__ = "run_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow(), server_default=SERVER_NOW
    )
