"""Where a training step's time goes: ``torch.profiler`` over s6lab's own ``fit``, the operators grouped by
the kind of work (convolutions, BatchNorm, ReLU, max-pool, dropout masks, augmentation, optimizer, the rest).

    python benchmarks/step_profile.py [--recipe s6] [--batches 40] [--out FILE]    (or: make bench-profile)

Why: issue 18 sizes each speed lever by the share of the step it can touch (a lever on the memory-bound
passes can win at most what BatchNorm, ReLU and max-pool take). One process, the torch default threads, the
recipe's own batch size, precision (auto) and speed levers; real MNIST images. One ``fit`` of ``--batches``
batches warms up, a second one is profiled. Shares are of the profiled operators' own (self) CPU time, so
they add up to 100%; the seconds include the Python around them. Writes
``benchmarks/results/profile-CLASS.md`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _args import TRAIN_IMAGES, Parser, at_least, run_main, writable  # noqa: E402
from machines import class_results_file  # noqa: E402

#: (group, substrings of an operator's name), the first group that matches wins; anything else is "other"
GROUPS = (
    ("convolutions", ("convolution",)),
    ("BatchNorm", ("batch_norm",)),
    ("ReLU", ("relu", "threshold_backward", "clamp_min")),
    ("max-pool", ("max_pool",)),
    ("dropout masks", ("bitwise_and", "random_", "bernoulli", "dropout")),
    ("augmentation", ("grid_sampler", "affine_grid")),
    ("optimizer", ("sgd", "_foreach", "Optimizer.step")),
)


def group_of(op: str) -> str:
    """The kind of work an operator does, by its name.

    Examples:
        >>> [group_of(op) for op in ("aten::convolution_backward", "aten::clamp_min", "aten::cat")]
        ['convolutions', 'ReLU', 'other']
    """
    return next((group for group, parts in GROUPS if any(part in op for part in parts)), "other")


def shares(self_times: dict[str, float]) -> list[tuple[str, float]]:
    """Each group's share of the total self time, largest first (every group, "other" last).

    Examples:
        >>> shares({"aten::convolution_backward": 6.0, "aten::native_batch_norm": 3.0, "aten::cat": 1.0})[:3]
        [('convolutions', 0.6), ('BatchNorm', 0.3), ('ReLU', 0.0)]
    """
    total = sum(self_times.values()) or 1.0
    counts = Counter({group: 0.0 for group, _ in GROUPS})
    for op, seconds in self_times.items():
        counts[group_of(op)] += seconds
    named = sorted(((g, t / total) for g, t in counts.items() if g != "other"), key=lambda gt: -gt[1])
    return named + [("other", counts.get("other", 0.0) / total)]


def profiled(run):
    """``run()``'s result and the CPU operators it ran, averaged by name (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = run()
    return result, prof.key_averages()


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="s6", help="a registered recipe (its batch size, precision, levers)")
    parser.add_argument("--batches", type=int, default=40, help="training batches per fit (one warms up)")
    parser.add_argument("--top", type=int, default=12, help="operators listed by their own time")
    parser.add_argument("--out", help="the markdown file to write (default: benchmarks/results/profile-CLASS.md)")
    args = parser.parse_args()
    at_least(parser, 1, args, "--batches", "--top")
    out = writable(parser, args.out or class_results_file("profile"))

    from s6lab import get_recipe, load_mnist  # s6lab first: it sets threads and OpenMP before torch starts
    from s6lab._io import atomic_write_text
    from s6lab.data import MNISTTensors, TensorSplit
    from s6lab.errors import ConfigError
    from s6lab.hardware import describe_machine, recorded_command, resolve_precision
    from s6lab.train import fit, resolve_device

    try:
        recipe = get_recipe(args.recipe)
    except (ConfigError, KeyError, ValueError) as e:
        parser.error(str(e))
    config = recipe.train
    if args.batches * config.batch_size > TRAIN_IMAGES:  # more would be cut short: the ms per step understated
        parser.error(f"--batches must be at most {TRAIN_IMAGES // config.batch_size} (batches of "
                     f"{config.batch_size} in MNIST's {TRAIN_IMAGES:,} training images), got {args.batches}")
    data = load_mnist()
    n = config.batch_size * args.batches
    subset = MNISTTensors(TensorSplit(data.train.images[:n], data.train.labels[:n]),
                          TensorSplit(data.test.images[:1000], data.test.labels[:1000]))
    config = type(config).from_dict({**config.to_dict(), "epochs": 1, "device": "cpu"})
    fit(recipe.build(), subset, config, progress=False)  # warm-up: allocator, oneDNN primitives
    history, events = profiled(lambda: fit(recipe.build(), subset, config, progress=False))
    self_times = {e.key: e.self_cpu_time_total / 1e6 for e in events}
    step_ms = 1e3 * history.epochs[-1].train_seconds / args.batches

    command = recorded_command("benchmarks/step_profile.py", sys.argv[1:])
    precision = resolve_precision(config.precision, resolve_device("cpu")).precision
    lines = [f"Command: `{command}`", "",
             f"Machine: {describe_machine()}; recipe {args.recipe} (batch {config.batch_size}, {precision}), "
             f"{args.batches} profiled training batches of real MNIST after as many to warm "
             f"up; {step_ms:.1f} ms a step under the profiler.", "",
             "| kind of work | share of the operators' own time |", "|---|---:|"]
    lines += [f"| {group} | {share:.1%} |" for group, share in shares(self_times)]
    lines += ["", f"The {args.top} operators with the most own time:", "",
              "| operator | own time, ms per step | share | calls per step |", "|---|---:|---:|---:|"]
    total = sum(self_times.values()) or 1.0
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        lines.append(f"| `{e.key}` | {e.self_cpu_time_total / 1e3 / args.batches:.2f} | "
                     f"{e.self_cpu_time_total / 1e6 / total:.1%} | {e.count / args.batches:g} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_main(main)
