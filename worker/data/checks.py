"""Validation every format shares: pixels are whole numbers 0..255, labels whole numbers 0..9."""

from collections.abc import Callable

import numpy as np

from worker.errors import DataError

PIXELS = 784  # 28 * 28, an image as one row
Row = Callable[[int], str]  # names row i the way its format counts, e.g. "row 17" or "y_train[16]"


def pixels(x: np.ndarray, name: str, row: Row) -> np.ndarray:
    """Check (N, 784) pixels of any numeric dtype; return them as read-only C-contiguous uint8."""
    return _whole_numbers(x, 255, name, row, "pixel", "pixels must be whole numbers 0-255")


def labels(y: np.ndarray, name: str, row: Row) -> np.ndarray:
    """Check (N,) labels of any numeric dtype and return them as read-only uint8."""
    return _whole_numbers(y, 9, name, row, "label", "labels must be 0-9")


def readonly(values: np.ndarray) -> np.ndarray:
    """Freeze a fresh array, so a frozen Dataset cannot be changed through its arrays either."""
    values.setflags(write=False)
    return values


def _whole_numbers(
    values: np.ndarray, top: int, name: str, row: Row, what: str, rule: str
) -> np.ndarray:
    """Find the first value that is NaN, fractional or outside 0..top, and name its row."""
    if values.dtype == np.uint8 and top == 255:
        return readonly(np.ascontiguousarray(values))
    if values.dtype.kind not in "biuf":
        raise DataError(f"{name}: {what}s have dtype {values.dtype}; {rule}")
    if values.dtype.kind == "f":
        bad = ~((values >= 0) & (values <= top) & (values == np.floor(values)))  # NaN fails all
    else:
        bad = (values < 0) | (values > top)
    if bad.any():
        first = int(np.argmax(bad.reshape(-1)))
        i, j = divmod(first, values.shape[1]) if values.ndim == 2 else (first, None)
        value = values[i] if j is None else values[i, j]
        shown = f"a missing (NaN) {what}" if np.isnan(value) else f"{what} {value:g}"
        at = "" if j is None else f" at pixel {j}"
        raise DataError(f"{name}: {row(i)} has {shown}{at}; {rule}")
    return readonly(np.ascontiguousarray(values, dtype=np.uint8))
