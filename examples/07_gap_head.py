"""A global-average-pooling head (1x1 conv to 10 channels, average) in place of the FC head.

What to look at: the head's share of the budget (13% -> 1%), and whether averaging the 4x4
map loses the spatial layout the FC head could use.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

import s6lab
from s6lab.analysis.budget import parameter_budget

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__)
        for name in ("s6", "s6-gap"):
            head = parameter_budget(s6lab.get_model(name)).blocks[-1]
            print(f"{name}: head {head.type} has {head.params:,} parameters ({head.percent:.1f}% of the net)")
        compare_and_show(["s6", "s6-gap"], args, "07_gap_head")
