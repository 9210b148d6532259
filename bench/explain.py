"""Explain: the plans of the reaper's and the dashboard's queries over 100k stages, before and
after the indexes of migration 0007.

    python bench/explain.py                 # 25,000 runs x 4 stages
    python bench/explain.py --runs 5000     # smaller, quicker

Builds a scratch PostgreSQL schema at 0006 (the revision before the indexes), fills it
(bench/history.py: most runs finished, 4% training, 4% waiting, 2% failed), then calls each
function exactly as the reaper and the dashboard do, records the SQL it sends, and runs
`EXPLAIN (ANALYZE, BUFFERS)` on each statement in a transaction it rolls back. It upgrades to
head, analyzes, and does it again. Prints per statement its plan's scans, time and buffers,
before and after, as a table; the last line is one JSON object. Talks only to 127.0.0.1;
bounded (one fill, two passes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from history import fill  # noqa: E402
from scratch_db import drop_schema, new_database  # noqa: E402

from control import describe  # noqa: E402
from storage import bookkeeping, listing, liveness, reaper, retention, runs, stages  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

GRACE, PERIOD = 15.0, 5.0


def prune(session: Session) -> object:
    return retention.apply_retention(session, 5, keep_last=1, keep_best=False)


def calls(engine: Engine) -> list[tuple[str, Callable[[], object]]]:
    """The reaper's pass (worker/reaping.py) and the dashboard's list reads, by name."""

    def in_session(fn: Callable) -> Callable[[], object]:
        def call() -> object:
            with session_scope(engine) as s:
                out = fn(s)
                s.rollback()  # measure, change nothing
            return out

        return call

    ready = in_session(lambda s: reaper.ready_stage_ids(s, ["gradq"]))
    ready_ids = ready()
    return [
        ("reaper.take_due", in_session(lambda s: reaper.take_due(s, GRACE, PERIOD, ["gradq"]))),
        ("reaper.ready_stage_ids", ready),
        ("reaper.queues_of", in_session(lambda s: reaper.queues_of(s, ready_ids))),
        ("stages.reap", in_session(lambda s: stages.reap(s, GRACE))),
        ("liveness.waiting", in_session(liveness.waiting)),
        ("runs.list_runs", in_session(runs.list_runs)),
        ("describe.runs_rows", lambda: describe.runs_rows(engine)),
        ("listing.page_of_runs", in_session(lambda s: listing.page_of_runs(s, sort="best"))),
        # what a snapshot's delete costs: `gradq prune` (one of a run's two goes), `gradq rm`
        ("retention.apply_retention", in_session(lambda s: prune(s))),
        ("bookkeeping.delete_run", in_session(lambda s: bookkeeping.delete_run(s, 6))),
    ]


def plan_summary(plan: dict) -> tuple[str, int]:
    """The plan's scans, e.g. 'Seq Scan stages, Index Scan ix_stages_status', and its buffers."""
    scans: list[str] = []

    def walk(node: dict) -> None:
        kind = node["Node Type"]
        if "Scan" in kind:
            where = node.get("Index Name") or node.get("Relation Name") or ""
            scans.append(f"{kind.replace(' Scan', '')} {where}".strip())
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    top = plan["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return ", ".join(dict.fromkeys(scans)), buffers


def recorder(sent: list[tuple[str, object]]) -> Callable[..., None]:
    """A cursor listener that keeps each query and write it sees, with its parameters."""

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            sent.append((statement, parameters))

    return record


def explain_pass(engine: Engine) -> list[dict]:
    """Each call's distinct statements (the first of each), explained, plus the call's time."""
    out = []
    for name, call in calls(engine):
        sent: list[tuple[str, object]] = []
        record = recorder(sent)
        call()  # warm the cache, as a reaper's hundredth pass is
        event.listen(engine, "before_cursor_execute", record)
        t0 = time.perf_counter()
        call()
        wall = time.perf_counter() - t0
        event.remove(engine, "before_cursor_execute", record)
        seen: dict[str, object] = {}
        for statement, parameters in sent:
            seen.setdefault(statement, parameters)
        rows = []
        with engine.connect() as conn:
            for statement, parameters in seen.items():
                if not any(word in statement.upper() for word in ("FROM", "UPDATE")):
                    continue  # SELECT now()
                raw = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"
                plan = conn.exec_driver_sql(raw, parameters).scalar()[0]
                conn.rollback()
                scans, buffers = plan_summary(plan)
                rows.append(
                    {
                        "statement": " ".join(statement.split())[:60],
                        "scans": scans,
                        "ms": round(plan["Execution Time"], 1),
                        "buffers": buffers,
                    }
                )
        out.append({"call": name, "call_ms": round(1000 * wall, 1), "statements": rows})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=25_000, help="runs of 4 stages each")
    args = p.parse_args()
    url, schema = new_database("postgres", Path("/tmp"), "explain")
    engine = make_engine(url)
    try:
        upgrade(engine, "0006")
        t0 = time.perf_counter()
        fill(engine, args.runs)
        fill_s = time.perf_counter() - t0
        before = explain_pass(engine)
        upgrade(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        after = explain_pass(engine)
    finally:
        engine.dispose()
        drop_schema(schema)
    print(f"{args.runs} runs, {4 * args.runs} stages, filled in {fill_s:.1f} s")
    print("| call | statement | before: scans | ms | after: scans | ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for b, a in zip(before, after, strict=True):
        print(f"| {b['call']} (whole call) | | | {b['call_ms']} | | {a['call_ms']} |")
        for sb, sa in zip(b["statements"], a["statements"], strict=False):
            print(
                f"| | `{sb['statement']}` | {sb['scans']} | {sb['ms']} | {sa['scans']} "
                f"| {sa['ms']} |"
            )
    print(
        json.dumps(
            {"bench": "explain", "runs": args.runs, "stages": 4 * args.runs}
            | {"before": before, "after": after}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
