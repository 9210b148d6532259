"""/api/cluster's answer kept a few seconds: two calls within the time do one broadcast, and
callers that arrive together share the one that is running."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from control import connections
from control.service import Service
from control.web import cache
from control.web.app import build
from control.web.security import Guard
from worker.settings import settings_from_env


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_seconds_then_made_again() -> None:
    clock, made = Clock(), []
    cached = cache.Cached(seconds=3, clock=clock)

    def make() -> dict:
        made.append(1)
        return {"n": len(made)}

    assert cached.get(make) == {"n": 1}
    clock.now = 2.9
    assert cached.get(make) == {"n": 1} and len(made) == 1
    clock.now = 3.0
    assert cached.get(make) == {"n": 2} and len(made) == 2


def test_callers_arriving_together_share_one_answer() -> None:
    made, running, most = [], [0], [0]
    guard = threading.Lock()

    def slow() -> int:
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with guard:
            running[0] -= 1
        made.append(1)
        return len(made)

    cached = cache.Cached(seconds=60)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(cached.get(slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert answers == [1] * 6 and len(made) == 1 and most[0] == 1


def test_a_failure_is_not_kept() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("broker hiccup")
        return "fine"

    cached = cache.Cached(seconds=60)
    with pytest.raises(RuntimeError):
        cached.get(flaky)
    assert cached.get(flaky) == "fine" and len(calls) == 2


def test_a_caller_cannot_change_the_kept_answer() -> None:
    cached = cache.Cached(seconds=60)
    cached.get(lambda: {"workers": []})["workers"].append("spoiled")
    assert cached.get(lambda: {"workers": ["made again"]}) == {"workers": []}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_cluster_calls_within_the_ttl_do_one_broadcast(
    engine: Engine, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADQ_BROKER_URL", redis_url)
    broadcasts = []
    real = connections.live_workers

    def counted(*args, **kwargs):  # the real broadcast, counted
        broadcasts.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(connections, "live_workers", counted)
    app = build(Service(settings_from_env(), engine), Guard(loopback=True))
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    first = client.get("/api/cluster")
    second = client.get("/api/cluster")
    assert first.status_code == second.status_code == 200
    assert first.json()["broker_ok"] is True and second.json() == first.json()
    assert len(broadcasts) == 1, broadcasts
    again = [threading.Thread(target=lambda: client.get("/api/cluster")) for _ in range(3)]
    time.sleep(cache.CLUSTER_SECONDS)  # past the time to live, three pages ask at once
    for t in again:
        t.start()
    for t in again:
        t.join(30)
    assert len(broadcasts) == 2, broadcasts
