"""A one-answer cache with a time to live, for routes whose answer is slow to make (the
cluster page's Celery broadcast takes about 2 s and the page asks every 5 s)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

CLUSTER_SECONDS = 3.0  # /api/cluster's answer is kept this long: one broadcast serves all pages


class Cached:
    """One answer, kept `seconds`; callers that come while it is being made wait for it and
    share it, so at most one `make()` runs at a time. A failure is not kept."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.answer: Any = None
        self.made_at: float | None = None

    def get(self, make: Callable[[], Any]) -> Any:
        """The kept answer while it is fresh, else `make()`'s (every caller passes the same
        maker: the cache holds one answer, not one per maker)."""
        with self.lock:
            if self.made_at is None or self.clock() - self.made_at >= self.seconds:
                self.answer = make()
                self.made_at = self.clock()
            return copy.deepcopy(self.answer)  # a caller cannot change what the next one gets
