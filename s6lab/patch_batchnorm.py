"""Layer 1's BatchNorm from its input's patch statistics: the same training math, one memory pass less.

The first conv of an MNIST net reads one channel with a 3x3 kernel, so each output value is
``w_c . p + b_c`` where ``p`` is one 9-value patch of the image. BatchNorm in training mode needs the
batch mean and variance of every output channel, which are therefore

    mean_c = w_c . mean(p) + b_c          var_c = w_c^T cov(p) w_c

with ``mean(p)`` (9 values) and ``cov(p)`` (9 x 9) taken over every patch of the batch, one small pass
over the input instead of a pass over the conv's 32-channel output. BatchNorm then becomes a
per-channel scale and shift of the conv's weights and bias: one conv and no BatchNorm pass, forward
or backward. Autograd carries the gradient through the statistics, as BatchNorm's own backward
does, and the running statistics are updated as BatchNorm updates them. Only the rounding differs
(`tests/test_patch_batchnorm.py` checks the outputs, gradients and running statistics in float64).

Measured in ``benchmarks/levers.py`` (the "patch statistics" row, ``make bench-fusion``), round by
round against the stock BatchNorm: on an AVX-512 CPU with bf16, 1.12x (session 14, the benchmark's own
copy, rounds 1.09-1.16x) and 1.07x (session 15, this module, rounds 0.93-1.25x); on AVX2 without
bf16, 1.09x (session 10, rounds 0.82-1.53x). Not measured on a GPU.

``TrainConfig.first_bn_from_patches`` chooses (`choose_patch_statistics`), once before training:
``None`` (the default, "auto") turns it on where it measured a gain and changes nothing a learner can
see: on a CPU, for a net whose first block folds and where no hook watches layer 1's ``conv`` or
``bn`` when training starts (a hook there would not fire in training mode while it is on). ``True``
turns it on anywhere it folds (refusing nets it cannot fold), ``False`` keeps the stock BatchNorm.
The default recipe with it passes the assignment on every seed measured
(``results/recipe-confirm-patch-statistics.md``). It changes the last bits, so a run records
whether it was on, and resuming compares that. Evaluation mode runs
the stock forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import MethodType

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError
from .hooks import global_hooks, hooked


def first_conv_bn(model: nn.Module) -> nn.Module | None:
    """The first block of ``model`` if it is a conv followed by a BatchNorm this module can fold, else None.

    Examples:
        >>> from s6lab import get_model
        >>> block = first_conv_bn(get_model("s6"))
        >>> block.conv.in_channels, block.conv.kernel_size, block.bn.num_features
        (1, (3, 3), 32)
    """
    if isinstance(getattr(model, "module", None), nn.Module) and len(list(model.children())) == 1:
        model = model.module  # DistributedDataParallel and similar wrappers: the net they run
    first = next(iter(model.children()), None)
    conv, bn = getattr(first, "conv", None), getattr(first, "bn", None)
    names = [name for name, _ in first.named_children()] if first is not None else []
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and names[:2] == ["conv", "bn"]):
        return None
    if not (bn.affine and bn.track_running_stats and bn.momentum is not None and conv.groups == 1
            and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)):
        return None
    return first


def fold_refusal(model: nn.Module) -> str | None:
    """Why ``model``'s first BatchNorm cannot be computed from patch statistics (one line naming the way
    out), or None when it can: what `fit` and `first_batchnorm_from_patches` raise."""
    if first_conv_bn(model) is not None:
        return None
    first = next(iter(model.children()), model)
    parts = ", ".join(name for name, _ in first.named_children())  # ConvBN(conv, relu): no bn
    return ("TrainConfig.first_bn_from_patches=True needs a net whose first block is a ConvBN (conv, then "
            "BatchNorm2d with affine weights, running statistics and a momentum); this net starts with "
            f"{type(first).__name__}({parts}): leave the setting out (auto: off for this net; null in a JSON "
            "config) or set it to False (--no-first-bn-from-patches)")


@dataclass(frozen=True)
class PatchChoice:
    """Whether a run computes layer 1's BatchNorm from patch statistics, and who decided."""

    on: bool
    why: str  # "auto: the same math, ...", "asked for", "off: auto, a hook watches layer 1", ...

    def describe(self) -> str:
        """``layer 1's BatchNorm from patch statistics (auto: ...)``; ``""`` when off (the stock path)."""
        return f"layer 1's BatchNorm from patch statistics ({self.why})" if self.on else ""


def choose_patch_statistics(setting: bool | None, model: nn.Module, device: torch.device | str) -> PatchChoice:
    """What ``TrainConfig.first_bn_from_patches`` means for ``model`` on ``device``.

    Decided once, before training: a hook registered on layer 1's ``conv`` or ``bn`` after `fit` has
    started does not fire in training mode while the patch statistics are on.

    Args:
        setting: ``None`` (auto: on for a CPU and a net whose first block folds, unless a hook
            `watched` layer 1), ``True`` (on, or a `ConfigError` for a net it cannot fold), ``False`` (off).
        model: the net, on any device (the meta device too: only its layers are read).
        device: where it trains.

    Raises:
        ConfigError: ``setting`` is True and the net's first block cannot be folded (`fold_refusal`).

    Examples:
        >>> from s6lab import get_model
        >>> net = get_model("s6")
        >>> choose_patch_statistics(None, net, "cpu").on, choose_patch_statistics(None, net, "cuda").on
        (True, False)
    """
    if setting is False:
        return PatchChoice(False, "off: asked for")
    problem = fold_refusal(model)
    if setting is True:
        if problem is not None:
            raise ConfigError(problem)
        return PatchChoice(True, "asked for")
    if torch.device(device).type != "cpu":  # measured on CPUs only (the module notes)
        return PatchChoice(False, f"off: auto, not measured on {torch.device(device).type}")
    if problem is not None:
        return PatchChoice(False, "off: auto, the net's first block does not fold")
    if watched(model):  # the hook would not fire: the stock block, so that it sees what it asked for
        return PatchChoice(False, "off: auto, a hook watches layer 1's conv or bn")
    return PatchChoice(True, "auto: the same math, one BatchNorm pass less; off: first_bn_from_patches=False, "
                             "--no-first-bn-from-patches")


