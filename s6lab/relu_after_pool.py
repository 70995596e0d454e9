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
is the net as built. A pair that a hook would see differently when an epoch starts (a hook on the
ReLU, the pool, or the block either sits in; any global module hook) stays where it is, so a hook you
register sees what you expect; so do the pairs of a ``torch.compile``d model.

Measured end to end in ``benchmarks/levers.py`` (``make bench-fusion``, the whole training step,
round by round against the defaults of the time, 15 rounds each), on a 2-core Intel Xeon VM with
AVX-512 bf16 and AMX: 1.03x (session 14), 1.06x (session 15), 1.06x (session 16), 1.03x (session 17,
before it joined the trainer); on a 2-core AMD EPYC VM with AVX2 and no bf16: 1.09x (session 10)
and 0.99x (session 12, in the trainer: turning it off measured 1.01x, rounds 0.78-1.48x on that
noisy VM). About 4% on paper: the ReLU at 24x24x32 moves about 95 MB a batch of 256 forward and
backward, and three quarters of that goes. A gain on the AVX-512 class in every run, a gain and a
draw on AVX2, and the same bits either way: so it is a default (session 17). In the trainer,
``make bench-fusion`` measured turning it off at 0.95x round by round on the AVX-512 VM (rounds
0.89-0.99x: 1.05x for the lever); the same command measures it on each class. It is on on a GPU
too, where it changes no bit either but was never measured.

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

from .hooks import global_hooks, hooked


def _in_order(module: nn.Module) -> bool:
    """Whether ``module`` runs its children one after another: an ``nn.Sequential`` whose ``forward``
    is Sequential's own (a subclass with its own forward may tap or skip between children)."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _movable_pool(module: nn.Module) -> bool:
    """A max-pool that returns only its values (with ``return_indices`` it returns a tuple)."""
    return isinstance(module, nn.MaxPool2d) and not module.return_indices


def _compiled(model: nn.Module) -> bool:
    """Whether ``model`` is or holds a ``torch.compile``d module: swapping its modules each epoch would
    break the compiled graph's guards and recompile it."""
    return any(type(m).__name__ == "OptimizedModule" for m in model.modules())


def _pairs(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module, str, list[nn.Module]]]:
    """Every (ReLU parent, name, pool parent, name, modules a hook there would see differently) where a
    ReLU's output goes straight into a max-pool: consecutive children of one in-order container, the ReLU
    either the first child itself or the last child of it (an in-order block), the pool either the second
    child itself or the first child of it."""
    found = []
    for container in model.modules():
        if not _in_order(container):  # only there is "consecutive" the order of the forward
            continue
        names = list(container._modules)
        for a, b in zip(names, names[1:]):
            first, second = container._modules[a], container._modules[b]
            relu = pool = None
            if type(first) is nn.ReLU:
                relu = (container, a)
            elif _in_order(first) and first._modules and type(list(first._modules.values())[-1]) is nn.ReLU:
                relu = (first, list(first._modules)[-1])
            if _movable_pool(second):
                pool = (container, b)
            elif _in_order(second) and second._modules and _movable_pool(list(second._modules.values())[0]):
                pool = (second, list(second._modules)[0])
            if relu and pool:
                # the ReLU and the pool, and a block that ends in the ReLU or starts with the pool (its output
                # or input changes while they are moved); the container's own input and output do not
                watching = [relu[0]._modules[relu[1]], pool[0]._modules[pool[1]]]
                watching += [parent for parent, _ in (relu, pool) if parent is not container]
                found.append((*relu, *pool, watching))
    return found


@contextmanager
def relu_after_pool(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Inside the block, each ReLU whose output goes straight into a max-pool runs after that pool.

    Left where they are: a pair where a hook watches the ReLU, the pool, or the block that ends in the
    ReLU or starts with the pool; every pair while a global module hook exists; every pair of a
    ``torch.compile``d model; pairs inside an ``nn.Sequential`` subclass with its own ``forward``; and
    max-pools with ``return_indices``.

    Args:
        model: the net; its modules are swapped in place and restored on leaving, also on an error.
        enabled: ``False`` leaves the net as it is (``fit`` passes ``TrainConfig.relu_after_pool``).

    Yields:
        How many ReLUs moved (0 when disabled or when none qualifies).
    """
    moved: list[tuple[nn.Module, str, nn.Module, nn.Module, str, nn.Module]] = []
    pairs = _pairs(model) if enabled and not global_hooks() and not _compiled(model) else []
    try:
        for relu_parent, relu_name, pool_parent, pool_name, watching in pairs:
            if any(hooked(module) for module in watching):
                continue
            relu, pool = relu_parent._modules[relu_name], pool_parent._modules[pool_name]
            setattr(pool_parent, pool_name, nn.Sequential(pool, relu))  # the same ReLU module, moved
            setattr(relu_parent, relu_name, nn.Identity())
            moved.append((relu_parent, relu_name, relu, pool_parent, pool_name, pool))
        yield len(moved)
    finally:
        for relu_parent, relu_name, relu, pool_parent, pool_name, pool in reversed(moved):
            setattr(pool_parent, pool_name, pool)
            setattr(relu_parent, relu_name, relu)
