"""Training throughput with the CPU shared: quiet and loaded, OpenMP's default wait policy, a fixed
team with the wait policy s6lab chooses (PASSIVE, threads = physical cores available; s6lab's whole
choice until session 14), s6lab with one thread (`S6LAB_THREADS=1`), and s6lab's default, following
the load (fewer threads while another program keeps a core busy, `s6lab.load_follower`), in one run.

    python benchmarks/load.py [--rounds 5] [--images 4096] [--threads N] [--out benchmarks/results/load.md]
    (or: make bench-load)
    python benchmarks/load.py --spincount 10000 100000 --out /tmp/load-spin.md

``--spincount`` adds a row per value: OpenMP's default policy with ``GOMP_SPINCOUNT`` set, how
many times GNU OpenMP's threads (torch's OpenMP on Linux) spin before they sleep; PASSIVE is 0,
the default 300,000. A middle value might keep the quiet speed and still give a taken core up.

"Loaded" means one other process spins on a core for the whole measurement, as a busy browser
tab does beside a notebook. Each configuration is its own worker process (OpenMP reads its
environment once, when torch loads) that trains the reference net with s6lab's ``fit`` for one
epoch of ``--images`` synthetic images per request (fp32, so every CPU class runs the same work).
After the load comes or goes, every worker first trains ``--settle`` unmeasured epochs (the
follower needs about two seconds to see a change; the table is the steady state a long training
sees). Configurations take turns (round-robin) and the table gives the median of the rounds, the
spread, and each configuration's loaded throughput as a share of its quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _args import Parser, refuse_bad_environment, run_main, writable  # noqa: E402
from _worker import WorkerProcess, core_taken  # noqa: E402
from machines import results_file  # noqa: E402

#: name -> the OpenMP environment of the worker (None: unset, OpenMP's default) and its threads
#: (None: the physical cores this process may use, as s6lab picks them)
#: (as_user: the worker imports s6lab before torch with no OpenMP setting, as a user's training does,
#: and S6LAB_FOLLOW_LOAD=1)
CONFIGS = {
    "OpenMP default": {"OMP_WAIT_POLICY": None, "threads": None},
    "s6lab (PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE", "threads": None},
    "s6lab, 1 thread (S6LAB_THREADS=1)": {"OMP_WAIT_POLICY": "PASSIVE", "threads": 1},
    "s6lab following the load (S6LAB_FOLLOW_LOAD=1)": {"as_user": True},
}
#: the row the others are compared with
S6LAB = "s6lab (PASSIVE)"
#: s6lab with fewer threads while another program keeps a core busy
FOLLOWING = "s6lab following the load (S6LAB_FOLLOW_LOAD=1)"


def worker(images: int, as_user: bool) -> None:
    """One configuration: answer each request line with the img/s of one epoch of ``fit``."""
    if as_user:
        import s6lab  # noqa: F401  first, as in a user's training: s6lab chooses the OpenMP set-up
    import torch  # else first: the environment given is what OpenMP reads, s6lab does not change it

    from s6lab import get_recipe
    from s6lab.data import MNISTTensors, TensorSplit
    from s6lab.train import fit

    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(images, 1, 28, 28, generator=g), torch.randint(0, 10, (images,), generator=g))
    data = MNISTTensors(split, split.subset(256))
    recipe = get_recipe("s6", epochs=1, precision="fp32", device="cpu")
    model = recipe.build()
    fit(model, data, recipe.train, progress=False)  # warm-up: allocator, oneDNN kernels
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(),
                      "policy": os.environ.get("OMP_WAIT_POLICY", "default")}), flush=True)
    for _ in sys.stdin:
        record = fit(model, data, recipe.train, progress=False).epochs[0]
        print(json.dumps({"img_per_s": images / record.train_seconds,
                          "fewest_threads": record.fewest_threads or torch.get_num_threads()}), flush=True)


def spin_config(count: int) -> tuple[str, dict]:
    """The row for OpenMP's default policy with ``GOMP_SPINCOUNT=count``."""
    return f"OpenMP default, GOMP_SPINCOUNT={count}", {"OMP_WAIT_POLICY": None, "threads": None,
                                                       "GOMP_SPINCOUNT": str(count)}


def worker_env(config: dict, threads: int, environ: dict[str, str], *, asked: bool = False) -> dict[str, str]:
    """The worker's environment: ``environ`` without the OpenMP settings, then ``config``'s own.
    ``asked``: the thread count came from ``--threads``, so the following row starts from it too
    (``S6LAB_THREADS``), as a user's would who set both."""
    mine = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "S6LAB_THREADS", "GOMP_SPINCOUNT")
    env = {k: v for k, v in environ.items() if k not in mine}
    if config.get("as_user"):  # nothing else set: s6lab chooses, as for a user who set nothing but this
        env["S6LAB_FOLLOW_LOAD"] = "1"
        if asked:
            env["S6LAB_THREADS"] = str(threads)
        return env
    env["OMP_NUM_THREADS"] = str(config["threads"] or threads)
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if config.get(key) is not None:
            env[key] = config[key]
    return env


