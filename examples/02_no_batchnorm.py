"""Without BatchNorm: the same net, every BatchNorm removed (the convs keep their bias).

What to look at: the first epochs. BatchNorm lets OneCycle's peak learning rate through
without the early plateau; without it the net learns slower and ends lower. Only 240
parameters differ, so the gap is about optimisation, not capacity.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(["s6", "s6-no-bn"], parse(__doc__), "02_no_batchnorm")
