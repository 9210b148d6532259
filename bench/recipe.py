"""Time to 92.3 % dev and to 94.5 % test: the README's recipe next to the notebook's schedule.

    python bench/recipe.py --data ../shared/data/mnist [--seeds 0,1,2] [--threads 1]

Both runs go through the core as a worker runs them (points every --eval-every iterations);
the test accuracy checked at each point is this bench's own cost and is left out of the times.
The notebook's schedule: full batch, uniform init, SGD, lr 1.0 for 500 then 0.5 (stopped after
--notebook-iters). The recipe (README): batch 64, He init, Nesterov momentum MOMENTUM with L2
WEIGHT_DECAY, each image moved by up to AUGMENT pixel, and CYCLES stages of lr LR with cosine decay
over EPOCHS epochs each. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.core import nn, optim, schedule, train
from worker.data import mnist

DEV_TARGET, TEST_TARGET = 0.923, 0.945
# the recipe, as the README's halving sweep found it
LR, MOMENTUM, WEIGHT_DECAY, AUGMENT, EPOCHS, CYCLES = 0.03134, 0.85, 3e-5, 1, 40, 3


def run(name: str, split: mnist.Split, state: train.State, stages, every: int) -> dict:
    """Train `stages` [(lr, iterations, shape)]; when each target was first crossed."""
    seen: dict = {"dev": None, "test": None}
    spent = [0.0]  # seconds this bench spent measuring test accuracy
    t0 = time.perf_counter()

    def on_point(st: train.State, p: train.Point) -> bool:
        t = time.perf_counter()
        wall = t - t0 - spent[0]  # training time up to this point
        test = train.accuracy(st.params, st.arch, split.x_test, split.y_test)
        spent[0] += time.perf_counter() - t
        if seen["dev"] is None and p.dev_acc >= DEV_TARGET:
            seen["dev"] = (st.iteration, wall)
        if seen["test"] is None and test >= TEST_TARGET:
            seen["test"] = (st.iteration, wall)
        seen["final_test"] = test
        return False

    first = 0
    for lr, iterations, shape in stages:
        until = first + iterations
        train.train(
            state, split, lr, until, eval_every=every, on_point=on_point, shape=shape, first=first
        )
        first = until
    total = time.perf_counter() - t0 - spent[0]
    return {"name": name, "iterations": state.iteration, "wall": total, **seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("GRADQ_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (a worker's default: 1)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--notebook-iters", type=int, default=3000)
    args = ap.parse_args()
    split = mnist.split(mnist.load(mnist.find(Path(args.data))), dev_size=1000, seed=0)
    n = len(split.x_train)
    rows = []
    with threadpool_limits(args.threads):
        for seed in (int(s) for s in args.seeds.split(",")):
            nb = train.new_state(nn.Arch(), seed)
            rest = args.notebook_iters - 500
            nb_stages = [(1.0, 500, schedule.CONSTANT), (0.5, rest, schedule.CONSTANT)]
            rows.append(run(f"notebook seed {seed}", split, nb, nb_stages, args.eval_every))
            rule = optim.Optimizer("nesterov", momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
            rc = train.new_state(nn.Arch(init="he"), seed, 64, rule, augment=AUGMENT)
            epochs = EPOCHS * math.ceil(n / 64)
            rc_stages = [(LR, epochs, schedule.parse("cosine"))] * CYCLES
            rows.append(run(f"recipe seed {seed}", split, rc, rc_stages, args.eval_every))

    def cell(x) -> str:
        return "never" if x is None else f"it {x[0]:>6,} {x[1]:6.1f} s"

    head = f"{'to 92.3 % dev':>20} {'to 94.5 % test':>20} {'final test':>10} {'wall':>7}"
    print(f"{'run':<18} {head}")
    for r in rows:
        print(
            f"{r['name']:<18} {cell(r['dev']):>20} {cell(r['test']):>20} "
            f"{r['final_test']:>10.2%} {r['wall']:>6.1f}s"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
