"""Fleet: N concurrent stages on one database, without training; what the storage calls cost.

    python bench/fleet.py                          # PostgreSQL, N = 100, 300, 1000
    python bench/fleet.py --n 100,300,1000,3000 --seconds 30
    python bench/fleet.py --database sqlite --n 30,100
    python bench/fleet.py --n 1000 --history 25000 --revision 0006   # 100k finished stages first,
                                                                     # without 0007's indexes

Each stage is held by a simulated worker doing exactly the storage calls a real one makes:
claim, renew every `--renew` s, a curve point and a ~34 kB snapshot every `--point-every` s
(50 full-batch iterations take about 2 s on 2 cores; a fleet of slower hosts, longer), and the
end of its slice; `--reapers` simulated workers run the reaper's scan every `--reaper-period` s.
The holders run in `--processes` processes of `--threads` threads each. It reports per N:
transactions per second (the database's own count on PostgreSQL), renew latency p50/p99 (from
when it was due, so a bench that cannot keep up shows too), renewals that missed the lease grace,
the reaper scan's time, the database's growth per hour of simulated training, and the CPU the
PostgreSQL server processes used; the knee is the smallest N where p99 renew > grace / 4 or a
renewal missed the grace. Everything here shares 2 cores with the database, so the knee is a
floor for a real fleet, whose workers run elsewhere. Talks only to 127.0.0.1; bounded in count
and time. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from history import fill  # noqa: E402
from scratch_db import drop_schema, new_database  # noqa: E402

from storage import reaper, runs, stages  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from worker import runspec  # noqa: E402
from worker.core.config import RunConfig  # noqa: E402

BLOB = os.urandom(34_000)  # a snapshot of the default network is about 34 kB
POINT = {"train_acc": 0.9, "dev_acc": 0.9, "loss": 0.3, "lr": 0.5, "wall": 1.0}


def make_stages(url: str, n: int, a: dict) -> list[tuple[int, int]]:
    """The schema at `a['revision']`, `a['history']` finished runs (PostgreSQL), then n
    one-stage runs on queue 'fleet'; their (run id, stage id)."""
    engine = make_engine(url)
    upgrade(engine, a["revision"])
    if a["history"]:
        fill(engine, a["history"], busy=False)
    out = []
    with session_scope(engine) as s:
        for i in range(n):
            run_id = runs.create_run(
                s,
                name=f"fleet{i}",
                config=runspec.columns(RunConfig(seed=i)),
                stages=[(0.5, 10**6)],
                queue="fleet",
            )
            out.append((run_id, stages.stages_of(s, run_id)[0].id))
    engine.dispose()
    return out


def hold(url: str, mine: list[tuple[int, int]], a: dict, start: float, out: mp.Queue) -> None:
    """One process: its threads claim a share of the stages each, then hold them from `start`
    (a shared monotonic time) for `a['seconds']`."""
    engine = make_engine(url, pool_size=a["threads"], max_overflow=0)
    results: list[dict] = []
    shares = [mine[i :: a["threads"]] for i in range(a["threads"])]
    threads = [
        threading.Thread(target=_holder, args=(engine, share, a, start, results))
        for share in shares
        if share
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {"renew": [], "late_misses": 0, "writes": 0, "errors": []}
    for r in results:
        merged["renew"] += r["renew"]
        merged["late_misses"] += r["late_misses"]
        merged["writes"] += r["writes"]
        merged["errors"] += r["errors"]
    out.put(merged)
    engine.dispose()


def _holder(engine, share, a: dict, start: float, results: list) -> None:
    """Claim each stage, then renew it on time and store a point and snapshot on cadence."""
    wid = f"fleet-{os.getpid()}-{threading.get_ident()}"
    renew_lat: list[float] = []
    misses = writes = 0
    errors: list[str] = []
    for _, stage_id in share:
        with session_scope(engine) as s:
            stages.claim_stage(s, stage_id, wid, a["grace"])
    time.sleep(max(0.0, start - time.monotonic()))  # every holder starts the window together
    now = time.monotonic()
    spread = a["renew"] / max(1, len(share))  # stagger the holders across a period
    due = {sid: now + k * spread for k, (_, sid) in enumerate(share)}
    last_ok = dict.fromkeys(due, now)
    point_due = {
        sid: now + a["point_every"] * (k + 1) / len(share) for k, (_, sid) in enumerate(share)
    }
    iteration = dict.fromkeys(due, 0)
    end = start + a["seconds"]
    while time.monotonic() < end:
        run_id, stage_id = min(share, key=lambda x: due[x[1]])
        wait = due[stage_id] - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            with session_scope(engine) as s:
                if time.monotonic() >= point_due[stage_id]:
                    iteration[stage_id] += 50
                    stages.store(
                        s,
                        stage_id,
                        wid,
                        run_id=run_id,
                        iteration=iteration[stage_id],
                        done=iteration[stage_id],
                        blob=BLOB,
                        point=POINT,
                    )
                    point_due[stage_id] += a["point_every"]
                    writes += 1
                else:
                    stages.renew(s, stage_id, wid, iteration[stage_id])
            t = time.monotonic()
            renew_lat.append(t - due[stage_id])  # from when it was due: queueing shows too
            if t - last_ok[stage_id] > a["grace"]:
                misses += 1
            last_ok[stage_id] = t
        except Exception as e:  # counted, not fatal: a lost lease or a timeout is a finding
            errors.append(f"{type(e).__name__}: {str(e)[:120]}")
        due[stage_id] += a["renew"]
    results.append({"renew": renew_lat, "late_misses": misses, "writes": writes, "errors": errors})


def reapers(url: str, a: dict, stop: threading.Event, times: list[float]) -> list[threading.Thread]:
    """`a['reapers']` simulated workers' reaper scans, each every reaper period."""
    engine = make_engine(url)

    def scan() -> None:
        while not stop.wait(a["reaper_period"]):
            t0 = time.monotonic()
            with session_scope(engine) as s:
                stages.reap(s, a["grace"])
                reaper.take_due(s, a["grace"], a["reaper_period"], ["fleet"])
            times.append(time.monotonic() - t0)

    return [threading.Thread(target=scan, daemon=True) for _ in range(a["reapers"])]


