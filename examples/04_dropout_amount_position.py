"""Dropout amount (0.25 instead of 0.1) and position (0.05 after every conv block).

What to look at: whether heavier dropout, or dropout on the high-resolution maps as well,
changes the early epochs or the final spread in the curves figure. Measured at 10 epochs
and 2 seeds (results/layer-choices.md), the gaps are within the seed-to-seed spread.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(["s6", "s6-dropout-0.25", "s6-dropout-every-conv"], parse(__doc__), "04_dropout")
