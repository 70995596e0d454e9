"""The effect of each speed lever on the s6lab trainer, measured in one run.

Two tables of training throughput on real MNIST, reference net:

* **ladder**: from the typical recipe's numerics (fp32, NCHW, nn.Dropout masks, batch 128)
  to the s6lab defaults, one lever added per row, so each row's ratio to the row above is
  that step's effect;
* **one off**: the s6lab defaults with one lever reverted (or one option added), so each
  ratio is what that lever is worth on top of all the others.

Every configuration runs in its own worker process (some levers, such as the allocator,
are process-wide), started and warmed up once; the parent then times them round-robin,
one window of ``--images`` training images per configuration per round, for ``--rounds``
rounds, so drift of the machine hits all alike. Reported: the median rate and its ratio.
``torch.compile`` also reports the seconds of its first (compiling) window.

Levers that measured no gain on every machine class tried left ``TrainConfig``
(``s6lab.train.RETIRED``) and live here, airbench-style, so this benchmark keeps measuring
them: in-place ReLU (`inplace_relu`), the fused optimizer kernel (`fused_optimizer`) and
``torch.compile`` of the training forward (``fit`` trains the compiled module). Levers tried only
here live here too: ``torch.compile`` of each BatchNorm+ReLU pair (`compile_bn_relu`) and the small
BatchNorms channels-first (`small_bn_nchw`). A row names them with the keys of `BENCHMARK_LEVERS`. The allocator
setting is timed once more over ``--processes`` fresh processes per setting, since its
effect differs from one process to the next. Evaluation is
timed the same way for several batch sizes and for ``torch.no_grad`` against
``torch.inference_mode``.

    python benchmarks/levers.py --out benchmarks/results/levers.md

``--full`` also trains the levers that change the numerics (fp32, the batch size, the
dropout masks, the OneCycle shape) to the end for ``--seeds`` and reports best / final
accuracy, the first epoch at >= 99.4% and the seconds to it, next to the defaults: the
accuracy-parity check. ``--parity-only`` runs only those, and ``--rows`` picks some of them
by a part of their name:

    python benchmarks/levers.py --parity-only --rows defaults "warm-up 10%" --seeds 3 4 5 6
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from _args import TRAIN_IMAGES, Parser, at_least, refuse, refuse_bad_environment, run_main, valid_seeds, writable
from _worker import WorkerProcess

#: the levers this benchmark applies itself: those that left TrainConfig (s6lab.train.RETIRED) and those tried only here
BENCHMARK_LEVERS = ("inplace_relu", "fused", "compile", "compile_bn_relu", "small_bn_nchw")

_GLIBC = {"retain_memory": False}
#: small_bn_nchw: BatchNorms with at most this many channels (the reference net's trans1 and trans2)
SMALL_BN = 16
#: layer 1's stock BatchNorm: the rungs and rows before the default computed it from patch statistics (session 16)
_STOCK_BN = {"first_bn_from_patches": False}
#: each ReLU in front of its max-pool, as built: the rungs before the trainer moved it behind (session 17)
_RELU_AS_BUILT = {"relu_after_pool": False}
#: each rung adds one lever to the rung above, so every rung before a lever's own pins it off
LADDER: dict[str, dict] = {
    "typical numerics: fp32, NCHW, nn.Dropout masks, batch 128": {
        "precision": "fp32", "channels_last": False, "fast_dropout": False, "batch_size": 128, "lr": 0.05,
        **_GLIBC, **_STOCK_BN, **_RELU_AS_BUILT},
    "+ channels_last": {"precision": "fp32", "fast_dropout": False, "batch_size": 128, "lr": 0.05, **_GLIBC,
                        **_STOCK_BN, **_RELU_AS_BUILT},
    "+ bf16 autocast": {"fast_dropout": False, "batch_size": 128, "lr": 0.05, **_GLIBC, **_STOCK_BN,
                        **_RELU_AS_BUILT},
    "+ integer-op dropout masks": {"batch_size": 128, "lr": 0.05, **_GLIBC, **_STOCK_BN, **_RELU_AS_BUILT},
    "+ batch 256, lr x2": {**_GLIBC, **_STOCK_BN, **_RELU_AS_BUILT},
    "+ retained malloc memory": {**_STOCK_BN, **_RELU_AS_BUILT},
    "+ layer 1's BatchNorm from patch statistics": {**_RELU_AS_BUILT},
    "+ each ReLU behind its max-pool (= s6lab defaults)": {},
}
ONE_OFF: dict[str, dict] = {
    "s6lab defaults": {},
    "fp32 (bf16 autocast off)": {"precision": "fp32"},
    "NCHW (channels_last off)": {"channels_last": False},
    "nn.Dropout masks (fast_dropout off)": {"fast_dropout": False},
    "batch 128, lr / 2": {"batch_size": 128, "lr": 0.05},
    "batch 512, lr x2": {"batch_size": 512, "lr": 0.2},
    "in-place ReLU (inplace_relu on)": {"inplace_relu": True},
    "glibc malloc defaults (retain_memory off)": {**_GLIBC},
    "fused SGD instead of foreach (fused on)": {"fused": True},
    # a compiled net's layer 1 does not fold (patch_batchnorm.first_conv_bn): these two rows lose the patch
    # statistics too, said here rather than left to the auto setting
    "torch.compile (compile on)": {"compile": True, **_STOCK_BN, **_RELU_AS_BUILT},
    "torch.compile of each BatchNorm+ReLU pair only (compile_bn_relu)": {"compile_bn_relu": True, **_STOCK_BN,
                                                                          **_RELU_AS_BUILT},
    # until session 17 the ReLU behind the pool was this benchmark's own lever, and this row turned it on
    "each ReLU in front of its max-pool, as built: 4x the elements (relu_after_pool off)": {**_RELU_AS_BUILT},
    # session 17: trans1's 8-channel BatchNorm backward is 9-11x slower channels-last than channels-first on the
    # AVX-512 VM (make bench-bn-layout; channels-last BatchNorm vectorises over channels)
    f"BatchNorms of {SMALL_BN} channels or fewer in NCHW inside the channels-last net (small_bn_nchw)":
        {"small_bn_nchw": True},
    # until session 15 the defaults had the stock BatchNorm and this row turned the patch statistics on
    "layer 1's stock BatchNorm instead of its input's 3x3 patch statistics (first_bn_from_patches off)":
        {**_STOCK_BN},
}
#: the allocator setting is per process and so is its effect: timed over fresh processes
ALLOCATOR: dict[str, dict] = {
    "freed memory kept (retain_memory on, default)": {},
    "glibc malloc defaults (retain_memory off)": {**_GLIBC},
}
#: trained in full with layer 1's stock BatchNorm, the defaults until session 16 (levers-full.md was recorded so):
#: pinned, so that recorded runs stay their row
PARITY: dict[str, dict] = {
    "s6lab defaults": {**_STOCK_BN},
    "fp32": {"precision": "fp32", **_STOCK_BN},
    "batch 128, lr / 2": {"batch_size": 128, "lr": 0.05, **_STOCK_BN},
    "batch 512, lr x2": {"batch_size": 512, "lr": 0.2, **_STOCK_BN},
    "nn.Dropout masks": {"fast_dropout": False, **_STOCK_BN},
    "OneCycle warm-up 10% of steps (default 20%)": {"warmup": 0.1, **_STOCK_BN},
    "OneCycle warm-up 30% of steps": {"warmup": 0.3, **_STOCK_BN},
    "OneCycle over 10 epochs (10-epoch run)": {"epochs": 10, **_STOCK_BN},
}
#: where the parity runs are kept (`--parity-runs`): one folder per row, resumed when the benchmark runs again
PARITY_RUNS = Path("results/levers-parity")
EVAL_BATCH_SIZES = (250, 500, 1000, 2000, 10000)
#: rows that measure bf16 against fp32: meaningless (and emulated, many times slower) without native bf16
BF16_ROWS = frozenset({"+ bf16 autocast", "fp32 (bf16 autocast off)", "fp32"})


def without_bf16_rows(rows: dict[str, dict], native: bool) -> tuple[dict[str, dict], list[str]]:
    """``rows`` minus the bf16 rows where bf16 is not native, and a note naming what was skipped."""
    if native:
        return rows, []
    skipped = [name for name in rows if name in BF16_ROWS]
    kept = {name: overrides for name, overrides in rows.items() if name not in BF16_ROWS}
    return kept, [f"*{name}: bf16 not supported here (no native bf16): skipped*" for name in skipped]


@contextmanager
def inplace_relu(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Every ``nn.ReLU`` of ``model`` in-place inside the block, then each one restored (also on error).

    Saves writing a fresh activation tensor per layer; autograd refuses (it does not silently
    miscompute) where backward would still need the overwritten tensor.
    """
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    saved = [m.inplace for m in relus]
    try:
        if enabled:
            for m in relus:
                m.inplace = True
        yield
    finally:
        for m, flag in zip(relus, saved):
            m.inplace = flag


