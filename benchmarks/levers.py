"""The effect of each speed lever on the s6lab trainer, measured in one run.

Each lever is one change to the default ``TrainConfig``. The levers are timed round-robin
(one window of ``--steps`` batches per lever per round, ``--rounds`` rounds) so that any
drift of the machine hits all of them alike; the table reports the median rate and its
ratio to the default. ``compile`` also reports the seconds its first window cost.
Evaluation batch sizes are timed the same way on the 10k test set.

    python benchmarks/levers.py --out benchmarks/results/levers.md

``--full`` also trains seed 0 to the end for the levers that change the numerics
(fp32, batch 256 with the learning rate doubled) to check accuracy parity.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

LEVERS: dict[str, dict] = {
    "default (bf16, channels_last, batch 128, foreach SGD)": {},
    "fp32": {"precision": "fp32"},
    "NCHW (channels_last off)": {"channels_last": False},
    "fp32 + NCHW": {"precision": "fp32", "channels_last": False},
    "batch 256, lr x2": {"batch_size": 256, "lr": 0.1},
    "batch 512, lr x4": {"batch_size": 512, "lr": 0.2},
    "fused SGD": {"fused": True},
    "torch.compile": {"compile": True},
}
PARITY = {"fp32": {"precision": "fp32"}, "batch 256, lr x2": {"batch_size": 256, "lr": 0.1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="batches of 128 images per window")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also train seed 0 fully for the numeric levers")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from s6lab import TrainConfig, evaluate, fit, get_model, load_mnist, seed_everything
    from s6lab.data import MNISTTensors

    data = load_mnist()
    images = args.steps * 128
    window = MNISTTensors(data.train.subset(images), data.test.subset(100))
    models, rates, first = {}, {name: [] for name in LEVERS}, {}
    for round_ in range(args.rounds + 1):  # round 0 warms up (and compiles)
        for name, overrides in LEVERS.items():
            if name not in models:
                seed_everything(0)
                models[name] = get_model("s6")
            t = time.perf_counter()
            h = fit(models[name], window, TrainConfig(epochs=1, **overrides), progress=False)
            if round_ == 0:
                first[name] = time.perf_counter() - t
            else:
                rates[name].append(images / h.epochs[0].train_seconds)
        print(f"round {round_} done", file=sys.stderr, flush=True)

    base = statistics.median(rates[next(iter(LEVERS))])
    lines = ["| lever | train img/s (median) | vs default | first window s |", "|---|---:|---:|---:|"]
    for name in LEVERS:
        rate = statistics.median(rates[name])
        lines.append(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {first[name]:.1f} |")

    model = models[next(iter(LEVERS))]
    eval_rates = {bs: [] for bs in (500, 2000, 10000)}
    for _ in range(args.rounds):
        for bs in eval_rates:
            t = time.perf_counter()
            evaluate(model, data.test, batch_size=bs)
            eval_rates[bs].append(len(data.test) / (time.perf_counter() - t))
    lines += ["", "| evaluation batch size | eval img/s (median) |", "|---:|---:|"]
    lines += [f"| {bs:,} | {statistics.median(r):,.0f} |" for bs, r in eval_rates.items()]

    if args.full:
        lines += ["", "| full run, seed 0, 15 epochs | best % | final % | last 3 epochs % |", "|---|---:|---:|---|"]
        for name, overrides in {"default": {}, **PARITY}.items():
            seed_everything(0)
            h = fit(get_model("s6"), data, TrainConfig(seed=0, **overrides), progress=False)
            lines.append(f"| {name} | {h.best_acc:.2f} | {h.final_acc:.2f} | "
                         f"{', '.join(f'{a:.2f}' for a in h.test_acc[-3:])} |")

    header = (f"Command: `python benchmarks/levers.py {' '.join(sys.argv[1:])}`\n\n"
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; windows of {args.steps} batches "
              f"({images:,} images), median of {args.rounds} round-robin rounds after one warm-up round.\n")
    text = header + "\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from s6lab._io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
