"""The run service: every verb of gradq over one Settings, read once by the entry point that
builds it (the CLI's root, the dashboard's `build`, a Python `Client`). The commands, the web
routes and the client adapt it and touch no storage for a verb of their own.

Its verbs return plain data. A value the user gave that a layer refuses comes out as control's
one input error, `UserInputError` (see `base.boundary`); a missing row as storage's `NotFound`.
"""

from __future__ import annotations

from control.service.base import boundary
from control.service.reading import Reading
from control.service.steering import Resumed, Steering
from control.service.submitting import Continued, Submitted, Submitting, dataset_spec

__all__ = ["Continued", "Resumed", "Service", "Submitted", "dataset_spec"]


@boundary
class Service(Submitting, Steering, Reading):
    """gradq's verbs: train, continue_run, fork, run_local; pause, cancel, resume, prune; tag,
    note, rm; run, snapshot, evaluate, predict, cluster."""
