"""Composable blocks that build the S6 Net and its variants.

Each block is an ``nn.Sequential`` subclass that only assembles its layers, so
printing, slicing, hooks and ``state_dict`` work for free. Children are named
(``conv``, ``bn``, ``relu``, ``pool``, ``drop``, ``gap``, ``flatten``, ``fc``,
``log_softmax``) and a disabled part is left out rather than replaced by ``Identity``.
Every use of ReLU is its own non-inplace module, so attribution tools and hooks see it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from .dropout import Dropout
from .errors import ConfigError


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_nonnegative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def _check_dropout(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {value!r}")


class ConvBN(nn.Sequential):
    """Conv2d, then BatchNorm2d, then ReLU, then optional Dropout.

    ``bias`` defaults to ``not batchnorm``: a bias right before BatchNorm is cancelled
    by its mean subtraction. The reference S6 Net keeps the bias (its table counts it),
    so the reference spec passes ``bias=True``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd or even, >= 1).
        padding: zero padding on each side.
        stride: convolution stride.
        dilation: kernel dilation.
        batchnorm: include the ``bn`` child.
        dropout: probability for the ``drop`` child; 0 leaves it out.
        bias: conv bias; ``None`` means ``not batchnorm``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H', W')`` with
        ``H' = (H + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1``.

    Examples:
        >>> block = ConvBN(1, 32, kernel_size=3)
        >>> [name for name, _ in block.named_children()]
        ['conv', 'bn', 'relu']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        padding: int = 0,
        stride: int = 1,
        dilation: int = 1,
        batchnorm: bool = True,
        dropout: float = 0.0,
        bias: bool | None = None,
    ) -> None:
        _check_positive("in_channels", in_channels)
        _check_positive("out_channels", out_channels)
        _check_positive("kernel_size", kernel_size)
        _check_nonnegative("padding", padding)
        _check_positive("stride", stride)
        _check_positive("dilation", dilation)
        _check_dropout(dropout)
        if bias is None:
            bias = not batchnorm
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, dilation=dilation, bias=bias),
        }
        if batchnorm:
            layers["bn"] = nn.BatchNorm2d(out_channels)
        layers["relu"] = nn.ReLU()
        if dropout > 0:
            layers["drop"] = Dropout(dropout)
        super().__init__(OrderedDict(layers))
        self.in_channels = in_channels
        self.out_channels = out_channels


class Transition1x1(ConvBN):
    """A 1x1 ConvBN that mixes and reduces channels without touching the spatial size.

    It adds no receptive field and costs ``in_channels * out_channels`` weights: the
    cheap way to shrink the channel count before an expensive conv.

    Examples:
        >>> Transition1x1(32, 8).conv.kernel_size
        (1, 1)
    """

    def __init__(self, in_channels: int, out_channels: int, *, batchnorm: bool = True,
                 dropout: float = 0.0, bias: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, 1, batchnorm=batchnorm,
                         dropout=dropout, bias=bias)


class PoolDrop(nn.Sequential):
    """MaxPool2d, then optional Dropout. Channels pass through unchanged.

    Args:
        channels: channel count (recorded as ``in_channels`` and ``out_channels``).
        kernel_size: pooling window, also the stride.
        dropout: probability for the ``drop`` child; 0 leaves it out.

    Examples:
        >>> PoolDrop(32, dropout=0.1)
        PoolDrop(
          (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
          (drop): Dropout(p=0.1, inplace=False)
        )
    """

    def __init__(self, channels: int, kernel_size: int = 2, *, dropout: float = 0.0) -> None:
        _check_positive("channels", channels)
        _check_positive("kernel_size", kernel_size)
        _check_dropout(dropout)
        layers: dict[str, nn.Module] = {"pool": nn.MaxPool2d(kernel_size)}
        if dropout > 0:
            layers["drop"] = Dropout(dropout)
        super().__init__(OrderedDict(layers))
        self.in_channels = self.out_channels = channels


class LinearHead(nn.Sequential):
    """Flatten, Linear, LogSoftmax: the S6 Net's fully connected head.

    Shape:
        ``(N, C, H, W) -> (N, num_classes)`` log-probabilities, ``in_features = C*H*W``.
    """

    def __init__(self, in_features: int, num_classes: int = 10) -> None:
        _check_positive("in_features", in_features)
        _check_positive("num_classes", num_classes)
        super().__init__(OrderedDict({
            "flatten": nn.Flatten(),
            "fc": nn.Linear(in_features, num_classes),
            "log_softmax": nn.LogSoftmax(dim=1),
        }))
        self.in_channels = in_features
        self.out_channels = num_classes


class GAPHead(nn.Sequential):
    """1x1 conv to ``num_classes`` channels, global average pooling, LogSoftmax.

    The parameter-cheap alternative to a fully connected head: it costs
    ``in_channels * num_classes + num_classes`` weights whatever the spatial size.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` log-probabilities.
    """

    def __init__(self, in_channels: int, num_classes: int = 10) -> None:
        _check_positive("in_channels", in_channels)
        _check_positive("num_classes", num_classes)
        super().__init__(OrderedDict({
            "conv": nn.Conv2d(in_channels, num_classes, 1),
            "gap": nn.AdaptiveAvgPool2d(1),
            "flatten": nn.Flatten(),
            "log_softmax": nn.LogSoftmax(dim=1),
        }))
        self.in_channels = in_channels
        self.out_channels = num_classes
