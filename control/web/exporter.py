"""`/metrics`: the database's view of the work, in Prometheus' text format, read per scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select

from control import describe
from storage import listing, liveness
from storage.db import session_scope
from storage.models import Snapshot, Stage, StageStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the text format's media type, with its version


class DatabaseCollector:
    """Reads counts from the database at each scrape, so every server reports the same."""

    def __init__(self, engine: Engine, queue_depth=None) -> None:
        self.engine = engine
        self.queue_depth = queue_depth  # () -> int | None, the broker's pending messages

    def collect(self) -> Iterator[Metric]:
        with session_scope(self.engine, readonly=True) as s:
            by_status = s.execute(select(Stage.status, func.count()).group_by(Stage.status)).all()
            run_counts = listing.runs_by_status(s)  # counted in SQL, not a row per run
            running = s.scalars(select(Stage).where(Stage.status == StageStatus.RUNNING)).all()
            takeovers = s.scalar(select(func.coalesce(func.sum(Stage.takeovers), 0)))
            snap_bytes, snap_count = s.execute(
                select(func.coalesce(func.sum(Snapshot.size), 0), func.count(Snapshot.id))
            ).one()
            waits = liveness.waiting(s)
            reapers = liveness.reaper_ages(s)
        stages_g = GaugeMetricFamily("gradq_stages", "Stages by status.", labels=["status"])
        counts = {str(getattr(k, "value", k)): n for k, n in by_status}
        for status in StageStatus:
            stages_g.add_metric([status.value], counts.get(status.value, 0))
        yield stages_g
        runs_g = GaugeMetricFamily("gradq_runs", "Runs by status.", labels=["status"])
        for status, n in sorted(run_counts.items()):
            runs_g.add_metric([status], n)
        yield runs_g
        rate = sum(describe.progress(x)[0] or 0.0 for x in running)
        yield GaugeMetricFamily(
            "gradq_iterations_per_second", "Summed rate of running stages.", value=rate
        )
        yield GaugeMetricFamily(
            "gradq_stage_takeovers", "Leases taken over from lost workers.", value=takeovers
        )
        yield GaugeMetricFamily("gradq_snapshot_bytes", "Bytes of stored snapshots.", snap_bytes)
        yield GaugeMetricFamily("gradq_snapshots", "Stored snapshots.", value=snap_count)
        yield from _liveness(waits, reapers)
        depth = self.queue_depth() if self.queue_depth else None
        if depth is not None:
            yield GaugeMetricFamily("gradq_queue_depth", "Messages waiting on the broker.", depth)


def _liveness(waits: list[liveness.Waiting], reapers: dict[str, float]) -> Iterator[Metric]:
    """Is work moving: ready stages and their oldest wait per queue, each reaper's last pass."""
    ready = GaugeMetricFamily("gradq_ready_stages", "Ready, untrained stages.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "gradq_oldest_ready_seconds", "Age of the oldest ready stage.", labels=["queue"]
    )
    for w in waits:
        ready.add_metric([w.queue], w.ready)
        oldest.add_metric([w.queue], w.oldest_seconds)
    passes = GaugeMetricFamily(
        "gradq_reaper_last_pass_seconds", "Seconds since a reaper's last pass.", labels=["worker"]
    )
    for worker, age in reapers.items():
        passes.add_metric([worker], age)
    yield from (ready, oldest, passes)


def render(engine: Engine, queue_depth=None) -> bytes:
    """One scrape's text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine, queue_depth))
    return generate_latest(registry)