@contextmanager
def fused_optimizer(enabled: bool = True) -> Iterator[None]:
    """``fit`` builds its optimizer with torch's fused kernel instead of ``foreach`` inside the block."""
    import s6lab.train

    make = s6lab.train.make_optimizer

    def fused(model, config):
        optimizer = make(model, config)
        group = optimizer.param_groups[0]
        return type(optimizer)(model.parameters(), **{**{k: v for k, v in group.items() if k != "params"},
                                                      "foreach": None, "fused": True})

    s6lab.train.make_optimizer = fused if enabled else make
    try:
        yield
    finally:
        s6lab.train.make_optimizer = make


def compile_bn_relu(model: torch.nn.Module) -> int:
    """Each block's BatchNorm and the ReLU right after it become one ``torch.compile``d module (Inductor
    fuses the two memory passes into one kernel, forward and backward); returns how many pairs."""
    pairs = 0
    for block in list(model.modules()):  # the blocks as they are now, not the compiled pairs added below
        names = list(block._modules)
        for bn, relu in zip(names, names[1:]):
            if isinstance(block._modules[bn], torch.nn.BatchNorm2d) and isinstance(block._modules[relu], torch.nn.ReLU):
                setattr(block, bn, torch.compile(torch.nn.Sequential(block._modules[bn], block._modules[relu])))
                setattr(block, relu, torch.nn.Identity())
                pairs += 1
    return pairs


