"""Training and evaluation throughput: the s6lab trainer against the typical loop.

The typical loop is what most course notebooks do: ``torchvision.datasets.MNIST`` with
per-sample ``RandomRotation``/``ToTensor``/``Normalize``, a ``DataLoader`` (batch 128,
``num_workers`` 0 and 2), eager fp32, NCHW. The s6lab trainer uses its defaults.
Every setting runs in its own worker process (clean peak memory, no warm caches shared),
all in one invocation of this script, on the same model and seed. The workers are built
and warmed up once, then timed round-robin, one window per setting per round, so drift
of the machine hits all settings alike; the ratio is also reported round by round.

Reported per setting: training images/s (median over ``--repeats`` rounds, and its range),
seconds per epoch (60k / that rate), evaluation images/s, peak resident memory of the
process, achieved GFLOP/s (3 x 2 x forward multiply-adds per training image) and that
as a percentage of this CPU's measured matmul peak (fp32, and bf16 where the CPU has it
natively, measured in the same run; emulated bf16 is reported as not supported and skipped).
``--device cuda`` runs every setting on a GPU (peak memory then also reports
``torch.cuda.max_memory_allocated``). The typical loop uses ``nn.Dropout``'s own masks
(s6lab's fast dropout path is switched off for it). ``--full`` also trains s6lab (every
``--seeds`` seed, with ``--recipe``) and the faster typical setting (the first seed) and reports
wall-clock seconds to the first epoch at >= 99.4% test accuracy (full 10k test set), training
plus evaluation from the first epoch's start, start-up excluded (for s6lab,
``History.seconds_to_reach``); those runs stop there.

    python benchmarks/throughput.py                 # throughput only, a few minutes
    python benchmarks/throughput.py --full --seeds 0 1 2
    python benchmarks/throughput.py --full --recipe s6-speedrun --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _args import TRAIN_IMAGES, Parser, at_least, refuse_bad_environment, run_main, valid_seeds, writable
from _worker import WorkerProcess

SETTINGS = ("typical-w0", "typical-w2", "s6lab")


def forward_macs(model_name: str) -> int:
    from s6lab import get_model, summary

    return summary(get_model(model_name)).total_mult_adds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """Achieved GFLOP/s of a large square matmul: this device's practical peak."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def typical_loaders(workers: int, batch_size: int = 128, eval_images: int | None = None):
    from torchvision import transforms

    from s6lab.data import MNIST_MEAN, MNIST_STD, mnist_dataset

    train_tf = transforms.Compose([transforms.RandomRotation(7.0, fill=0), transforms.ToTensor(),
                                   transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    kw = dict(num_workers=workers, persistent_workers=workers > 0)
    train = torch.utils.data.DataLoader(mnist_dataset(train=True, transform=train_tf),
                                        batch_size=batch_size, shuffle=True, **kw)
    test_set = mnist_dataset(train=False, transform=test_tf)
    if eval_images is not None:  # the first N test images (a quick smoke run)
        test_set = torch.utils.data.Subset(test_set, range(min(eval_images, len(test_set))))
    test = torch.utils.data.DataLoader(test_set, batch_size=1000, **kw)
    return train, test


class TypicalLoop:
    """The course-notebook loop: DataLoader batches of per-sample transforms, eager fp32, NCHW."""

    def __init__(self, workers: int, steps: int, seed: int, device: torch.device,
                 eval_images: int | None = None) -> None:
        from s6lab import get_model, seed_everything

        seed_everything(seed)
        self.steps = steps
        self.device = device
        self.model = get_model("s6").to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.train, self.test = typical_loaders(workers, eval_images=eval_images)
        self.batches = iter(self.train)
        for _ in range(5):  # warm-up (and DataLoader worker start-up)
            self.step()

    def step(self) -> int:
        try:
            x, y = next(self.batches)
        except StopIteration:
            self.batches = iter(self.train)
            x, y = next(self.batches)
        self.model.train()
        x, y = x.to(self.device), y.to(self.device)
        loss = F.nll_loss(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return y.numel()

    def train_window(self) -> float:
        sync(self.device)
        t, n = time.perf_counter(), 0
        for _ in range(self.steps):
            n += self.step()
        sync(self.device)
        return n / (time.perf_counter() - t)

    def eval_pass(self) -> float:
        self.model.eval()
        t, n = time.perf_counter(), 0
        with torch.no_grad():
            for x, _ in self.test:
                self.model(x.to(self.device))
                n += x.shape[0]
        sync(self.device)
        return n / (time.perf_counter() - t)


class S6labTrainer:
    """The s6lab trainer with a registered recipe (default ``s6``, the library's defaults): each
    window is one ``fit`` over ``steps`` batches."""

    def __init__(self, steps: int, seed: int, device: torch.device, recipe: str = "s6",
                 eval_images: int | None = None) -> None:
        from s6lab import fit, get_recipe, load_mnist
        from s6lab.data import MNISTTensors

        self.data = load_mnist()
        self.test = self.data.test if eval_images is None else self.data.test.subset(eval_images)
        self.device = device
        chosen = get_recipe(recipe, seed=seed, device=str(device))
        self.config = dataclasses.replace(chosen.train, epochs=1)
        self.images = steps * self.config.batch_size
        self.window = MNISTTensors(self.data.train.subset(self.images),
                                   self.data.test.subset(self.config.eval_batch_size))
        self.model = chosen.build()  # seeded initialisation
        # epochs=1 per window: fit() runs exactly the trainer's step (augmentation, bf16, channels_last)
        warm_up = MNISTTensors(self.data.train.subset(5 * self.config.batch_size), self.window.test)
        fit(self.model, warm_up, self.config, progress=False)

    def train_window(self) -> float:
        from s6lab import fit

        history = fit(self.model, self.window, self.config, progress=False)
        return self.images / history.epochs[0].train_seconds

    def eval_pass(self) -> float:
        from s6lab import evaluate

        t = time.perf_counter()
        evaluate(self.model, self.test, batch_size=self.config.eval_batch_size,
                 device=self.device)  # ends on the CPU: synced
        return len(self.test) / (time.perf_counter() - t)


def full_run_typical(workers: int, seed: int, epochs: int, target: float, device: torch.device) -> dict:
    from s6lab import get_model, seed_everything
    from s6lab.train import TrainConfig, lr_at

    seed_everything(seed)
    model = get_model("s6").to(device)
    cfg = TrainConfig(seed=seed, epochs=epochs, batch_size=128, lr=0.05)  # the schedule, at batch 128's lr
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    train, test = typical_loaders(workers)
    start, step, reached, accs = time.perf_counter(), 0, None, []
    for _ in range(epochs):
        model.train()
        for x, y in train:
            x, y = x.to(device), y.to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, len(train), cfg)
            loss = F.nll_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        accs.append(100 * correct / len(test.dataset))
        if accs[-1] >= target:  # time to target is all this measures: stop there
            reached = time.perf_counter() - start
            break
    return {"seconds_to_target": reached, "test_acc": accs}


def full_run_s6lab(seed: int, target: float, device: torch.device, recipe: str = "s6") -> dict:
    from s6lab import fit, get_recipe, load_mnist

    class Reached(Exception):
        pass

    data = load_mnist()
    chosen = get_recipe(recipe, seed=seed, device=str(device))
    accs: list[float] = []

    def on_epoch(history, _):
        accs.append(history.epochs[-1].test_acc)
        seconds = history.seconds_to_reach(target)  # s6lab's one definition (levers.py reports it too)
        if seconds is not None:  # time to target is all this measures: stop there
            raise Reached(seconds)

    try:
        fit(chosen.build(), data, chosen.train, progress=False, on_epoch=on_epoch)
    except Reached as done:
        return {"seconds_to_target": done.args[0], "test_acc": accs}
    return {"seconds_to_target": None, "test_acc": accs}


def child(args: argparse.Namespace) -> None:
    """Worker process for one setting: build it, warm it up, then answer the parent's requests.

    One JSON line per request: ``train`` (img/s of one window of ``--steps`` batches),
    ``eval`` (img/s of one pass over the test set), ``full`` (the runs to 99.4%),
    ``stats`` (peak memory of this process).
    """
    from contextlib import nullcontext

    from s6lab.check import TARGET_ACC
    from s6lab.dropout import fast_dropout_enabled

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    typical = args.only.startswith("typical")
    # the typical model keeps nn.Dropout's own bernoulli_ masks
    with fast_dropout_enabled(False) if typical else nullcontext():
        if typical:
            workers = int(args.only.removeprefix("typical-w"))
            setting = TypicalLoop(workers, args.steps, args.seed, device, args.eval_images)
        else:
            setting = S6labTrainer(args.steps, args.seed, device, args.recipe, args.eval_images)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            request = line.strip()
            if request == "train":
                answer = {"ips": setting.train_window()}
            elif request == "eval":
                answer = {"ips": setting.eval_pass()}
            elif request == "full" and typical:
                answer = {"full": [full_run_typical(workers, s, args.epochs, TARGET_ACC, device)
                                   for s in args.seeds[:1]]}
            elif request == "full":
                answer = {"full": [full_run_s6lab(s, TARGET_ACC, device, args.recipe) for s in args.seeds]}
            elif request == "stats":
                answer = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
                if device.type == "cuda":
                    answer["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            else:
                raise SystemExit(f"unknown request {request!r}")
            print(json.dumps(answer), flush=True)


def start_worker(setting: str, passthrough: list[str]) -> WorkerProcess:
    """The worker process of one setting; it answers ``{"ready": true}`` once it is built and warmed up."""
    return WorkerProcess([__file__, "--only", setting, *passthrough], setting)


def measure(workers: dict[str, WorkerProcess], repeats: int, full: bool, eval_passes: int = 3) -> dict:
    """Round-robin: one training window per setting per round, so drift hits all alike."""
    results: dict = {s: {"train_ips_runs": [], "eval_ips_runs": []} for s in workers}
    for round_ in range(repeats):
        for setting, worker in workers.items():
            results[setting]["train_ips_runs"].append(worker.ask("train")["ips"])
        print(f"round {round_ + 1}/{repeats} done", file=sys.stderr, flush=True)
    for _ in range(eval_passes):  # evaluation: the median of (three) passes over the test set
        for setting, worker in workers.items():
            results[setting]["eval_ips_runs"].append(worker.ask("eval")["ips"])
    for setting in workers:
        r = results[setting]
        r["train_ips"] = statistics.median(r["train_ips_runs"])
        r["eval_ips"] = statistics.median(r["eval_ips_runs"])
    typical = [s for s in workers if s.startswith("typical")]
    faster_typical = max(typical, key=lambda s: results[s]["train_ips"]) if typical else None
    for setting, worker in workers.items():
        r = results[setting]
        # one setting at a time, the others idle; of the typical loops only the faster one (the baseline)
        if full and (not setting.startswith("typical") or setting == faster_typical):
            print(f"training {setting} to 99.4% ...", file=sys.stderr, flush=True)
            r.update(worker.ask("full"))
        r.update(worker.ask("stats"))
    return results


def round_ratios(results: dict) -> list[float]:
    """s6lab's rate over the faster typical setting's, per round."""
    typical = [s for s in SETTINGS if s.startswith("typical")]
    runs = zip(results["s6lab"]["train_ips_runs"], *(results[s]["train_ips_runs"] for s in typical))
    return [ours / max(theirs) for ours, *theirs in runs]


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu, {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}"


def memory(r: dict) -> str:
    text = f"{r['peak_rss_mb']:,.0f}"
    return text + (f" (GPU {r['peak_cuda_mb']:,.0f})" if "peak_cuda_mb" in r else "")


def bf16_share(gflops: float, peak: float | None) -> str:
    """Achieved GFLOP/s as a share of the bf16 peak, or why there is none."""
    return "not supported here" if peak is None else f"{100 * gflops / peak:.0f}%"


def format_peaks(peaks: dict) -> str:
    bf16 = "bf16 not supported here (no native bf16: skipped)" if peaks["bf16"] is None else \
        f"{peaks['bf16']:.0f} GFLOP/s bf16"
    return f"{peaks['fp32']:.0f} GFLOP/s fp32, {bf16}"


def table(results: dict, macs: int, peaks: dict) -> str:
    flop_per_image = 3 * 2 * macs
    base = max(results[s]["train_ips"] for s in SETTINGS if s.startswith("typical"))
    rows = ["| setting | train img/s | range over rounds | s/epoch | vs faster typical | eval img/s | "
            "peak RSS MB | GFLOP/s | % of fp32 peak | % of bf16 peak | s to 99.4% (per seed) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in SETTINGS:
        r = results[s]
        gflops = r["train_ips"] * flop_per_image / 1e9
        full = r.get("full")
        to_target = "-"
        if full:
            times = [f["seconds_to_target"] for f in full]
            to_target = ", ".join("not reached" if t is None else f"{t:.0f}" for t in times)
            if len(times) > 1 and None not in times:
                to_target += f" (median {statistics.median(times):.0f})"
        spread = f"{min(r['train_ips_runs']):,.0f}-{max(r['train_ips_runs']):,.0f}"
        rows.append(f"| {s} | {r['train_ips']:,.0f} | {spread} | {60000 / r['train_ips']:.1f} | "
                    f"{r['train_ips'] / base:.2f}x | {r['eval_ips']:,.0f} | {memory(r)} | "
                    f"{gflops:.1f} | {100 * gflops / peaks['fp32']:.0f}% | "
                    f"{bf16_share(gflops, peaks['bf16'])} | "
                    f"{to_target} |")
    ratios = round_ratios(results)
    rows.append(f"\ns6lab over the faster typical setting, round by round: median {statistics.median(ratios):.2f}x, "
                f"range {min(ratios):.2f}x-{max(ratios):.2f}x over {len(ratios)} rounds.")
    return "\n".join(rows)


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per timed window")
    parser.add_argument("--repeats", type=int, default=7, help="round-robin rounds; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-passes", type=int, default=3, help="passes over the test set; the median is reported")
    parser.add_argument("--full", action="store_true", help="also train to the end: time to 99.4%%")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for --full")
    parser.add_argument("--epochs", type=int, default=15, help="epochs for the typical loop in --full")
    parser.add_argument("--recipe", default="s6", help="registered recipe of the s6lab setting (windows and --full)")
    parser.add_argument("--eval-images", type=int, help="time evaluation on the first N test images (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (all settings run there)")
    parser.add_argument("--out", type=Path, help="write the table and raw JSON here (markdown)")
    parser.add_argument("--only", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    at_least(parser, 1, args, "--steps", "--repeats", "--eval-passes", "--eval-images", "--epochs")
    if args.eval_images is not None and args.eval_images > 10_000:
        parser.error(f"--eval-images must be at most 10,000 (MNIST's test images), got {args.eval_images:,}")
    valid_seeds(parser, "--seed", [args.seed])
    valid_seeds(parser, "--seeds", args.seeds)
    if args.out:
        writable(parser, args.out)
    from s6lab import get_recipe
    from s6lab.errors import ConfigError, UnknownNameError

    refuse_bad_environment()

    try:
        batch_size = get_recipe(args.recipe).train.batch_size
    except (ConfigError, UnknownNameError) as e:
        parser.error(e.args[0])
    if args.steps * batch_size > TRAIN_IMAGES:  # a window longer than the training set would be cut short
        parser.error(f"--steps must be at most {TRAIN_IMAGES // batch_size} (batches of {batch_size} in MNIST's "
                     f"{TRAIN_IMAGES:,} training images), got {args.steps}")
    from s6lab.data import ensure_mnist
    from s6lab.train import resolve_device

    ensure_mnist()
    device = resolve_device(args.device)  # CUDA asked for and missing: a ConfigError, one line (run_main)
    from s6lab.hardware import describe_machine, native_bf16

    # emulated bf16 takes minutes for one matmul and is not a peak anyone trains at: skip it
    peaks = {"fp32": matmul_peak(torch.float32, device),
             "bf16": matmul_peak(torch.bfloat16, device) if native_bf16(device) else None}
    macs = forward_macs("s6")
    passthrough = ["--device", str(device), "--steps", str(args.steps), "--seed", str(args.seed),
                   "--recipe", args.recipe, *(["--eval-images", str(args.eval_images)] if args.eval_images else []),
                   "--epochs", str(args.epochs), "--seeds", *map(str, args.seeds)]
    workers: dict[str, WorkerProcess] = {}
    try:
        print(f"starting {', '.join(SETTINGS)} ...", file=sys.stderr, flush=True)
        for setting in SETTINGS:  # all at once: building and warming up are not timed
            workers[setting] = start_worker(setting, passthrough)
        for worker in workers.values():
            worker.read()  # ready
        results = measure(workers, args.repeats, args.full, args.eval_passes)
    finally:
        for worker in workers.values():
            worker.close()
    text = table(results, macs, peaks)
    from s6lab.hardware import recorded_command
    header = (f"Command: `{recorded_command('benchmarks/throughput.py', sys.argv[1:])}`\n\n"
              f"Machine: {describe_machine(device)}; device {describe(device)}; "
              f"measured matmul peak {format_peaks(peaks)}; "
              f"model s6 (s6lab setting: recipe {args.recipe}), {macs / 1e6:.2f} M forward multiply-adds per image "
              f"({3 * 2 * macs / 1e6:.0f} MFLOP per training image).\n"
              f"One worker process per setting, timed round-robin: train img/s is the median of {args.repeats} "
              f"rounds of one window of {args.steps} batches each, eval img/s of {args.eval_passes} passes "
              f"over {args.eval_images or 10000:,} test images; "
              "peak RSS is the measuring process only (DataLoader workers excluded).\n")
    print(header)
    print(text)
    if args.out:
        from s6lab._io import atomic_write_text

        raw = json.dumps({"peaks": peaks, "macs": macs, "results": results}, indent=1)
        atomic_write_text(args.out, header + "\n" + text + "\n\n<details><summary>raw</summary>\n\n```json\n"
                          + raw + "\n```\n</details>\n")
    if not math.isfinite(results["s6lab"]["train_ips"]):
        raise SystemExit("no measurement")


if __name__ == "__main__":
    run_main(main)
