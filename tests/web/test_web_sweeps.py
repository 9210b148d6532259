"""The runs page's sweep view in Debian's chromium: `gradq sweep`'s runs as one grid per sweep,
a row per net and seed, a column per learning rate, the best run marked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures_browser import serve
from fixtures_storage import new_run
from sqlalchemy import Engine

from storage.db import session_scope
from storage.metrics import add_metric


@pytest.fixture
def ui(engine: Engine) -> Iterator[str]:
    yield from serve(engine)


def swept(s, lr: float, seed: int, best: float) -> int:
    run = new_run(s, name=f"sweep lr={lr:g} relu,relu 10,10 seed={seed}", seed=seed)
    add_metric(s, run, 50, train_acc=best, dev_acc=best, loss=1.0, lr=lr, wall=1.0)
    return run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sweeps_show_as_grids_with_their_best_run_marked(ui, engine, page) -> None:
    with session_scope(engine) as s:
        first = {
            (lr, seed): swept(s, lr, seed, best)
            for lr, seed, best in [
                (0.1, 0, 0.80), (0.5, 0, 0.91), (1.0, 0, 0.85),
                (0.1, 1, 0.79), (0.5, 1, 0.90), (1.0, 1, 0.95),
            ]
        }  # fmt: skip
        new_run(s, name="sweeping statement, not a sweep")
        second = [swept(s, 0.5, 0, 0.7), swept(s, 1.0, 0, 0.6)]
    page.goto(ui + "/")
    page.locator("#runs tr").first.wait_for()
    assert page.locator("table.sweep").count() == 0
    page.locator("button[data-view='toggle']").click()
    page.locator("table.sweep").first.wait_for()
    assert page.locator("table.runs").is_hidden() and "view=sweeps" in page.url
    grids = page.locator("table.sweep")
    assert grids.count() == 2
    newest, oldest = grids.nth(0), grids.nth(1)
    assert newest.get_attribute("data-first") == str(second[0])
    assert newest.locator("thead th").all_text_contents() == ["net, seed", "lr 0.5", "lr 1"]
    assert oldest.locator("thead th").all_text_contents() == [
        "net, seed",
        "lr 0.1",
        "lr 0.5",
        "lr 1",
    ]
    assert oldest.locator("tbody th").all_text_contents() == [
        "relu,relu 10,10 seed=0",
        "relu,relu 10,10 seed=1",
    ]
    assert oldest.locator("tbody tr").nth(1).locator("td").nth(0).get_attribute("data-run") == str(
        first[(0.1, 1)]
    )
    assert oldest.locator("td.best").get_attribute("data-run") == str(first[(1.0, 1)])
    assert oldest.locator("td.best a").text_content() == "95.0%"
    assert newest.locator("td.best").get_attribute("data-run") == str(second[0])
    page.reload()  # the view is in the address
    page.locator("table.sweep").first.wait_for()
    page.locator("button[data-view='toggle']").click()
    page.locator("table.runs").wait_for()
    assert page.locator("table.sweep").count() == 0 or page.locator(".sweeps").is_hidden()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hostile_names_stay_text_in_the_new_views(ui, engine, page) -> None:
    name = "sweep lr=1 \u202erelu 10 seed=0<img src=x onerror=alert(1)>"
    with session_scope(engine) as s:
        run = new_run(s, name=name)
        add_metric(s, run, 50, train_acc=0.5, dev_acc=0.5, loss=1.0, lr=1.0, wall=1.0)
    page.goto(ui + "/?view=sweeps")
    cell = page.locator("table.sweep tbody th")
    cell.wait_for()
    # parsed as a sweep name (its tail after the seed is a row of its own), shown as text
    assert cell.text_content() == "\\u202erelu 10 seed=0<img src=x onerror=alert(1)>"
    assert "\u202e" not in (cell.get_attribute("title") or "x\u202e")
    page.goto(f"{ui}/?sort=name")
    link = page.locator(f"tr[data-run='{run}'] a.run-name")
    link.wait_for()
    assert link.get_attribute("title") == name.replace("\u202e", "\\u202e")
    page.goto(f"{ui}/compare?ids={run}")
    legend = page.locator("text.legend").first
    legend.wait_for()
    assert "\u202e" not in legend.text_content() and "\\u202e" in legend.text_content()
    assert page.locator("img").count() == 0 and page.dialogs == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_what_else_a_sweep_varies_makes_rows_of_its_own(ui, engine, page) -> None:
    with session_scope(engine) as s:
        for lr, rule in [(0.1, "momentum bs=32"), (0.2, "momentum bs=32"), (0.1, "adam bs=64")]:
            run = new_run(s, name=f"sweep lr={lr:g} relu,relu 10,10 seed=0 {rule}")
            add_metric(s, run, 50, train_acc=0.9, dev_acc=0.9, loss=1.0, lr=lr, wall=1.0)
    page.goto(ui + "/?view=sweeps")
    grid = page.locator("table.sweep")
    grid.first.wait_for()
    assert grid.count() == 1
    assert grid.locator("tbody th").all_text_contents() == [
        "relu,relu 10,10 seed=0 momentum bs=32",
        "relu,relu 10,10 seed=0 adam bs=64",
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sweeps_parallel_coordinates_draw_what_varies_and_open_each_run(ui, engine, page) -> None:
    points = [(0.01, "adam", 0.80), (0.05, "adam", 0.93), (0.5, "sgd", 0.88), (0.05, "sgd", 0.91)]
    with session_scope(engine) as s:
        ids = {}
        for lr, optimizer, dev in points:
            run = new_run(
                s,
                stages=[(lr, 300)],
                name=f"sweep lr={lr:g} relu,relu 10,10 seed=0 {optimizer}<b>x</b>",
                optimizer=optimizer,
            )
            add_metric(s, run, 50, train_acc=0.9, dev_acc=0.5, loss=1.0, lr=lr, wall=1.0)
            add_metric(s, run, 100, train_acc=0.9, dev_acc=dev, loss=1.0, lr=lr, wall=2.0)
            ids[(lr, optimizer)] = run
    page.goto(ui + "/?view=sweeps")
    chart = page.locator("svg.parallel")
    chart.wait_for()
    # an axis for each setting that differs (lr spans 50x: log), then the final dev accuracy
    axes = chart.locator("g.axis")
    assert [axes.nth(i).get_attribute("data-axis") for i in range(axes.count())] == [
        "lr",
        "optimizer",
        "final dev",
    ]
    assert chart.locator("text.axis-name").first.text_content() == "lr (log)"
    lines = chart.locator("a[data-run]")
    assert sorted(int(lines.nth(i).get_attribute("data-run")) for i in range(4)) == sorted(
        ids.values()
    )
    best, worst = ids[(0.05, "adam")], ids[(0.01, "adam")]
    stroke = "a[data-run='{}'] polyline"
    assert chart.locator(stroke.format(best)).get_attribute("stroke") == "rgb(37,99,235)"
    assert chart.locator(stroke.format(worst)).get_attribute("stroke") == "rgb(220,38,38)"
    # the name is text in the tooltip, never markup; a click opens the run
    tip = chart.locator(f"a[data-run='{best}'] title").text_content()
    assert "adam<b>x</b>" in tip and "final dev 0.93" in tip
    assert chart.locator("b").count() == 0
    chart.locator(f"a[data-run='{best}']").dispatch_event("click")
    page.wait_for_url(f"**/runs/{best}")
