"""Weight averaging: an exponential moving average (EMA) of the weights, evaluated in their place.

A step of SGD moves the weights along one batch's gradient, so at a high learning rate they
jitter around a good point rather than sit on it. An average over the last few hundred steps
sits closer to it: ``TrainConfig(ema=0.998)`` evaluates, reports and keeps that average
instead of the last step's weights. BatchNorm's running statistics are averaged with them,
so the average is a complete model that needs no extra pass over the data.

It is torch's own `torch.optim.swa_utils.AveragedModel`, bias-corrected as Adam corrects its
moments: after ``t`` steps each earlier step ``s`` weighs ``decay**(t - s)``, normalised to sum
to one. So the average covers about the last ``1 / (1 - decay)`` steps from the first step on
(0.998: about 500), without the random initialisation a plain EMA starts from (with a flat
0.998, after 469 steps, one epoch at batch 128, 39% of the average would still be it).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel


def corrected_decay(decay: float, step: int) -> float:
    """The weight of the average so far when step ``step`` (1-based) is averaged in:
    ``(decay - decay**step) / (1 - decay**step)``. Step 1 replaces it; later steps approach ``decay``.

    Examples:
        >>> corrected_decay(0.998, 1), round(corrected_decay(0.998, 2), 4), round(corrected_decay(0.998, 10**5), 4)
        (0.0, 0.4995, 0.998)
    """
    return (decay - decay ** step) / (1 - decay ** step)


def moving_average(model: nn.Module, decay: float) -> AveragedModel:
    """A copy of ``model`` that follows it as an EMA with this ``decay`` per step (see the module).

    Call ``.update_parameters(model)`` after every optimizer step; ``.module`` is the averaged
    network. Integer buffers (BatchNorm's batch counter) are copied, not averaged.
    """
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], averaged_so_far: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1 - corrected_decay(decay, int(averaged_so_far) + 1))

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)
