"""Soak: real workers train several runs while the broker is killed and restarted at random.

    python bench/soak.py --data ../shared/data/mnist            # 2 workers, 10 runs, 20 restarts
    python bench/soak.py --data ../shared/data/mnist --database sqlite --restarts 5 --runs 4

A redis-server of its own on a free loopback port (killed with SIGKILL, restarted empty, so every
queued or unacknowledged message is lost), a fresh PostgreSQL schema (or an SQLite file), and
`gradq worker` processes with 1 s slices, so restarts land during slice hand-overs too. It
reports the longest time a ready stage waited unclaimed while a worker was free; it passes when
every run succeeded with its whole curve and no such wait was longer than lease grace + 3 reaper
periods. Bounded in time (--timeout) and count; it talks only to 127.0.0.1. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_db import drop_schema, new_database  # noqa: E402

from storage import metrics, migrate, runs, stages  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402
from storage.models import Stage, StageStatus  # noqa: E402
from storage.stages import blocked_by_earlier  # noqa: E402
from worker import runspec  # noqa: E402
from worker.core.config import RunConfig  # noqa: E402

GRACE, PERIOD, SLICE = 4.0, 1.0, 1.0
SCHEDULE = [(0.5, 600), (0.25, 400)]  # two stages: the hand-over between them is faulted too


class Broker:
    """A redis-server of our own on a free loopback port, persisting nothing."""

    def __init__(self, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(["redis-server", *args], stdout=log, stderr=log)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def small_dataset(data_dir: Path, out: Path) -> Path:
    """3,000 training and 1,000 test digits of real MNIST, as .npz."""
    from worker.data import mnist

    ds = mnist.load(data_dir)
    path = out / "mnist-small.npz"
    np.savez(
        path,
        x_train=ds.x_train[:3000],
        y_train=ds.y_train[:3000],
        x_test=ds.x_test[:1000],
        y_test=ds.y_test[:1000],
    )
    return path


def start_worker(env: dict[str, str], name: str, tmp: Path) -> subprocess.Popen:
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    argv = [sys.executable, "-m", "control", "worker", "-l", "INFO", "-c", "1"]
    proc = subprocess.Popen(
        [*argv, "-n", f"{name}@%h", "-Q", env["GRADQ_QUEUE"]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while " ready." not in (tmp / f"{name}.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start: see {tmp / f'{name}.log'}")
        time.sleep(0.1)
    return proc


class Watch(threading.Thread):
    """Polls the stages: the longest a ready stage waited unclaimed while a worker process was
    free (fewer stages running than `capacity`); a wait behind busy workers is the queue's
    ordinary depth, not a stranded stage."""

    def __init__(self, url: str, capacity: int) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.capacity = capacity
        self.worst = 0.0
        self.worst_stage: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        ready = select(Stage.id).where(Stage.status == StageStatus.QUEUED, ~blocked_by_earlier())
        running = select(func.count()).where(Stage.status == StageStatus.RUNNING)
        waited: dict[int, float] = {}  # ready stage -> seconds waited with a free worker
        last = time.monotonic()
        while not self.stop.wait(0.25):
            try:
                with session_scope(self.engine, readonly=True) as s:
                    ids = set(s.scalars(ready))
                    busy = s.scalar(running)
            except Exception:  # a passing database hiccup is not the soak's subject
                continue
            now = time.monotonic()
            dt, last = now - last, now
            waited = {i: waited.get(i, 0.0) for i in ids}
            if busy < self.capacity:
                for i in ids:
                    waited[i] += dt
                    if waited[i] > self.worst:
                        self.worst, self.worst_stage = waited[i], i


def fault(broker: Broker, n: int, rng: random.Random, done: threading.Event, log: list) -> None:
    """n broker restarts at random moments: up 1-6 s, then down 0.2-2 s (SIGKILL, empty)."""
    for _ in range(n):
        if done.wait(rng.uniform(1.0, 6.0)):
            return
        broker.kill()
        down = rng.uniform(0.2, 2.0)
        time.sleep(down)
        broker.start()
        log.append(round(down, 2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GRADQ_DATA_DIR", "")))
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--restarts", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    p.add_argument("--keep", action="store_true", help="keep the logs' folder")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gradq-soak-"))
    broker = Broker(tmp / "redis.log")
    broker.start()
    url, schema = new_database(a.database, tmp, "soak")
    queue = f"soak-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "GRADQ_DATABASE_URL": url,
        "GRADQ_BROKER_URL": broker.url,
        "GRADQ_QUEUE": queue,
        "GRADQ_LEASE_GRACE": str(GRACE),
        "GRADQ_REAPER_SECONDS": str(PERIOD),
        "GRADQ_SLICE_SECONDS": str(SLICE),
        "GRADQ_HEARTBEAT_SECONDS": "0.3",
        "GRADQ_CONCURRENCY": "1",
        "GRADQ_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(
        {k: env[k] for k in ("GRADQ_DATABASE_URL", "GRADQ_BROKER_URL", "GRADQ_QUEUE")}
    )
    workers: list[subprocess.Popen] = []
    done = threading.Event()
    failed_logs = True  # kept unless the soak passes
    watch = Watch(url, a.workers)
    try:
        from worker import tasks

        engine = make_engine(url)
        migrate.upgrade(engine)
        dataset = small_dataset(a.data, tmp)
        workers = [start_worker(env, f"soak{i}", tmp) for i in range(a.workers)]
        run_ids = []
        for i in range(a.runs):
            with session_scope(engine) as s:
                run_ids.append(
                    runs.create_run(
                        s,
                        stages=SCHEDULE,
                        name=f"soak{i}",
                        config=runspec.columns(
                            RunConfig(seed=i, dataset=str(dataset), dev_size=500)
                        ),
                        queue=queue,
                    )
                )
            with session_scope(engine, readonly=True) as s:
                first = stages.stages_of(s, run_ids[-1])[0].id
            tasks.send_stage(first)  # outside the transaction: SQLite has one writer
        watch.start()
        downs: list[float] = []
        rng = random.Random(a.seed)
        faults = threading.Thread(target=fault, args=(broker, a.restarts, rng, done, downs))
        t0 = time.monotonic()
        faults.start()
        finished = False
        while time.monotonic() - t0 < a.timeout:
            with session_scope(engine, readonly=True) as s:
                st = [x for r in run_ids for x in stages.stages_of(s, r)]
            if all(x.status not in (StageStatus.QUEUED, StageStatus.RUNNING) for x in st):
                finished = faults.join(0) or not faults.is_alive()
                if finished:
                    break
            time.sleep(0.5)
        done.set()
        faults.join()
        elapsed = time.monotonic() - t0
        ends = sum(n for _, n in SCHEDULE)
        want = sorted(set(range(0, ends + 1, 50)) | {SCHEDULE[0][1]})
        complete = 0
        with session_scope(engine, readonly=True) as s:
            for r in run_ids:
                ok = all(x.status is StageStatus.SUCCEEDED for x in stages.stages_of(s, r))
                curve = [m.iteration for m in metrics.metrics_of(s, r)]
                complete += ok and curve == want
        bound = GRACE + 3 * PERIOD
        result = {
            "bench": "soak",
            "database": a.database,
            "workers": a.workers,
            "runs": a.runs,
            "restarts": len(downs),
            "completed": complete,
            "worst_wait_s": round(watch.worst, 2),
            "worst_stage": watch.worst_stage,
            "bound_s": bound,
            "elapsed_s": round(elapsed, 1),
            "passed": bool(finished and complete == a.runs and watch.worst <= bound),
        }
        print(
            f"runs completed: {complete}/{a.runs} after {len(downs)} broker restarts "
            f"(down {min(downs, default=0)}-{max(downs, default=0)} s) in {elapsed:.0f} s"
        )
        print(
            f"worst wait of a ready stage: {watch.worst:.1f} s (stage {watch.worst_stage}); "
            f"bound: lease grace {GRACE:g} s + 3 reaper periods = {bound:g} s"
        )
        print(f"logs: {tmp}" if a.keep or not result["passed"] else "")
        print(json.dumps(result))
        failed_logs = not result["passed"]
        return 0 if result["passed"] else 1
    finally:
        done.set()
        watch.stop.set()
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        broker.kill()
        if schema:
            drop_schema(schema)
        if not a.keep and not failed_logs:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
