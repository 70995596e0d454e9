"""Variants as data: small frozen dataclasses describing blocks, and ``build(spec)``.

A `NetSpec` lists layer specs in order; `build` turns it into a
`Net` (an ``nn.Sequential`` of s6lab blocks), deriving each block's input
channels and checking that channels chain and the spatial size stays >= 1. Errors
name the offending layer.

Examples:
    >>> spec = NetSpec("tiny", (ConvBNSpec(8), PoolDropSpec(), LinearHeadSpec()))
    >>> net = build(spec)
    >>> [name for name, _ in net.named_children()]
    ['conv1', 'pool1', 'head']
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Union

import torch.nn as nn

from .blocks import ConvBN, GAPHead, LinearHead, PoolDrop, Transition1x1
from .errors import ConfigError


@dataclass(frozen=True)
class ConvBNSpec:
    """A [`ConvBN`][s6lab.blocks.ConvBN] block."""

    out_channels: int  # channels this conv produces
    kernel_size: int = 3  # square kernel
    padding: int = 0  # zero padding per side; 0 shrinks the map by kernel_size - 1
    stride: int = 1
    dilation: int = 1
    dropout: float = 0.0  # dropout after the ReLU; 0 = none
    bias: bool | None = None  # None: bias only without BatchNorm
    in_channels: int | None = None  # None: taken from the previous layer; else checked


@dataclass(frozen=True)
class Transition1x1Spec:
    """A [`Transition1x1`][s6lab.blocks.Transition1x1] block (1x1 channel reduction)."""

    out_channels: int
    dropout: float = 0.0
    bias: bool | None = None
    in_channels: int | None = None


@dataclass(frozen=True)
class PoolDropSpec:
    """A [`PoolDrop`][s6lab.blocks.PoolDrop] block (max-pool, then dropout)."""

    kernel_size: int = 2
    dropout: float = 0.0


@dataclass(frozen=True)
class LinearHeadSpec:
    """A [`LinearHead`][s6lab.blocks.LinearHead]: flatten, fully connected, log-softmax."""


@dataclass(frozen=True)
class GAPHeadSpec:
    """A [`GAPHead`][s6lab.blocks.GAPHead]: 1x1 conv to classes, global average pool."""


LayerSpec = Union[ConvBNSpec, Transition1x1Spec, PoolDropSpec, LinearHeadSpec, GAPHeadSpec]  # noqa: UP007 (runtime alias on 3.10)
_PREFIX = {ConvBNSpec: "conv", Transition1x1Spec: "trans", PoolDropSpec: "pool"}


@dataclass(frozen=True)
class NetSpec:
    """A whole network as data.

    Args:
        name: registry name.
        layers: layer specs in order; the last must be a head (`LinearHeadSpec` or
            `GAPHeadSpec`) and no head may appear before it.
        batchnorm: BatchNorm after every conv and transition.
        description: one line saying what this variant changes and why.
        in_channels: input channels (1 for MNIST).
        image_size: input height and width (28 for MNIST).
        num_classes: classes the head predicts.
    """

    name: str
    layers: tuple[LayerSpec, ...]
    batchnorm: bool = True
    description: str = ""
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10

    def replace(self, **changes: Any) -> NetSpec:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


class Net(nn.Sequential):
    """A network built from a `NetSpec`; ``net.spec`` is the spec.

    Shape:
        ``(N, in_channels, image_size, image_size) -> (N, num_classes)`` log-probabilities.
    """

    def __init__(self, spec: NetSpec, layers: dict[str, nn.Module]) -> None:
        super().__init__(OrderedDict(layers))
        self.spec = spec


def _out_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def build(spec: NetSpec) -> Net:
    """Build a `Net` from a spec, checking it layer by layer.

    Args:
        spec: the network description.

    Returns:
        The network, children named ``conv1, conv2, pool1, trans1, ..., head``.

    Raises:
        ValueError: a layer's declared ``in_channels`` does not match the previous
            layer's output, the spatial size drops below 1, the head is missing or not
            last, or a block rejects its arguments. The message names the layer.
    """
    if not spec.layers:
        raise ConfigError(f"spec {spec.name!r} has no layers; add blocks and end with LinearHeadSpec() or "
                          "GAPHeadSpec()")
    if not isinstance(spec.layers[-1], (LinearHeadSpec, GAPHeadSpec)):
        raise ConfigError(f"spec {spec.name!r}: the last layer must be a head, LinearHeadSpec() or GAPHeadSpec(), "
                         f"got {spec.layers[-1]!r}")
    channels, size = spec.in_channels, spec.image_size
    counters: dict[str, int] = {}
    layers: dict[str, nn.Module] = {}
    for index, layer in enumerate(spec.layers, start=1):
        is_head = isinstance(layer, (LinearHeadSpec, GAPHeadSpec))
        if is_head:
            name = "head"
        else:
            prefix = _PREFIX[type(layer)]
            counters[prefix] = counters.get(prefix, 0) + 1
            name = f"{prefix}{counters[prefix]}"
        where = f"spec {spec.name!r}, layer {index} ({name}: {layer!r})"
        if is_head and index != len(spec.layers):
            raise ConfigError(f"{where}: a head must be the last layer")
        declared = getattr(layer, "in_channels", None)
        if declared is not None and declared != channels:
            raise ConfigError(f"{where}: declares in_channels={declared} but the previous layer "
                             f"gives {channels}; change in_channels or the previous out_channels")
        try:
            if isinstance(layer, ConvBNSpec):
                size = _out_size(size, layer.kernel_size, layer.padding, layer.stride, layer.dilation)
                block: nn.Module = ConvBN(
                    channels, layer.out_channels, layer.kernel_size, padding=layer.padding,
                    stride=layer.stride, dilation=layer.dilation, batchnorm=spec.batchnorm,
                    dropout=layer.dropout, bias=layer.bias)
            elif isinstance(layer, Transition1x1Spec):
                block = Transition1x1(channels, layer.out_channels, batchnorm=spec.batchnorm,
                                      dropout=layer.dropout, bias=layer.bias)
            elif isinstance(layer, PoolDropSpec):
                size = size // layer.kernel_size
                block = PoolDrop(channels, layer.kernel_size, dropout=layer.dropout)
            elif isinstance(layer, LinearHeadSpec):
                block = LinearHead(channels * size * size, spec.num_classes)
            elif isinstance(layer, GAPHeadSpec):
                block = GAPHead(channels, spec.num_classes)
            else:
                raise ConfigError(f"unknown layer spec type {type(layer).__name__}")
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if size < 1:
            raise ConfigError(f"{where}: the spatial size drops to {size}x{size}; "
                             "use padding, a smaller kernel or fewer pooling layers")
        layers[name] = block
        channels = block.out_channels
    return Net(spec, layers)


#: Override keys accepted by `apply_overrides`.
OVERRIDES = ("dropout", "batchnorm", "num_classes", "in_channels", "image_size")
#: the largest value of each size override: a 1,024-pixel image or 100,000 classes already ask a laptop for
#: gigabytes (image_size=100000 asked torchinfo for 400 GB, and the command died out of memory)
OVERRIDE_LIMITS = {"num_classes": 100_000, "in_channels": 64, "image_size": 1024}


def apply_overrides(spec: NetSpec, **overrides: Any) -> NetSpec:
    """A copy of ``spec`` with user overrides applied.

    Args:
        spec: the base spec.
        **overrides: ``dropout`` (float: replaces every non-zero dropout, keeping
            positions), ``batchnorm`` (bool), ``num_classes``, ``in_channels``,
            ``image_size`` (int).

    Raises:
        ValueError: an unknown key or a value of the wrong kind.

    Examples:
        >>> from s6lab.models import get_spec
        >>> apply_overrides(get_spec("s6"), dropout=0.05).layers[2]
        PoolDropSpec(kernel_size=2, dropout=0.05)
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"unknown override(s) {', '.join(unknown)} for model {spec.name!r}; "
                         f"valid overrides: {', '.join(OVERRIDES)}")
    changes: dict[str, Any] = {}
    if "dropout" in overrides:
        p = overrides["dropout"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigError(f"override dropout must be a number in [0, 1), got {p!r}")
        changes["layers"] = tuple(
            dataclasses.replace(layer, dropout=float(p)) if getattr(layer, "dropout", 0) > 0 else layer
            for layer in spec.layers)
    if "batchnorm" in overrides:
        if not isinstance(overrides["batchnorm"], bool):
            raise ConfigError(f"override batchnorm must be True or False, got {overrides['batchnorm']!r}")
        changes["batchnorm"] = overrides["batchnorm"]
    for key, most in OVERRIDE_LIMITS.items():
        if key in overrides:
            value = overrides[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ConfigError(f"override {key} must be a whole number from 1 to {most:,}, got {value!r} "
                                  "(larger nets than this do not fit a laptop's memory)")
            changes[key] = value
    return spec.replace(**changes)


_LAYER_TYPES = {cls.__name__: cls for cls in (ConvBNSpec, Transition1x1Spec, PoolDropSpec, LinearHeadSpec,
                                               GAPHeadSpec)}
#: the spec classes' names before they were named after the block they build; config.json files
#: written then still load, and the old names still import (with a DeprecationWarning) for one release
OLD_NAMES = {"Conv": ConvBNSpec, "Transition": Transition1x1Spec, "Pool": PoolDropSpec, "Linear": LinearHeadSpec,
             "GAP": GAPHeadSpec}


def renamed_spec(name: str, stacklevel: int = 2) -> type:
    """The spec class an old name stands for, with a DeprecationWarning pointing at the caller."""
    import warnings

    new = OLD_NAMES[name].__name__
    warnings.warn(f"s6lab's {name} is now {new} (it describes a {new.removesuffix('Spec')} block); "
                  f"the name {name} goes in the next release", DeprecationWarning, stacklevel=stacklevel + 1)
    return OLD_NAMES[name]


def __getattr__(name: str) -> Any:
    """The old spec class names, deprecated: ``Conv`` is `ConvBNSpec`, and so on."""
    if name in OLD_NAMES:
        return renamed_spec(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def spec_to_dict(spec: NetSpec) -> dict[str, Any]:
    """A JSON-ready dict of a spec; `spec_from_dict` inverts it."""
    return {
        "name": spec.name, "batchnorm": spec.batchnorm, "description": spec.description,
        "in_channels": spec.in_channels,
        "image_size": spec.image_size, "num_classes": spec.num_classes,
        "layers": [{"type": type(layer).__name__, **dataclasses.asdict(layer)} for layer in spec.layers],
    }


def spec_from_dict(values: dict[str, Any]) -> NetSpec:
    """Rebuild a spec written by `spec_to_dict`.

    Raises:
        ValueError: an unknown layer type or field.
    """
    layers = []
    for i, row in enumerate(values["layers"], start=1):
        row = dict(row)
        kind = row.pop("type", None)
        kind = OLD_NAMES[kind].__name__ if kind in OLD_NAMES else kind  # written before the rename
        if kind not in _LAYER_TYPES:
            raise ConfigError(f"layer {i}: unknown layer type {kind!r}; known: {', '.join(_LAYER_TYPES)}")
        try:
            layers.append(_LAYER_TYPES[kind](**row))
        except TypeError as e:
            raise ConfigError(f"layer {i} ({kind}): {e}") from None
    # "train": runs written before the recipe had its own module kept a variant's training changes here
    rest = {k: v for k, v in values.items() if k not in ("layers", "train")}
    return NetSpec(layers=tuple(layers), **rest)
