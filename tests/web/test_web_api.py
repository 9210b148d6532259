"""The dashboard's HTTP API in-process: answers, the token and cross-site checks, /metrics,
no secret in any answer, and a fuzz that finds no 5xx."""

from __future__ import annotations

import json
import secrets

import pytest
import redis
from fastapi.testclient import TestClient
from fixtures_storage import new_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from control.service import Service
from control.web.app import build
from control.web.security import HEADER, Guard
from storage import bookkeeping
from storage.db import session_scope
from storage.metrics import add_metric
from storage.models import Stage, StageStatus
from storage.snapshots import put_snapshot
from worker.settings import settings_from_env

LOCAL = "http://127.0.0.1:8765"
DEAD_BROKER = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens: actions that send say so


@pytest.fixture
def guard() -> Guard:
    return Guard(loopback=True)


@pytest.fixture
def client(engine: Engine, guard: Guard, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("GRADQ_BROKER_URL", DEAD_BROKER)
    return TestClient(build(Service(settings_from_env(), engine), guard), base_url=LOCAL)


def _running(engine: Engine, run_id: int) -> None:
    with session_scope(engine) as s:
        s.execute(
            Stage.__table__.update()
            .where(Stage.run_id == run_id, Stage.position == 1)
            .values(status=StageStatus.RUNNING.value, iterations_done=10)
        )


def test_runs_filters_progress_and_run_page(client: TestClient, engine: Engine) -> None:
    with session_scope(engine) as s:
        a = new_run(s, name="<script>alert(1)</script>", stages=[(1.0, 100), (0.5, 100)])
        b = new_run(s, name="other")
        bookkeeping.tag(s, a, ["x"])
        snap = put_snapshot(s, a, 50, b"blob")
        fork = new_run(s, name="child", parent_snapshot_id=snap)
    _running(engine, a)
    answer = client.get("/api/runs?order=asc").json()
    rows = answer["runs"]
    assert [r["id"] for r in rows] == [a, b, fork] and answer["total"] == 3
    assert rows[0]["progress"] == pytest.approx(10 / 200) and rows[0]["tags"] == ["x"]
    assert [r["id"] for r in client.get("/api/runs?tag=x").json()["runs"]] == [a]
    assert [r["id"] for r in client.get("/api/runs?status=running").json()["runs"]] == [a]
    assert [r["id"] for r in client.get("/api/runs?name=OTH").json()["runs"]] == [b]
    assert client.get("/api/runs?status=nope").status_code == 400
    d = client.get(f"/api/runs/{a}").json()
    assert d["name"] == "<script>alert(1)</script>"  # JSON carries it; the page sets it as text
    assert [x["lr"] for x in d["stages"]] == [1.0, 0.5]
    assert d["snapshots"][0]["sha256"] and d["forks"][0]["run_id"] == fork
    assert client.get(f"/api/runs/{fork}").json()["lineage"][0]["run_id"] == a
    assert client.get("/api/runs/999").status_code == 404


def test_pages_are_static_and_send_a_content_security_policy(
    client: TestClient, engine: Engine
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
        snap = put_snapshot(s, run, 50, b"blob")
    for path in ("/", f"/runs/{run}", "/compare", "/cluster", f"/evaluate/{snap}", "/api-docs"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert (
            "script-src" not in page.text
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert client.get("/static/chart.js").status_code == 200
    assert client.get("/docs").status_code == 404  # FastAPI's page loads a CDN: not served


def test_actions_need_the_token_and_refuse_cross_site(
    client: TestClient, engine: Engine, guard: Guard
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    path = f"/api/runs/{run}/pause"
    assert client.post(path).status_code == 403
    assert client.post(path, headers={HEADER: "wrong"}).status_code == 403
    evil = {HEADER: guard.token, "Origin": "http://evil.example"}
    assert client.post(path, headers=evil).status_code == 403
    rebound = client.get("/api/runs", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 400
    ok = client.post(path, headers={HEADER: guard.token, "Origin": LOCAL})
    assert ok.status_code == 200 and ok.json()["changed"]
    assert client.get(f"/api/runs/{run}").json()["status"] == "paused"
    resume = client.post(f"/api/runs/{run}/resume", headers={HEADER: guard.token})
    assert resume.status_code == 503 and "no broker reachable" in resume.json()["detail"]
    assert "s3cret" not in resume.text


def test_beyond_loopback_the_page_gets_the_token_only_from_the_url(engine: Engine) -> None:
    guard = Guard.serving("10.0.0.5")
    client = TestClient(
        build(Service(settings_from_env(), engine), guard), base_url="http://10.0.0.5:8765"
    )
    assert client.get("/api/session").status_code == 403  # beyond loopback, reads need it too
    back = client.get(f"/?token={guard.token}", follow_redirects=False)
    assert back.status_code == 303 and "httponly" in back.headers["set-cookie"].lower()
    assert client.get("/api/session").json()["token"] == guard.token  # the cookie now
    bad = TestClient(
        build(Service(settings_from_env(), engine), guard), base_url="http://10.0.0.5:8765"
    )
    assert bad.get("/?token=guess", follow_redirects=False).status_code == 403
    assert bad.get("/api/session").status_code == 403


def test_delete_and_tags_and_notes_through_the_api(
    client: TestClient, engine: Engine, guard: Guard
) -> None:
    auth = {HEADER: guard.token}
    with session_scope(engine) as s:
        run = new_run(s)
    tags = client.post(
        f"/api/runs/{run}/tags", json={"add": ["a", "b"], "remove": ["a"]}, headers=auth
    )
    assert tags.json() == {"tags": ["b"]}
    assert (
        client.post(f"/api/runs/{run}/tags", json={"add": ["a b"]}, headers=auth).status_code == 400
    )
    assert (
        client.post(f"/api/runs/{run}/notes", json={"text": "<i>x</i>"}, headers=auth).status_code
        == 200
    )
    assert client.get(f"/api/runs/{run}").json()["notes"][0]["text"] == "<i>x</i>"
    _running(engine, run)
    refused = client.post(f"/api/runs/{run}/delete", headers=auth)
    assert refused.status_code == 409 and "running stage" in refused.json()["detail"]
    client.post(f"/api/runs/{run}/cancel", headers=auth)
    with session_scope(engine) as s:  # no worker holds it: make it finished as a worker would
        s.execute(Stage.__table__.update().values(status=StageStatus.CANCELLED.value))
    assert client.post(f"/api/runs/{run}/delete", headers=auth).status_code == 200
    assert client.get(f"/api/runs/{run}").status_code == 404


def test_metrics_in_prometheus_text(client: TestClient, engine: Engine) -> None:
    with session_scope(engine) as s:
        run = new_run(s, stages=[(1.0, 100), (1.0, 100)])
        put_snapshot(s, run, 50, b"x" * 123)
    _running(engine, run)
    text = client.get("/metrics").text
    assert 'gradq_stages{status="running"} 1.0' in text
    assert 'gradq_stages{status="queued"} 1.0' in text
    assert 'gradq_runs{status="running"} 1.0' in text
    assert "gradq_snapshot_bytes 123.0" in text
    assert "gradq_stage_takeovers 0.0" in text


def test_cluster_hides_passwords(client: TestClient, monkeypatch) -> None:
    d = client.get("/api/cluster").json()
    assert d["broker_ok"] is False
    assert "s3cret" not in str(d) and "***" in d["broker"]


ROUTES = [
    ("get", "/api/runs"),
    ("get", "/api/runs/{id}"),
    ("get", "/api/compare"),
    ("get", "/api/snapshots/{id}/evaluate"),
    ("post", "/api/runs/{id}/pause"),
    ("post", "/api/runs/{id}/cancel"),
    ("post", "/api/runs/{id}/resume"),
    ("post", "/api/runs/{id}/continue"),
    ("post", "/api/snapshots/{id}/fork"),
    ("post", "/api/runs/{id}/tags"),
    ("post", "/api/runs/{id}/notes"),
    ("post", "/api/runs/{id}/delete"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = (
    json_values
    | st.fixed_dictionaries(
        {
            "stages": st.lists(
                st.fixed_dictionaries({"lr": json_values, "iterations": json_values}), max_size=3
            )
        }
    )
    | st.fixed_dictionaries({"add": st.lists(st.text(max_size=70), max_size=3), "text": st.text()})
)
ids = st.sampled_from(
    ["1", "2", "0", "-1", "99999999999", "abc", "1.5", "%00"]
) | st.integers().map(str)
queries = st.dictionaries(
    st.sampled_from(
        ["status", "tag", "name", "ids", "split", "x", "sort", "order", "limit", "offset"]
    ),
    st.text(max_size=30)
    | st.sampled_from(["1,2", "running", "dev", "test", "1,,x", "best", "asc", "-1", "1001"]),
    max_size=3,
)


def test_fuzz_no_server_error(client: TestClient, engine: Engine, guard: Guard) -> None:
    with session_scope(engine) as s:
        run = new_run(s, dataset="/nonexistent/mnist.npz")
        put_snapshot(s, run, 50, b"not an npz")
        new_run(s, name="x\u202e<b>")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(ROUTES), ids, queries, bodies)
    def probe(route, ident, query, body) -> None:
        method, path = route
        url = path.replace("{id}", ident)
        headers = {HEADER: guard.token, "Content-Type": "application/json"}
        content = json.dumps(body)  # NaN and Infinity too, which strict JSON lacks
        answer = client.request(method.upper(), url, params=query, content=content, headers=headers)
        assert answer.status_code < 500 or answer.status_code == 503, (
            url,
            query,
            body,
            answer.text,
        )

    probe()


def test_an_open_page_gets_304_until_something_changes(
    client: TestClient, engine: Engine, guard: Guard
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    for path in ("/api/runs", f"/api/runs/{run}"):
        first = client.get(path)
        etag = first.headers["etag"]
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
        client.post(
            f"/api/runs/{run}/tags", json={"add": [f"t{len(path)}"]}, headers={HEADER: guard.token}
        )
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.headers["etag"] != etag
        assert again.json() != first.json()
    etag = client.get(f"/api/runs/{run}").headers["etag"]
    with session_scope(engine) as s:
        add_metric(s, run, 50, train_acc=0.5, dev_acc=0.4, loss=1.0, lr=1.0, wall=1.0)
    changed = client.get(f"/api/runs/{run}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["points"][0]["iteration"] == 50


def test_a_nan_point_is_null_not_a_server_error(client: TestClient, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL stores a NaN (SQLite's NOT NULL refuses it)")
    with session_scope(engine) as s:
        run = new_run(s)
        add_metric(s, run, 50, train_acc=0.1, dev_acc=0.1, loss=float("nan"), lr=1.0, wall=1.0)
    assert client.get(f"/api/runs/{run}").json()["points"][0]["loss"] is None
    assert client.get(f"/api/compare?ids={run}").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_continue_fork_and_resume_queue_their_stages(
    db_url: str, engine: Engine, guard: Guard, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADQ_DATABASE_URL", db_url)  # the broker's messages name this database
    monkeypatch.setenv("GRADQ_BROKER_URL", redis_url)
    queue = f"web-test-{secrets.token_hex(4)}"
    monkeypatch.setenv("GRADQ_QUEUE", queue)
    broker = redis.Redis.from_url(redis_url)
    client = TestClient(build(Service(settings_from_env(), engine), guard), base_url=LOCAL)
    auth = {HEADER: guard.token}
    with session_scope(engine) as s:
        run = new_run(s, stages=[(1.0, 100)])
        snap = put_snapshot(s, run, 50, b"x")
    more = client.post(
        f"/api/runs/{run}/continue", json={"stages": [{"lr": 0.5, "iterations": 200}]}, headers=auth
    )
    assert more.status_code == 200 and len(more.json()["stages"]) == 1
    assert [x["lr"] for x in client.get(f"/api/runs/{run}").json()["stages"]] == [1.0, 0.5]
    bad = client.post(
        f"/api/runs/{run}/continue", json={"stages": [{"lr": 0, "iterations": 1}]}, headers=auth
    )
    assert bad.status_code == 422
    fork = client.post(
        f"/api/snapshots/{snap}/fork",
        json={"stages": [{"lr": 0.25, "iterations": 50}], "name": "f"},
        headers=auth,
    )
    assert fork.status_code == 200 and fork.json()["sent"]  # its first stage was queued
    child = client.get(f"/api/runs/{fork.json()['run_id']}").json()
    assert child["name"] == "f" and child["lineage"][0]["snapshot_id"] == snap
    client.post(f"/api/runs/{run}/pause", headers=auth)
    resumed = client.post(f"/api/runs/{run}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["resumed"]
    assert client.get(f"/api/runs/{run}").json()["status"] == "queued"
    broker.delete(*broker.keys(f"*{queue}@*"))  # its messages and bindings: no worker reads them


def test_runs_come_a_page_at_a_time_sorted_and_counted_by_the_server(
    client: TestClient, engine: Engine
) -> None:
    with session_scope(engine) as s:
        made = [new_run(s, name=f"run {i}") for i in range(7)]
        for k, run in enumerate(made):
            acc = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2][k]
            add_metric(s, run, 50, train_acc=acc, dev_acc=acc, loss=1.0, lr=1.0, wall=1.0)
    best = sorted(made, key=lambda r: -[0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2][made.index(r)])
    first = client.get("/api/runs?sort=best&order=desc&limit=3").json()
    assert (first["total"], first["offset"], first["limit"]) == (7, 0, 3)
    assert [r["id"] for r in first["runs"]] == best[:3]
    second = client.get("/api/runs?sort=best&order=desc&limit=3&offset=3").json()
    assert [r["id"] for r in second["runs"]] == best[3:6]
    last = client.get("/api/runs?sort=best&order=asc&limit=3&offset=6").json()
    assert [r["id"] for r in last["runs"]] == [best[0]]  # ascending: the best comes last
    assert client.get("/api/runs?offset=50").json() == {
        "total": 7,
        "offset": 50,
        "limit": 50,
        "runs": [],
    }
    assert [r["id"] for r in client.get("/api/runs").json()["runs"]] == made[::-1]  # newest first
    # nothing in a row moves with the clock (the page counts ages), so an unchanged list is a 304
    assert "age" not in first["runs"][0] and "created_at" in first["runs"][0]


@pytest.mark.parametrize(
    "query, code, words",
    [
        ("sort=drop%20table", 400, "use one of id, name"),
        ("sort=<b>", 400, "sort '<b>'"),
        ("order=up", 400, "use asc or desc"),
        ("limit=0", 422, "limit"),
        ("limit=1001", 422, "limit"),
        ("offset=-1", 422, "offset"),
        ("limit=abc", 422, "limit"),
    ],
)
def test_a_bad_page_is_a_clear_4xx(client: TestClient, query: str, code: int, words: str) -> None:
    answer = client.get("/api/runs?" + query)
    assert answer.status_code == code, answer.text
    assert words in answer.json()["detail"]
    assert answer.headers["content-type"].startswith("application/json")  # never a page of HTML


def test_settings_side_by_side_and_their_limits(client: TestClient, engine: Engine) -> None:
    with session_scope(engine) as s:
        a = new_run(s, stages=[(0.05, 300)], name="a", optimizer="adam")
        b = new_run(s, stages=[(0.2, 300)], name="b")
        add_metric(s, b, 50, train_acc=0.9, dev_acc=0.88, loss=0.3, lr=0.2, wall=1.0)
    got = client.get(f"/api/settings?ids={b},{a},999999")
    assert got.status_code == 200
    runs = got.json()
    assert [(r["id"], r["settings"]["lr"], r["settings"]["optimizer"]) for r in runs] == [
        (a, 0.05, "adam"),
        (b, 0.2, "sgd"),
    ]
    assert (runs[0]["final_dev_acc"], runs[1]["final_dev_acc"]) == (None, 0.88)
    for query, words in [("x", "run ids"), (",".join(["1"] * 1001), "1 to 1,000"), ("0", "1 to")]:
        bad = client.get(f"/api/settings?ids={query}")
        assert bad.status_code == 400 and words in bad.json()["detail"], query
