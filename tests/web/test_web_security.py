"""The dashboard as a hostile client meets it (issue 21, Security): one guard in front of every
route, strict Host, the token for reads beyond loopback, capped bodies read only after the
token, Origin by scheme, host and port, an ETag that follows the content, clean 422s and 404s."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from fixtures_storage import new_run
from sqlalchemy import Engine

from control.service import Service
from control.web.app import build
from control.web.security import HEADER, MAX_BODY, Guard, parse_host
from storage import bookkeeping
from storage.db import session_scope
from worker.settings import settings_from_env

LOCAL = "http://127.0.0.1:8765"
OUTSIDE = "http://10.0.0.5:8765"
SCRAPE = "prometheus-scrape-token-0123"
DEAD_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADQ_BROKER_URL", DEAD_BROKER)


@pytest.fixture
def guard() -> Guard:
    return Guard(loopback=True)


@pytest.fixture
def client(engine: Engine, guard: Guard) -> TestClient:
    return TestClient(build(Service(settings_from_env(), engine), guard), base_url=LOCAL)


def _outside(engine: Engine, **options) -> tuple[TestClient, Guard]:
    guard = Guard.serving("0.0.0.0", ["10.0.0.5"], **options)
    return TestClient(build(Service(settings_from_env(), engine), guard), base_url=OUTSIDE), guard


READS = ["/api/runs", "/api/runs/1", "/api/compare?ids=1"]
READS += ["/api/snapshots/1/evaluate", "/api/cluster", "/metrics", "/openapi.json"]
READS += ["/", "/runs/1", "/static/common.js", "/api/session"]


# 1. Reads beyond loopback need the token; /metrics takes its own bearer token


def test_beyond_loopback_every_read_needs_the_token(engine: Engine) -> None:
    with session_scope(engine) as s:
        new_run(s)
    client, guard = _outside(engine)
    for path in READS:
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "token" in answer.json()["detail"]
    assert client.get("/api/runs", headers={HEADER: guard.token}).status_code == 200
    client.cookies.set("gradq_token", guard.token)
    assert client.get("/api/runs").status_code == 200
    client.cookies.clear()
    assert client.get("/api/runs", headers={HEADER: guard.token + "x"}).status_code == 403
    rebound = client.get("/api/runs", headers={HEADER: guard.token, "Host": "evil.com"})
    assert rebound.status_code == 400


def test_metrics_take_their_own_bearer_token(engine: Engine) -> None:
    client, guard = _outside(engine, metrics_token=SCRAPE)
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
    assert scraped.status_code == 200 and "gradq_stages" in scraped.text
    assert client.get("/metrics", headers={HEADER: guard.token}).status_code == 200
    bearer = {"Authorization": f"Bearer {SCRAPE}"}
    assert client.get("/api/runs", headers=bearer).status_code == 403  # /metrics only
    local = TestClient(
        build(Service(settings_from_env(), engine), Guard(loopback=True, metrics_token=SCRAPE)),
        base_url=LOCAL,
    )
    assert local.get("/metrics").status_code == 403  # a token given is a token needed
    assert local.get("/api/runs").status_code == 200


def test_an_allowed_host_is_answered(engine: Engine) -> None:
    guard = Guard.serving("0.0.0.0", ["ui", "Gradq.Example.org"])
    client = TestClient(
        build(Service(settings_from_env(), engine), guard), base_url="http://ui:8765"
    )
    auth = {HEADER: guard.token}
    assert client.get("/api/runs", headers=auth).status_code == 200
    assert client.get("/api/runs", headers={**auth, "Host": "gradq.example.org"}).status_code == 200
    assert client.get("/api/runs", headers={**auth, "Host": "10.0.0.5:8765"}).status_code == 400
    anyone = Guard.serving("0.0.0.0", ["*"])
    any_host = TestClient(
        build(Service(settings_from_env(), engine), anyone), base_url="http://10.9.8.7:8765"
    )
    assert any_host.get("/api/runs", headers={HEADER: anyone.token}).status_code == 200
    assert any_host.get("/api/runs").status_code == 403


# 2. One middleware in front of every route; Host parsed strictly


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/static/common.js", "/", "/nope"])
def test_every_route_refuses_a_foreign_host(client: TestClient, path: str) -> None:
    answer = client.get(path, headers={"Host": "evil.com"})
    assert answer.status_code == 400 and "evil" not in answer.text


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:80@evil.com",
        "evil.com@127.0.0.1",
        "127.0.0.1:8765/x",
        "127.0.0.1 evil.com",
        "127.0.0.1:99999",
        "localhost.",
        "[::1",
        "",
    ],
)
def test_a_malformed_host_is_refused(client: TestClient, host: str) -> None:
    assert parse_host(host) is None
    assert client.get("/api/runs", headers={"Host": host}).status_code == 400


def test_loopback_names_with_and_without_a_port_are_answered(client: TestClient) -> None:
    for host in ("127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "127.0.0.1"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host


# 3. Bodies: the token first, then at most MAX_BODY bytes read; a 422 never echoes its input


def _post_in_chunks(app, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """POST `chunks` chunks of 1 MB straight through ASGI: (status, chunks the app read)."""
    read = 0
    status = 0

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 2**20, "more_body": read < chunks}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/runs/1/notes",
        "raw_path": b"/api/runs/1/notes",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8765),
    }
    with ThreadPoolExecutor(1) as pool:  # a loop of its own (Playwright's may run in this thread)
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    return status, read


def test_a_body_is_not_read_before_the_token_and_is_capped(engine: Engine, guard: Guard) -> None:
    app = build(Service(settings_from_env(), engine), guard)
    assert _post_in_chunks(app, [], 50) == (403, 0)  # 50 MB offered, none of it read
    token = [(HEADER.lower().encode(), guard.token.encode())]
    assert _post_in_chunks(app, token, 50) == (413, 1)  # read until past the cap, then 413
    declared = [*token, (b"content-length", str(50 * 2**20).encode())]
    assert _post_in_chunks(app, declared, 50) == (413, 0)  # refused by its Content-Length


def test_bodies_at_the_cap_pass_and_beyond_it_are_413(
    client: TestClient, engine: Engine, guard: Guard
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    auth = {HEADER: guard.token, "Content-Type": "application/json"}
    note = json.dumps({"text": "n" * bookkeeping.MAX_NOTE})
    assert client.post(f"/api/runs/{run}/notes", content=note, headers=auth).status_code == 200
    padded = note + " " * (MAX_BODY + 1 - len(note))
    big = client.post(f"/api/runs/{run}/notes", content=padded, headers=auth)
    assert big.status_code == 413 and len(big.content) < 200


def test_a_422_names_the_field_and_never_echoes_the_input(
    client: TestClient, engine: Engine, guard: Guard
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    auth = {HEADER: guard.token}
    secret = "echo-me-" + "y" * bookkeeping.MAX_NOTE
    answer = client.post(f"/api/runs/{run}/notes", json={"text": secret}, headers=auth)
    assert answer.status_code == 422 and "echo-me" not in answer.text and len(answer.text) < 400
    assert answer.json()["detail"].startswith("text: ")
    bad = client.post(f"/api/runs/{run}/tags", json={"add": "not-a-list-echo"}, headers=auth)
    assert bad.status_code == 422 and "not-a-list-echo" not in bad.text


# 5. Origin compared by scheme, host and port


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8765", True),
        ("https://127.0.0.1:8765", False),
        ("http://127.0.0.1:8766", False),
        ("http://127.0.0.1", False),
        ("http://localhost:8765", False),
        ("http://evil.example", False),
        ("null", False),
        ("http://127.0.0.1:8765@evil.com", False),
    ],
)
def test_origin_must_be_this_server(
    client: TestClient, engine: Engine, guard: Guard, origin: str, allowed: bool
) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    answer = client.post(f"/api/runs/{run}/pause", headers={HEADER: guard.token, "Origin": origin})
    assert (answer.status_code == 200) is allowed, answer.text


def test_origin_on_the_default_port(engine: Engine, guard: Guard) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    client = TestClient(
        build(Service(settings_from_env(), engine), guard), base_url="http://127.0.0.1"
    )
    for origin, code in (("http://127.0.0.1", 200), ("http://127.0.0.1:80", 200)):
        answer = client.post(
            f"/api/runs/{run}/pause", headers={HEADER: guard.token, "Origin": origin}
        )
        assert answer.status_code == code, origin
    https = {HEADER: guard.token, "Origin": "https://127.0.0.1:443"}
    assert client.post(f"/api/runs/{run}/pause", headers=https).status_code == 403


# 4. The ETag follows the content


def test_swapping_a_tag_changes_the_etag(client: TestClient, engine: Engine, guard: Guard) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
        bookkeeping.tag(s, run, ["ab"])
    for path in ("/api/runs", f"/api/runs/{run}"):
        etag = client.get(path).headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag), etag  # strong, quoted, no spaces
        with session_scope(engine) as s:
            bookkeeping.tag(s, run, ["ab"], remove=True)
            bookkeeping.tag(s, run, ["cd"])  # same count, same total length
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.headers["etag"] != etag, path
        with session_scope(engine) as s:
            bookkeeping.tag(s, run, ["cd"], remove=True)
            bookkeeping.tag(s, run, ["ab"])


def test_if_none_match_in_weak_and_list_forms(client: TestClient, engine: Engine) -> None:
    with session_scope(engine) as s:
        new_run(s)
    etag = client.get("/api/runs").headers["etag"]
    for given in (etag, f"W/{etag}", f'"other", {etag}', f'W/"x",W/{etag}', "*"):
        answer = client.get("/api/runs", headers={"If-None-Match": given})
        assert answer.status_code == 304 and answer.headers["etag"] == etag, given
    for given in ('"other"', etag[:-2] + '"', f"{etag[1:-1]}"):
        assert client.get("/api/runs", headers={"If-None-Match": given}).status_code == 200


# 7. A NaN lr is a clean 422; a page whose id names nothing is a 404 page


def test_a_nan_lr_is_a_422_that_says_so(client: TestClient, engine: Engine, guard: Guard) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    headers = {HEADER: guard.token, "Content-Type": "application/json"}
    for value in ("NaN", "Infinity", "-Infinity"):
        body = '{"stages": [{"lr": ' + value + ', "iterations": 10}]}'
        answer = client.post(f"/api/runs/{run}/continue", content=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"] == "stages.0.lr: Input should be a finite number"


def test_a_missing_page_is_a_404_page(client: TestClient, engine: Engine) -> None:
    with session_scope(engine) as s:
        run = new_run(s)
    assert client.get(f"/runs/{run}").status_code == 200
    for path, said in (
        ("/runs/abc", "named by its id"),
        ("/runs/0", "named by its id"),
        ("/runs/99999999999999999999", "named by its id"),
        (f"/runs/{run + 1}", f"no run {run + 1}"),
        ("/evaluate/7", "no snapshot 7"),
        ("/evaluate/%3Cb%3E", "named by its id"),
        ("/nope/<b>", "no page here"),
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert said in answer.text and "&lt;" not in answer.text and "abc" not in answer.text
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert client.get("/api/nope").json() == {"detail": "Not Found"}  # the API's stay JSON
    assert client.get("/api/runs/abc").status_code == 422
