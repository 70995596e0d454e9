"""A fixed variants x seeds grid trained three ways in one session: serial (one training at a time, all
cores), N jobs x 1 thread in local worker processes, and a local Ray instance; wall clock and trainings
per hour, as ratios against serial.

    python benchmarks/scaling.py [--epochs 2] [--train-size 4000] [--out benchmarks/results/scaling.md]
    (or: make bench-scaling)

Each way trains into its own fresh folder (nothing is reused) from the same recipes and seeds; the
histories of the two parallel ways are checked equal to each other (both run 1 thread per job).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _args import Parser, exit_if_failed, run_main, writable  # noqa: E402
from machines import results_file  # noqa: E402

GRID = (["s6", "s6-gap"], [0, 1])


def run(way: list[str], out: Path, args: argparse.Namespace) -> float:
    variants, seeds = GRID
    command = [sys.executable, "-m", "s6lab", "compare", "--model", *variants, "--seed", *map(str, seeds), "--epochs",
               str(args.epochs), "--train-size", str(args.train_size), "--test-size", str(args.test_size),
               "--precision", "fp32", "--results-dir", str(out), "--quiet", *way]
    started = time.perf_counter()
    exit_if_failed(subprocess.run(command, stdout=subprocess.DEVNULL).returncode)  # it said why on stderr
    return time.perf_counter() - started


def histories(out: Path) -> dict[str, list]:
    return {str(p.relative_to(out)): [{k: v for k, v in e.items() if "seconds" not in k}
                                      for e in json.loads(p.read_text())]
            for p in sorted(out.glob("runs/*/*/history.json"))}


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--out", help="the markdown file to write (default: benchmarks/results/scaling.md, "
                        "scaling-CLASS.md on a CPU capped to fewer instructions)")
    args = parser.parse_args()
    out = writable(parser, args.out or results_file("scaling"))

    from s6lab._io import atomic_write_text
    from s6lab.hardware import describe_machine, recorded_command
    from s6lab.threads import available_cores

    cores = available_cores()
    ways = {"serial (1 training at a time)": [],
            f"{cores} jobs x 1 thread (local processes)": ["--jobs", str(cores), "--threads-per-job", "1"],
            f"local Ray, {cores} jobs x 1 CPU": ["--backend", "ray", "--jobs", str(cores), "--threads-per-job", "1"]}
    seconds, runs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, way in ways.items():
            out = Path(tmp) / str(len(seconds))
            seconds[name] = run(way, out, args)
            runs[name] = histories(out)
            print(f"{name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)
            shutil.rmtree(out, ignore_errors=True)
    names = list(ways)
    same = runs[names[1]] == runs[names[2]]
    trainings = len(GRID[0]) * len(GRID[1])
    serial = seconds[names[0]]
    command = recorded_command("benchmarks/scaling.py", sys.argv[1:])
    lines = [f"**Scaling a comparison** ({describe_machine('cpu')}; {cores} physical cores)", "",
             f"Command: `{command}` (or `make bench-scaling`). Grid: {', '.join(GRID[0])} x seeds "
             f"{', '.join(map(str, GRID[1]))} = {trainings} trainings of {args.epochs} epochs on {args.train_size:,} "
             f"real MNIST images (tested on {args.test_size:,}), fp32; every way in a fresh folder, one after "
             "another in one session; wall clock includes start-up (Python, torch, Ray).", "",
             "| way | wall clock s | trainings per hour | speed-up vs serial |", "|---|---:|---:|---:|"]
    for name in names:
        lines.append(f"| {name} | {seconds[name]:.1f} | {trainings * 3600 / seconds[name]:,.0f} | "
                     f"{serial / seconds[name]:.2f}x |")
    lines += ["", "The two parallel ways (1 thread per job each) give identical per-epoch histories: "
              + ("yes." if same else "NO (a bug: report it).")]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)  # folders made, never half written
    print(text)


if __name__ == "__main__":
    run_main(main)
