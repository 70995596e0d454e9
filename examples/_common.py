"""Shared command line for the examples: --epochs, --seed, --results-dir and --quick (the spellings of
`s6lab compare`; --seeds and --out are accepted too).

--quick is s6lab's one quick mode (`s6lab.recipe.QUICK_RUN`, the notebooks' S6LAB_QUICK=1):
1 epoch on the first 1,000 training images, tested on 500. It shows that the script works,
not what the layer choice does. Drop --quick for real numbers.

Every example runs inside `one_line_errors()`: a mistake you can fix (--epochs 0, --jobs abc, a results
folder that cannot be written, a bad S6LAB_THREADS) is one line on stderr and exit status 2, as with the
`s6lab` command; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import s6lab
from s6lab.cli import OneLineParser
from s6lab.comparison import Comparison, format_comparison, render
from s6lab.errors import ConfigError, one_line
from s6lab.parallel import workers
from s6lab.recipe import QUICK_RUN
from s6lab.threads import environment_error


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Run the example's code; an error a user can fix becomes ``SCRIPT: error: ...`` on stderr and exit 2.

    Example:
        >>> with one_line_errors():  # doctest: +SKIP
        ...     compare_and_show(["s6", "s6-no-bn"], parse(__doc__), "02_no_batchnorm")
    """
    try:
        if (problem := environment_error()) is not None:  # a bad S6LAB_THREADS, ... (as the `s6lab` command does)
            raise ConfigError(problem)
        yield
    except KeyboardInterrupt:  # finished runs are kept: the same command trains only what is missing
        print(f"\n{Path(sys.argv[0]).name}: interrupted; finished runs are kept and reused: run the same command "
              "again", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as e:
        if (message := one_line(e)) is None:
            raise  # a programming error is not a user error: let it show
        print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def parse(doc: str, epochs: int = 10, seeds: tuple[int, ...] = (0,)) -> argparse.Namespace:
    """The examples' command line, checked: a bad value raises `ConfigError` (`one_line_errors` shows it)."""
    parser = OneLineParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", "--seeds", dest="seeds", type=int, nargs="+", default=list(seeds), metavar="N",
                        help="one run per seed")
    parser.add_argument("--jobs", default="1", metavar="N|auto",
                        help="trainings at once (auto: one per physical core, one thread each)")
    parser.add_argument("--results-dir", "--out", dest="out", default="runs/examples", metavar="DIR",
                        help="where the tables and figures go; the runs go to DIR/runs/...")
    parser.add_argument("--quick", action="store_true",
                        help="s6lab's quick mode: 1 epoch on 1,000 training images, 500 test images")
    args = parser.parse_args()
    # bad values stop here, before the example prints anything, with the library's own messages
    for seed in args.seeds:
        s6lab.TrainConfig(epochs=args.epochs, seed=seed)
    workers(args.jobs, None)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--results-dir {args.out} is a file; choose a folder for the tables, figures and runs")
    if args.quick or s6lab.quick_mode():
        args.quick = True
        args.seeds = args.seeds[:1]
        args.epochs, args.train_size, args.test_size = (QUICK_RUN[k] for k in ("epochs", "train_size", "test_size"))
    else:
        args.train_size = args.test_size = None
    return args


def compare_and_show(variants: list[str], args: argparse.Namespace, name: str, *, gap: bool = False,
                     epochs_table: bool = False) -> Comparison:
    """Train (or load) the variants, print the table, write the tables and figures.

    Args:
        gap: also print train against test accuracy per epoch (seed mean): the overfitting gap.
        epochs_table: also print each variant's learning rate and test accuracy per epoch (first seed).
    """
    result = s6lab.compare(variants, seeds=args.seeds, epochs=args.epochs, out=args.out, jobs=args.jobs,
                           train_size=args.train_size, test_size=args.test_size, progress=not args.quick)
    print(format_comparison(result))
    if gap:
        print("\ntrain accuracy (augmented batches, dropout on) against test accuracy, mean over seeds:")
        print(f"{'variant':<16} {'epoch':>5} {'train %':>8} {'test %':>7} {'gap':>6}")
        for row in result.rows:
            for i in range(len(row.runs[0].history)):
                train = sum(r.history.epochs[i].train_acc for r in row.runs) / len(row.runs)
                test = sum(r.history.epochs[i].test_acc for r in row.runs) / len(row.runs)
                print(f"{row.name:<16} {i + 1:>5} {train:>8.2f} {test:>7.2f} {train - test:>+6.2f}")
    if epochs_table:
        print("\nlearning rate at the end of each epoch, and test accuracy (seed " f"{args.seeds[0]}):")
        for row in result.rows:
            history = row.runs[0].history
            print(f"{row.name}: " + "  ".join(f"{e.epoch}: {e.lr:.4f} / {e.test_acc:.2f}%" for e in history.epochs))
    for path in render(result, args.out, name):
        print("wrote", path)
    return result
