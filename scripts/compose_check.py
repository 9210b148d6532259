"""The checks scripts/compose-check.sh runs inside the stack's `control` service.

Fed on stdin (`docker-compose run -T control python - CMD ARGS < scripts/compose_check.py`), so
the image needs no copy of it. It only uses the `gradq` CLI and its --json output.
  submit NAME          queue the check's two-stage run; print its id
  running RUN ITERS [NOT_HOST]
                       wait until a stage of RUN runs with ITERS iterations done (on a worker
                       whose host is not NOT_HOST); print "STAGE HOST"
  finish RUN           wait until RUN succeeded; fail if it failed or was cancelled
  check RUN [REF]      the curve has a point every 50 iterations, no gap and no duplicate, each
                       with its stage's lr; with REF, the snapshots equal REF's, byte for byte
  audit                from now on, record which client address writes each row of stages,
                       metrics and snapshots (a trigger per table, into check_audit)
  now                  print the database's clock
  written RUN STAGE SINCE ADDR...
                       fail if a client at ADDR wrote STAGE of RUN (its row, or a point or a
                       snapshot in its iterations) after SINCE; print who wrote it since
  hold RUN             lock the row of RUN's first stage in a transaction, print "locked",
                       then sleep (a client about to be cut off mid-transaction)
  free RUN             wait until that row can be locked again; print how long it took
The last five talk to the stack's PostgreSQL directly, through gradq's storage package, so
with its connection settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

STAGES = [(1.0, 600), (0.5, 300)]  # lr, iterations: long enough to fault mid-way (~10 s a stage)
EVERY = 50
SEED = 7
TIMEOUT = 600.0  # seconds: generous for two cores shared with other work
PERIOD = 2.0  # seconds between polls: each spawns the CLI, which takes CPU from training


def gradq(*args: str) -> object:
    """Run `gradq ARGS --json` and return its parsed output; any failure ends the check."""
    result = subprocess.run(
        ["gradq", *args, "--json"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        sys.exit(f"gradq {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def poll(what: str, probe, timeout: float = TIMEOUT):
    """Call probe() every PERIOD seconds until it returns something; fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(PERIOD)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")


def submit(name: str) -> None:
    stages = [arg for lr, n in STAGES for arg in ("--stage", f"{lr}:{n}")]
    run = gradq("train", *stages, "--seed", str(SEED), "--eval-every", str(EVERY), "--name", name)
    print(run["id"])


def running(run: str, iterations: str, not_host: str = "") -> None:
    def probe():
        for stage in gradq("show", run)["stages"]:
            host = (stage["worker"] or "").split(":")[0]
            if (
                stage["status"] == "running"
                and stage["iterations_done"] >= int(iterations)
                and host
                and host != not_host
            ):
                return stage
        return None

    where = f" on a worker other than {not_host}" if not_host else ""
    stage = poll(f"run {run} to train {iterations} iterations of a stage{where}", probe)
    print(stage["id"], stage["worker"].split(":")[0])


def finish(run: str) -> None:
    def probe():
        status = gradq("show", run)["status"]
        if status in ("failed", "cancelled"):
            sys.exit(f"run {run} {status}")
        return status if status == "succeeded" else None

    poll(f"run {run} to succeed", probe)


def check(run: str, reference: str | None = None) -> None:
    points = gradq("metrics", run)
    got = [(p["iteration"], p["lr"]) for p in points]
    want, done = [(0, STAGES[0][0])], 0
    for lr, n in STAGES:
        want += [(i, lr) for i in range(done + EVERY, done + n + 1, EVERY)]
        done += n
    if got != want:
        sys.exit(f"run {run}: curve {got}, expected {want}")
    stages = gradq("show", run)["stages"]
    attempts = [x["attempts"] for x in stages]
    summary = f"run {run}: {len(points)} points, every {EVERY} its, attempts per stage {attempts}"
    if reference is not None:
        mine = [(x["iteration"], x["sha256"]) for x in gradq("snapshots", run)]
        theirs = [(x["iteration"], x["sha256"]) for x in gradq("snapshots", reference)]
        if mine != theirs:
            sys.exit(f"run {run}: snapshots {mine} differ from run {reference}'s {theirs}")
        summary += f"; {len(mine)} snapshots equal to run {reference}'s (sha256)"
    print(summary)


