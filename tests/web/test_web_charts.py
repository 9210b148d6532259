"""Charts and Compare in Debian's chromium: the loss on a log scale, the curve as CSV, SVG and PNG,
zoom by dragging, the legend beside the curves at any width, differing settings marked, and
long names and notes kept inside the page."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from fixtures_browser import serve
from fixtures_storage import new_run
from PIL import Image
from sqlalchemy import Engine

from storage import bookkeeping
from storage.db import session_scope
from storage.metrics import add_metric

LONG = "a very long run name " * 9 + "that ends here"  # 203 characters
POINTS = [(50 * k, 2.3 * 0.8**k) for k in range(1, 21)]  # (iteration, loss): 1.84 down to 0.027
WIDTH = 1100  # the page fixture's viewport


@pytest.fixture
def ui(engine: Engine) -> Iterator[str]:
    yield from serve(engine)


def trained(engine: Engine, name: str = "curve", **settings) -> int:
    with session_scope(engine) as s:
        run = new_run(s, name=name, **settings)
        for it, loss in POINTS:
            acc = 1 - loss / 3
            add_metric(s, run, it, train_acc=acc, dev_acc=acc, loss=loss, lr=1.0, wall=it / 10)
    return run


def texts(page, selector: str) -> list[str]:
    return page.locator(selector).all_text_contents()


def open_loss(page, url: str, run: int):
    page.goto(f"{url}/runs/{run}")
    page.locator("#loss svg path.curve").wait_for()
    return page.locator("#loss")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_log_toggle_puts_the_loss_on_a_log_axis(ui, engine, page) -> None:
    loss = open_loss(page, ui, trained(engine))
    linear = texts(page, "#loss .ytick")
    curve = loss.locator("path.curve").get_attribute("d")
    assert loss.locator("svg").get_attribute("data-scale") == "linear"
    assert page.locator("#acc input[data-chart='log']").is_hidden()  # accuracy stays linear
    loss.locator("input[data-chart='log']").check()
    loss.locator("svg[data-scale='log']").wait_for()
    logged = texts(page, "#loss .ytick")
    assert logged != linear and {"0.1", "1"} <= set(logged), logged
    assert "0.05" in logged and "0.15" not in logged  # 1, 2, 5 of each decade, not even steps
    assert loss.locator("path.curve").get_attribute("d") != curve
    page.wait_for_timeout(2500)  # a poll comes and goes: the page keeps the log axis
    assert loss.locator("svg").get_attribute("data-scale") == "log"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_curve_downloads_as_csv_and_the_chart_as_svg(ui, engine, page, tmp_path) -> None:
    loss = open_loss(page, ui, trained(engine))
    with page.expect_download() as got:
        loss.locator("button[data-chart='csv']").click()
    assert got.value.suggested_filename.endswith("-loss.csv")
    with open(got.value.path(), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["iteration", "at", "loss"]  # `at`: each point's database time
    assert [(int(a), float(b)) for a, _, b in rows[1:]] == POINTS
    with page.expect_download() as got:
        loss.locator("button[data-chart='svg']").click()
    drawn = got.value.path().read_text()
    assert drawn.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in drawn
    assert "<path" in drawn and ">loss<" in drawn
    width = float(loss.locator("svg").get_attribute("width"))
    with page.expect_download() as got:
        loss.locator("button[data-chart='png']").click()
    assert got.value.suggested_filename.endswith("-loss.png")
    with Image.open(got.value.path()) as image:
        assert image.format == "PNG" and image.width == 2 * width
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(1 << 20)}
    assert (255, 255, 255) in colours and len(colours) > 10  # drawn on white, not blank


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_csv_cells_are_never_formulas_and_show_bidi_marks_escaped(ui, engine, page) -> None:
    page.goto(f"{ui}/compare")
    page.wait_for_function("() => typeof chart === 'object'")
    text = page.evaluate(
        """chart.csv([{name: '=HYPERLINK("x")', points: [[1, 0.5]]},
                      {name: 'a\u202eb', points: [[2, 0.25]]}])"""
    )
    assert text.splitlines() == [
        '"iteration","\'=HYPERLINK(""x"")","a\\u202eb"',
        "1,0.5,",
        "2,,0.25",
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dragging_zooms_buttons_pan_and_a_double_click_shows_them_all(ui, engine, page):
    loss = open_loss(page, ui, trained(engine))
    before = texts(page, "#loss .xtick")
    box = loss.locator("svg").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
    page.mouse.up()
    loss.locator("button[data-chart='reset']").wait_for()
    zoomed = [float(t) for t in texts(page, "#loss .xtick")]
    assert zoomed != [float(t) for t in before] and min(zoomed) > 0 and max(zoomed) < 1000, zoomed
    # panning moves the window, not its width, and stops at the curve's ends
    loss.locator("button[data-chart='right']").click()
    right = [float(t) for t in texts(page, "#loss .xtick")]
    assert min(right) > min(zoomed) and max(right) > max(zoomed), (zoomed, right)
    for _ in range(20):
        loss.locator("button[data-chart='left']").click()
    left = [float(t) for t in texts(page, "#loss .xtick")]
    assert min(left) == 0 and max(left) < max(zoomed), (zoomed, left)
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    loss.locator("button[data-chart='reset']").wait_for(state="hidden")
    assert texts(page, "#loss .xtick") == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_chart_follows_the_window_and_keeps_its_legend_beside_the_curves(ui, engine, page):
    run_a, run_b = trained(engine, LONG), trained(engine, "short")
    page.goto(f"{ui}/compare?ids={run_a},{run_b}")
    dev = page.locator(".chart").first
    dev.locator("path.curve").first.wait_for()
    wide = float(dev.locator("svg").get_attribute("width"))
    page.set_viewport_size({"width": 700, "height": 900})
    page.wait_for_function(
        "() => +document.querySelector('.chart svg').getAttribute('width') < 700"
    )
    narrow = float(dev.locator("svg").get_attribute("width"))
    assert narrow < wide
    svg_box = dev.locator("svg").bounding_box()
    curves = [dev.locator("path.curve").nth(i).bounding_box() for i in range(2)]
    for i in range(2):
        key = dev.locator("text.legend").nth(i).bounding_box()
        assert key["x"] >= max(c["x"] + c["width"] for c in curves), (key, curves)
        assert key["x"] + key["width"] <= svg_box["x"] + svg_box["width"] + 1
    legend = dev.locator("text.legend").first
    assert legend.text_content().startswith(f"{run_a} a very long") and "…" in legend.text_content()
    assert legend.locator("title").text_content() == f"{run_a} {LONG}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_compare_marks_the_settings_that_differ(ui, engine, page) -> None:
    with session_scope(engine) as s:
        a = new_run(s, name="base", seed=0, stages=[(1.0, 500)])
        b = new_run(s, name=LONG, seed=0, stages=[(0.5, 500)])
        c = new_run(s, name="other seed", seed=7, stages=[(1.0, 500)])
    page.goto(f"{ui}/compare?ids={a},{b},{c}")
    page.locator("table.compare").wait_for()
    marked = page.locator("table.compare tr.differs").evaluate_all(
        "rows => rows.map(r => r.dataset.setting)"
    )
    assert sorted(marked) == ["schedule", "seed"]
    assert "differs" not in (page.locator("tr[data-setting='hidden']").get_attribute("class") or "")
    assert page.locator(".differ-count").text_content().startswith("2 setting")
    name = page.locator(f"table.compare a[href='/runs/{b}']")
    assert name.get_attribute("title") == f"{b} {LONG}"
    assert name.bounding_box()["width"] <= 230
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_long_name_and_a_long_note_stay_inside_the_run_page(ui, engine, page) -> None:
    with session_scope(engine) as s:
        run = new_run(s, name="x" * 200)
        bookkeeping.add_note(s, run, "y" * 400)
    page.goto(f"{ui}/runs/{run}")
    page.locator(".note").wait_for()
    for selector in ("h1 .run-name", ".note"):
        box = page.locator(selector).bounding_box()
        assert box["x"] + box["width"] <= WIDTH, (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
