"""While training, apply each ReLU that feeds a max-pool after the pool instead: the same numbers,
a quarter of the ReLU's elements.

Max and ReLU commute: ``relu(max(window)) == max(relu(window))`` exactly, in any float type,
because both only pick values (and ReLU is monotone). Their gradients commute too: a window
whose maximum is positive sends its gradient to the same element either way, and a window whose
maximum is <= 0 sends none either way. So a net trained with the ReLU behind its 2x2 pool ends
with bit-identical weights (``tests/test_relu_after_pool.py`` trains both and compares), while
the ReLU's forward and backward passes touch a quarter of the elements. In the reference net two
ReLUs qualify: the one at 24x24x32 before the first pool and the one at 8x8x32 before the second.

`fit` moves them for the training loop only (``TrainConfig.relu_after_pool``, on by default) and
puts them back before it evaluates or returns, so what you print, hook and analyse after training
is the net as built. A ReLU or pool that has a hook on it when an epoch starts stays where it is,
so a hook you register sees what you expect.

Measured end to end in ``benchmarks/levers.py`` (``make bench-fusion``, the whole training step,
round by round against the defaults of the time, 15 rounds each), on a 2-core Intel Xeon VM with
AVX-512 bf16 and AMX: 1.03x (session 14), 1.06x (session 15), 1.06x (session 16), 1.03x (session 17,
before it joined the trainer); on a 2-core AMD EPYC VM with AVX2 and no bf16: 1.09x (session 10)
and 0.99x (session 12, in the trainer: turning it off measured 1.01x, rounds 0.78-1.48x on that
noisy VM). About 4% on paper: the ReLU at 24x24x32 moves about 95 MB a batch of 256 forward and
backward, and three quarters of that goes. A gain on the AVX-512 class in every run, a gain and a
draw on AVX2, and the same bits either way: so it is a default (session 17), and ``make
bench-fusion`` on each class measures turning it off. Not measured on a GPU.

Examples:
    >>> from s6lab import get_model
    >>> net = get_model("s6")
    >>> with relu_after_pool(net) as moved:
    ...     moved
    2
    >>> type(net[1].relu).__name__  # back where it was
    'ReLU'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


def _last_relu(module: nn.Module) -> tuple[nn.Module, str] | None:
    """(parent, name) of the ReLU that ends ``module`` (a block whose last child is a ReLU)."""
    names = list(module._modules)
    if names and type(module._modules[names[-1]]) is nn.ReLU:
        return module, names[-1]
    return None


def _first_pool(module: nn.Module) -> tuple[nn.Module, str] | None:
    """(parent, name) of the max-pool that starts ``module`` (a block whose first child is one)."""
    names = list(module._modules)
    if names and isinstance(module._modules[names[0]], nn.MaxPool2d):
        return module, names[0]
    return None


def _pairs(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module, str]]:
    """Every (ReLU parent, name, pool parent, name) where a ReLU's output goes straight into a max-pool:
    consecutive children of one container, the ReLU either the first child itself or the last child of
    it, the pool either the second child itself or the first child of it."""
    found = []
    for container in model.modules():
        if not isinstance(container, nn.Sequential):  # only there is "consecutive" the order of the forward
            continue
        names = list(container._modules)
        for a, b in zip(names, names[1:]):
            first, second = container._modules[a], container._modules[b]
            relu = (container, a) if type(first) is nn.ReLU else _last_relu(first) if isinstance(
                first, nn.Sequential) else None
            pool = (container, b) if isinstance(second, nn.MaxPool2d) else _first_pool(second) if isinstance(
                second, nn.Sequential) else None
            if relu and pool:
                found.append((*relu, *pool))
    return found


@contextmanager
def relu_after_pool(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Inside the block, each ReLU whose output goes straight into a max-pool runs after that pool.

    Args:
        model: the net; its modules are swapped in place and restored on leaving, also on an error.
        enabled: ``False`` leaves the net as it is (``fit`` passes ``TrainConfig.relu_after_pool``).

    Yields:
        How many ReLUs moved (0 when disabled or when none qualifies).
    """
    moved: list[tuple[nn.Module, str, nn.Module, nn.Module, str, nn.Module]] = []
    try:
        for relu_parent, relu_name, pool_parent, pool_name in _pairs(model) if enabled else []:
            relu, pool = relu_parent._modules[relu_name], pool_parent._modules[pool_name]
            if _hooked(relu) or _hooked(pool):
                continue
            setattr(pool_parent, pool_name, nn.Sequential(pool, relu))  # the same ReLU module, moved
            setattr(relu_parent, relu_name, nn.Identity())
            moved.append((relu_parent, relu_name, relu, pool_parent, pool_name, pool))
        yield len(moved)
    finally:
        for relu_parent, relu_name, relu, pool_parent, pool_name, pool in reversed(moved):
            setattr(pool_parent, pool_name, pool)
            setattr(relu_parent, relu_name, relu)
