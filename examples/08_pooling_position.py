"""Pooling position: the first max-pool after the 1x1 transition instead of before it.

What to look at: same parameters, same receptive field, but the 1x1 now runs on 24x24
instead of 12x12 maps (4x its multiply-adds) while max-pool works on 8 channels, not 32.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

import s6lab
from s6lab.analysis.budget import parameter_budget

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__)
        for name in ("s6", "s6-pool-after-1x1"):
            b = parameter_budget(s6lab.get_model(name))
            trans = next(r for r in b.blocks if r.name == "trans1")
            print(f"{name}: trans1 {trans.mult_adds:,} multiply-adds; whole net {b.total_mult_adds:,}")
        compare_and_show(["s6", "s6-pool-after-1x1"], args, "08_pooling_position")
