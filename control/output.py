"""Printing: tables, JSON for scripts, a learning curve and a digit drawn in plain text."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from worker.settings import url_secrets

SHADES = " .:-=+*#%@"  # dark to light, for digits
# C0 and C1 controls, DEL, line and paragraph separators, and bidirectional overrides: what can
# move the cursor, retitle or clear a terminal, fake a table row or reorder what is shown
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str) -> str:
    """Text from a database or a user with every control character shown as an escape (\\x1b)."""
    return CONTROL.sub(lambda m: NAMED.get(m[0]) or _escape(m[0]), text)


def one_line(error: BaseException | str) -> str:
    """The error as one visible line, with the configured URLs' passwords scrubbed out."""
    text = visible(" ".join(str(error).split())) or type(error).__name__
    for secret in url_secrets():
        text = text.replace(secret, "***")
    return text if len(text) <= 400 else text[:397] + "..."


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def console() -> Console:
    """A console for stdout, made per call so CliRunner captures it; 80 columns when piped.
    No markup: names and errors are printed as given, brackets and all."""
    return Console(highlight=False, soft_wrap=False, markup=False)


def print_json(value: Any) -> None:
    """Strict JSON: NaN and infinities become null."""
    text = json.dumps(_finite(value), default=_jsonable, allow_nan=False)
    console().print_json(text, ensure_ascii=True)  # escapes C1 controls and bidi marks too


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    t = Table(title=title, show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in columns:
        t.add_column(name, overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    console().print(t)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return visible(str(value))


def pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def age(when: datetime | None, now: datetime | None = None) -> str:
    """'3m', '2h', '5d' since `when`."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max(0.0, (now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def curve(
    iterations: Sequence[int],
    series: dict[str, Sequence[float]],
    boundaries: Sequence[int] = (),
    width: int = 64,
    height: int = 12,
) -> str:
    """A text plot of accuracy series against iteration; '|' on the axis marks stage starts."""
    if not iterations:
        return "(no points yet)"
    values = [v for s in series.values() for v in s if v is not None and not math.isnan(v)]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01
    x0, x1 = min(iterations), max(iterations)
    span = max(1, x1 - x0)
    grid = [[" "] * width for _ in range(height)]
    marks = {name: name[0] for name in series}
    for name, ys in series.items():
        for x, y in zip(iterations, ys, strict=True):
            if y is None or math.isnan(y):
                continue
            col = round((x - x0) / span * (width - 1))
            row = height - 1 - round((y - lo) / (hi - lo) * (height - 1))
            grid[row][col] = "*" if grid[row][col] not in (" ", marks[name]) else marks[name]
    axis = ["-"] * width
    for b in boundaries:
        if x0 < b <= x1:
            axis[round((b - x0) / span * (width - 1))] = "|"
    lines = []
    for r, row in enumerate(grid):
        label = hi - r * (hi - lo) / (height - 1)
        lines.append(f"{100 * label:6.1f}% " + "".join(row))
    lines.append("        " + "".join(axis))
    lines.append(f"        {x0:<{width // 2}}{x1:>{width - width // 2}}")
    legend = "  ".join(f"{mark} {name}" for name, mark in marks.items())
    lines.append(f"        {legend}  (* both, | stage start)")
    return "\n".join(lines)


def digit(pixels: np.ndarray) -> str:
    """A 28x28 image (values 0..1) as 28 lines of shaded characters, two per pixel."""
    img = np.asarray(pixels, dtype=np.float64).reshape(28, 28)
    idx = np.clip((img * (len(SHADES) - 1)).round().astype(int), 0, len(SHADES) - 1)
    return "\n".join("".join(SHADES[i] * 2 for i in row).rstrip() for row in idx)