def small_bn_nchw(model: torch.nn.Module, most: int = SMALL_BN) -> int:
    """Each BatchNorm2d with at most ``most`` channels normalises a channels-first (NCHW) copy of its input and
    hands back a channels-last output; returns how many.

    PyTorch's channels-last BatchNorm kernels on a CPU vectorise over the channels, so 8 channels leave most of an
    AVX-512 register empty: on the Intel Xeon VM (AVX-512 bf16) the backward of a (256, 8, 12, 12) batch took
    2.63 ms (fp32) and 2.46 ms (bf16) channels-last against 0.29 and 0.23 ms channels-first (make bench-bn-layout,
    benchmarks/results/bn-layout-avx512-bf16.md), for two copies of 295k values each way; in the whole step
    1.01x and 1.02x (make bench-fusion, session 17). Exact in value up to the summation order of the
    statistics. Hooks still fire: only ``forward`` changes. The output keeps the input's memory format.
    """
    def forward(self, x):
        out = type(self).forward(self, x.contiguous())
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else out

    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and module.num_features <= most:
            module.forward = forward.__get__(module)
            changed += 1
    return changed


def train_window(model, window, overrides: dict):
    """One ``fit`` epoch over ``window`` with ``overrides``: TrainConfig fields, and the levers of
    `BENCHMARK_LEVERS` applied here (``compile``: ``fit`` trains the compiled module)."""
    from s6lab import TrainConfig, fit

    own = {k: overrides.get(k, False) for k in BENCHMARK_LEVERS}
    config = TrainConfig(epochs=1, **{k: v for k, v in overrides.items() if k not in BENCHMARK_LEVERS})
    with inplace_relu(model, own["inplace_relu"]), fused_optimizer(own["fused"]):
        return fit(model, window, config, progress=False)


