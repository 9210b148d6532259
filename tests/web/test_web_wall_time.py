"""Charts against wall time: each point's database time in the API, the x-axis toggle in
Debian's chromium, and points stored before gradq kept their time drawn by iteration."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from fixtures_browser import serve
from fixtures_storage import new_run
from sqlalchemy import Engine, update

from control.service import Service
from control.web.app import build
from control.web.security import Guard
from storage.db import session_scope
from storage.metrics import add_metric
from storage.models import Metric
from worker.settings import settings_from_env

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ITERATIONS = [50 * k for k in range(1, 21)]  # 20 points, 6 s apart: 114 s in all


def curve(engine: Engine, timed: int | None = None) -> int:
    """A run of 20 points; the last `timed` of them (all by default) were stored with a time."""
    with session_scope(engine) as s:
        run = new_run(s, name="timed")
        for k, it in enumerate(ITERATIONS):
            loss = 2.0 * 0.85**k
            add_metric(
                s, run, it, train_acc=1 - loss / 3, dev_acc=1 - loss / 3, loss=loss, lr=1.0, wall=k
            )
            s.execute(
                update(Metric)
                .where(Metric.run_id == run, Metric.iteration == it)
                .values(at=START + timedelta(seconds=6 * k))
            )
        untimed = ITERATIONS[: len(ITERATIONS) - (len(ITERATIONS) if timed is None else timed)]
        s.execute(
            update(Metric)
            .where(Metric.run_id == run, Metric.iteration.in_(untimed))
            .values(at=None)
        )
    return run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_gives_each_point_its_time_or_null(engine: Engine) -> None:
    run = curve(engine, timed=15)
    client = TestClient(
        build(Service(settings_from_env(), engine), Guard(loopback=True)),
        base_url="http://127.0.0.1:8765",
    )
    points = client.get(f"/api/runs/{run}").json()["points"]
    assert [p["at"] for p in points[:5]] == [None] * 5
    assert datetime.fromisoformat(points[5]["at"]) == START + timedelta(seconds=30)
    compared = client.get(f"/api/compare?ids={run}").json()[0]["points"]
    assert compared[-1]["at"] == points[-1]["at"]


@pytest.fixture
def ui(engine: Engine) -> Iterator[str]:
    yield from serve(engine)


def open_loss(page, url: str, run: int):
    page.goto(f"{url}/runs/{run}")
    page.locator("#loss svg path.curve").wait_for()
    return page.locator("#loss")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_x_axis_switches_to_wall_time_and_back(ui, engine, page) -> None:
    loss = open_loss(page, ui, curve(engine))
    by_iteration = loss.locator(".xtick").all_text_contents()
    path = loss.locator("path.curve").get_attribute("d")
    assert loss.locator("svg").get_attribute("data-x") == "iteration"
    assert "1000" in by_iteration
    loss.locator("select[data-chart='x']").select_option("time")
    loss.locator("svg[data-x='time']").wait_for()
    by_time = loss.locator(".xtick").all_text_contents()
    assert by_time and all(t.endswith(" s") for t in by_time), by_time  # 114 s: in seconds
    assert "0 s" in by_time and "100 s" in by_time
    assert loss.locator("path.curve").get_attribute("d") != path  # points 6 s apart, not 50 its
    assert loss.locator(".chart-note").text_content() == ""
    box = loss.locator("svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    assert loss.locator(".tip").text_content().startswith("after ")
    assert "(iteration " in loss.locator(".tip").text_content()
    loss.locator("select[data-chart='x']").select_option("iteration")
    loss.locator("svg[data-x='iteration']").wait_for()
    assert loss.locator(".xtick").all_text_contents() == by_iteration


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_points_without_a_time_stay_on_iterations_and_the_chart_says_so(ui, engine, page):
    loss = open_loss(page, ui, curve(engine, timed=0))
    assert loss.locator("select[data-chart='x']").is_disabled()
    assert "stored without their time" in loss.locator(".chart-note").text_content()
    assert loss.locator("svg").get_attribute("data-x") == "iteration"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_some_points_without_a_time_are_counted_on_the_wall_time_axis(ui, engine, page):
    loss = open_loss(page, ui, curve(engine, timed=12))
    loss.locator("select[data-chart='x']").select_option("time")
    loss.locator("svg[data-x='time']").wait_for()
    assert loss.locator(".chart-note").text_content().startswith("8 earlier points have no time")
    assert loss.locator(".xtick").first.text_content() == "0 s"  # from the first timed point


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_csv_carries_each_point_time(ui, engine, page) -> None:
    loss = open_loss(page, ui, curve(engine, timed=15))
    with page.expect_download() as got:
        loss.locator("button[data-chart='csv']").click()
    with open(got.value.path(), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["iteration", "at", "loss"]
    assert [r[1] for r in rows[1:6]] == [""] * 5
    assert datetime.fromisoformat(rows[6][1]) == START + timedelta(seconds=30)
