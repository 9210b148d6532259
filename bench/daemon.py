"""Load, latency and overhead of the queue, with real Redis, PostgreSQL and worker processes.

    python bench/daemon.py --data ../shared/data/mnist [--runs 50] [--iters 200] [--latency 50]
                          [--overhead-iters 2000] [--only load,latency,overhead]

- load: N runs x I full-batch iterations on 2 workers (one training process each) against
  PostgreSQL; checks every run succeeded with exact metric and snapshot counts; runs per minute.
- latency: submit-to-start (stage claimed) with an idle worker, p50 and p95.
- overhead: one long full-batch stage through the queue (submit to succeeded) against the bare
  core in one process with the same settings and BLAS threads.
Prints one JSON line last. Uses a private PostgreSQL schema and a private queue.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures_services import PG_URL, REDIS_URL, make_stack, pg_schema_url
from sqlalchemy import create_engine, text
from threadpoolctl import threadpool_limits

from storage import metrics, migrate, runs, snapshots, stages
from storage.db import make_engine, session_scope
from worker import runspec, tasks
from worker.core import nn, train
from worker.core.config import RunConfig
from worker.data import mnist
from worker.settings import settings_from_env


def new_run(engine, dataset: str, schedule, seed: int = 0, every: int = 50) -> tuple[int, int]:
    with session_scope(engine) as s:
        run_id = runs.create_run(
            s,
            name="bench",
            config=runspec.columns(RunConfig(seed=seed, dataset=dataset, eval_every=every)),
            stages=schedule,
        )
        return run_id, stages.stages_of(s, run_id)[0].id


def wait_done(engine, run_ids: list[int], timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine, readonly=True) as s:
            st = [x for r in run_ids for x in stages.stages_of(s, r)]
        if all(x.status.value not in ("queued", "running") for x in st):
            return
        time.sleep(poll)
    raise TimeoutError(f"runs not done in {timeout} s")


def db_now(engine) -> float:
    """The database's clock, which stamps started_at and finished_at."""
    with engine.connect() as c:
        return float(c.execute(text("select extract(epoch from clock_timestamp())")).scalar())


def load_test(engine, dataset: str, n_runs: int, iters: int) -> dict:
    t0 = time.monotonic()
    ids = []
    for i in range(n_runs):
        run_id, stage_id = new_run(engine, dataset, [(0.5, iters)], seed=i)
        tasks.send_stage(stage_id)
        ids.append(run_id)
    wait_done(engine, ids, timeout=3600)
    elapsed = time.monotonic() - t0
    want = list(range(0, iters + 1, 50)) + ([iters] if iters % 50 else [])
    ok = 0
    with session_scope(engine, readonly=True) as s:
        for r in ids:
            st = stages.stages_of(s, r)
            pts = [m.iteration for m in metrics.metrics_of(s, r)]
            snaps = [x.iteration for x in snapshots.snapshots_of(s, r)]
            ok += st[0].status.value == "succeeded" and pts == want and snaps == want
            ok -= st[0].attempts != 1
    return {
        "runs": n_runs,
        "iterations": iters,
        "exact": ok,
        "seconds": round(elapsed, 1),
        "runs_per_minute": round(60 * n_runs / elapsed, 2),
    }


def latency_test(engine, dataset: str, n: int) -> dict:
    warm, stage_id = new_run(engine, dataset, [(0.5, 1)])
    tasks.send_stage(stage_id)
    wait_done(engine, [warm], timeout=300)  # the worker has the data cached now
    lat = []
    for i in range(n):
        run_id, stage_id = new_run(engine, dataset, [(0.5, 1)], seed=i)
        t_submit = db_now(engine)
        tasks.send_stage(stage_id)
        wait_done(engine, [run_id], timeout=60)
        with session_scope(engine, readonly=True) as s:
            started = stages.get_stage(s, stage_id).started_at
        lat.append(started.timestamp() - t_submit)
    lat.sort()
    return {
        "n": n,
        "p50_ms": round(1e3 * statistics.median(lat), 1),
        "p95_ms": round(1e3 * lat[int(0.95 * (len(lat) - 1))], 1),
    }


def overhead_test(engine, dataset: str, iters: int, threads: int, repeats: int) -> dict:
    split = mnist.split(mnist.load(dataset), dev_size=1000, seed=runspec.DEV_SPLIT_SEED)
    bare, queued = [], []
    for rep in range(repeats):
        state = train.new_state(nn.Arch(), seed=rep)
        with threadpool_limits(threads):
            t = time.perf_counter()
            train.train(state, split, 0.5, iters, eval_every=50)
            bare.append(time.perf_counter() - t)
        run_id, stage_id = new_run(engine, dataset, [(0.5, iters)], seed=rep)
        submitted = db_now(engine)
        tasks.send_stage(stage_id)
        wait_done(engine, [run_id], timeout=3600, poll=2.0)  # a slow poll: no CPU taken from it
        with session_scope(engine, readonly=True) as s:
            finished = stages.get_stage(s, stage_id).finished_at
        queued.append(finished.timestamp() - submitted)  # submit to succeeded, database clock
    b, q = statistics.median(bare), statistics.median(queued)
    return {
        "iterations": iters,
        "repeats": repeats,
        "threads": threads,
        "bare_s": round(b, 2),
        "queue_s": round(q, 2),
        "slower_pct": round(100 * (q / b - 1), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GRADQ_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--latency", type=int, default=50)
    ap.add_argument("--overhead-iters", type=int, default=2000)
    ap.add_argument("--overhead-repeats", type=int, default=3)
    ap.add_argument("--only", default="load,latency,overhead")
    args = ap.parse_args()
    dataset = str(mnist.find(args.data) or args.data)

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    tmp = Path(tempfile.mkdtemp(prefix="gradq-bench-"))
    stack = make_stack(pg_schema_url(PG_URL, schema), tmp, REDIS_URL, Path(args.data))
    stack.env["GRADQ_LEASE_GRACE"] = "15"
    stack.env["GRADQ_HEARTBEAT_SECONDS"] = "1"
    stack.env["GRADQ_REAPER_SECONDS"] = "5"  # the defaults, not the tests' quick ones
    os.environ.update({k: stack.env[k] for k in ("GRADQ_QUEUE", "GRADQ_DATABASE_URL")})
    engine = make_engine(stack.database_url)
    migrate.upgrade(engine)
    result: dict = {}
    try:
        only = set(args.only.split(","))
        if "latency" in only or "overhead" in only:
            stack.start_worker(concurrency=1)
            threads = settings_from_env(stack.env).blas_threads
            if "latency" in only:
                result["latency"] = latency_test(engine, dataset, args.latency)
                print("latency", result["latency"], flush=True)
            if "overhead" in only:
                result["overhead"] = overhead_test(
                    engine, dataset, args.overhead_iters, threads, args.overhead_repeats
                )
                print("overhead", result["overhead"], flush=True)
            stack.stop_all()
            stack.workers.clear()
        if "load" in only:
            stack.env["GRADQ_THREADS"] = "1"  # 2 workers x 1 process x 1 thread on 2 cores
            stack.start_worker(concurrency=1)
            stack.start_worker(concurrency=1)
            result["load"] = load_test(engine, dataset, args.runs, args.iters)
            print("load", result["load"], flush=True)
    finally:
        stack.stop_all()
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
