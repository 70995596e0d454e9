"""With and without augmentation (random rotation up to 7 degrees, shift up to 8%).

What to look at: without augmentation the train accuracy climbs higher while the test
accuracy stalls earlier; the gap between them is the overfitting augmentation prevents.
"""

from __future__ import annotations

from _common import compare_and_show, one_line_errors, parse

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        compare_and_show(["s6", "s6-no-augment"], parse(__doc__), "09_augmentation", gap=True)
