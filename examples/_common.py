"""Shared command line for the examples: --epochs, --seeds, --out and a --quick mode.

Quick mode trains 1 epoch on the first 1,000 training images and tests on 500: it shows
that the script works, not what the layer choice does. Drop --quick for real numbers.
"""

from __future__ import annotations

import argparse

import s6lab
from s6lab.comparison import Comparison, format_comparison, render


def parse(doc: str, epochs: int = 10) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/examples", help="results folder")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 1k images: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.train_size, args.test_size = 1, 1000, 500
    else:
        args.train_size = args.test_size = None
    return args


def compare_and_show(variants: list[str], args: argparse.Namespace, name: str) -> Comparison:
    """Train (or load) the variants, print the table, write the tables and figures."""
    result = s6lab.compare(variants, seeds=args.seeds, epochs=args.epochs, out=args.out,
                           train_size=args.train_size, test_size=args.test_size, progress=not args.quick)
    print(format_comparison(result))
    for path in render(result, args.out, name):
        print("wrote", path)
    return result
