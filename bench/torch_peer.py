"""PyTorch CPU's loop for gradq's mini-batch recipe, run under another interpreter (one with torch)
so that torch is never imported into gradq's process nor made a gradq dependency.

    /path/to/torch/python bench/torch_peer.py DATA.npz BATCH LR

DATA.npz holds x (N, 784) uint8 pixels, y (N,) labels and order (N,) the epoch's row order, all
written by bench/minibatch.py. Imports numpy and torch only. Prints `ready torch <version>`, then
answers each `epoch THREADS` line on stdin with the wall and CPU seconds (all threads) that one
epoch took on THREADS threads (torch.set_num_threads), until `quit` or end of input. Each epoch
trains on from the last.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch


def main() -> None:
    path, batch, lr = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with np.load(path) as data:
        x = torch.from_numpy(data["x"] / np.float32(255))  # (N, 784) float32, as mnist.split
        y = torch.from_numpy(data["y"].astype(np.int64))  # (N,)
        order = torch.from_numpy(data["order"].astype(np.int64))  # (N,)
    # gradq's default net and mini-batch recipe: 784-10-10-10, relu, relu, softmax cross-entropy
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 10), torch.nn.ReLU(), torch.nn.Linear(10, 10), torch.nn.ReLU(),
        torch.nn.Linear(10, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()  # the batch's mean, as gradq's

    def epoch() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for s in range(0, len(y), batch):
            idx = order[s : s + batch]  # (batch,)
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()  # (batch, 784) -> (batch, 10)
            opt.step()
        return time.perf_counter() - t, time.process_time() - c

    print(f"ready torch {torch.__version__}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) != 2 or words[0] != "epoch":
            break
        torch.set_num_threads(int(words[1]))
        wall, cpu = epoch()
        print(f"{wall:.6f} {cpu:.6f}", flush=True)


if __name__ == "__main__":
    main()
