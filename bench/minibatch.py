"""Time the mini-batch step (issue 18, part 2): the recipe's batch 64 with nesterov 0.9, one epoch
of gradq's train() against PyTorch CPU's loop for the same net, batch, optimizer and lr.

    python bench/minibatch.py --data ../shared/data/mnist [--repeats 5] [--threads N]
        [--torch-python /path/to/python]   (or GRADQ_BENCH_TORCH_PYTHON)
        [--pixels]   (gradq trains on uint8 rows, as a worker's mapped split gives them)

torch is never imported here: bench/torch_peer.py runs under the interpreter given, one process
kept for the whole bench, so its epochs and gradq's are taken in turn in every round and a change
in the machine's load hits both. Without an interpreter that imports torch the row is skipped
with its reason. bench/core.py calls `compare` too. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.core import minibatch, nn, optim, pool, train
from worker.data import mnist

BATCH = 64
LR = 0.1
PEER = Path(__file__).with_name("torch_peer.py")


Times = tuple[float, float]  # wall and CPU (all threads) seconds


def gradq_epoch(split, threads: int) -> tuple[Times, Times]:
    """One epoch of train() at batch 64 with nesterov 0.9, He init: the whole call (its steps
    and its two points: the first measures every training row), and the steps alone (from the
    first point to the last, whose only cost is 1,000 dev rows)."""
    opt = optim.Optimizer("nesterov")
    state = train.new_state(nn.Arch(init="he"), seed=0, batch_size=BATCH, optimizer=opt)
    steps = -(-len(split.y_train) // BATCH)
    seen: list[Times] = []
    t, c = time.perf_counter(), time.process_time()
    train.train(
        state, split, LR, steps, eval_every=steps, threads=threads,
        on_point=lambda s, p: seen.append((time.perf_counter(), time.process_time())),
    )  # fmt: skip
    whole = (time.perf_counter() - t, time.process_time() - c)
    return whole, (seen[-1][0] - seen[0][0], seen[-1][1] - seen[0][1])


@contextmanager
def numpy_step() -> Iterator[None]:
    """train() with the step before issue 18 part 2: nn.gradients and the NumPy update."""
    fits, step = minibatch.fits, optim.step
    minibatch.fits, optim.step = (lambda arch, blocks: False), optim.step_reference
    try:
        yield
    finally:
        minibatch.fits, optim.step = fits, step


class TorchPeer:
    """bench/torch_peer.py under another interpreter, asked for one epoch at a time."""

    def __init__(self, python: str, split) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="gradq-torch-")
        data = Path(self.dir.name) / "data.npz"
        x = np.asarray(split.x_train)  # (N, 784) pixels, or pixel / 255 as floats
        x = x if x.dtype == np.uint8 else np.rint(x * 255).astype(np.uint8)
        order = train.epoch_order(0, 0, len(split.y_train))  # gradq's first epoch's order
        np.savez(data, x=x, y=np.asarray(split.y_train), order=order)
        args = [python, str(PEER), str(data), str(BATCH), str(LR)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first = self.proc.stdout.readline().strip()
        if not first.startswith("ready"):
            err = self.proc.communicate()[1].strip().splitlines()
            self.close()
            raise RuntimeError(err[-1] if err else f"{python} exited {self.proc.returncode}")
        self.version = first.split()[-1]

    def epoch(self, threads: int) -> Times:
        """Wall and CPU seconds for one epoch on `threads` threads."""
        self.proc.stdin.write(f"epoch {threads}\n")
        self.proc.stdin.flush()
        wall, cpu = self.proc.stdout.readline().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("quit\n", timeout=60)
        self.dir.cleanup()


def torch_python(given: str | None) -> str | None:
    """The interpreter to run PyTorch's loop under: --torch-python, else the environment's."""
    return given or os.environ.get("GRADQ_BENCH_TORCH_PYTHON") or None


def start_peer(python: str | None, split) -> tuple[TorchPeer | None, str]:
    """The peer, or None and the one-line reason it is skipped."""
    if python is None:
        return None, "no torch interpreter given (--torch-python or GRADQ_BENCH_TORCH_PYTHON)"
    try:
        return TorchPeer(python, split), ""
    except (OSError, RuntimeError) as e:
        return None, f"{python}: {e}"


def compare(split, threads: int, repeats: int, python: str | None = None) -> dict:
    """Median epoch and step times of gradq, its previous step and, if an interpreter with
    torch is given, PyTorch on `threads` threads and on one, all taken in turn each round:
    seconds per epoch (wall and CPU), microseconds per step (wall), ratios of wall medians."""
    peer, skipped = start_peer(python, split)
    peer_threads = {"torch": threads} | ({"torch_1_thread": 1} if threads != 1 else {})
    times: dict[str, list[Times]] = {name: [] for name, _ in ROWS[:4]}
    times |= {name: [] for name in peer_threads if peer is not None}
    try:
        gradq_epoch(split, threads)  # untimed: numba's first call, the pool's first threads
        if peer is not None:
            peer.epoch(threads)
        for _ in range(repeats):
            time.sleep(0.2)  # a spinning OpenMP or BLAS thread of the other side parks
            whole, steps_only = gradq_epoch(split, threads)
            times["gradq"].append(whole)
            times["gradq_steps"].append(steps_only)
            with numpy_step():
                whole, steps_only = gradq_epoch(split, threads)
            times["gradq_numpy"].append(whole)
            times["gradq_numpy_steps"].append(steps_only)
            for name, n in peer_threads.items() if peer is not None else ():
                time.sleep(0.2)
                times[name].append(peer.epoch(n))
    finally:
        if peer is not None:
            peer.close()
    steps = -(-len(split.y_train) // BATCH)
    out: dict = {"batch": BATCH, "steps_per_epoch": steps, "optimizer": "nesterov 0.9", "lr": LR}
    out |= {"threads": threads, "repeats": repeats}
    for name, ts in times.items():
        wall, cpu = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
        out[f"{name}_epoch_s"] = round(wall, 4)
        out[f"{name}_cpu_s"] = round(cpu, 4)
        out[f"{name}_step_us"] = round(wall / steps * 1e6, 1)
    out["numpy_over_gradq"] = round(out["gradq_numpy_epoch_s"] / out["gradq_epoch_s"], 2)
    out["numpy_over_gradq_steps"] = round(
        out["gradq_numpy_steps_epoch_s"] / out["gradq_steps_epoch_s"], 2
    )
    if peer is None:
        out["torch_skipped"] = skipped
        return out
    out["torch_version"] = peer.version
    for name in peer_threads:
        out[f"{name}_over_gradq"] = round(out[f"{name}_epoch_s"] / out["gradq_epoch_s"], 2)
        out[f"{name}_over_gradq_cpu"] = round(out[f"{name}_cpu_s"] / out["gradq_cpu_s"], 2)
    return out


ROWS = (
    ("gradq", "gradq train(), with its 2 points"),
    ("gradq_steps", "gradq, its steps alone"),
    ("gradq_numpy", "gradq's previous (NumPy) step"),
    ("gradq_numpy_steps", "  its steps alone"),
    ("torch", "PyTorch"),
    ("torch_1_thread", "PyTorch on 1 thread"),
)


def describe(mini: dict) -> str:
    """The figures as the lines of a table."""
    lines = [
        f"mini-batch {mini['batch']}, {mini['optimizer']}, lr {mini['lr']}, one epoch of "
        f"{mini['steps_per_epoch']} steps, {mini['threads']} threads, median of {mini['repeats']}:",
        f"  {'':34s} {'wall':>8s} {'CPU':>8s} {'a step':>10s}",
    ]
    for key, label in ROWS:
        if f"{key}_epoch_s" in mini:
            lines.append(
                f"  {label:34s} {mini[f'{key}_epoch_s']:6.3f} s {mini[f'{key}_cpu_s']:6.3f} s"
                f" {mini[f'{key}_step_us']:7.1f} us"
            )
    ratios = [
        f"the previous step's epoch over gradq's {mini['numpy_over_gradq']}x "
        f"(steps alone {mini['numpy_over_gradq_steps']}x)"
    ]
    for key, label in ROWS[4:]:
        if f"{key}_over_gradq" in mini:
            ratios.append(
                f"{label}'s {mini[f'{key}_over_gradq']}x (CPU {mini[f'{key}_over_gradq_cpu']}x)"
            )
    if "torch_skipped" in mini:
        lines.append(f"  PyTorch skipped: {mini['torch_skipped']}")
    lines.append("  " + "; ".join(ratios))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GRADQ_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    ap.add_argument("--torch-python", default=None, help="an interpreter that imports torch")
    ap.add_argument("--pixels", action="store_true", help="uint8 training rows, as a worker's")
    args = ap.parse_args()
    with threadpool_limits(args.threads):
        threads = pool.blas_threads()
        split = mnist.split(mnist.load(args.data), dev_size=1000, seed=0, dtype="float32")
        if args.pixels:  # as shared.open_split gives them: the network scales a batch at a time
            split = SimpleNamespace(
                x_train=np.rint(split.x_train * 255).astype(np.uint8), y_train=split.y_train,
                x_dev=np.rint(split.x_dev * 255).astype(np.uint8), y_dev=split.y_dev,
            )  # fmt: skip
        mini = compare(split, threads, args.repeats, torch_python(args.torch_python))
    mini["pixels"] = args.pixels
    print(describe(mini))
    print(json.dumps(mini))


if __name__ == "__main__":
    main()
