"""gradq storage: SQLAlchemy models, one session scope, query helpers and Alembic migrations."""

from storage.cancel import Requested, request_cancel, request_pause, resume
from storage.db import (
    Settings,
    make_engine,
    normalize_url,
    redact_url,
    session_scope,
    settings_from_env,
)
from storage.errors import LeaseLost, NotFound, SnapshotCorrupt, StorageError, StorageUnavailable
from storage.identity import database_id
from storage.metrics import add_metric, metrics_of
from storage.migrate import current_revision, downgrade, ensure_schema, head_revision, upgrade
from storage.models import Meta, Metric, Run, Snapshot, Stage, StageRequest, StageStatus
from storage.reaper import lapsed_stage_ids, ready_stage_ids
from storage.retention import Deleted, apply_retention
from storage.runs import RunSummary, add_stages, create_run, get_run, list_runs
from storage.snapshots import (
    Truncated,
    get_snapshot,
    get_snapshot_bytes,
    latest_snapshot,
    put_snapshot,
    snapshots_of,
    truncate_after,
)
from storage.stages import (
    claim_stage,
    fail_stage,
    finish_stage,
    get_stage,
    heartbeat,
    next_stage,
    release_stage,
    stages_of,
    stale_stages,
)

__all__ = [
    "Deleted",
    "LeaseLost",
    "Meta",
    "Metric",
    "NotFound",
    "Requested",
    "Run",
    "RunSummary",
    "Settings",
    "Snapshot",
    "SnapshotCorrupt",
    "Stage",
    "StageRequest",
    "StageStatus",
    "StorageError",
    "StorageUnavailable",
    "Truncated",
    "add_metric",
    "add_stages",
    "apply_retention",
    "claim_stage",
    "create_run",
    "current_revision",
    "database_id",
    "downgrade",
    "ensure_schema",
    "fail_stage",
    "finish_stage",
    "get_run",
    "get_snapshot",
    "get_snapshot_bytes",
    "get_stage",
    "head_revision",
    "heartbeat",
    "lapsed_stage_ids",
    "latest_snapshot",
    "list_runs",
    "make_engine",
    "metrics_of",
    "next_stage",
    "normalize_url",
    "put_snapshot",
    "ready_stage_ids",
    "redact_url",
    "release_stage",
    "request_cancel",
    "request_pause",
    "resume",
    "session_scope",
    "settings_from_env",
    "snapshots_of",
    "stages_of",
    "stale_stages",
    "truncate_after",
    "upgrade",
]
