"""Fewer parameters: the reference (19.6k), a half-width copy (8.8k) and a sub-5k net.

What to look at: accuracy against parameters. The sub-5k net trades the FC head for global
average pooling and the 5x5 for three 3x3 convs after a 1x1 squeeze. Real numbers: run with
the default 15 epochs and --seed 0 1 2 (results/small-nets.md holds the measured ones).
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(["s6", "s6-8k", "s6-5k"], parse(__doc__, epochs=15), "11_small_nets")
