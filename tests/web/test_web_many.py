"""The runs page with many runs, in Debian's chromium on a real server: sorting by a header,
pages of 50 (sorted and cut by the server), long names cut with an ellipsis, and 10,000 runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures_browser import serve
from fixtures_storage import new_run

from storage.db import make_engine, session_scope
from storage.metrics import add_metric
from storage.migrate import upgrade

RUNS = 121
LONG = "a very long run name " * 9 + "that ends here"  # 203 characters, with spaces
WIDTH = 1100  # the page fixture's viewport


def best_of(run_id: int) -> float:
    """Each run's best dev accuracy, a shuffle of the ids: sorted by it, no id order shows."""
    return ((run_id * 37) % RUNS + 1) / (RUNS + 1)


def seeded(tmp_path_factory, count: int, points: bool) -> Iterator[str]:
    """A server over a SQLite file holding `count` runs; run 1 has the 203-character name."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('many') / 'gradq.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        for i in range(1, count + 1):
            run = new_run(s, name=LONG if i == 1 else f"run {i}", seed=i)
            if points:
                acc = best_of(run)
                add_metric(s, run, 50, train_acc=acc, dev_acc=acc, loss=1 - acc, lr=1.0, wall=1.0)
    yield from serve(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Iterator[str]:
    yield from seeded(tmp_path_factory, RUNS, points=True)


def shown_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.locator("#runs tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    ]


def wait_rows(page, first: int) -> None:
    page.locator(f"#runs tr:first-child[data-run='{first}']").wait_for()


def test_newest_first_by_default_and_page_two_shows_the_next_rows(many, page) -> None:
    page.goto(many + "/")
    wait_rows(page, RUNS)
    assert shown_ids(page) == list(range(RUNS, RUNS - 50, -1))  # only one page is drawn
    assert page.locator(".pager .where").text_content() == f"page 1 of 3 ({RUNS} runs)"
    page.locator("button[data-page='next']").click()
    wait_rows(page, RUNS - 50)
    assert shown_ids(page) == list(range(RUNS - 50, RUNS - 100, -1))
    assert "page=2" in page.url
    page.locator("button[data-page='last']").click()
    wait_rows(page, RUNS - 100)
    assert shown_ids(page) == list(range(RUNS - 100, 0, -1))
    assert page.locator("button[data-page='next']").is_disabled()


def test_clicking_a_header_sorts_numerically_and_the_sort_survives_the_refresh(many, page):
    page.goto(many + "/")
    wait_rows(page, RUNS)
    page.locator("th[data-sort='id']").click()  # id was descending: now ascending
    wait_rows(page, 1)
    assert shown_ids(page) == list(range(1, 51))  # as text, 10 and 100 would follow 1
    assert page.locator("th[data-sort='id']").get_attribute("aria-sort") == "ascending"
    page.locator("th[data-sort='best']").click()  # a number column starts with the largest
    by_best = sorted(range(1, RUNS + 1), key=best_of, reverse=True)
    wait_rows(page, by_best[0])
    assert shown_ids(page) == by_best[:50]
    assert page.locator("th[data-sort='id']").get_attribute("aria-sort") is None
    with page.expect_response(lambda r: "/api/runs" in r.url, timeout=10_000):
        pass  # the page polls every 2 s: one refresh has come and gone
    page.wait_for_timeout(300)
    assert shown_ids(page) == by_best[:50]
    page.locator("th[data-sort='name']").click()  # text sorts as text
    wait_rows(page, 1)  # "a very long…" comes before "run 10"
    assert shown_ids(page)[:4] == [1, 10, 100, 101]
    page.reload()  # the sort is in the address: a reload keeps it
    wait_rows(page, 1)
    assert shown_ids(page)[:4] == [1, 10, 100, 101]


def test_a_long_name_is_cut_with_an_ellipsis_and_the_status_stays_on_screen(many, page):
    page.goto(many + "/?sort=id")
    wait_rows(page, 1)
    row = page.locator("#runs tr[data-run='1']")
    name = row.locator("a.run-name")
    assert name.text_content() == LONG and name.get_attribute("title") == LONG
    cut = name.evaluate("a => [a.scrollWidth, a.clientWidth, getComputedStyle(a).textOverflow]")
    assert cut[0] > cut[1] and cut[2] == "ellipsis", cut
    for cell in ("c-status", "c-progress", "c-best", "c-age"):
        box = row.locator("td." + cell).bounding_box()
        assert box is not None and box["width"] > 20, cell
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (cell, box)
    assert row.locator(".status").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no sideways scroll


@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory) -> Iterator[str]:
    yield from seeded(tmp_path_factory, 10_000, points=False)


def test_ten_thousand_runs_draw_one_page_and_sort_them_all(ten_thousand, page) -> None:
    """Only the page is drawn (its speed is a bench's business, not a test's)."""
    page.goto(ten_thousand + "/")
    wait_rows(page, 10_000)
    assert page.locator("#runs tr").count() == 50
    assert page.locator(".pager .where").text_content() == "page 1 of 200 (10000 runs)"
    with page.expect_response(lambda r: "sort=name" in r.url) as sorted_by_name:
        page.locator("th[data-sort='name']").click()
    answer = sorted_by_name.value.json()  # the server sorts all 10,000 and sends one page
    assert answer["total"] == 10_000 and len(answer["runs"]) == 50
    wait_rows(page, 1)
    assert shown_ids(page)[:3] == [1, 10, 100]  # sorted across all 10,000, not the page
    assert page.locator("#runs tr").count() == 50
    page.locator("button[data-page='last']").click()
    page.locator("#runs tr:last-child[data-run='9999']").wait_for()  # the last name
    assert page.locator(".pager .where").text_content() == "page 200 of 200 (10000 runs)"
    assert "page=200" in page.url


def test_runs_ticked_on_two_pages_are_compared_together(many, page) -> None:
    page.goto(many + "/")
    wait_rows(page, RUNS)
    page.locator(f"tr[data-run='{RUNS}'] input.pick").check()
    page.locator("button[data-page='next']").click()
    wait_rows(page, RUNS - 50)
    page.locator(f"tr[data-run='{RUNS - 50}'] input.pick").check()
    with page.expect_response(lambda r: "/api/runs" in r.url, timeout=10_000):
        pass  # a refresh redraws the rows: the ticks stay
    page.wait_for_timeout(300)
    assert page.locator(f"tr[data-run='{RUNS - 50}'] input.pick").is_checked()
    page.locator("button", has_text="Compare selected").click()
    page.wait_for_url(f"**/compare?ids={RUNS},{RUNS - 50}")
