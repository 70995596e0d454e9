"""The training recipe with margin: which recipe passes the assignment on every seed?

Each row is a :class:`s6lab.TrainConfig` override of the trainer's defaults for the
unchanged reference net (``s6``). Every (row, precision, seed) is an ordinary run directory
under ``--out/runs/ROW/PRECISION-sSEED`` (config.json + history.json are committed; weights
are not), so the study resumes where it stopped and a finished run is never trained twice.
Runs go one after another: one training at a time.

The table reports, per row and precision: the seeds, how many pass ``s6lab check``
(>= 99.4% in each of the last three epochs, plus the other rules), the final accuracy
(mean, sample sd, min), the lowest of the last-three-epoch accuracies, and the machine.

    python benchmarks/recipe.py --rows all --seeds 0 1 2 --out results/recipe     # screen
    python benchmarks/recipe.py --rows "wd 5e-4, 18 epochs" --seeds 0 1 2 3 4 5 6 7 8 9

``--precision bf16`` on a CPU without native bf16 (AVX-512 bf16 / AMX) skips the rows
and says so: emulated bf16 is many times slower and is not what a user of that CPU gets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _args import Parser, refuse, run_main, valid_seeds, writable

#: name -> TrainConfig overrides of the trainer's defaults
ROWS: dict[str, dict] = {
    "defaults before the margin recipe (15 epochs, no weight decay)": {"epochs": 15, "weight_decay": 0.0},
    "wd 5e-4, 15 epochs": {"epochs": 15, "weight_decay": 5e-4},
    "wd 5e-4, 18 epochs": {"epochs": 18, "weight_decay": 5e-4},
    "wd 1e-3, 18 epochs": {"epochs": 18, "weight_decay": 1e-3},
    "wd 5e-4, label smoothing 0.05, 18 epochs": {"epochs": 18, "weight_decay": 5e-4, "label_smoothing": 0.05},
    # session 15: today's default with layer 1's BatchNorm from patch statistics (s6lab.patch_batchnorm): the
    # same math, other rounding, 1.07-1.12x the step on AVX-512; the default takes it only if every seed still passes
    "layer 1's BatchNorm from patch statistics (18 epochs, weight decay 5e-4)": {"epochs": 18, "weight_decay": 5e-4,
                                                                      "first_bn_from_patches": True},
}


#: name -> overrides: a schedule short enough for the time-to-99.4% goal (issue 18 part 3), where the
#: question is the first epoch at >= 99.4% on every seed, not the last three (``--rows speedrun`` picks them all;
#: ``all`` does not)
SPEEDRUN_ROWS: dict[str, dict] = {
    "speedrun: 6 epochs, batch 256 (the first s6-speedrun)": {"epochs": 6},
    "speedrun: 6 epochs, batch 128, lr 0.05": {"epochs": 6, "batch_size": 128, "lr": 0.05},
    "speedrun: 6 epochs, batch 128, lr 0.1": {"epochs": 6, "batch_size": 128, "lr": 0.1},
    # session 9: one epoch less (the 180 s goal needs about 3.5 epochs at this VM's 51 s per epoch)
    "speedrun: 4 epochs, batch 128, lr 0.1": {"epochs": 4, "batch_size": 128, "lr": 0.1},
    "speedrun: 4 epochs, batch 128, lr 0.1, label smoothing 0.1": {"epochs": 4, "batch_size": 128, "lr": 0.1,
                                                                   "label_smoothing": 0.1},
    "speedrun: 5 epochs, batch 128, lr 0.1, label smoothing 0.1": {"epochs": 5, "batch_size": 128, "lr": 0.1,
                                                                   "label_smoothing": 0.1},
    # session 10: a higher peak rate for the 4-epoch schedule
    "speedrun: 4 epochs, batch 128, lr 0.2": {"epochs": 4, "batch_size": 128, "lr": 0.2},
    # session 10: more, smaller steps in the same images
    "speedrun: 4 epochs, batch 64, lr 0.05": {"epochs": 4, "batch_size": 64, "lr": 0.05},
    # session 10: weight averaging (s6lab.averaging); each run records the trained weights' accuracy too
    "speedrun: 4 epochs, batch 128, lr 0.1, ema 0.998": {"epochs": 4, "batch_size": 128, "lr": 0.1, "ema": 0.998},
    # session 11: lighter augmentation for the 4-epoch schedule (a short run underfits before it overfits)
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05": {"epochs": 4, "batch_size": 128, "lr": 0.2,
                                                                      "rotation": 5.0, "translate": 0.05},
    # session 11: the lighter-augmentation schedule without weight decay (seeds 1, 3: seed 1 fell to 99.31)
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, no weight decay": {
        "epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05, "weight_decay": 0.0},
    # session 11: the same with more, smaller steps (stopped after seeds 1, 3, 4: two missed)
    "speedrun: 4 epochs, batch 64, lr 0.1, rotation 5, shift 0.05": {"epochs": 4, "batch_size": 64, "lr": 0.1,
                                                                     "rotation": 5.0, "translate": 0.05},
    # session 12: a still higher peak rate for the lighter-augmentation schedule (0.1 -> 0.2 gained about 0.05%)
    "speedrun: 4 epochs, batch 128, lr 0.3, rotation 5, shift 0.05": {"epochs": 4, "batch_size": 128, "lr": 0.3,
                                                                      "rotation": 5.0, "translate": 0.05},
    # session 12: the last epoch on the images as they are (TrainConfig.clean_last_epochs), at the lowest rate
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, last epoch clean": {
        "epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05, "clean_last_epochs": 1},
    # session 14, on AVX-512 with bf16 (about 11 s an epoch, so the 60 s goal allows five): the s6-speedrun preset
    # missed 99.4% on seed 0 in bf16. Batch 256 (the first s6-speedrun, above) at the same peak rate, and at twice
    # it; neither reached 99.4% on seed 0, and neither was faster per epoch there (12.4-13.5 s)
    "speedrun: 6 epochs, batch 256, lr 0.2": {"epochs": 6, "lr": 0.2},
    # session 14, bf16, seed 0 first (the seed the preset missed): the preset with a higher peak rate, with label
    # smoothing, and with lighter augmentation. All three reached 99.4% on seed 0; lr 0.2 went on to seeds 1-4,
    # reached it on all five, and became the s6-speedrun-bf16 preset
    "speedrun: 6 epochs, batch 128, lr 0.2": {"epochs": 6, "batch_size": 128, "lr": 0.2},
    "speedrun: 6 epochs, batch 128, lr 0.1, label smoothing 0.1": {"epochs": 6, "batch_size": 128, "lr": 0.1,
                                                                   "label_smoothing": 0.1},
    "speedrun: 6 epochs, batch 128, lr 0.1, rotation 5, shift 0.05": {"epochs": 6, "batch_size": 128, "lr": 0.1,
                                                                      "rotation": 5.0, "translate": 0.05},
    # session 15, bf16: s6-speedrun-bf16 reached 99.4% at epochs 5/5/6/4/6 (median 5, at the 60 s line); label
    # smoothing took seed 0 over at epoch 5 at lr 0.1. Both together, for fewer epochs
    "speedrun: 6 epochs, batch 128, lr 0.2, label smoothing 0.1": {"epochs": 6, "batch_size": 128, "lr": 0.2,
                                                                   "label_smoothing": 0.1},
    # session 15: s6-speedrun (fp32, the AVX2 preset: 195 s there, goal 180 s) with layer 1's BatchNorm from
    # patch statistics, as s6-speedrun-bf16 now has it: does every seed still reach 99.4% at epoch 5?
    "speedrun: 6 epochs, batch 128, lr 0.1, layer 1's BatchNorm from patch statistics": {
        "epochs": 6, "batch_size": 128, "lr": 0.1, "first_bn_from_patches": True},
    # session 15, bf16: s6-speedrun-bf16 with the patch statistics reached 99.4% at epochs 6/4/5/5/5, and an epoch
    # took 10.2-12.6 s on the same VM within the hour: five epochs sit on the 60 s line, four would leave margin.
    # A 5-epoch OneCycle anneals one epoch sooner (lr at the end of epoch 4: 0.029 instead of 0.074)
    "speedrun: 5 epochs, batch 128, lr 0.2, layer 1's BatchNorm from patch statistics": {
        "epochs": 5, "batch_size": 128, "lr": 0.2, "first_bn_from_patches": True},
    "speedrun: 5 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, layer 1's BatchNorm from patch statistics": {
        "epochs": 5, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05, "first_bn_from_patches": True},
    # session 17, fp32 (what an AVX2 CPU trains): an AVX2 epoch of s6-speedrun took ~39 s, ~36 s with the patch
    # statistics, so a recipe whose median seed reaches 99.4% at epoch 4 would take ~145 s there and one at epoch 5
    # ~180 s, the goal's line. The 5-epoch row above reaches it on all ten fp32 seeds, nine at epoch 5. Four epochs
    # of it, and four epochs with one change each: stronger weight decay, lighter augmentation, a shorter warm-up
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, layer 1's BatchNorm from patch statistics": {
        "epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05, "first_bn_from_patches": True},
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, weight decay 1e-3, layer 1's BatchNorm from patch "
    "statistics": {"epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05,
                   "weight_decay": 1e-3, "first_bn_from_patches": True},
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 3, shift 0.03, layer 1's BatchNorm from patch statistics": {
        "epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 3.0, "translate": 0.03, "first_bn_from_patches": True},
    "speedrun: 4 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, warm-up 0.1, layer 1's BatchNorm from patch "
    "statistics": {"epochs": 4, "batch_size": 128, "lr": 0.2, "rotation": 5.0, "translate": 0.05, "warmup": 0.1,
                   "first_bn_from_patches": True},
}

#: every row trained before the default computed layer 1's BatchNorm from patch statistics (session 16): the rows
#: that do not name it keep the stock BatchNorm they were measured with, so that their recorded runs stay the row
ROWS = {name: {"first_bn_from_patches": False, **overrides} for name, overrides in ROWS.items()}
SPEEDRUN_ROWS = {name: {"first_bn_from_patches": False, **overrides} for name, overrides in SPEEDRUN_ROWS.items()}


def slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in ".-" else "-" for c in name.lower())
    return "-".join(part for part in keep.split("-") if part)


def run_path(out: Path, name: str, precision: str, seed: int) -> Path:
    """Where one (row, precision, seed) run lives: ``OUT/runs/ROW/PRECISION-sSEED``."""
    return out / "runs" / slug(name) / f"{precision}-s{seed}"


def pick_rows(parts: list[str] | None, parser: argparse.ArgumentParser) -> dict[str, dict]:
    """Rows named by one unambiguous part of their name (``all``: every row)."""
    if not parts or parts == ["all"]:
        return ROWS
    if parts == ["speedrun"]:
        return SPEEDRUN_ROWS
    every = {**ROWS, **SPEEDRUN_ROWS}
    picked: dict[str, dict] = {}
    for part in parts:
        matches = [name for name in every if part.lower() in name.lower()]
        exact = [name for name in matches if name.lower() == part.lower()]
        matches = exact or matches
        if len(matches) != 1:
            parser.error(f"--rows {part!r} matches {len(matches)} rows; name one of: {'; '.join(every)}")
        picked[matches[0]] = every[matches[0]]
    return picked


def run_row(name: str, overrides: dict, precision: str, seeds: list[int], out: Path, *, train: bool) -> list:
    """Train (or load) one row for each seed; returns the finished runs (recorded ones only if not ``train``)."""
    import torch

    from s6lab import TrainConfig, get_recipe
    from s6lab.runs import WEIGHTS, load_run, recorded_in_full, train_run

    runs = []
    for seed in seeds:
        path = run_path(out, name, precision, seed)
        recipe = get_recipe("s6", train=TrainConfig(**{**overrides, "seed": seed, "precision": precision}))
        if (path / WEIGHTS).exists() or recorded_in_full(path):
            run = load_run(path, need_weights=False)
            differs = recipe.differences(run.meta, torch.device("cpu"))
            if differs:
                refuse(f"{path} is not the row {name!r} ({', '.join(differs)} differ): delete it to retrain it")
        elif train:
            print(f"training {name!r} {precision} seed {seed} -> {path}", file=sys.stderr, flush=True)
            run = train_run(recipe, path, resume=True, progress=False)
        else:
            continue
        last3 = run.history.test_acc[-3:]
        print(f"{name} {precision} seed {seed}: last three {' / '.join(f'{a:.2f}' for a in last3)}",
              file=sys.stderr, flush=True)
        runs.append(run)
    return runs


def unfinished(name: str, precision: str, seeds: list[int], out: Path) -> list[str]:
    """``seed 3 (17 of 18 epochs)`` for each run of the row that stopped before its last epoch."""
    from s6lab import TrainConfig
    from s6lab.runs import CONFIG, HISTORY, read_json

    left = []
    for seed in seeds:
        path = run_path(out, name, precision, seed)
        if not (path / CONFIG).exists() or not (path / HISTORY).exists():
            continue
        done, epochs = len(read_json(path / HISTORY)), TrainConfig.from_dict(read_json(path / CONFIG)["train"]).epochs
        if done < epochs:
            left.append(f"seed {seed} ({done} of {epochs} epochs)")
    return left


def table(results: dict[tuple[str, str], list], seeds: list[int],
          left: dict[tuple[str, str], list[str]] | None = None) -> list[str]:
    from s6lab.check import TARGET_ACC, all_passed, assignment_check
    from s6lab.comparison import Spread
    from s6lab.runs import machine_line

    lines = [f"| recipe | precision | seeds recorded | pass `s6lab check` | final acc % (mean ± sd) | final min | "
             f"lowest of last 3 epochs | first epoch >= {TARGET_ACC} (per seed) | machine class |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    machines = set()
    for (name, precision), runs in results.items():
        if not runs:
            why = "not supported here, none recorded" if precision == "bf16" else "none recorded yet"
            lines.append(f"| {name} | {precision} | 0 of {len(seeds)} | {why} | - | - | - | - | - |")
            continue
        finals = Spread.of([r.history.final_acc for r in runs])
        passed = sum(all_passed(assignment_check(r.model, r.history)) for r in runs)
        lowest = min(min(r.history.test_acc[-3:]) for r in runs)
        first = "/".join(str(r.history.first_epoch_reaching(TARGET_ACC) or "-") for r in runs)
        recorded = " ".join(str(r.config.seed) for r in runs)
        classes = sorted({r.meta.get("machine_class", "not recorded") for r in runs})
        machines.update(machine_line(r.meta) for r in runs)
        lines.append(f"| {name} | {precision} | {recorded} ({len(runs)} of {len(seeds)}) | {passed}/{len(runs)} | "
                     f"{finals} | {min(finals.values):.2f} | {lowest:.2f} | {first} | {', '.join(classes)} |")
    stopped = [f"- {name}, {precision}: {', '.join(runs)}" for (name, precision), runs in (left or {}).items() if runs]
    if stopped:
        lines += ["", "Started and not finished (the same command resumes each from its last epoch; bf16 runs "
                  "resume only on a machine with native bf16):", "", *stopped]
    lines += ["", "Machines that trained these runs:", ""] + [f"- {m}" for m in sorted(machines)]
    return lines


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", help="rows by a part of their name; 'all' (default) for every row")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                        help="precisions to train in; bf16 is skipped where the CPU lacks it")
    parser.add_argument("--out", type=Path, default=Path("results/recipe"), help="run directories go here")
    parser.add_argument("--table", type=Path, help="write the markdown table here")
    parser.add_argument("--no-train", action="store_true", help="only tabulate the runs already recorded")
    args = parser.parse_args()
    rows = pick_rows(args.rows, parser)
    # --no-train only reads the run directories: a read-only --out is fine then, a file is not
    writable(parser, args.out, folder=True, write=not args.no_train)
    if args.table:
        writable(parser, args.table, "--table")
    valid_seeds(parser, "--seeds", args.seeds)

    import torch

    from s6lab._io import atomic_write_text
    from s6lab.data import ensure_mnist
    from s6lab.hardware import describe_machine, native_bf16, recorded_command

    ensure_mnist()
    device = torch.device("cpu")
    results: dict[tuple[str, str], list] = {}
    left: dict[tuple[str, str], list[str]] = {}
    for name, overrides in rows.items():
        for precision in args.precision:
            train = not args.no_train
            if precision == "bf16" and not native_bf16(device):
                print(f"{name}: bf16 not supported natively on this CPU: not trained here (recorded runs are "
                      "shown)", file=sys.stderr)
                train = False
            results[(name, precision)] = run_row(name, overrides, precision, args.seeds, args.out, train=train)
            left[(name, precision)] = unfinished(name, precision, args.seeds, args.out)
    command = recorded_command("benchmarks/recipe.py", sys.argv[1:])
    text = "\n".join([f"Command: `{command}`", "", f"Rendered on: {describe_machine(device)}. Each run trains "
                      "where its machine class says; bf16 runs only on machines with native bf16.", "",
                      *table(results, args.seeds, left), ""])
    print(text)
    if args.table:
        atomic_write_text(args.table, text)


if __name__ == "__main__":
    run_main(main)
