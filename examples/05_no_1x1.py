"""Without the 1x1 transitions: the 5x5 conv and the head see all 32 channels.

What to look at: the parameter budget. The 1x1 squeeze (32 -> 8) is what keeps the 5x5
conv at 6.4k weights; without it that one conv costs 25.6k and the net breaks the 20k rule.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

import s6lab
from s6lab.analysis.budget import format_budget, parameter_budget

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__)
        for name in ("s6", "s6-no-1x1"):
            print(name)
            print(format_budget(parameter_budget(s6lab.get_model(name))))
        compare_and_show(["s6", "s6-no-1x1"], args, "05_no_1x1")
