"""Who may do what, checked by one ASGI middleware in front of every route (pages, /api,
/metrics, /openapi.json, /static): the Host (a rebound DNS name sends a foreign one), the token
printed at start (beyond loopback for reads too, as Jupyter does; for every action, in a header,
with the request's own Origin), and an action's body, capped before any route reads it."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "gradq_token"
HEADER = "X-Gradq-Token"
MAX_BODY = 64 * 1024  # bytes of an action's body; a note of 10,000 characters fits
SAFE = frozenset({"GET", "HEAD"})  # reads; any other method is an action
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::"})
ANY_HOST = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}
# a Host header as RFC 9110 has it: a name or an IPv4 address, or [IPv6], then an optional port;
# nothing else (no user info as in 127.0.0.1:80@evil.com, no path, no space)
HOST = re.compile(
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
TOKEN_HEADER = APIKeyHeader(  # documents the header in /openapi.json; the middleware checks it
    name=HEADER, auto_error=False, description="The token `gradq ui` printed (or /api/session)."
)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host(value: str) -> tuple[str, int | None] | None:
    """A Host header as (lower-case name, port), or None when it is not one."""
    m = HOST.fullmatch(value)
    if m is None:
        return None
    name = m["name"]
    if m["ip6"] is not None:
        try:
            name = str(ipaddress.IPv6Address(m["ip6"]))
        except ValueError:
            return None
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 1 <= port <= 65535:
        return None
    return name.lower(), port


def host_name(value: str) -> str:
    """An --allowed-host value as compared (a name, an address, [v6] or *), or ValueError."""
    if value == ANY_HOST:
        return value
    parsed = parse_host(value) or parse_host(f"[{value}]")
    if parsed is None or parsed[1] is not None:
        raise ValueError(
            f"--allowed-host {value[:60]!r} must be a host name or address without a port "
            "(e.g. --allowed-host ui --allowed-host gradq.example.org), or * for any"
        )
    return parsed[0]


@dataclass(frozen=True)
class Guard:
    """The server's token, whether it listens on loopback only, the Host names it answers to
    beyond the loopback ones, and the bearer token Prometheus may scrape /metrics with."""

    loopback: bool
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    allowed_hosts: frozenset[str] = frozenset()  # host_name() values; "*" takes any Host
    metrics_token: str | None = None

    @classmethod
    def serving(
        cls, host: str, allowed_hosts: Sequence[str] = (), metrics_token: str | None = None
    ) -> Guard:
        """The guard of a server bound to `host` (its own address is an allowed Host)."""
        names = {host_name(x) for x in allowed_hosts}
        if host not in WILDCARDS and (parse_host(host) or parse_host(f"[{host}]")):
            names.add(host_name(host))
        return cls(is_loopback(host), allowed_hosts=frozenset(names), metrics_token=metrics_token)

    def host_ok(self, headers: Headers) -> bool:
        """Exactly one Host header, well formed, naming this server."""
        given = headers.getlist("host")
        parsed = parse_host(given[0]) if len(given) == 1 else None
        if parsed is None:
            return False
        return ANY_HOST in self.allowed_hosts or parsed[0] in LOOPBACK_NAMES | self.allowed_hosts

    def holds_token(self, conn: HTTPConnection) -> bool:
        """Whether the request shows the token (header, cookie or ?token=)."""
        given = (
            conn.headers.get(HEADER)
            or conn.cookies.get(COOKIE)
            or conn.query_params.get("token")
            or ""
        )
        return secrets.compare_digest(given.encode(), self.token.encode())

    def may_read(self, conn: HTTPConnection) -> bool:
        """On loopback anyone on this machine may read; beyond it only holders of the token."""
        return self.loopback or self.holds_token(conn)

    def may_scrape(self, conn: HTTPConnection) -> bool:
        """/metrics: the metrics bearer token when one is set (or the token), else as reads."""
        if self.metrics_token is None:
            return self.may_read(conn)
        scheme, _, given = conn.headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer" and secrets.compare_digest(
            given.strip().encode(), self.metrics_token.encode()
        )
        return bearer or self.holds_token(conn)

    def may_act(self, conn: HTTPConnection) -> bool:
        """An action needs the token in its header: a cross-site form cannot set one."""
        given = conn.headers.get(HEADER) or ""
        return secrets.compare_digest(given.encode(), self.token.encode())

    def session_token(self, conn: HTTPConnection) -> str | None:
        """The token to put in POSTs, for a page that may read (any page on loopback)."""
        return self.token if self.may_read(conn) else None

    def refusal(self, conn: HTTPConnection, method: str) -> tuple[int, str] | None:
        """Why this request may not reach a route, as (status, message), or None."""
        if not self.host_ok(conn.headers):
            names = ", ".join(
                f"[{x}]" if ":" in x else x for x in sorted(LOOPBACK_NAMES | self.allowed_hosts)
            )
            return 400, (
                f"this server answers to Host {names}; start gradq ui with --allowed-host NAME "
                "for the name this request used"
            )
        if conn.url.path == "/metrics" and method in SAFE and self.metrics_token is not None:
            if self.may_scrape(conn):
                return None
            return 403, "/metrics needs the bearer token given to gradq ui --metrics-token"
        if method in SAFE:
            if self.may_read(conn):
                return None
            return 403, (
                "beyond loopback, reading needs the token gradq ui printed: open the ?token= URL "
                f"it printed, or send the {HEADER} header"
            )
        if not same_origin(conn):
            return 403, "cross-site request refused"
        if not self.may_act(conn):
            return 403, f"this action needs the token gradq ui printed ({HEADER})"
        return None


def same_origin(conn: HTTPConnection) -> bool:
    """No Origin (not a browser's cross-site request), or this server's scheme, host and port."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    own = parse_host(conn.headers.get("host", ""))
    try:
        parts = urlsplit(origin)
        theirs = parse_host(parts.netloc)
    except ValueError:
        return False
    scheme = conn.url.scheme
    if own is None or theirs is None or parts.scheme != scheme or parts.path not in ("", "/"):
        return False
    default = DEFAULT_PORTS.get(scheme)
    return (theirs[0], theirs[1] or default) == (own[0], own[1] or default)


class GuardMiddleware:
    """The one check in front of every route: `Guard.refusal`, then an action's body read up
    to MAX_BODY (413 beyond), so a refused or oversized request costs no more than its headers."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes one
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        refused = self.guard.refusal(conn, scope["method"])
        if refused is not None:
            await _answer(send, *refused)
            return
        if scope["method"] not in SAFE:
            body = await _body(conn.headers, receive)
            if body is None:
                await _answer(send, 413, f"a request body holds at most {MAX_BODY // 1024} kB")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


async def _body(headers: Headers, receive: Receive) -> bytes | None:
    """The whole body, or None once it passes MAX_BODY (by its length or while reading)."""
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: the route sees an empty body
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then whatever the server says next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
