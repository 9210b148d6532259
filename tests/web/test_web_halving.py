"""A halving sweep on the dashboard: its rungs in the API and on its page in Debian's chromium,
who went on at each rung and why (dev accuracy, rank, the cut), and whom halving stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from fixtures_browser import serve
from helpers_halving import end_rung, new_sweep, sweep_of
from sqlalchemy import Engine, update

from control.service import Service
from control.web.app import build
from control.web.security import Guard
from storage import halving
from storage.db import session_scope
from storage.models import Run
from worker.settings import settings_from_env

ACCURACY = [0.5, 0.9, None, 0.7, 0.6]  # run 3 fails; the best 3 of 5 go on (eta 2)
HOSTILE = "<img src=x onerror=alert(1)>\u202e"


def decided_sweep(engine: Engine) -> tuple[int, list[int]]:
    """A sweep of 5 runs whose rung 1 has ended and been decided."""
    runs = new_sweep(engine, size=5, eta=2)
    with session_scope(engine) as s:
        s.execute(update(Run).where(Run.id == runs[0]).values(name=HOSTILE))
    for run, acc in zip(runs, ACCURACY, strict=True):
        end_rung(engine, run, 1, acc)
    sweep = sweep_of(engine, runs[0])
    with session_scope(engine) as s:
        assert halving.decide(s, sweep) is not None
    return sweep, runs


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_gives_each_rung_its_ranks_fates_and_reasons(engine: Engine) -> None:
    sweep, runs = decided_sweep(engine)
    service = Service(settings_from_env(), engine)
    client = TestClient(build(service, Guard(loopback=True)), base_url="http://127.0.0.1:8765")
    (listed,) = client.get("/api/sweeps").json()
    assert (listed["id"], listed["size"], listed["decided_rung"]) == (sweep, 5, 1)
    d = client.get(f"/api/sweeps/{sweep}").json()
    first, second = d["rung_results"]
    assert first["keep"] == 3 and first["decided"]
    ranked = [(e["run_id"], e["rank"], e["fate"]) for e in first["runs"]]
    assert ranked == [
        (runs[1], 1, "went on"),
        (runs[3], 2, "went on"),
        (runs[4], 3, "went on"),
        (runs[0], 4, "stopped"),
        (runs[2], 5, "failed"),
    ]
    assert first["runs"][3]["stopped"] == "stopped by halving: rung 1, rank 4 of 5"
    assert first["runs"][3]["name"] == HOSTILE and first["runs"][4]["stopped"] is None
    assert [e["fate"] for e in second["runs"]] == ["-"] * 3 and not second["decided"]
    assert client.get("/api/sweeps/999").status_code == 404
    assert client.get("/api/sweeps/abc").status_code == 422
    assert client.get("/sweeps/999").status_code == 404  # the 404 page, not a shell
    assert "whole number" in client.get("/sweeps/abc").text
    assert client.get(f"/sweeps/{sweep}").status_code == 200


@pytest.fixture
def ui(engine: Engine) -> Iterator[str]:
    yield from serve(engine)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_sweep_page_draws_the_cut_and_the_stopped_runs(ui, engine, page) -> None:
    sweep, runs = decided_sweep(engine)
    page.goto(f"{ui}/sweeps/{sweep}")
    rung1 = page.locator("table.rung[data-rung='1']")
    rung1.wait_for()
    rows = rung1.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => r.classList.contains('cut-line') ? 'cut' : +r.dataset.run)"
    )
    assert rows == [runs[1], runs[3], runs[4], "cut", runs[0], runs[2]]
    assert "the best 3 of 5 go on" in rung1.locator("tr.cut-line").text_content()
    assert rung1.locator("caption").text_content().endswith("(decided)")
    assert rung1.locator(f"tr[data-run='{runs[0]}'] td.fate").text_content() == "stopped"
    reason = rung1.locator(f"tr[data-run='{runs[0]}'] td.fate").get_attribute("title")
    assert reason == "stopped by halving: rung 1, rank 4 of 5"
    assert rung1.locator(f"tr[data-run='{runs[1]}'] td.num").nth(1).text_content() == "90.0%"
    rung2 = page.locator("table.rung[data-rung='2']")
    assert rung2.locator("caption").text_content().endswith("(not decided yet)")
    assert "ranks may still change" in rung2.locator("tr.cut-line").text_content()
    (halted,) = page.locator("#stopped li").all()
    assert halted.get_attribute("data-run") == str(runs[0])
    assert "stopped by halving: rung 1, rank 4 of 5" in halted.text_content()
    assert "<img src=x onerror=alert(1)>\\u202e" in halted.text_content()  # text, escaped
    assert page.locator("#stopped img").count() == 0 and page.dialogs == []
    # every member of the sweep is a line of its parallel coordinates, its name only as text
    lines = page.locator("svg.parallel a[data-run]")
    lines.first.wait_for(state="attached")  # a level line has no height: "hidden" to Playwright
    assert sorted(int(x) for x in lines.evaluate_all("l => l.map(a => a.dataset.run)")) == runs
    assert page.locator("svg.parallel image, svg.parallel img").count() == 0
    halted.locator("a").click()
    page.wait_for_url(f"**/runs/{runs[0]}")
    page.locator(".in-sweep a").wait_for()
    assert "stopped by halving" in page.locator(".in-sweep").text_content()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_sweeps_view_links_each_halving_sweep(ui, engine, page) -> None:
    sweep, _ = decided_sweep(engine)
    page.goto(f"{ui}/?view=sweeps")
    row = page.locator(f"table.halving tr[data-sweep='{sweep}']")
    row.wait_for()
    assert "1 of" in row.text_content() and "in progress" in row.text_content()
    row.locator("a", has_text=f"sweep {sweep}").click()
    page.wait_for_url(f"**/sweeps/{sweep}")
    page.locator("table.rung[data-rung='1']").wait_for()