AUDIT = """
CREATE TABLE IF NOT EXISTS check_audit (
    at timestamptz NOT NULL, addr inet, tbl text NOT NULL, op text NOT NULL,
    run_id integer, stage_id integer, iteration integer);
CREATE OR REPLACE FUNCTION check_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'stages' THEN
        INSERT INTO check_audit VALUES (clock_timestamp(), inet_client_addr(), TG_TABLE_NAME,
                                        TG_OP, r.run_id, r.id, NULL);
    ELSE
        INSERT INTO check_audit VALUES (clock_timestamp(), inet_client_addr(), TG_TABLE_NAME,
                                        TG_OP, r.run_id, NULL, r.iteration);
    END IF;
    RETURN NULL;
END $$;
"""
AUDITED = ("stages", "metrics", "snapshots")


def database():
    from storage.db import make_engine  # the image's gradq: its URL handling and driver

    return make_engine(os.environ["GRADQ_DATABASE_URL"], create=False)


def audit() -> None:
    from sqlalchemy import text

    with database().begin() as db:
        db.execute(text(AUDIT))
        for table in AUDITED:
            db.execute(text(f"DROP TRIGGER IF EXISTS check_audit ON {table}"))
            db.execute(
                text(
                    f"CREATE TRIGGER check_audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION check_audit_row()"
                )
            )
    print(f"auditing writes to {', '.join(AUDITED)}")


def now() -> None:
    from sqlalchemy import text

    with database().connect() as db:
        print(db.execute(text("SELECT clock_timestamp()")).scalar_one().isoformat())


def written(run: str, stage: str, since: str, *addrs: str) -> None:
    from sqlalchemy import text

    stages = gradq("show", run)["stages"]
    ordinal = next(i for i, x in enumerate(stages) if str(x["id"]) == stage)
    first = sum(n for _, n in STAGES[:ordinal])
    last = first + STAGES[ordinal][1]
    query = text(
        "SELECT host(addr) AS addr, tbl, op, count(*) AS n, max(at) AS last FROM check_audit "
        "WHERE at > CAST(:since AS timestamptz) AND run_id = :run AND ("
        "  (tbl = 'stages' AND stage_id = :stage)"
        "  OR (tbl <> 'stages' AND iteration BETWEEN :first AND :last)) "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    with database().connect() as db:
        rows = db.execute(
            query,
            {"since": since, "run": int(run), "stage": int(stage), "first": first, "last": last},
        ).all()
    for r in rows:
        print(f"  since the cut: {r.addr} {r.op} {r.n} row(s) of {r.tbl}, the last at {r.last}")
    theirs = [r for r in rows if r.addr in addrs]
    if theirs:
        sys.exit(f"stage {stage}: the cut-off worker ({' '.join(addrs)}) wrote it after the cut")
    if not rows:
        sys.exit(f"stage {stage}: nobody wrote it after the cut, so nothing was checked")
    print(f"stage {stage}: nothing written by the cut-off worker ({' '.join(addrs)}) after the cut")


LOCK = "SELECT id FROM stages WHERE run_id = :run AND position = 1 FOR UPDATE"


def hold(run: str) -> None:
    from sqlalchemy import text

    with database().connect() as db:
        db.execute(text(LOCK), {"run": int(run)})
        print("locked", flush=True)
        time.sleep(3600)


def free(run: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    engine = database()

    def probe():
        try:
            with engine.connect() as db:
                db.execute(text(LOCK + " NOWAIT"), {"run": int(run)})
                return True
        except OperationalError:  # "could not obtain lock"
            return None

    t0 = time.monotonic()
    poll(f"the row of run {run}'s first stage to be free", probe, timeout=120)
    print(f"{time.monotonic() - t0:.0f}")


COMMANDS = {
    "submit": submit,
    "running": running,
    "finish": finish,
    "check": check,
    "audit": audit,
    "now": now,
    "written": written,
    "hold": hold,
    "free": free,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: compose_check.py {{{'|'.join(COMMANDS)}}} ARGS")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
