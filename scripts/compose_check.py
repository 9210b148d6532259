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
"""

from __future__ import annotations

import json
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


COMMANDS = {"submit": submit, "running": running, "finish": finish, "check": check}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: compose_check.py {{{'|'.join(COMMANDS)}}} ARGS")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