def worker() -> None:
    """Child process: build the model for one config, then time one window per request."""
    try:
        overrides, images = json.loads(sys.argv[2]), int(sys.argv[3])
    except (IndexError, ValueError):
        refuse("--worker is internal (each configuration's process, started by this benchmark); run the benchmark "
               "without it")
    from s6lab import get_model, load_mnist, seed_everything
    from s6lab.data import MNISTTensors

    data = load_mnist()
    window = MNISTTensors(data.train.subset(images), data.test.subset(100))
    seed_everything(0)
    model = get_model("s6")
    if overrides.get("compile_bn_relu"):
        compile_bn_relu(model)
    if overrides.get("small_bn_nchw"):
        small_bn_nchw(model)
    trained = torch.compile(model) if overrides.get("compile") else model  # shares model's parameters
    for line in sys.stdin:
        if line.strip() == "eval":
            print(json.dumps(eval_rates(model, data.test)), flush=True)
            continue
        t = time.perf_counter()
        h = train_window(trained, window, overrides)
        print(json.dumps({"rate": images / h.epochs[0].train_seconds, "wall": time.perf_counter() - t}),
              flush=True)


def eval_rates(model, test) -> dict:
    """Evaluation img/s of ``evaluate`` per batch size; and one loop under no_grad vs inference_mode."""
    from s6lab import evaluate

    out = {}
    for bs in EVAL_BATCH_SIZES:
        t = time.perf_counter()
        evaluate(model, test, batch_size=bs)
        out[str(bs)] = len(test) / (time.perf_counter() - t)
    model.eval()
    x = test.images.contiguous(memory_format=torch.channels_last)
    folded = bn_folded(model)
    for mode, context, net in (("no_grad", torch.no_grad, model), ("inference_mode", torch.inference_mode, model),
                               ("BN folded", torch.inference_mode, folded)):
        t = time.perf_counter()
        with context():
            for start in range(0, len(test), 500):
                net(x[start:start + 500]).argmax(1)
        out[f"{mode} 500"] = len(test) / (time.perf_counter() - t)
    return out


