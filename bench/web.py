"""Server time of the dashboard's pages, and what a page left open costs the database.

    python bench/web.py                      # a fresh schema in the local PostgreSQL
    python bench/web.py --database-url URL   # another database (its tables are filled)

Target: with 1,000 runs and 100,000 curve points, the runs page's and a run page's JSON
answer in < 200 ms server time, and an open page (polling every 2 s) costs the database
less than a few queries per second. The last line printed is one JSON object.
"""

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, event, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from control.service import Service
from control.web.app import build
from control.web.security import Guard
from storage.db import make_engine, normalize_url, redact_url, session_scope
from storage.migrate import ensure_schema
from storage.models import Metric, Run, Stage, StageStatus
from worker.settings import settings_from_env

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POLL_SECONDS = 2.0  # how often an open page asks again (common.js `poll`)


def fill(engine: Engine, runs: int, points_per_run: int) -> int:
    """`runs` runs of two stages each and `points_per_run` points each; returns a busy run."""
    with session_scope(engine) as s:
        s.execute(
            insert(Run),
            [
                dict(
                    name=f"bench {i}",
                    hidden_sizes="10,10",
                    activations="relu,relu",
                    init="he",
                    dtype="float32",
                    seed=i,
                    dataset="mnist",
                    dev_size=1000,
                    eval_every=50,
                    snapshot_every=50,
                    queue="gradq",
                )
                for i in range(runs)
            ],
        )
        ids = list(s.scalars(text("SELECT id FROM runs ORDER BY id")))
        s.execute(
            insert(Stage),
            [
                dict(run_id=r, position=p, lr=lr, iterations=points_per_run * 25, status=st)
                for r in ids
                for p, lr, st in ((1, 1.0, StageStatus.SUCCEEDED), (2, 0.5, StageStatus.RUNNING))
            ],
        )
        s.execute(
            insert(Metric),
            [
                dict(
                    run_id=r,
                    iteration=50 * k,
                    train_acc=0.9,
                    dev_acc=0.88,
                    loss=0.3,
                    lr=1.0,
                    wall=k,
                )
                for r in ids
                for k in range(1, points_per_run + 1)
            ],
        )
    return ids[-1]


def median_ms(client: TestClient, path: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return 1000 * statistics.median(times)


def queries_per_poll(engine: Engine, client: TestClient, path: str, etag: str | None) -> int:
    """Statements one poll of `path` sends to the database (as a browser does, with the ETag
    of the answer it holds when `etag` is given)."""
    count = 0

    def counted(*_: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        answer = client.get(path, headers={"If-None-Match": etag} if etag else {})
        assert answer.status_code == (304 if etag else 200), answer.status_code
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100, help="per run")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    url, schema = args.database_url, None
    if url is None:
        schema = f"bench_web_{secrets.token_hex(4)}"
        admin = make_engine(LOCAL_POSTGRES)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        base = normalize_url(LOCAL_POSTGRES)
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    engine = make_engine(url)
    try:
        ensure_schema(engine)
        start = time.perf_counter()
        busy = fill(engine, args.runs, args.points)
        filled = time.perf_counter() - start
        service = Service(settings_from_env(), engine)
        client = TestClient(build(service, Guard(loopback=True)), base_url="http://127.0.0.1")
        client.get("/api/runs")  # warm caches and pools once
        out = {
            "database": redact_url(url),
            "runs": args.runs,
            "points": args.runs * args.points,
            "fill_seconds": round(filled, 1),
            "runs_page_ms": round(median_ms(client, "/api/runs", args.repeats), 1),
            "run_page_ms": round(median_ms(client, f"/api/runs/{busy}", args.repeats), 1),
        }
        for page, path in (("runs_page", "/api/runs"), ("run_page", f"/api/runs/{busy}")):
            etag = client.get(path).headers["etag"]
            changed = queries_per_poll(engine, client, path, None)
            unchanged = queries_per_poll(engine, client, path, etag)
            out[f"{page}_queries_per_second_changing"] = changed / POLL_SECONDS
            out[f"{page}_queries_per_second_unchanged"] = unchanged / POLL_SECONDS
        print(f"runs page {out['runs_page_ms']} ms, run page {out['run_page_ms']} ms (median)")
        print(json.dumps(out))
    finally:
        engine.dispose()
        if schema is not None:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
