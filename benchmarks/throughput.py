"""Training and evaluation throughput: the s6lab trainer against the typical loop.

The typical loop is what most course notebooks do: ``torchvision.datasets.MNIST`` with
per-sample ``RandomRotation``/``ToTensor``/``Normalize``, a ``DataLoader`` (batch 128,
``num_workers`` 0 and 2), eager fp32, NCHW. The s6lab trainer uses its defaults.
Every setting runs in its own subprocess (clean peak memory, no warm caches shared),
all in one invocation of this script, on the same model and seed.

Reported per setting: training images/s (median of ``--repeats`` timed windows),
seconds per epoch (60k / that rate), evaluation images/s, peak resident memory of the
process, achieved GFLOP/s (3 x 2 x forward multiply-adds per training image) and that
as a percentage of this CPU's measured matmul peak (fp32 and bf16, measured in the same
run). ``--device cuda`` runs every setting on a GPU (peak memory then also reports
``torch.cuda.max_memory_allocated``). The typical loop uses ``nn.Dropout``'s own masks
(s6lab's fast dropout path is switched off for it). ``--full`` also trains each setting
to the end and reports wall-clock seconds to the first epoch at >= 99.4% test accuracy
(full 10k test set); those runs stop there.

    python benchmarks/throughput.py                 # throughput only, a few minutes
    python benchmarks/throughput.py --full --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

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


def typical_loaders(workers: int, batch_size: int = 128):
    from torchvision import transforms

    from s6lab.data import MNIST_MEAN, MNIST_STD, mnist_dataset

    train_tf = transforms.Compose([transforms.RandomRotation(7.0, fill=0), transforms.ToTensor(),
                                   transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    kw = dict(num_workers=workers, persistent_workers=workers > 0)
    train = torch.utils.data.DataLoader(mnist_dataset(train=True, transform=train_tf),
                                        batch_size=batch_size, shuffle=True, **kw)
    test = torch.utils.data.DataLoader(mnist_dataset(train=False, transform=test_tf), batch_size=1000, **kw)
    return train, test


def measure_typical(workers: int, steps: int, repeats: int, seed: int, device: torch.device) -> dict:
    from s6lab import get_model, seed_everything

    seed_everything(seed)
    model = get_model("s6").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train, test = typical_loaders(workers)
    it = iter(train)

    def step() -> int:
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(train)
            x, y = next(it)
        model.train()
        x, y = x.to(device), y.to(device)
        loss = F.nll_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return y.numel()

    for _ in range(5):  # warm-up (and worker start-up)
        step()
    rates = []
    for _ in range(repeats):
        sync(device)
        t, n = time.perf_counter(), 0
        for _ in range(steps):
            n += step()
        sync(device)
        rates.append(n / (time.perf_counter() - t))
    model.eval()
    eval_rates = []
    for _ in range(3):  # the median of three passes over the test set
        t, n = time.perf_counter(), 0
        with torch.no_grad():
            for x, _ in test:
                model(x.to(device))
                n += x.shape[0]
        sync(device)
        eval_rates.append(n / (time.perf_counter() - t))
    return {"train_ips": statistics.median(rates), "train_ips_runs": rates,
            "eval_ips": statistics.median(eval_rates)}


def measure_s6lab(steps: int, repeats: int, seed: int, device: torch.device) -> dict:
    """Time the trainer's own epoch loop on windows of ``steps`` batches."""
    from s6lab import TrainConfig, evaluate, fit, get_model, load_mnist, seed_everything
    from s6lab.data import MNISTTensors

    data = load_mnist()
    cfg = TrainConfig(seed=seed, epochs=1, device=str(device))  # one window per fit(): the defaults otherwise
    n = steps * cfg.batch_size
    window = MNISTTensors(data.train.subset(n), data.test.subset(cfg.eval_batch_size))
    seed_everything(seed)
    model = get_model("s6")
    # epochs=1 per window: fit() runs exactly the trainer's step (augmentation, bf16, channels_last)
    fit(model, MNISTTensors(data.train.subset(5 * cfg.batch_size), window.test), cfg, progress=False)  # warm-up
    rates = []
    for _ in range(repeats):
        history = fit(model, window, cfg, progress=False)
        rates.append(n / history.epochs[0].train_seconds)
    eval_rates = []
    for _ in range(3):  # the median of three passes over the test set
        t = time.perf_counter()
        evaluate(model, data.test, batch_size=cfg.eval_batch_size, device=device)  # ends on the CPU: synced
        eval_rates.append(len(data.test) / (time.perf_counter() - t))
    eval_ips = statistics.median(eval_rates)
    return {"train_ips": statistics.median(rates), "train_ips_runs": rates, "eval_ips": eval_ips}


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


