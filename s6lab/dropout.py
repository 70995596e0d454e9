"""Dropout whose CPU training path draws its mask several times faster than ``nn.Dropout``.

On a CPU, ``nn.Dropout`` spends its time in ``bernoulli_``: one call of the
single-threaded Mersenne Twister per element, then a mixed-dtype multiply; for the
reference net that is a visible share of a training step. `fast_dropout` draws 64
random bits per four elements (bf16/fp16; per two for fp32) and turns them into the
scaled mask with a few vectorized integer operations:

1. keep 15 (31) uniform bits of each lane: ``v`` is uniform on ``[0, 2**15)``;
2. ``(v - t) >> 15`` is all ones where ``v < t`` (kept) and zero elsewhere, with
   ``t = round((1 - p) * 2**15)``;
3. ``& bits(1 / (1 - p))`` leaves the scale's bit pattern where kept, zero where dropped;
4. reinterpret as the float type and multiply.

It is the same random variable as ``nn.Dropout``: each element is kept independently
with probability ``t / 2**15`` (``p`` rounded to a multiple of ``2**-15``, an error of at
most ``2**-15 = 3.1e-5``; ``2**-31`` for fp32) and scaled by ``1 / (1 - p)`` rounded to the
tensor's dtype, exactly as ``nn.Dropout`` rounds it. The bits come from torch's global
CPU generator, so ``torch.manual_seed`` makes it repeatable and a checkpoint of
``torch.get_rng_state()`` resumes it. Other devices, dtypes, layouts, ``inplace`` and
code traced by ``torch.compile`` fall back to ``nn.functional.dropout``.

Measured end to end in ``benchmarks/levers.py`` (the "nn.Dropout masks" rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError

#: dtype -> (integer dtype of the same width, random lanes per 64-bit draw, uniform bits per lane)
_LANES = {
    torch.bfloat16: (torch.int16, 4, 15),
    torch.float16: (torch.int16, 4, 15),
    torch.float32: (torch.int32, 2, 31),
}

_enabled = True


@contextmanager
def fast_dropout_enabled(enabled: bool) -> Iterator[None]:
    """Turn the fast path of `Dropout` on or off inside a ``with`` block.

    ``fit`` uses it for ``TrainConfig.fast_dropout``; outside any block it is on.
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = previous


def fast_path_applies(x: torch.Tensor) -> bool:
    """Whether `fast_dropout` handles ``x`` itself (CPU, bf16/fp16/fp32, dense layout).

    Never under ``torch.compile``: the compiler generates its own fused dropout.
    """
    if torch.compiler.is_compiling():
        return False
    dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
    return x.device.type == "cpu" and x.dtype in _LANES and dense and x.numel() > 0


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of ``x`` with drop probability ``p`` (see the module notes).

    Args:
        x: input; if `fast_path_applies` is false, ``F.dropout`` does the work.
        p: drop probability in ``[0, 1]``.

    Returns:
        A new tensor with the layout of ``x``: each element zeroed with probability
        ``p`` or scaled by ``1 / (1 - p)``. Gradients flow through the same mask.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> y = fast_dropout(torch.ones(100_000), 0.25)
        >>> round((y == 0).float().mean().item(), 2), round(y.max().item(), 4)
        (0.25, 1.3333)
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"dropout probability must be in [0, 1], got {p!r}")
    if p == 0.0:
        return x.clone()
    if p == 1.0 or not fast_path_applies(x):
        return F.dropout(x, p, training=True)
    int_dtype, lanes, bits = _LANES[x.dtype]
    n = x.numel()
    draws = torch.empty((n + lanes - 1) // lanes, dtype=torch.int64).random_()  # 63 uniform bits each
    v = draws.view(int_dtype)[:n].as_strided(x.shape, x.stride())  # same memory layout as x
    threshold = min(round((1.0 - p) * 2**bits), 2**bits - 1)
    scale = torch.tensor(1.0 / (1.0 - p), dtype=x.dtype).view(int_dtype).item()
    mask = v.bitwise_and_(2**bits - 1).sub_(threshold).bitwise_right_shift_(bits).bitwise_and_(scale)
    return x * mask.view(x.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the fast CPU training path of `fast_dropout`.

    A drop-in subclass: same ``p``/``inplace`` arguments, ``repr``, ``state_dict`` (empty)
    and ``isinstance(m, nn.Dropout)``. Evaluation mode is the identity, as always.

    Examples:
        >>> Dropout(0.1)
        Dropout(p=0.1, inplace=False)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _enabled and not self.inplace and fast_path_applies(x):
            return fast_dropout(x, self.p)
        return super().forward(x)
