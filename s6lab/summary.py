"""Layer summaries through torchinfo.

Examples:
    >>> from s6lab import get_model
    >>> rows = layer_rows(get_model("s6"))
    >>> rows[0]
    LayerRow(name='conv1.conv', type='Conv2d', output_shape=(32, 26, 26), params=320)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from .errors import ConfigError

#: Layers that carry no parameters and that torchsummary-style tables of forward-only
#: functional calls (``F.relu``, ``x.view``, ``F.log_softmax``) never list.
FUNCTIONAL_IN_ORIGINAL = ("ReLU", "Flatten", "LogSoftmax")


#: what a model that says nothing about its input is assumed to take: one MNIST digit
MNIST_INPUT = (1, 1, 28, 28)


def input_size_of(model: nn.Module) -> tuple[int, int, int, int]:
    """``(1, C, H, W)`` the model takes: from an s6lab spec, or an ``input_size`` attribute.

    Any other model is assumed to take one MNIST digit, with a warning: a net built for
    32x32 analysed at 28x28 would get a wrong global field and wrong multiply-adds, so pass
    ``input_size=(1, C, H, W)`` to the analysis (or set ``model.input_size``) for such nets.
    """
    import warnings

    spec = getattr(model, "spec", None)
    if spec is not None:
        return (1, spec.in_channels, spec.image_size, spec.image_size)
    declared = getattr(model, "input_size", None)
    if declared is not None:
        return tuple(declared)  # type: ignore[return-value]
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != 1:
        raise ConfigError(f"the model takes {first.in_channels}-channel images, so it is not an MNIST net: pass "
                         "input_size=(1, C, H, W) (or set model.input_size)")
    warnings.warn("the model is not an s6lab spec and declares no input_size: assuming one MNIST digit "
                  f"{MNIST_INPUT}; pass input_size=(1, C, H, W) if it was built for another size", stacklevel=3)
    return MNIST_INPUT


def summary(model: nn.Module, input_size: tuple[int, ...] | None = None, **kwargs: Any):
    """``torchinfo.summary`` with output shape, parameters and multiply-adds columns.

    Returns:
        ``torchinfo.ModelStatistics``; ``str()`` of it is the printed table.
    """
    import torchinfo

    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("device", "cpu")
    return torchinfo.summary(model, input_size=input_size or input_size_of(model), **kwargs)


@dataclass(frozen=True)
class LayerRow:
    """One leaf layer: dotted name, type, output shape without batch, parameters."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int


def layer_rows(model: nn.Module, input_size: tuple[int, ...] | None = None) -> list[LayerRow]:
    """Leaf layers in forward order, from a torchinfo pass."""
    stats = summary(model, input_size)
    names = {id(m): n for n, m in model.named_modules()}
    rows = []
    for info in stats.summary_list:
        if info.is_leaf_layer and info.executed:
            rows.append(LayerRow(names.get(id(info.module), info.var_name), info.class_name,
                                 tuple(info.output_size[1:]), info.num_params))
    return rows
