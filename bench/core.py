"""Time the core against the notebook's algorithm as written, side by side on real MNIST.

    python bench/core.py --data ../shared/data/mnist [--repeats 7] [--threads N] [--skip-tta]

Prints a table and, last, one JSON line. Time-to-accuracy runs the full-batch schedule
(lr 1.0, then 0.5; uniform init) and mini-batch SGD (batch 64, lr 0.1 then 0.01; He init) until
dev accuracy reaches the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker import data, nn, train


class Notebook:
    """The notebook's algorithm as written: float64, X as (784, m), its init, its per-call m."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.X = X.T.astype(np.float64)  # (784, m) as the notebook keeps it
        self.Y = Y
        self.m = X.shape[0]
        self.W1 = rng.random((10, 784)) - 0.5
        self.b1 = rng.random((10, 1)) - 0.5
        self.W2 = rng.random((10, 10)) - 0.5
        self.b2 = rng.random((10, 1)) - 0.5
        self.W3 = rng.random((10, 10)) - 0.5
        self.b3 = rng.random((10, 1)) - 0.5

    def one_hot(self) -> np.ndarray:
        one_hot_Y = np.zeros((self.Y.size, self.Y.max() + 1))
        one_hot_Y[np.arange(self.Y.size), self.Y] = 1
        return one_hot_Y.T

    def step(self, alpha: float) -> None:
        X, m = self.X, self.m
        Z1 = self.W1.dot(X) + self.b1
        A1 = np.maximum(Z1, 0)
        Z2 = self.W2.dot(A1) + self.b2
        A2 = np.maximum(Z2, 0)
        Z3 = self.W3.dot(A2) + self.b3
        A3 = np.exp(Z3) / sum(np.exp(Z3))  # the notebook's softmax (overflows for large logits)
        dZ3 = A3 - self.one_hot()
        dW3 = 1 / m * dZ3.dot(A2.T)
        db3 = 1 / m * np.sum(dZ3)  # the notebook's scalar bias gradient
        dZ2 = self.W3.T.dot(dZ3) * (Z2 > 0)
        dW2 = 1 / m * dZ2.dot(A1.T)
        db2 = 1 / m * np.sum(dZ2)
        dZ1 = self.W2.T.dot(dZ2) * (Z1 > 0)
        dW1 = 1 / m * dZ1.dot(X.T)
        db1 = 1 / m * np.sum(dZ1)
        self.W1 = self.W1 - alpha * dW1
        self.b1 = self.b1 - alpha * db1
        self.W2 = self.W2 - alpha * dW2
        self.b2 = self.b2 - alpha * db2
        self.W3 = self.W3 - alpha * dW3
        self.b3 = self.b3 - alpha * db3


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up caches and BLAS buffers
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def time_to(
    split, target: float, batch_size: int | None, schedule, eval_every: int, init: str
) -> dict:
    """Seconds (training plus its evaluations) until dev accuracy first reaches `target`."""
    state = train.new_state(nn.Arch(init=init), seed=0, batch_size=batch_size)
    hit: dict = {}

    def on_point(_s, p: train.Point) -> bool:
        if p.dev_acc >= target and not hit:
            hit.update(iteration=p.iteration, dev_acc=p.dev_acc)
            return True
        return False

    t = time.perf_counter()
    until = 0
    for lr, iters in schedule:
        until += iters
        train.train(state, split, lr, until, eval_every=eval_every, on_point=on_point)
        if hit:
            break
    hit["seconds"] = round(time.perf_counter() - t, 2)
    hit.setdefault("reached", bool(hit.get("iteration")))
    return hit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GRADQ_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    ap.add_argument("--target", type=float, default=0.923)
    ap.add_argument("--skip-tta", action="store_true", help="only time one iteration")
    args = ap.parse_args()

    with threadpool_limits(args.threads):
        split = data.split(data.load(args.data), dev_size=1000, seed=0, dtype="float32")
        X, y = split.x_train, split.y_train  # (59000, 784) float32, (59000,)
        state = train.new_state(nn.Arch(), seed=0)
        step = np.float32(0.5)

        def ours() -> None:
            grads = nn.gradients(state.params, state.arch, X, y)
            for p, g in zip(state.params, grads, strict=True):
                p -= step * g

        nb = Notebook(X, y)
        ours_ms = median_ms(ours, args.repeats)
        notebook_ms = median_ms(lambda: nb.step(0.5), args.repeats)
        result = {
            "rows": int(X.shape[0]),
            "threads": threadpool_info()[0]["num_threads"] if threadpool_info() else None,
            "gradq_ms_per_iter": round(ours_ms, 2),
            "notebook_ms_per_iter": round(notebook_ms, 2),
            "speedup": round(notebook_ms / ours_ms, 2),
        }
        print(
            f"one full-batch iteration on {X.shape}: gradq {ours_ms:.1f} ms, "
            f"notebook {notebook_ms:.1f} ms, speedup {notebook_ms / ours_ms:.2f}x"
        )
        if not args.skip_tta:
            full = time_to(split, args.target, None, [(1.0, 500), (0.5, 4500)], 50, "uniform")
            print(f"full batch to {args.target:.1%} dev: {full}")
            # He init: uniform's large weights cost mini-batch SGD a point of accuracy
            mini = time_to(split, args.target, 64, [(0.1, 922 * 5), (0.01, 922 * 5)], 50, "he")
            print(f"mini-batch 64 to {args.target:.1%} dev: {mini}")
            result.update(tta_full_batch=full, tta_mini_batch=mini, target=args.target)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
