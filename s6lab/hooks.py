"""Whether a hook watches a module: the question the trainer's exact rewrites ask before they swap
modules (`s6lab.patch_batchnorm`, `s6lab.relu_after_pool`), so that a hook you registered fires on
what you expect."""

from __future__ import annotations

import torch.nn as nn
from torch.nn.modules import module as torch_module

_KINDS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def global_hooks() -> bool:
    """Whether a global module hook is registered (``torch.nn.modules.module.register_module_forward_hook``
    and friends): it fires on every module, the swapped ones too."""
    return any(getattr(torch_module, f"_global{kind}", None) for kind in _KINDS)


def hooked(module: nn.Module) -> bool:
    """Whether ``module`` itself carries a forward, forward-pre, backward or backward-pre hook.

    Examples:
        >>> relu = nn.ReLU()
        >>> hooked(relu)
        False
        >>> handle = relu.register_forward_hook(lambda module, inputs, output: None)
        >>> hooked(relu)
        True
    """
    return any(getattr(module, kind, None) for kind in _KINDS)
