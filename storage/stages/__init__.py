"""A stage's state machine: every change of a stage's status happens here, in one lock order.

queued -> running (claim) -> queued (release between slices) | succeeded | paused | cancelled |
failed; paused -> queued (resume); a running stage whose worker stopped beating is taken over
by the next claim, at most MAX_TAKEOVERS times, then it fails.

Lock order, the same in every transaction that writes: a stage's row before its run's snapshot
and metric rows, and a run's stages in position (id) order. The lease check is the first
statement of every worker write, so a worker that lost its lease waits on the stage row, finds
it no longer its own, and writes nothing; two workers never hold rows the other waits for.

`queries` reads stages and holds the predicates they share; `lease` is a worker's side (claim,
renew, store, end, fail, reap); `requests` is the user's (cancel, pause, resume). This package is
the only writer of a stage's status.
"""

from storage.stages.lease import (
    MAX_TAKEOVERS,
    Ended,
    Outcome,
    begin_slice,
    cancel_after,
    claim_stage,
    end_slice,
    fail_stage,
    reap,
    renew,
    store,
)
from storage.stages.queries import (
    BY_REQUEST,
    WAITING,
    blocked_by_earlier,
    get_stage,
    held_by,
    lapsed_lease,
    next_stage,
    on_queues,
    stages_of,
)
from storage.stages.requests import Requested, request_cancel, request_pause, resume

__all__ = [
    "BY_REQUEST",
    "MAX_TAKEOVERS",
    "WAITING",
    "Ended",
    "Outcome",
    "Requested",
    "begin_slice",
    "blocked_by_earlier",
    "cancel_after",
    "claim_stage",
    "end_slice",
    "fail_stage",
    "get_stage",
    "held_by",
    "lapsed_lease",
    "next_stage",
    "on_queues",
    "reap",
    "renew",
    "request_cancel",
    "request_pause",
    "resume",
    "stages_of",
    "store",
]