def full_run_s6lab(seed: int, target: float, device: torch.device) -> dict:
    from s6lab import TrainConfig, fit, get_model, load_mnist, seed_everything

    class Reached(Exception):
        pass

    data = load_mnist()
    seed_everything(seed)
    accs: list[float] = []
    start = time.perf_counter()

    def on_epoch(record, _):
        accs.append(record.test_acc)
        if record.test_acc >= target:  # time to target is all this measures: stop there
            raise Reached(time.perf_counter() - start)

    try:
        fit(get_model("s6"), data, TrainConfig(seed=seed, device=str(device)), progress=False, on_epoch=on_epoch)
    except Reached as done:
        return {"seconds_to_target": done.args[0], "test_acc": accs}
    return {"seconds_to_target": None, "test_acc": accs}


def child(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.only == "s6lab":
        result = measure_s6lab(args.steps, args.repeats, args.seed, device)
        if args.full:
            result["full"] = [full_run_s6lab(s, 99.4, device) for s in args.seeds]
    else:
        from s6lab.dropout import fast_dropout_enabled

        workers = int(args.only.removeprefix("typical-w"))
        with fast_dropout_enabled(False):  # the typical model's nn.Dropout: bernoulli_ masks
            result = measure_typical(workers, args.steps, args.repeats, args.seed, device)
            if args.full:
                result["full"] = [full_run_typical(workers, s, args.epochs, 99.4, device) for s in args.seeds[:1]]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(result))


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu, {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}"


def memory(r: dict) -> str:
    text = f"{r['peak_rss_mb']:,.0f}"
    return text + (f" (GPU {r['peak_cuda_mb']:,.0f})" if "peak_cuda_mb" in r else "")


def table(results: dict, macs: int, peaks: dict) -> str:
    flop_per_image = 3 * 2 * macs
    base = max(results[s]["train_ips"] for s in SETTINGS if s.startswith("typical"))
    rows = ["| setting | train img/s | s/epoch | vs faster typical | eval img/s | peak RSS MB | "
            "GFLOP/s | % of fp32 peak | % of bf16 peak | s to 99.4% (per seed) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
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
        rows.append(f"| {s} | {r['train_ips']:,.0f} | {60000 / r['train_ips']:.1f} | "
                    f"{r['train_ips'] / base:.2f}x | {r['eval_ips']:,.0f} | {memory(r)} | "
                    f"{gflops:.1f} | {100 * gflops / peaks['fp32']:.0f}% | "
                    f"{100 * gflops / peaks['bf16']:.0f}% | "
                    f"{to_target} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per timed window")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also train to the end: time to 99.4%%")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for --full")
    parser.add_argument("--epochs", type=int, default=15, help="epochs for the typical loop in --full")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (all settings run there)")
    parser.add_argument("--out", type=Path, help="write the table and raw JSON here (markdown)")
    parser.add_argument("--only", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    from s6lab.data import ensure_mnist
    from s6lab.train import resolve_device

    ensure_mnist()
    try:
        device = resolve_device(args.device)
    except ValueError as e:  # CUDA asked for and missing
        raise SystemExit(f"benchmarks/throughput.py: {e}") from None
    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    macs = forward_macs("s6")
    results = {}
    passthrough = ["--device", str(device), "--steps", str(args.steps), "--repeats", str(args.repeats),
                   "--seed", str(args.seed), "--epochs", str(args.epochs), "--seeds", *map(str, args.seeds)]
    if args.full:
        passthrough.append("--full")
    for setting in SETTINGS:
        print(f"measuring {setting} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--only", setting, *passthrough],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{setting} failed:\n{done.stderr[-2000:]}")
        results[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    text = table(results, macs, peaks)
    header = (f"Command: `python benchmarks/throughput.py {' '.join(sys.argv[1:])}`\n\n"
              f"torch {torch.__version__}, device {describe(device)}; "
              f"measured matmul peak {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} GFLOP/s bf16; "
              f"model s6, {macs / 1e6:.2f} M forward multiply-adds per image "
              f"({3 * 2 * macs / 1e6:.0f} MFLOP per training image).\n"
              f"Train img/s is the median of {args.repeats} windows of {args.steps} batches, eval img/s of 3 passes; "
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
    main()
