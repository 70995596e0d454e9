"""Training throughput of one process on every core against one single-thread process per core,
each training on its share of the batch with gradients summed by DistributedDataParallel (gloo),
quiet and with a core taken, in one run.

    python benchmarks/data_parallel.py [--rounds 7] [--images 8192] [--batch 256 128] [--cores N] [--out FILE]
    (or: make bench-data-parallel)

Why: on a 2-core AVX2 CPU two OpenMP threads train the reference net only 1.3-1.6x faster than
one, because its layers are small and every op waits for both threads. Two processes of one thread
each, each on half the batch, wait for each other once per step (the all-reduce of 19,602
gradients). This measures what that buys, including the all-reduce, and what it costs when another
program takes a core (issue 18, parts 1 and 2: "any other measured idea").

What differs from s6lab's ``fit`` in one process: each process normalises its BatchNorm over its own
share of the batch (DDP's default, "ghost" batches of ``batch / processes``), and draws its
images from its own shard. So a run trained this way is a different recipe, whose accuracy needs
its own seeds; this benchmark measures only the speed. Every process trains with s6lab's ``fit``
(the model wrapped in ``torch.nn.parallel.DistributedDataParallel``), fp32, on synthetic images
(speed does not depend on what the pixels show). A setting's img/s is its images over the slowest
process's training seconds. Settings take turns (round-robin); the table gives the median of the
rounds, their range, and the ratio to the one-process setting round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _args import Parser, refuse_bad_environment, run_main, writable  # noqa: E402
from _worker import WorkerProcess, core_taken  # noqa: E402
from machines import class_results_file  # noqa: E402

#: the setting the others are compared with: what s6lab does today
ONE_PROCESS = "1 process x {cores} threads (s6lab)"


def worker(images: int, batch: int, rank: int, world: int) -> None:
    """One process of a setting: answer each request line with its training seconds for one epoch."""
    import torch  # first: OMP_NUM_THREADS from the parent is what OpenMP reads

    from s6lab import get_recipe
    from s6lab.data import MNISTTensors, TensorSplit
    from s6lab.train import fit

    g = torch.Generator().manual_seed(rank)  # each process its own shard of images
    split = TensorSplit(torch.randn(images, 1, 28, 28, generator=g), torch.randint(0, 10, (images,), generator=g))
    data = MNISTTensors(split, split.subset(256))
    recipe = get_recipe("s6", epochs=1, precision="fp32", device="cpu", batch_size=batch, seed=rank)
    model = recipe.build().to(memory_format=torch.channels_last)
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo", rank=rank, world_size=world)  # MASTER_ADDR/PORT from the parent
        model = DistributedDataParallel(model)  # rank 0's weights, gradients averaged every step
    fit(model, data, recipe.train, progress=False)  # warm-up: allocator, oneDNN kernels, gloo
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for _ in sys.stdin:
        record = fit(model, data, recipe.train, progress=False).epochs[0]
        # equal on every rank of a DDP group
        weights = sum(float(p.detach().double().sum()) for p in model.parameters())
        print(json.dumps({"seconds": record.train_seconds, "weights": weights}), flush=True)
    if world > 1:
        dist.destroy_process_group()


class Setting:
    """``processes`` worker processes of ``threads`` threads each, training ``images`` in all per request."""

    def __init__(self, name: str, processes: int, threads: int, images: int, batch: int) -> None:
        self.name, self.images = name, images
        self.replicas_equal = True  # every process ended every measurement with the same weights
        port = _free_port()
        self.workers = []
        for rank in range(processes):
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "S6LAB_THREADS")}
            env.update(OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE",  # as s6lab's CLI sets it
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            self.workers.append(WorkerProcess(
                [__file__, "--worker", str(images // processes), str(batch // processes), str(rank), str(processes)],
                f"{name} (rank {rank})", env=env))

    def wait_ready(self) -> None:
        """Until every process has joined its group and warmed up (they start side by side)."""
        for w in self.workers:
            w.read()

    def img_per_s(self) -> float:
        for w in self.workers:  # all at once: the DDP ranks step together
            w.send("go")
        answers = [w.read() for w in self.workers]
        self.replicas_equal &= len({a["weights"] for a in answers}) == 1
        time.sleep(0.3)  # let OpenMP threads stop before the next setting runs
        return self.images / max(a["seconds"] for a in answers)

    def close(self, wait: bool = True) -> None:
        for w in self.workers:
            w.close(wait)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ratios(values: list[float], base: list[float]) -> str:
    each = [v / b for v, b in zip(values, base)]
    return f"{statistics.median(each):.2f}x ({min(each):.2f}-{max(each):.2f}x)"


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--cores", type=int, help="split the work over this many cores (default: all available)")
    parser.add_argument("--out")
    parser.add_argument("--worker", type=int, nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    out = writable(parser, args.out or class_results_file("data-parallel"))

    from s6lab._io import atomic_write_text

    refuse_bad_environment()
    from s6lab.hardware import describe_machine
    from s6lab.threads import available_cores

    available = available_cores()
    cores = available if args.cores is None else args.cores
    if not 1 <= cores <= available:
        parser.error(f"--cores must be 1 to {available} (the cores available here)")
    if args.rounds < 1 or args.images < 256 * cores or any(b < 2 * cores for b in args.batch):
        parser.error(f"--rounds must be >= 1, --images >= {256 * cores} and each --batch >= {2 * cores} (this "
                     f"machine splits work over {cores} cores)")
    if cores < 2:
        parser.error("this process may use one core only: there is nothing to split")

    shapes = {ONE_PROCESS.format(cores=cores): (1, cores),
              f"{cores} processes x 1 thread, DDP (gloo)": (cores, 1),
              "1 process x 1 thread": (1, 1)}
    settings = {(name, batch): Setting(name, p, t, args.images, batch)
                for batch in args.batch for name, (p, t) in shapes.items()}
    for setting in settings.values():  # all processes start at once; the rounds begin when every one is ready
        setting.wait_ready()
    rates: dict[tuple[str, int, str], list[float]] = {(n, b, s): [] for (n, b) in settings
                                                      for s in ("quiet", "loaded")}
    for r in range(args.rounds):
        for state in ("quiet", "loaded"):
            with core_taken(state == "loaded"):
                for (name, batch), setting in settings.items():
                    rates[(name, batch, state)].append(setting.img_per_s())
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} b{b} {s} {v[-1]:,.0f}"
                                                           for (n, b, s), v in rates.items()),
              file=sys.stderr, flush=True)
    for setting in settings.values():  # every process is told first, then each is waited for
        setting.close(wait=False)
    for setting in settings.values():
        setting.close()

    one = ONE_PROCESS.format(cores=cores)
    from s6lab.hardware import preview_name, recorded_command
    make_preview = f" PREVIEW={preview}" if (preview := preview_name()) else ""
    command = recorded_command("benchmarks/data_parallel.py", sys.argv[1:])
    lines = [f"**One process on every core against one single-thread process per core (DDP)** "
             f"({describe_machine('cpu')})", "",
             f"Command: `{command}` (or `make bench-data-parallel{make_preview}`). The reference net in fp32, "
             "s6lab's "
             f"`fit`, {args.images:,} synthetic images per measurement, split evenly over the processes (each "
             f"trains its share at batch / processes); median of {args.rounds} rounds (min-max), settings in "
             "turns. Loaded: one other process spins on a core. Ratios are to the one-process setting at the "
             "same batch, in the same state, round by round (median and range).", "",
             "| batch (per step, all processes) | setting | quiet img/s | vs s6lab quiet | "
             "loaded img/s | vs s6lab loaded | loaded / quiet |", "|---:|---|---:|---:|---:|---:|---:|"]
    for (name, batch) in settings:
        quiet, loaded = rates[(name, batch, "quiet")], rates[(name, batch, "loaded")]
        lines.append(f"| {batch} | {name} | {statistics.median(quiet):,.0f} ({min(quiet):,.0f}-{max(quiet):,.0f}) | "
                     f"{ratios(quiet, rates[(one, batch, 'quiet')])} | "
                     f"{statistics.median(loaded):,.0f} ({min(loaded):,.0f}-{max(loaded):,.0f}) | "
                     f"{ratios(loaded, rates[(one, batch, 'loaded')])} | "
                     f"{statistics.median(loaded) / statistics.median(quiet):.0%} |")
    ddp = [s for s in settings.values() if len(s.workers) > 1]
    lines += ["", "DDP replicas equal after every measurement (the weights' sum, bit for bit): "
              f"{'yes' if all(s.replicas_equal for s in ddp) else 'no'}. Each DDP process normalises over its "
              "own share of the batch: the speed is measured here, the accuracy of such a recipe is not.", "",
              "<details><summary>raw</summary>", "", "```json",
              json.dumps({f"{n} | batch {b} | {s}": v for (n, b, s), v in rates.items()}, indent=1), "```",
              "", "</details>"]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    run_main(main)
