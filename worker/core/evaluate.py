"""Evaluation and prediction helpers over a trained State."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worker.core import nn
from worker.core.train import State


@dataclass(frozen=True)
class Report:
    """How a network does on one split."""

    accuracy: float  # share of rows predicted right
    per_class: list[float]  # accuracy of each true label 0..9 (NaN where a label is absent)
    confusion: np.ndarray  # (10, 10) int64: row = true label, column = predicted
    count: int  # rows evaluated


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """(n_classes, n_classes) counts, row = true label, column = predicted label."""
    flat = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def evaluate(state: State, X: np.ndarray, y: np.ndarray) -> Report:
    """Accuracy, per-class accuracy and confusion matrix of `state` on (X, y); X may be floats
    in [0, 1] or uint8 pixels (scaled a block at a time, as training reads them)."""
    x = X if X.dtype == np.uint8 else X.astype(state.arch.np_dtype, copy=False)  # (m, 784)
    pred = nn.predict(state.params, state.arch, x)
    cm = confusion_matrix(y, pred, state.arch.n_out)
    totals = cm.sum(axis=1)
    per_class = [float(cm[k, k] / t) if t else float("nan") for k, t in enumerate(totals)]
    acc = float(np.trace(cm) / len(y)) if len(y) else float("nan")
    return Report(acc, per_class, cm, len(y))


def predict_one(state: State, image: np.ndarray) -> tuple[int, np.ndarray]:
    """Predicted label and class probabilities (10,) for one image of 784 pixels in [0, 1]."""
    x = np.asarray(image, dtype=state.arch.np_dtype).reshape(1, state.arch.n_in)  # (1, 784)
    proba = nn.predict_proba(state.params, state.arch, x)[0]  # (10,)
    return int(proba.argmax()), proba
