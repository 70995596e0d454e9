"""Without Dropout: the 0.1 dropout after both max-pools removed.

What to look at: the printed train against test accuracy per epoch (the gap column). With
augmentation on, a 20k-parameter net barely overfits MNIST, so expect a small effect; the
table's spread over seeds tells whether it is larger than the noise.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(["s6", "s6-no-dropout"], parse(__doc__), "03_no_dropout", gap=True)
