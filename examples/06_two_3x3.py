"""Two 3x3 convs (8 -> 16 -> 32) in place of the single 5x5 conv.

What to look at: the receptive-field tables are identical after the pair (two stacked 3x3
see 5x5), the parameters drop by ~600 and there is one more ReLU of non-linearity.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

import s6lab
from s6lab.analysis.receptive_field import format_receptive_fields, receptive_fields

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__)
        for name in ("s6", "s6-two-3x3"):
            print(name)
            print(format_receptive_fields(receptive_fields(s6lab.get_model(name)), only_changes=True))
        compare_and_show(["s6", "s6-two-3x3"], args, "06_two_3x3")
