"""One forward pass with forward hooks attached: how the analyses see inside a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

Hook = Callable[[nn.Module, tuple, Any], Any]


def forward_with_hooks(model: nn.Module, x: torch.Tensor, hooks: Iterable[tuple[nn.Module, Hook]]) -> None:
    """Run ``x`` through ``model`` in eval mode without autograd, with each ``(module, hook)`` attached
    as a forward hook; the hooks are removed and the model's train/eval mode restored afterwards."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
            model(x.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