def start(name: str, images: int, threads: int, asked: bool) -> WorkerProcess:
    config = CONFIGS[name]
    env = worker_env(config, threads, dict(os.environ), asked=asked)
    return WorkerProcess([__file__, "--worker", str(images), *(["--as-user"] if config.get("as_user") else [])],
                         name, env=env)


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--out", help="the markdown file to write (default: benchmarks/results/load.md on an "
                        "AVX2 CPU without bf16, load-CLASS.md on any other or a CPU capped to fewer instructions)")
    parser.add_argument("--spincount", type=int, nargs="+", default=[],
                        help="also time OpenMP's default policy with GOMP_SPINCOUNT set to each value")
    parser.add_argument("--settle", type=int, default=1,
                        help="unmeasured epochs each worker trains after the load comes or goes")
    parser.add_argument("--threads", type=int,
                        help="threads of every row but the 1-thread one (default: the physical cores available)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--as-user", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.as_user)
    if args.rounds < 1 or args.images < 256 or args.settle < 0:
        parser.error("--rounds must be >= 1, --images >= 256 and --settle >= 0")
    if any(count < 0 for count in args.spincount):
        parser.error("--spincount values must be >= 0")
    if args.threads is not None:
        from s6lab.threads import available_cores  # (the parent only: workers import torch first)

        if not 1 <= args.threads <= available_cores():
            parser.error(f"--threads must be 1 to {available_cores()} (the physical cores this process may use)")
    out = writable(parser, args.out or results_file("load", home_class="AVX2, no bf16"))
    CONFIGS.update(spin_config(count) for count in args.spincount)

    from s6lab._io import atomic_write_text

    refuse_bad_environment()
    from s6lab.hardware import describe_machine, preview_name, recorded_command
    from s6lab.threads import available_cores

    cores = available_cores()
    threads = args.threads or cores
    import torch
    torch.set_num_threads(threads)  # the header's machine line names the workers' count, not this process's
    asked = args.threads is not None
    workers = {name: start(name, args.images, threads, asked) for name in CONFIGS}  # they load torch side by side
    for w in workers.values():
        w.read()  # ready: warmed up
    rates: dict[tuple[str, str], list[float]] = {(n, s): [] for n in CONFIGS for s in ("quiet", "loaded")}
    fewest: dict[tuple[str, str], set[int]] = {key: set() for key in rates}  # the threads each trained on
    for r in range(args.rounds):
        for state in ("quiet", "loaded"):
            with core_taken(state == "loaded"):
                for _ in range(args.settle):
                    for w in workers.values():
                        w.ask("go")
                for name, w in workers.items():
                    answer = w.ask("go")
                    rates[(name, state)].append(answer["img_per_s"])
                    fewest[(name, state)].add(answer["fewest_threads"])
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {s} {v[-1]:,.0f}" for (n, s), v in rates.items()),
              file=sys.stderr, flush=True)
    for w in workers.values():
        w.close()

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    command = recorded_command("benchmarks/load.py", sys.argv[1:])
    preview = f" PREVIEW={preview_name()}" if preview_name() else ""
    make = "" if sys.argv[1:] else f" (or `make bench-load{preview}`)"
    lines = [f"**Training throughput with a core taken** ({describe_machine('cpu')})", "",
             f"Command: `{command}`{make}. {threads} thread{'s' if threads != 1 else ''} ("
             f"{f'as asked; {cores} physical cores available' if asked else 'the physical cores this process may use'}"
             f"), fp32, the reference net, {args.images:,} images per measurement; median of "
             f"{args.rounds} rounds (min-max), configurations in turns. Loaded: one other process spins on a core.",
             "", f"| OpenMP wait policy | quiet img/s | loaded img/s | loaded / quiet | loaded / {S6LAB} quiet | "
             f"loaded vs {S6LAB} loaded, round by round (median, range) |",
             "|---|---:|---:|---:|---:|---:|"]
    s6lab_quiet = statistics.median(rates[(S6LAB, "quiet")])
    for name in CONFIGS:
        quiet, loaded = rates[(name, "quiet")], rates[(name, "loaded")]
        # the rounds run in turns, so a round's ratio compares rates measured moments apart
        paired = [mine / theirs for mine, theirs in zip(loaded, rates[(S6LAB, "loaded")])]
        lines.append(f"| {name} | {cell(quiet)} | {cell(loaded)} | "
                     f"{statistics.median(loaded) / statistics.median(quiet):.0%} | "
                     f"{statistics.median(loaded) / s6lab_quiet:.0%} | "
                     f"{statistics.median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}x) |")
    default_q = statistics.median(rates[("OpenMP default", "quiet")])
    passive_q = s6lab_quiet
    lines += ["", f"Quiet machine: PASSIVE runs at {passive_q / default_q:.0%} of the default's throughput."]
    follow_q, follow_l = (statistics.median(rates[(FOLLOWING, s)]) for s in ("quiet", "loaded"))
    seen = {s: "/".join(str(t) for t in sorted(fewest[(FOLLOWING, s)])) for s in ("quiet", "loaded")}
    lines += ["", f"Following the load, s6lab trained on {seen['quiet']} thread(s) at the fewest in the quiet rounds "
              f"and {seen['loaded']} in the loaded ones; loaded, it kept {follow_l / follow_q:.0%} of its own quiet "
              f"throughput and {follow_l / s6lab_quiet:.0%} of the fixed PASSIVE row's."]
    text = "\n".join(lines) + "\n"
    # folders made, never half written
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    run_main(main)
