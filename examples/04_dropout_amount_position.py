"""Dropout amount (0.25 instead of 0.1) and position (0.05 after every conv block).

What to look at: heavier dropout costs early-epoch accuracy on a net this small; dropout
after every conv regularises the high-resolution maps too. Compare the curves figure.
"""

from __future__ import annotations

from _common import compare_and_show, parse

compare_and_show(["s6", "s6-dropout-0.25", "s6-dropout-every-conv"], parse(__doc__), "04_dropout")