def watched(model: nn.Module) -> bool:
    """Whether a hook would see layer 1's ``conv`` or ``bn`` run: one registered on them, or a global
    module hook (``torch.nn.modules.module.register_module_forward_hook`` and friends). Their forward
    does not run while the patch statistics are on, so the auto setting leaves them off for a net
    watched when training starts.

    Examples:
        >>> from s6lab import get_model
        >>> model = get_model("s6")
        >>> watched(model)
        False
        >>> handle = model[0].bn.register_forward_hook(lambda module, inputs, output: None)
        >>> watched(model)
        True
    """
    block = first_conv_bn(model)
    if block is None:
        return False
    return global_hooks() or hooked(block.conv) or hooked(block.bn)


def patch_rows(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The input patches ``conv`` multiplies, one row per weight: ``(C*kh*kw, N*H'*W')``.

    Built from ``C*kh*kw`` strided views of the (zero-padded) input, in the order of
    ``conv.weight.reshape(out_channels, -1)``'s columns (4x faster here than ``F.unfold``).

    Shape:
        ``x``: ``(N, C, H, W)``; returns ``(C*kh*kw, N*H'*W')`` with ``H'``, ``W'`` the conv's output size.
    """
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    h, w = x.shape[-2:]
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    views = [x[:, c, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
             for c in range(x.shape[1]) for i in range(kh) for j in range(kw)]  # each (N, H', W')
    return torch.stack(views).reshape(len(views), -1)  # (C*kh*kw, N*H'*W')


def _forward_from_patches(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block's training forward with BatchNorm folded into the conv (see the module notes)."""
    stock = type(block).forward
    if not block.training:
        return stock(block, x)
    conv, bn = block.conv, block.bn
    dtype = conv.weight.dtype  # fp32 under bf16 autocast too: BatchNorm keeps its statistics in fp32
    with torch.autocast(x.device.type, enabled=False):
        # float64: MNIST's neighbouring pixels are nearly equal, so the patch covariance is nearly singular and
        # w^T cov w cancels; from fp32 statistics a channel's variance is off by 6e-6 (MKL's AVX2 matmul) to 5e-4
        # (its AVX-512 one) of its value, 70x and more BatchNorm's own pass (< 1e-7)
        # (tests/test_patch_batchnorm.py::test_why_the_statistics_are_float64)
        patches = patch_rows(x.double(), conv)  # (C*k*k, n)
        n = patches.shape[1]
        mean_p = patches.mean(1)  # (C*k*k,)
        cov = patches @ patches.T / n - torch.outer(mean_p, mean_p)  # (C*k*k, C*k*k)
        weight = conv.weight.double().reshape(conv.out_channels, -1)  # (out, C*k*k)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.bias)
        mean = (weight @ mean_p).to(dtype) + bias  # (out,) the batch mean of each output channel
        var = ((weight @ cov) * weight).sum(1).clamp_min(0).to(dtype)  # (out,) the biased batch variance
        scale = bn.weight / torch.sqrt(var + bn.eps)  # (out,)
    with torch.no_grad():  # what BatchNorm2d's training forward does to its buffers
        bn.num_batches_tracked += 1
        bn.running_mean.lerp_(mean.detach(), bn.momentum)
        bn.running_var.lerp_(var.detach() * n / max(n - 1, 1), bn.momentum)
    out = F.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), bn.bias + (bias - mean) * scale,
                   conv.stride, conv.padding, conv.dilation)
    for name, child in block.named_children():  # the rest of the block (relu, drop) as it is
        if name not in ("conv", "bn"):
            out = child(out)
    return out


@contextmanager
def first_batchnorm_from_patches(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """While the context is open, ``model``'s first block computes its BatchNorm from patch statistics
    in training mode; the stock forward is back afterwards, even on an error.

    Args:
        model: an s6lab net (or any ``nn.Sequential`` whose first child has ``conv`` and ``bn`` children).
        enabled: ``False`` makes the context do nothing (``fit`` passes what `choose_patch_statistics`
            chose before training).

    Raises:
        ConfigError: ``enabled`` and the net's first block cannot be folded this way.

    Examples:
        >>> from s6lab import get_model
        >>> model = get_model("s6").train()
        >>> with first_batchnorm_from_patches(model):
        ...     out = model(torch.randn(8, 1, 28, 28))
        >>> out.shape
        torch.Size([8, 10])
    """
    if not enabled:
        yield
        return
    if (problem := fold_refusal(model)) is not None:
        raise ConfigError(problem)
    block = first_conv_bn(model)
    block.forward = MethodType(_forward_from_patches, block)
    try:
        yield
    finally:
        del block.forward  # the class's forward again
