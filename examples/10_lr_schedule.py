"""Learning-rate schedule: OneCycle (default) against a step schedule (x0.1 every 6 epochs).

What to look at: the printed learning rate per epoch and the curves figure. OneCycle warms
up, peaks and anneals to ~0 by the last epoch, which is where its last-epochs accuracy
comes from.
"""

from __future__ import annotations

import math

from _common import compare_and_show, one_line_errors, parse

import s6lab
from s6lab.train import lr_at

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__)
        onecycle = s6lab.get_recipe("s6").train
        step = s6lab.get_recipe("s6-step-lr").train
        steps = math.ceil(60_000 / onecycle.batch_size)  # optimizer steps per epoch
        print("epoch  onecycle   step")
        for epoch in range(0, onecycle.epochs, 2):
            at = epoch * steps
            print(f"{epoch + 1:>5}  {lr_at(at, steps, onecycle):.5f}  {lr_at(at, steps, step):.5f}")
        compare_and_show(["s6", "s6-step-lr"], args, "10_lr_schedule", epochs_table=True)
