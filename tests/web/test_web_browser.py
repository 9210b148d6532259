"""The dashboard in Debian's chromium: the runs page, a run training live on a real worker,
pause from the page, and hostile names shown as text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures_browser import screenshot, serve
from fixtures_storage import new_run
from helpers_worker import submit, wait_for
from sqlalchemy import Engine

from control.output import visible
from storage import bookkeeping, migrate, snapshots
from storage.db import make_engine, session_scope
from storage.models import Stage, StageStatus

XSS = "<script>alert(1)</script>"


@pytest.fixture
def ui(engine: Engine) -> Iterator[str]:
    yield from serve(engine)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_runs_page_lists_runs_and_shows_hostile_names_as_text(ui, engine, page, tmp_path) -> None:
    with session_scope(engine) as s:
        hostile = new_run(s, name=XSS, stages=[(1.0, 500), (0.5, 500)])
        plain = new_run(s, name="notebook schedule")
        bookkeeping.tag(s, hostile, ["baseline"])
        bookkeeping.add_note(s, hostile, '<img src=x onerror="alert(2)">')
    page.goto(ui + "/")
    row = page.locator(f"tr[data-run='{hostile}']")
    row.wait_for()
    assert row.locator(".run-name").text_content() == XSS
    assert row.locator(".tag").text_content() == "baseline"
    assert page.locator(f"tr[data-run='{plain}'] .status").text_content() == "queued"
    assert page.locator("script", has_text="alert").count() == 0
    page.goto(ui + "/?tag=baseline")
    page.locator(f"tr[data-run='{hostile}']").wait_for()
    assert page.locator("tbody tr").count() == 1
    page.goto(f"{ui}/runs/{hostile}")
    page.locator(".note").wait_for()
    assert page.locator("h1 .run-name").text_content() == XSS
    assert page.locator(".note").text_content().endswith('<img src=x onerror="alert(2)">')
    assert page.dialogs == []  # no script ran: neither the name's nor the note's


def _points(page) -> int:
    return int(page.locator("#acc").get_attribute("data-points") or 0)


def test_run_page_follows_a_training_and_pauses_it(sqlite_stack, small_mnist, page, tmp_path):
    engine = make_engine(sqlite_stack.env["GRADQ_DATABASE_URL"])
    migrate.upgrade(engine)
    sqlite_stack.start_worker()
    with session_scope(engine) as s:  # other runs, so the runs page shows some variety
        for name, tags in (("sigmoid baseline", ["baseline"]), ("he init, batch 128", ["sweep"])):
            bookkeeping.tag(s, new_run(s, name=name, stages=[(0.5, 1000)]), tags)
    run = submit(engine, small_mnist, [(1.0, 300), (0.5, 100_000)], name="notebook lr 1.0 then 0.5")
    with session_scope(engine) as s:
        bookkeeping.tag(s, run, ["live", "notebook"])
    for url in serve(engine):
        page.goto(f"{url}/runs/{run}")
        wait_for(lambda: _points(page) >= 8, 120, "eight curve points on the page")
        first = _points(page)
        wait_for(lambda n=first: _points(page) > n, 60, "a new point arriving on the open page")
        page.locator("#acc svg path").first.wait_for()
        page.mouse.move(*_middle(page, "#acc svg"))
        assert "iteration" in page.locator("#acc .tip").text_content()
        screenshot(page, "ui-run.png", tmp_path)
        page.goto(url + "/")
        page.locator(f"tr[data-run='{run}'] .status", has_text="running").wait_for()
        screenshot(page, "ui-runs.png", tmp_path)
        page.goto(f"{url}/runs/{run}")
        page.locator("button[data-action='pause']").click()
        page.locator("h1 .status", has_text="paused").wait_for(timeout=60_000)
        _other_pages(page, url, engine, run)
    with session_scope(engine) as s:
        status = s.scalar(
            Stage.__table__.select()
            .with_only_columns(Stage.status)
            .where(Stage.run_id == run)
            .where(Stage.position == 2)
        )
    assert status == StageStatus.PAUSED.value


def _middle(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2


def _other_pages(page, url: str, engine, run: int) -> None:
    """Evaluate (heatmap and wrong digits), Compare (overlaid curves) and Cluster (the worker)."""
    with session_scope(engine) as s:
        snap = snapshots.latest_snapshot(s, run)
    page.goto(f"{url}/evaluate/{snap.id}?split=dev")
    page.locator("table.heat tbody tr").first.wait_for(timeout=60_000)
    assert page.locator("table.heat tbody tr").count() == 10
    assert page.locator("canvas.digit").count() > 0  # a trained net still errs on some digits
    page.goto(f"{url}/compare?ids={run},1")
    page.locator("svg text", has_text="notebook lr 1.0").first.wait_for()
    assert page.locator("svg text", has_text="1 sigmoid baseline").count() > 0
    page.goto(f"{url}/cluster")
    page.locator("td", has_text="w0-").first.wait_for(timeout=30_000)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_notes_show_bidi_and_c1_characters_escaped_as_the_cli_does(ui, engine, page) -> None:
    note = "paid \u202edlrow\u202c in \u009b31m red \u2066x\u2069 \u200f. end"
    with session_scope(engine) as s:
        run = new_run(s, name="plain")
        bookkeeping.add_note(s, run, note)
        bookkeeping.add_note(s, run, "two\nlines")
    page.goto(f"{ui}/runs/{run}")
    page.locator(".note").first.wait_for()
    shown = page.locator(".note").first.text_content()
    assert shown.endswith(visible(note)), shown  # the CLI's escapes, \\u202e and \\x9b
    assert not any(c in shown for c in "\u202e\u202c\u009b\u2066\u2069\u200f")
    assert page.locator(".note").nth(1).text_content().endswith("two\nlines")  # lines stay


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_missing_run_is_a_404_page(ui, engine, page) -> None:
    for path in ("/runs/abc", "/runs/424242", "/evaluate/9"):
        answer = page.goto(ui + path)
        assert answer is not None and answer.status == 404, path
        assert page.locator("h1").text_content() == "Not found"
        assert "[object Object]" not in page.content()
        page.locator("a", has_text="All runs").click()
        page.wait_for_url(ui + "/")
