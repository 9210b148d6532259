"""Who may act: a token printed at start (as Jupyter does), checked on every POST with the
request's Origin, and a Host check so a rebound DNS name cannot reach a loopback server."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

COOKIE = "gradq_token"
HEADER = "X-Gradq-Token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
TOKEN_HEADER = APIKeyHeader(
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


@dataclass(frozen=True)
class Guard:
    """The server's token and whether it listens on loopback only."""

    loopback: bool
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def check_host(self, request: Request) -> None:
        """On loopback only loopback names are served (DNS rebinding sends a foreign Host)."""
        if not self.loopback:
            return
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            raise HTTPException(400, f"this server answers to 127.0.0.1 or localhost, not {host!r}")

    def holds_token(self, request: Request) -> bool:
        """Whether the request shows the token (cookie, header or ?token=)."""
        given = (
            request.headers.get(HEADER)
            or request.cookies.get(COOKIE)
            or request.query_params.get("token")
            or ""
        )
        return secrets.compare_digest(given, self.token)

    def session_token(self, request: Request) -> str | None:
        """The token to put in POSTs, for a page that may act (any page on loopback)."""
        if self.loopback or self.holds_token(request):
            return self.token
        return None

    def check_action(
        self, request: Request, given: Annotated[str | None, Security(TOKEN_HEADER)] = None
    ) -> None:
        """A POST needs the token in its header (a cross-site form cannot set one) and, when
        the browser names an Origin, this server's own."""
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise HTTPException(403, "cross-site request refused")
        if not secrets.compare_digest(given or "", self.token):
            raise HTTPException(403, f"this action needs the token gradq ui printed ({HEADER})")
