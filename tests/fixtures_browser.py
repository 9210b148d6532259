"""A real browser (Debian's chromium through Playwright, never a downloaded one) and a real
`gradq ui` server in a thread, for the dashboard's tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_services import ROOT, require
from sqlalchemy import Engine

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    require(
        CHROMIUM.exists(),
        f"{CHROMIUM} is missing; install Debian's browser: apt-get install -y chromium",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    p.dialogs = []  # type: ignore[attr-defined]
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    yield p
    context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(engine: Engine) -> Iterator[str]:
    """`gradq ui`'s app on a free loopback port until the test ends; yields its base URL."""
    import uvicorn

    from control.service import Service
    from control.web.app import build
    from control.web.security import Guard
    from worker.settings import settings_from_env

    port = free_port()
    app = build(Service(settings_from_env(), engine), Guard(loopback=True))
    config = uvicorn.Config(app, "127.0.0.1", port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the ui server did not start in 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def screenshot(page, name: str, tmp_path: Path) -> Path:
    """A PNG of the page; with GRADQ_TEST_SCREENSHOTS=docs also the README's copy in docs/."""
    out = tmp_path / name
    page.screenshot(path=str(out))
    if os.environ.get("GRADQ_TEST_SCREENSHOTS") == "docs":
        (ROOT / "docs" / name).write_bytes(out.read_bytes())
    return out
