"""The reference S6 Net, the variant table, and the registry.

The registry maps a name to a :class:`~s6lab.specs.NetSpec`; ``get_model(name,
**overrides)`` builds it. Variants are data: add a spec with :func:`register_model`.

Examples:
    >>> model = get_model("s6")
    >>> sum(p.numel() for p in model.parameters())
    19602
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

from .errors import ConfigError, UnknownNameError
from .specs import GAP, Conv, Linear, Net, NetSpec, Pool, Transition, apply_overrides, build
from .train import TrainConfig

# The assignment's network, layer for layer (see shared/reference/assignment6.md).
# The original convs keep their bias before BatchNorm; its 19,602 count includes it.
S6 = NetSpec(
    name="s6",
    description="The assignment's reference net: 19,602 parameters, FC head.",
    layers=(
        Conv(32, 3, bias=True),  # 28 -> 26
        Conv(32, 3, bias=True),  # 26 -> 24
        Pool(2, dropout=0.1),  # 24 -> 12
        Transition(8, bias=True),  # 32 -> 8 channels
        Conv(32, 5, bias=True),  # 12 -> 8
        Pool(2, dropout=0.1),  # 8 -> 4
        Transition(16, bias=True),  # 32 -> 16 channels; 16*4*4 = 256 features
        Linear(),  # 256 -> 10
    ),
)

_REGISTRY: dict[str, NetSpec] = {}


def _variant(name: str, description: str, **changes: object) -> NetSpec:
    """The reference with one thing changed."""
    return S6.replace(name=name, description=description, **changes)


def _without(kind: type, layers: tuple = S6.layers) -> tuple:
    return tuple(layer for layer in layers if not isinstance(layer, kind))


_POOL = Pool(2, dropout=0.1)
_POOL_PLAIN = Pool(2)

#: One variant per layer choice, each differing from the reference in one thing.
VARIANTS: tuple[NetSpec, ...] = (
    S6,
    _variant("s6-no-bn", "Without BatchNorm (the convs keep their bias).", batchnorm=False),
    _variant("s6-no-dropout", "Without Dropout.", layers=tuple(
        Pool(2) if isinstance(layer, Pool) else layer for layer in S6.layers)),
    _variant("s6-dropout-0.25", "Dropout 0.25 instead of 0.1 (amount).", layers=tuple(
        Pool(2, dropout=0.25) if isinstance(layer, Pool) else layer for layer in S6.layers)),
    _variant("s6-dropout-every-conv", "Dropout 0.05 after every conv block instead of 0.1 after pooling "
             "(position).", layers=tuple(
                 Pool(2) if isinstance(layer, Pool)
                 else replace(layer, dropout=0.05) if isinstance(layer, (Conv, Transition)) else layer
                 for layer in S6.layers)),
    _variant("s6-no-1x1", "Without the 1x1 transitions: the 5x5 conv and the head see 32 channels.",
             layers=_without(Transition)),
    _variant("s6-two-3x3", "Two 3x3 convs (8->16->32) in place of the 5x5: same receptive field.",
             layers=(*S6.layers[:4], Conv(16, 3, bias=True), Conv(32, 3, bias=True), *S6.layers[5:])),
    _variant("s6-gap", "Global-average-pooling head (1x1 conv to 10 classes) in place of the FC head.",
             layers=(*S6.layers[:-1], GAP())),
    _variant("s6-pool-after-1x1", "Max-pool after the first 1x1 instead of before it (pooling position).",
             layers=(S6.layers[0], S6.layers[1], S6.layers[3], S6.layers[2], *S6.layers[4:])),
    _variant("s6-no-augment", "The reference net trained without augmentation.", train={"augment": False}),
    _variant("s6-step-lr", "The reference net trained with a step schedule (the default lr, x0.1 every 6 epochs) "
             "instead of OneCycle.", train={"schedule": "step", "step_epochs": 6, "gamma": 0.1}),
    NetSpec("s6-8k", description="Compact: the reference layout at half width (16 channels).", layers=(
        Conv(16, 3, bias=True), Conv(16, 3, bias=True), Pool(2, dropout=0.1), Transition(8, bias=True),
        Conv(16, 5, bias=True), Pool(2, dropout=0.1), Transition(16, bias=True), Linear())),
    NetSpec("s6-5k", description="Compact, under 5k: one pooling stage, 1x1 squeeze, three 3x3 convs, GAP head; "
            "trained at batch 128 with peak lr 0.1.", train={"batch_size": 128, "lr": 0.1},
            layers=(
                Conv(8), Conv(10), Pool(2, dropout=0.05), Transition(8), Conv(12), Conv(12), Conv(14), GAP())),
)


def register_model(spec: NetSpec, *, replace: bool = False) -> NetSpec:
    """Add a spec to the registry (it is built once to check it).

    Raises:
        ValueError: the name is taken (pass ``replace=True``) or the spec is invalid.
    """
    if spec.name in _REGISTRY and not replace:
        raise ConfigError(f"model {spec.name!r} is already registered; pass replace=True to overwrite")
    build(spec)
    _REGISTRY[spec.name] = spec
    return spec


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob ``pattern``, in registration order."""
    return [name for name in _REGISTRY if fnmatch.fnmatch(name, pattern)]


def get_spec(name: str) -> NetSpec:
    """The registered spec called ``name``.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


def get_model(name: str, **overrides: Any) -> Net:
    """Build the registered model ``name`` with optional overrides.

    Args:
        name: a name from :func:`list_models`.
        **overrides: see :func:`s6lab.specs.apply_overrides` (``dropout``,
            ``batchnorm``, ``num_classes``, ...).

    Returns:
        A freshly initialised :class:`~s6lab.specs.Net`.

    Examples:
        >>> get_model("s6", dropout=0.05).pool1.drop.p
        0.05
    """
    return build(apply_overrides(get_spec(name), **overrides))


def get_recipe(model: str | NetSpec, **overrides: Any) -> TrainConfig:
    """The training recipe of a registered variant (or a spec): the one place where the
    trainer's defaults, the variant's own training changes (``spec.train``) and your overrides
    are merged, in that order. ``s6lab train``, ``train_run`` and ``compare`` all use it; use it
    with ``fit`` so that a variant trains the way its row in the tables did.

    Raises:
        KeyError: unknown model name.
        ValueError: an unknown or invalid ``TrainConfig`` field.

    Examples:
        >>> get_recipe("s6-step-lr").schedule
        'step'
        >>> get_recipe("s6", seed=3, epochs=2).epochs
        2
    """
    spec = get_spec(model) if isinstance(model, str) else model
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **spec.train, **overrides})


for _spec in VARIANTS:
    register_model(_spec)

# Kept importable for variant tables that use them.
__all__ = ["S6", "GAP", "Conv", "Linear", "Pool", "Transition", "get_model", "get_recipe", "get_spec",
           "list_models", "register_model"]
