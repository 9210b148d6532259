"""The mini-batch step (issue 18, part 2): the recipe's batch 64 with nesterov, one epoch of
gradq's train() against PyTorch CPU's loop for the same net, if torch is installed.

bench/core.py calls `compare`; each epoch is timed whole (steps and its two points), median of
the rounds, the two taken in turn in every round.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from worker.core import nn, optim, train

BATCH = 64
LR = 0.1


def gradq_epoch(split, threads: int) -> float:
    """Seconds for one epoch of train() at batch 64 with nesterov 0.9, He init."""
    opt = optim.Optimizer("nesterov")
    state = train.new_state(nn.Arch(init="he"), seed=0, batch_size=BATCH, optimizer=opt)
    steps = -(-len(split.y_train) // BATCH)
    t = time.perf_counter()
    train.train(state, split, LR, steps, eval_every=steps, threads=threads)
    return time.perf_counter() - t


def torch_epoch(split, threads: int) -> float | None:
    """Seconds for one epoch of the same net, batch and optimizer in PyTorch; None without it."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(np.ascontiguousarray(split.x_train))  # (N, 784) float32
    y = torch.from_numpy(split.y_train)  # (N,) int64
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 10), torch.nn.ReLU(), torch.nn.Linear(10, 10), torch.nn.ReLU(),
        torch.nn.Linear(10, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.from_numpy(train.epoch_order(0, 0, len(y)))
    t = time.perf_counter()
    for s in range(0, len(y), BATCH):
        idx = order[s : s + BATCH]
        opt.zero_grad()
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - t


def compare(split, threads: int, repeats: int) -> dict:
    """Median epoch and step times of gradq and, if installed, PyTorch, in ms."""
    steps = -(-len(split.y_train) // BATCH)
    times: dict[str, list[float]] = {"gradq": [], "torch": []}
    for _ in range(repeats):
        times["gradq"].append(gradq_epoch(split, threads))
        seconds = torch_epoch(split, threads)
        if seconds is not None:
            times["torch"].append(seconds)
    out: dict = {"batch": BATCH, "steps_per_epoch": steps, "optimizer": "nesterov 0.9"}
    for name, ts in times.items():
        if ts:
            epoch = statistics.median(ts)
            out[f"{name}_epoch_s"] = round(epoch, 3)
            out[f"{name}_step_us"] = round(epoch / steps * 1e6, 1)
    if times["torch"]:
        out["torch_over_gradq"] = round(out["torch_epoch_s"] / out["gradq_epoch_s"], 2)
    return out
