"""Memory of a worker's training processes while two runs train at once, read from /proc.

    python bench/memory.py --data ../shared/data/mnist [--iters 600] [--dtype float32]
                           [--tree PATH] [--repeats 3] [--cold] [--timeout 600]

Starts a real worker (`gradq worker -c 2`, one BLAS thread each) on a scratch SQLite database
and a private queue on the local Redis, trains two 1-iteration runs first (the data is parsed,
and on this branch the host's cache built, before anything is measured; `--cold` skips them, to
see what the first runs on a fresh host cost), then two full-batch runs at once, sampling every
process of the worker from /proc/PID/smaps_rollup every 0.1 s:
USS (private: Private_Clean + Private_Dirty) and PSS (shared pages split among their users).
A training process is a pool process that used over a second of CPU. The worker's total is
the largest sum of PSS over all its processes at one sample (PSS adds up to what it costs).
`--tree` runs the worker from another checkout (e.g. an export of main) with this bench and
this venv, so before and after are measured the same way. Prints a table, then one JSON line.
Talks only to 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import migrate, runs, stages  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
MB = 1024 * 1024
CLOCK = os.sysconf("SC_CLK_TCK")


def smaps(pid: int) -> dict[str, int] | None:
    """USS and PSS in bytes from /proc/PID/smaps_rollup, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kb = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        kb[name] = int(rest.split()[0])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"uss": uss * 1024, "pss": kb.get("Pss", 0) * 1024}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc/PID/stat (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK  # utime, stime


def descendants(root: int) -> list[int]:
    """root and every process below it, from each process's parent id in /proc."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int(
                    (entry / "stat").read_text().rpartition(")")[2].split()[1]
                )
            except OSError:
                continue
    found, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def start_worker(tree: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`gradq worker -c 2` from `tree`, ready to take stages (its own process group)."""
    cmd = [sys.executable, "-m", "control", "worker", "-l", "INFO", "-c", "2"]
    cmd += ["-n", f"mem-{uuid.uuid4().hex[:6]}@%h", "-Q", env["GRADQ_QUEUE"]]
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if " ready." in log.read_text():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError("worker did not become ready in 60 s")


def stop_worker(proc: subprocess.Popen) -> None:
    """SIGTERM the worker's process group (ours), SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def submit(engine, dataset: str, iters: int, seed: int, dtype: str) -> tuple[int, int]:
    """A full-batch run of the default net on the private queue, its one stage sent."""
    from worker import runspec, tasks
    from worker.core.config import RunConfig

    with session_scope(engine) as s:
        run_id = runs.create_run(
            s,
            name="memory",
            config=runspec.columns(
                RunConfig(dtype=dtype, seed=seed, dataset=dataset, snapshot_every=100)
            ),
            stages=[(0.5, iters)],
            queue=os.environ["GRADQ_QUEUE"],
        )
        stage_id = stages.stages_of(s, run_id)[0].id
    tasks.send_stages(engine, [stage_id])
    return run_id, stage_id


def done(engine, run_ids: list[int]) -> bool:
    with session_scope(engine, readonly=True) as s:
        st = [x for r in run_ids for x in stages.stages_of(s, r)]
    bad = [x for x in st if x.status.value in ("failed", "cancelled", "diverged")]
    if bad:
        raise RuntimeError(f"a stage ended {bad[0].status.value}: {bad[0].error}")
    return all(x.status.value == "succeeded" for x in st)


def measure(engine, worker: int, dataset: str, iters: int, dtype: str, timeout: float) -> dict:
    """Train two runs at once and sample the worker's processes until both have succeeded."""
    cpu0 = {p: cpu_seconds(p) for p in descendants(worker)}
    ids = [submit(engine, dataset, iters, seed, dtype)[0] for seed in (1, 2)]
    peak: dict[int, dict[str, int]] = {}
    total_pss = 0
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    while True:
        now = 0
        for pid in descendants(worker):
            m = smaps(pid)
            if m is None:
                continue
            now += m["pss"]
            seen = peak.setdefault(pid, {"uss": 0, "pss": 0})
            seen["uss"], seen["pss"] = max(seen["uss"], m["uss"]), max(seen["pss"], m["pss"])
        total_pss = max(total_pss, now)
        if done(engine, ids):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not done in {timeout} s")
        time.sleep(0.1)
    seconds = time.monotonic() - t0
    training = [p for p in peak if p != worker and cpu_seconds(p) - cpu0.get(p, 0.0) > 1.0]
    return {
        "seconds": round(seconds, 1),
        "training": [{"pid": p, **{k: v / MB for k, v in peak[p].items()}} for p in training],
        "main": {k: v / MB for k, v in peak.get(worker, {"uss": 0, "pss": 0}).items()},
        "worker_pss": total_pss / MB,
    }


def one_session(args: argparse.Namespace, tree: Path) -> dict:
    """A fresh database, queue, cache dir and worker; a warm-up run; then the measured pair."""
    tmp = Path(tempfile.mkdtemp(prefix="gradq-mem-"))
    db = f"sqlite:///{tmp / 'gradq.db'}"
    env = {
        **os.environ,
        "GRADQ_DATABASE_URL": db,
        "GRADQ_BROKER_URL": REDIS_URL,
        "GRADQ_QUEUE": f"gradq-mem-{uuid.uuid4().hex[:8]}",
        "GRADQ_DATA_DIR": str(Path(args.data).resolve()),
        "GRADQ_CACHE_DIR": str(tmp / "cache"),
        "GRADQ_HOME": str(tmp / "home"),
        "GRADQ_CONCURRENCY": "2",
        "GRADQ_THREADS": "1",  # 2 processes x 1 BLAS thread on 2 cores
        "PYTHONPATH": str(tree),
        "no_proxy": "*",
    }
    os.environ.update(
        {k: env[k] for k in ("GRADQ_DATABASE_URL", "GRADQ_BROKER_URL", "GRADQ_QUEUE")}
    )
    engine = make_engine(db)
    migrate.upgrade(engine)
    proc = start_worker(tree, env, tmp / "worker.log")
    try:
        warm = [] if args.cold else [submit(engine, "mnist", 1, 0, args.dtype)[0] for _ in "ab"]
        deadline = time.monotonic() + args.timeout
        while not done(engine, warm):
            if time.monotonic() > deadline:
                raise TimeoutError("warm-up runs not done")
            time.sleep(0.2)
        return measure(engine, proc.pid, "mnist", args.iters, args.dtype, args.timeout)
    finally:
        stop_worker(proc)
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)  # its database, cache copy and logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GRADQ_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--tree", default=str(ROOT), help="checkout whose worker is measured")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--cold", action="store_true", help="no warm-up: the pair loads the data (builds the cache)"
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per phase at most")
    args = ap.parse_args()
    tree = Path(args.tree).resolve()
    sessions = []
    print(f"tree {tree}  dtype {args.dtype}  iterations {args.iters}  cold {args.cold}")
    print(f"{'session':>7} {'process':>9} {'peak USS MB':>12} {'peak PSS MB':>12}")
    for i in range(args.repeats):
        got = one_session(args, tree)
        sessions.append(got)
        for p in got["training"]:
            print(f"{i:>7} {p['pid']:>9} {p['uss']:>12.1f} {p['pss']:>12.1f}")
        print(f"{i:>7} {'main':>9} {got['main']['uss']:>12.1f} {got['main']['pss']:>12.1f}")
        print(f"{i:>7} {'worker':>9} {'':>12} {got['worker_pss']:>12.1f}  ({got['seconds']} s)")
    per_uss = [max(p["uss"] for p in s["training"]) for s in sessions if s["training"]]
    per_pss = [max(p["pss"] for p in s["training"]) for s in sessions if s["training"]]
    result = {
        "tree": str(tree),
        "dtype": args.dtype,
        "iterations": args.iters,
        "repeats": args.repeats,
        "cold": args.cold,
        "training_processes": [len(s["training"]) for s in sessions],
        "peak_uss_mb_median": round(statistics.median(per_uss), 1) if per_uss else None,
        "peak_pss_mb_median": round(statistics.median(per_pss), 1) if per_pss else None,
        "worker_pss_mb_median": round(statistics.median(s["worker_pss"] for s in sessions), 1),
        "sessions": sessions,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
