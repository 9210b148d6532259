"""A history for a bench: many runs in a scratch PostgreSQL schema, filled by the server in a few
statements (runs of 4 stages, 20 metric points and 2 snapshot rows each)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

POINTS, SNAPSHOTS = 20, 2  # per run
# Run kinds by id % 50 when busy: 0-1 training (stage 2 running), 2-3 waiting (stage 1 queued
# and ready), 4 failed (stage 1 failed, the rest cancelled), else finished (4 succeeded).
# Snapshot rows hold 1 byte: no query here reads a blob, and the fill stays quick.
FILL = [
    """INSERT INTO runs (id, name, hidden_sizes, activations, init, dtype, seed, dataset,
         dev_size, eval_every, snapshot_every, queue)
       SELECT g, 'run' || g, '10,10', 'relu,relu', 'he', 'float32', g, 'mnist', 1000, 10, 50,
              CASE WHEN g % 7 = 0 THEN 'gpu' ELSE 'gradq' END
       FROM generate_series(1, :runs) g""",
    """INSERT INTO stages (run_id, position, lr, iterations, status, attempts, takeovers,
         iterations_done, worker, heartbeat_at, started_at, finished_at, sent_at, updated_at)
       SELECT r, p, 0.1, 1000,
         CASE WHEN :busy AND r % 50 IN (0, 1) THEN
                CASE WHEN p = 1 THEN 'succeeded' WHEN p = 2 THEN 'running' ELSE 'queued' END
              WHEN :busy AND r % 50 IN (2, 3) THEN 'queued'
              WHEN :busy AND r % 50 = 4 THEN CASE WHEN p = 1 THEN 'failed' ELSE 'cancelled' END
              ELSE 'succeeded' END,
         1, CASE WHEN r % 500 = 0 THEN 6 ELSE 0 END, 500,
         CASE WHEN :busy AND r % 50 IN (0, 1) AND p = 2 THEN 'w' || (r % 40) END,
         CASE WHEN :busy AND r % 50 IN (0, 1) AND p = 2 THEN
                now() - CASE WHEN r % 500 = 0 THEN interval '1 hour' ELSE interval '1 s' END
         END,
         now() - interval '2 days', now() - interval '1 day',
         now() - CASE WHEN r % 100 = 2 THEN interval '1 hour' ELSE interval '1 minute' END,
         now() - interval '10 minutes'
       FROM generate_series(1, :runs) r, generate_series(1, 4) p""",
    """INSERT INTO metrics (run_id, iteration, train_acc, dev_acc, loss, lr, wall)
       SELECT r, 10 * i, 0.9, 0.9, 0.3, 0.1, i FROM generate_series(1, :runs) r,
              generate_series(1, :points) i""",
    """INSERT INTO snapshots (run_id, iteration, blob, sha256, size)
       SELECT r, 50 * i, '\\x00'::bytea, repeat('0', 64), 1 FROM generate_series(1, :runs) r,
              generate_series(1, :snapshots) i""",
]


def fill(engine: Engine, runs: int, busy: bool = True) -> None:
    """`runs` runs with ids 1..runs, then VACUUM ANALYZE; busy=False: every stage succeeded."""
    values = {"runs": runs, "points": POINTS, "snapshots": SNAPSHOTS, "busy": busy}
    with engine.begin() as conn:
        for sql in FILL:
            conn.execute(text(sql), values)
        conn.execute(text("SELECT setval('runs_id_seq', :runs)"), values)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