def bn_folded(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` with every block's BatchNorm folded into its conv
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one memory pass fewer per block at inference."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for block in folded.modules():
        if isinstance(getattr(block, "conv", None), torch.nn.Conv2d) and isinstance(getattr(block, "bn", None),
                                                                                    torch.nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            del block.bn
    return folded


def start_worker(overrides: dict, images: int) -> WorkerProcess:
    """The worker process of one configuration (it warms up on the first request)."""
    return WorkerProcess([__file__, "--worker", json.dumps(overrides), str(images)], json.dumps(overrides))


def table(title: str, configs: dict, rates: dict, first: dict, chained: bool) -> list[str]:
    """One row per configuration: its median rate, and its ratio to the row above (``chained``) or to the
    first row, both as a ratio of medians and round by round (the rounds are taken in turns, so round
    ``i`` of two rows ran under the same conditions: the per-round ratios' median and range say whether
    a small gain is more than this machine's drift)."""
    names = list(configs)
    base = statistics.median(rates[names[0]])
    head = "vs row above" if chained else "vs s6lab defaults"
    lines = [f"| {title} | train img/s (median) | range over rounds | {head} | {head}, round by round "
             "(median, range) | vs first row | first window s |", "|---|---:|---:|---:|---:|---:|---:|"]
    previous = base
    for i, name in enumerate(names):
        rate = statistics.median(rates[name])
        step = rate / previous if chained else rate / base
        against = rates[names[i - 1] if chained and i else names[0]]
        paired = [a / b for a, b in zip(rates[name], against)]
        paired_text = f"{statistics.median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}x)"
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        lines.append(f"| {name} | {rate:,.0f} | {spread} | {step:.2f}x | {paired_text} | {rate / base:.2f}x | "
                     f"{first[name]:.1f} |")
        previous = rate
    return lines


def allocator(processes: int, images: int) -> list[str]:
    """Each allocator setting in ``processes`` fresh worker processes, alternating.

    glibc settles into a different pattern in different processes, so one process per
    setting (as in the tables above) says little; the slowest process says the most.
    """
    rates: dict[str, list[float]] = {name: [] for name in ALLOCATOR}
    for i in range(processes):
        for name, overrides in ALLOCATOR.items():
            worker = start_worker(overrides, images)
            try:
                worker.ask("window")  # warm-up window
                rates[name].append(statistics.median(worker.ask("window")["rate"] for _ in range(3)))
            finally:
                worker.close()
        print(f"allocator: process {i + 1}/{processes} of each done", file=sys.stderr, flush=True)
    base = statistics.median(rates[next(iter(ALLOCATOR))])
    lines = [f"| allocator: {processes} fresh processes each, median of 3 windows per process | "
             "train img/s (median) | slowest process | fastest process | vs first row |",
             "|---|---:|---:|---:|---:|"]
    for name, values in rates.items():
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} | "
                     f"{statistics.median(values) / base:.2f}x |")
    return lines


def parity(seeds: list[int], rows: dict[str, dict] = PARITY, runs: Path = PARITY_RUNS) -> list[str]:
    """Each numerics-changing lever trained to the end per seed: accuracy and time to 99.4%.

    The runs are `s6lab.compare`'s (one after another, not round-robin), kept under ``runs`` with one folder
    per row: the table aggregates them the way a comparison does, and a stopped benchmark resumes where it
    stopped. Seconds to 99.4% are each run's own wall clock (training plus evaluation) up to the end of its
    first epoch at >= 99.4%.
    """
    from s6lab import TrainConfig
    from s6lab.check import TARGET_ACC
    from s6lab.comparison import compare

    lines = [f"| full run, {TrainConfig().epochs} epochs unless named, seeds {' '.join(map(str, seeds))} | "
             f"best % (mean ± sd) | final % (mean ± sd) | first epoch >= {TARGET_ACC}% per seed | "
             f"s to {TARGET_ACC}% per seed |",
             "|---|---:|---:|---|---|"]
    for name, overrides in rows.items():
        folder = runs / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        recipe = {k: v for k, v in overrides.items() if k != "epochs"}
        row = compare(["s6"], seeds=seeds, epochs=overrides.get("epochs"), out=folder, recipe=recipe,
                      progress=False).rows[0]
        print(f"parity {name}: best {row.best}", file=sys.stderr, flush=True)
        first = ", ".join(str(e or "-") for e in row.first_epoch)
        times = [run.history.seconds_to_reach(TARGET_ACC) for run in row.runs]
        to_target = ", ".join("-" if t is None else f"{t:.0f}" for t in times)
        if None not in times:
            to_target += f" (median {statistics.median(times):.0f})"
        lines.append(f"| {name} | {row.best} | {row.final} | {first} | {to_target} |")
    return lines


def round_robin(workers: dict, rounds: int) -> tuple[dict, dict]:
    """One window per worker per round, ``rounds`` times after a warm-up round (which also compiles):
    each worker's train img/s per round, and its warm-up round's wall seconds."""
    rates: dict = {key: [] for key in workers}
    first: dict = {}
    for round_ in range(rounds + 1):
        for key, w in workers.items():
            result = w.ask("window")
            if round_ == 0:
                first[key] = result["wall"]
            else:
                rates[key].append(result["rate"])
        print(f"round {round_} done", file=sys.stderr, flush=True)
    return rates, first


def throughput_tables(args: argparse.Namespace, native: bool) -> list[str]:
    """The ladder, one-off, evaluation and allocator tables (bf16 rows only where bf16 is native)."""
    if args.one_off:  # only the defaults and the named one-off rows: no ladder, evaluation or allocator
        one_off, one_off_notes = without_bf16_rows(args.one_off, native)
        return one_off_tables(args, one_off) + one_off_notes
    ladder, ladder_notes = without_bf16_rows(LADDER, native)
    one_off, one_off_notes = without_bf16_rows(ONE_OFF, native)
    configs = {**{("ladder", k): v for k, v in ladder.items()}, **{("one off", k): v for k, v in one_off.items()}}
    workers = {key: start_worker(overrides, args.images) for key, overrides in configs.items()}
    try:
        rates, first = round_robin(workers, args.rounds)
        default = workers[("one off", "s6lab defaults")]
        evals = [default.ask("eval") for _ in range(args.rounds)]
    finally:
        for w in workers.values():
            w.close()

    def part(kind: str) -> tuple[dict, dict]:
        return ({k: v for (g, k), v in rates.items() if g == kind}, {k: v for (g, k), v in first.items() if g == kind})

    lines = table("ladder: one lever added per row", ladder, *part("ladder"), chained=True) + ladder_notes
    lines += [""] + table("one lever off (or on) from the s6lab defaults", one_off, *part("one off"),
                          chained=False) + one_off_notes
    lines += ["", "| evaluation (s6lab defaults, 10k test images) | eval img/s (median) |", "|---|---:|"]
    lines += [f"| s6lab.evaluate, batch {bs:,} | {statistics.median(e[str(bs)] for e in evals):,.0f} |"
              for bs in EVAL_BATCH_SIZES]
    lines += [f"| bare loop under {mode}, batch 500 | {statistics.median(e[mode + ' 500'] for e in evals):,.0f} |"
              for mode in ("no_grad", "inference_mode")]
    lines += [f"| bare loop, BatchNorm folded into the convs, inference_mode, batch 500 | "
              f"{statistics.median(e['BN folded 500'] for e in evals):,.0f} |"]
    lines += [""] + allocator(args.processes, args.images)
    return lines


def one_off_tables(args: argparse.Namespace, rows: dict[str, dict]) -> list[str]:
    """Only the one-off table, for the rows of ``--one-off`` (beside the defaults), round-robin as above."""
    configs = {"s6lab defaults": {}, **rows}
    workers = {name: start_worker(overrides, args.images) for name, overrides in configs.items()}
    try:
        rates, first = round_robin(workers, args.rounds)
    finally:
        for w in workers.values():
            w.close()
    return table("one lever off (or on) from the s6lab defaults", configs, rates, first, chained=False)


def pick_rows(wanted: list[str] | None, parser: argparse.ArgumentParser, table: dict[str, dict] = PARITY,
              flag: str = "--rows") -> dict[str, dict]:
    """The rows of ``table`` named by ``wanted`` (each a case-insensitive part of one row's name)."""
    if not wanted:
        return table
    picked = {}
    for part in wanted:
        hits = [name for name in table if part.lower() in name.lower()]
        if len(hits) != 1:
            kind = "parity" if table is PARITY else "one-off"
            parser.error(f"{flag} {part!r} matches {len(hits)} {kind} rows; name one of: {'; '.join(table)}")
        picked[hits[0]] = table[hits[0]]
    return picked


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5120, help="training images per timed window")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--processes", type=int, default=7, help="fresh processes per allocator setting")
    parser.add_argument("--full", action="store_true", help="also the accuracy-parity runs (slow)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the parity runs")
    parser.add_argument("--parity-only", action="store_true", help="only the accuracy-parity runs")
    parser.add_argument("--rows", nargs="+", metavar="PART", help="parity rows whose name contains PART")
    parser.add_argument("--one-off", nargs="+", metavar="PART",
                        help="only these one-off rows (name contains PART) beside the defaults; no ladder, "
                             "evaluation or allocator tables")
    parser.add_argument("--parity-runs", type=Path, default=PARITY_RUNS,
                        help="folder of the parity runs, one per row; kept, so a stopped run resumes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    at_least(parser, 1, args, "--images", "--rounds", "--processes")
    if args.images > TRAIN_IMAGES:
        parser.error(f"--images must be at most {TRAIN_IMAGES:,} (MNIST's training images), got {args.images:,}")
    picked = pick_rows(args.rows, parser)
    if args.one_off:
        args.one_off = {k: v for k, v in pick_rows(args.one_off, parser, ONE_OFF, "--one-off").items()
                        if k != "s6lab defaults"}
    if args.full or args.parity_only:
        valid_seeds(parser, "--seeds", args.seeds)
        writable(parser, args.parity_runs, "--parity-runs", folder=True)
    if args.out:
        writable(parser, args.out)

    from s6lab.hardware import describe_machine, native_bf16

    refuse_bad_environment()

    native = native_bf16(torch.device("cpu"))
    rows, parity_notes = without_bf16_rows(picked, native)
    lines = [] if args.parity_only else throughput_tables(args, native)
    if args.full or args.parity_only:
        lines += ([""] if lines else []) + parity(args.seeds, rows, args.parity_runs) + parity_notes

    how = ("parity runs only, one after another" if args.parity_only else
           f"one worker process per configuration; windows of {args.images:,} training images, median of "
           f"{args.rounds} round-robin rounds after one warm-up round")
    from s6lab.hardware import recorded_command
    header = (f"Command: `{recorded_command('benchmarks/levers.py', sys.argv[1:])}`\n\n"
              f"Machine: {describe_machine()}; {how}.\n")
    text = header + "\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from s6lab._io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
    else:
        run_main(main)