def server_cpu_seconds() -> float:
    """CPU seconds (user + system) of the PostgreSQL server: its live processes, plus what its
    ended backends used (the postmaster's children's times), from /proc."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name == "postgres":
            fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is stat's 3rd: the state
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if fields[1] == "1" or not Path(f"/proc/{fields[1]}/comm").read_text().startswith(
                "postgres"
            ):  # the postmaster: its waited-for children too
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / tick


def db_counters(url: str, kind: str) -> tuple[int | None, int]:
    """(committed transactions so far, database bytes) on PostgreSQL; (None, file size) SQLite."""
    if kind == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return None, size
    engine = create_engine(url)
    with engine.connect() as conn:
        xacts = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()
        size = conn.execute(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        ).scalar()
    engine.dispose()
    return xacts, int(size)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(n: int, a: dict, kind: str, tmp: Path) -> dict:
    url, schema = new_database(kind, tmp, "fleet")
    try:
        held = make_stages(url, n, a)
        begin = time.monotonic() + 8 + n / 100  # time to spawn and claim, then all hold
        out: mp.Queue = mp.get_context("spawn").Queue()
        procs = [
            mp.get_context("spawn").Process(
                target=hold, args=(url, held[i :: a["processes"]], a, begin, out)
            )
            for i in range(a["processes"])
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, begin - time.monotonic()))
        xact0, size0 = db_counters(url, kind)
        cpu0, t0 = server_cpu_seconds(), time.monotonic()
        stop, scan_times = threading.Event(), []
        for t in reapers(url, a, stop, scan_times):
            t.start()
        time.sleep(max(0.0, begin + a["seconds"] - time.monotonic()))
        elapsed = time.monotonic() - t0
        cpu = server_cpu_seconds() - cpu0
        xact1, size1 = db_counters(url, kind)
        stop.set()
        parts = [out.get(timeout=a["seconds"] + 600) for _ in procs]
        for p in procs:
            p.join()
    finally:
        if schema:
            drop_schema(schema)
        else:  # the SQLite file and its WAL
            for leftover in Path(url.removeprefix("sqlite:///")).parent.glob(Path(url).name + "*"):
                leftover.unlink()
    lat = [x for p in parts for x in p["renew"]]
    errors = [e for p in parts for e in p["errors"]]
    misses = sum(p["late_misses"] for p in parts)
    return {
        "n": n,
        "tx_per_s": round((xact1 - xact0) / elapsed, 1) if xact0 is not None else None,
        "renews_per_s": round(len(lat) / elapsed, 1),
        "renew_p50_ms": round(1000 * pct(lat, 0.5), 1),
        "renew_p99_ms": round(1000 * pct(lat, 0.99), 1),
        "missed_grace": misses,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "reaper_scan_p50_ms": round(1000 * pct(scan_times, 0.5), 1) if scan_times else None,
        "reaper_scan_max_ms": round(1000 * max(scan_times), 1) if scan_times else None,
        "db_growth_mb_per_hour": round((size1 - size0) / elapsed * 3600 / 1e6, 1),
        "server_cpu_cores": round(cpu / elapsed, 2) if kind == "postgres" else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--n", default="100,300,1000", help="stage counts, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="measured time per N")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--threads", type=int, default=8, help="per process")
    p.add_argument("--renew", type=float, default=1.0, help="seconds between renewals")
    p.add_argument("--point-every", type=float, default=10.0, help="seconds between writes")
    p.add_argument("--grace", type=float, default=15.0, help="lease grace, seconds")
    p.add_argument("--reapers", type=int, default=4)
    p.add_argument("--reaper-period", type=float, default=5.0)
    p.add_argument("--revision", default="head", help="schema revision (0006: before 0007)")
    p.add_argument("--history", type=int, default=0, help="finished runs of 4 stages first")
    args = p.parse_args()
    if args.history and args.database != "postgres":
        p.error("--history fills PostgreSQL only")
    a = vars(args)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    rows = []
    for n in [int(x) for x in args.n.split(",")]:
        rows.append(measure(n, a, args.database, tmp))
        r = rows[-1]
        print(
            f"N={n:5d}  tx/s {r['tx_per_s']}  renew p50 {r['renew_p50_ms']} ms "
            f"p99 {r['renew_p99_ms']} ms  missed {r['missed_grace']}  errors {r['errors']}  "
            f"reaper scan p50 {r['reaper_scan_p50_ms']} ms  growth {r['db_growth_mb_per_hour']} "
            f"MB/h  server CPU {r['server_cpu_cores']} cores",
            flush=True,
        )
    bad = [r["n"] for r in rows if r["renew_p99_ms"] > 1000 * args.grace / 4 or r["missed_grace"]]
    knee = min(bad) if bad else None
    top = rows[-1]["n"]
    print(f"knee: N={knee}" if knee else f"knee: not reached up to N={top}")
    print(
        json.dumps(
            {"bench": "fleet", "database": args.database, "settings": a, "rows": rows, "knee": knee}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
