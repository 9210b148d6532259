"""Cost of storing one metric point + one snapshot, next to the cost of the training it records.

    python bench/storage.py                      # SQLite temp file and local PostgreSQL
    python bench/storage.py --database-url URL   # only URL (repeatable)

Target: one write per 50 full-batch iterations costs well under 2 % of those iterations.
The last line printed is one JSON object.
"""

import argparse
import io
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, delete, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.db import make_engine, normalize_url, redact_url, session_scope
from storage.errors import StorageError
from storage.metrics import add_metric
from storage.migrate import ensure_schema
from storage.models import Run
from storage.runs import create_run
from storage.snapshots import put_snapshot
from worker import runspec
from worker.core.config import RunConfig

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SHAPES = {  # the 784-10-10-10 network: 8,070 float32 parameters
    "W1": (10, 784),
    "b1": (10,),
    "W2": (10, 10),
    "b2": (10,),
    "W3": (10, 10),
    "b3": (10,),
}


def snapshot_bytes(params: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    return buffer.getvalue()


def time_writes(engine: Engine, repeats: int) -> dict[str, float]:
    """Median seconds to serialise + store one point and one snapshot in one session."""
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in SHAPES.items()}
    with session_scope(engine) as session:
        run_id = create_run(
            session,
            name="bench",
            config=runspec.columns(RunConfig(init="he", dataset="bench")),
            stages=[(1.0, 50 * (repeats + 1))],
        )
    totals, stores = [], []
    try:
        for repeat in range(repeats + 1):  # the first is a warm-up (connections, statements)
            params["W1"] += np.float32(1e-3)  # new parameters each time, like real training
            iteration = 50 * (repeat + 1)
            t0 = time.perf_counter()
            blob = snapshot_bytes(params)
            t1 = time.perf_counter()
            with session_scope(engine) as session:
                add_metric(
                    session,
                    run_id,
                    iteration,
                    train_acc=0.9,
                    dev_acc=0.9,
                    loss=0.3,
                    lr=1.0,
                    wall=1.0,
                )
                put_snapshot(session, run_id, iteration, blob)
            t2 = time.perf_counter()
            if repeat:
                totals.append(t2 - t0)
                stores.append(t2 - t1)
    finally:
        with session_scope(engine) as session:
            session.execute(delete(Run).where(Run.id == run_id))
    return {
        "write_s": statistics.median(totals),
        "store_only_s": statistics.median(stores),
        "snapshot_bytes": len(blob),
    }


def time_training(iterations: int = 50) -> float:
    """Seconds for `iterations` full-batch steps on (59000, 784) float32 random data.

    A stand-in: the real core (worker/nn.py, worker/train.py) is written by someone else; this
    is the same arithmetic (784-10-10-10, ReLU, softmax cross-entropy, plain gradient step).
    """
    rng = np.random.default_rng(0)
    X = rng.random((784, 59000), dtype=np.float32)  # (784, m)
    Y = np.zeros((10, 59000), dtype=np.float32)  # (10, m) one-hot
    Y[rng.integers(0, 10, 59000), np.arange(59000)] = 1
    W1 = rng.standard_normal((10, 784)).astype(np.float32) * np.float32(0.05)
    W2 = rng.standard_normal((10, 10)).astype(np.float32) * np.float32(0.3)
    W3 = rng.standard_normal((10, 10)).astype(np.float32) * np.float32(0.3)
    b1, b2, b3 = (np.zeros((10, 1), np.float32) for _ in range(3))
    m, lr = np.float32(X.shape[1]), np.float32(0.5)

    def step() -> None:
        nonlocal W1, b1, W2, b2, W3, b3
        Z1 = W1 @ X + b1  # (10, m)
        A1 = np.maximum(Z1, 0)
        Z2 = W2 @ A1 + b2  # (10, m)
        A2 = np.maximum(Z2, 0)
        Z3 = W3 @ A2 + b3  # (10, m)
        E = np.exp(Z3 - Z3.max(axis=0))
        A3 = E / E.sum(axis=0)  # softmax, (10, m)
        dZ3 = (A3 - Y) / m
        dW3, db3 = dZ3 @ A2.T, dZ3.sum(axis=1, keepdims=True)
        dZ2 = (W3.T @ dZ3) * (Z2 > 0)
        dW2, db2 = dZ2 @ A1.T, dZ2.sum(axis=1, keepdims=True)
        dZ1 = (W2.T @ dZ2) * (Z1 > 0)
        dW1, db1 = dZ1 @ X.T, dZ1.sum(axis=1, keepdims=True)
        W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
        W3, b3 = W3 - lr * dW3, b3 - lr * db3

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    return time.perf_counter() - t0


@contextmanager
def local_postgres_schema() -> Iterator[str | None]:
    """A throwaway schema on the local PostgreSQL, or None when it is not running."""
    admin = make_engine(LOCAL_POSTGRES, connect_args={"connect_timeout": 3})
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:
        print(f"postgresql: skipped, {LOCAL_POSTGRES} unreachable ({type(e).__name__})")
        admin.dispose()
        yield None
        return
    url = normalize_url(LOCAL_POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bench(url: str, repeats: int, train_s: float) -> dict[str, object]:
    engine = make_engine(url)
    try:
        ensure_schema(engine)
        result = time_writes(engine, repeats)
    finally:
        engine.dispose()
    ratio = result["write_s"] / train_s
    print(
        f"{engine.dialect.name}: write median {result['write_s'] * 1e3:.2f} ms "
        f"(store only {result['store_only_s'] * 1e3:.2f} ms, {result['snapshot_bytes']} B), "
        f"{ratio:.3%} of 50 iterations ({train_s:.2f} s) [{redact_url(url)}]"
    )
    return {
        "backend": engine.dialect.name,
        **result,
        "train_50_s": train_s,
        "ratio": ratio,
        "under_2pct": ratio < 0.02,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", help="database to measure (repeatable)")
    parser.add_argument("--repeats", type=int, default=20, help="timed writes per backend (>= 20)")
    args = parser.parse_args()
    if args.repeats < 20:
        parser.error("--repeats must be >= 20 for a stable median")
    train_s = time_training(50)
    print(f"training: 50 full-batch iterations on (59000, 784) float32 took {train_s:.2f} s")
    results = []
    try:
        if args.database_url:
            results = [bench(url, args.repeats, train_s) for url in args.database_url]
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.repeats, train_s))
            with local_postgres_schema() as url:
                if url is not None:
                    results.append(bench(url, args.repeats, train_s))
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from e
    print(json.dumps({"bench": "storage", "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()
