"""Time the core's compiled step against its NumPy steps and the notebook's algorithm, side by side.

    python bench/core.py --data ../shared/data/mnist [--repeats 7] [--threads N] [--skip-tta]
        [--torch-python /path/to/python]   (or GRADQ_BENCH_TORCH_PYTHON: PyTorch's mini-batch row)

One full-batch step each way, taken in turn in every round so that a change in the machine's load
hits them alike; medians of the rounds. The compiled step is warmed up (compiled or loaded from
numba's cache) before the rounds; the time that took is reported apart. Prints a table and, last,
one JSON line. Time-to-accuracy runs the full-batch schedule (lr 1.0, then 0.5; uniform init)
and mini-batch SGD (batch 64, lr 0.1 then 0.01; He init) until dev accuracy reaches the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import core_baseline, minibatch
from worker.core import kernel, nn, pool, train
from worker.data import mnist


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


def interleaved_ms(
    steps: dict[str, Callable[[], None]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU (all threads) milliseconds of each step, all taken in turn each round,
    each after one untimed step of its own.

    On a loaded machine the CPU time says more about the work than the wall time does, except
    for OpenBLAS's own threads, which spin while they wait and so count their waiting too."""
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            time.sleep(0.2)  # OpenBLAS's idle threads spin ~0.1 s: let the last step's park
            step()  # then one step untimed, so a BLAS-threaded step runs as in training
            t, c = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return (
        {name: statistics.median(ts) * 1e3 for name, ts in wall.items()},
        {name: statistics.median(ts) * 1e3 for name, ts in cpu.items()},
    )


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
    ap.add_argument("--mini-repeats", type=int, default=3, help="epochs timed at batch 64")
    ap.add_argument("--torch-python", default=None, help="an interpreter that imports torch")
    args = ap.parse_args()

    with threadpool_limits(args.threads):
        threads = pool.blas_threads()
        split = mnist.split(mnist.load(args.data), dev_size=1000, seed=0, dtype="float32")
        X, y = split.x_train, split.y_train  # (59000, 784) float32, (59000,)
        t = time.perf_counter()
        packed = nn.pack(X, y)
        pack_ms = (time.perf_counter() - t) * 1e3
        dense = nn.rows(X, y)
        t = time.perf_counter()
        kernel.warm_up()
        warm_s = time.perf_counter() - t
        t = time.perf_counter()
        compiled = kernel.prepare(packed)
        prepare_ms = (time.perf_counter() - t) * 1e3
        arch = nn.Arch()
        lr = np.float32(0.5)
        blas = ThreadpoolController().select(user_api="blas")
        nb = Notebook(X, y)
        params = {
            k: train.new_state(arch, seed=0).params for k in ("new", "packed", "rows", "before")
        }

        def update(params: list[np.ndarray], grads: list[np.ndarray]) -> None:
            for p, g in zip(params, grads, strict=True):
                p -= lr * g

        with pool.Pool(threads) as workers:  # while open, BLAS runs on one thread per call

            def before() -> None:
                with blas.limit(limits=threads):  # the previous step: BLAS on every thread
                    update(params["before"], core_baseline.gradients(params["before"], arch, X, y))

            def notebook() -> None:
                with blas.limit(limits=threads):
                    nb.step(0.5)

            ms, cpu_ms = interleaved_ms(
                {
                    "new": lambda: update(
                        params["new"],
                        kernel.gradients(params["new"], arch, compiled, None, workers),
                    ),
                    "packed": lambda: update(
                        params["packed"],
                        nn.gradients(params["packed"], arch, packed, None, workers),
                    ),
                    "rows": lambda: update(
                        params["rows"], nn.gradients(params["rows"], arch, dense, None, workers)
                    ),
                    "before": before,
                    "notebook": notebook,
                },
                args.repeats,
            )
        cols = sum(len(b.cols) for b in packed) / len(packed)
        # the two products with X on the inked columns: 2 FLOPs per multiply-add, h1 outputs
        inked = sum(b.x.size for b in packed)  # pixels stored, = bytes as uint8
        gflop = 2 * 2 * arch.hidden[0] * inked / 1e9
        result = {
            "rows": int(X.shape[0]),
            "threads": threads,
            "block_rows": nn.BLOCK_ROWS,
            "mean_ink_columns_per_block": round(cols, 1),
            "pack_ms": round(pack_ms, 1),
            "warm_up_s": round(warm_s, 2),
            "prepare_ms": round(prepare_ms, 1),
            "gradq_ms_per_iter": round(ms["new"], 2),
            "gradq_numpy_ms_per_iter": round(ms["packed"], 2),
            "gradq_unpacked_ms_per_iter": round(ms["rows"], 2),
            "before_ms_per_iter": round(ms["before"], 2),
            "notebook_ms_per_iter": round(ms["notebook"], 2),
            "cpu_ms_per_iter": {k: round(v, 2) for k, v in cpu_ms.items()},
            "x_products_gflop": round(gflop, 3),
            "gflop_per_s": round(gflop / (ms["new"] / 1e3), 1),
            "x_uint8_gb_per_s": round(2 * inked / 1e9 / (ms["new"] / 1e3), 1),  # read twice
            "speedup_vs_numpy": round(ms["packed"] / ms["new"], 2),
            "speedup_vs_before": round(ms["before"] / ms["new"], 2),
            "speedup_vs_notebook": round(ms["notebook"] / ms["new"], 2),
        }
        print(f"one full-batch step on {X.shape}, {threads} threads, median of {args.repeats}:")
        print(f"  {'':58s} {'wall':>6s}    {'CPU':>6s}")
        for label, key in (
            ("gradq: compiled kernel, uint8 pixels, fused per block", "new"),
            (f"gradq NumPy: blocks packed to their ink ({cols:.0f} of 784 columns)", "packed"),
            ("gradq NumPy: the same blocks, all 784 columns", "rows"),
            ("gradq before (BLAS-threaded; bits vary by thread count)", "before"),
            ("the notebook's algorithm (float64, X as (784, m))", "notebook"),
        ):
            print(f"  {label:58s} {ms[key]:6.1f} ms {cpu_ms[key]:6.1f} ms")
        print(
            f"  speed-up {ms['packed'] / ms['new']:.2f}x over the NumPy step, "
            f"{ms['before'] / ms['new']:.2f}x over before, "
            f"{ms['notebook'] / ms['new']:.2f}x over the notebook; packing took {pack_ms:.0f} ms"
        )
        print(
            f"  the kernel's X products: {gflop:.2f} GFLOP at {result['gflop_per_s']} GFLOP/s; "
            f"uint8 X read twice at {result['x_uint8_gb_per_s']} GB/s; "
            f"warm-up {warm_s:.1f} s, kernel layout {prepare_ms:.0f} ms"
        )
        if args.mini_repeats > 0:
            python = minibatch.torch_python(args.torch_python)
            mini = minibatch.compare(split, threads, args.mini_repeats, python)
            print(minibatch.describe(mini))
            result["mini_batch"] = mini
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
