"""The reference S6 Net, the variant table, and the registry.

The registry maps a name to a :class:`~s6lab.specs.NetSpec`; ``get_model(name,
**overrides)`` builds it. Variants are data: add a spec with :func:`register_model`.

Example:
    >>> model = get_model("s6")
    >>> sum(p.numel() for p in model.parameters())
    19602
"""

from __future__ import annotations

import fnmatch
from typing import Any

from .specs import GAP, Conv, Linear, Net, NetSpec, Pool, Transition, apply_overrides, build

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


def register_model(spec: NetSpec, *, replace: bool = False) -> NetSpec:
    """Add a spec to the registry (it is built once to check it).

    Raises:
        ValueError: the name is taken (pass ``replace=True``) or the spec is invalid.
    """
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"model {spec.name!r} is already registered; pass replace=True to overwrite")
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
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


def get_model(name: str, **overrides: Any) -> Net:
    """Build the registered model ``name`` with optional overrides.

    Args:
        name: a name from :func:`list_models`.
        **overrides: see :func:`s6lab.specs.apply_overrides` (``dropout``,
            ``batchnorm``, ``num_classes``, ...).

    Returns:
        A freshly initialised :class:`~s6lab.specs.Net`.

    Example:
        >>> get_model("s6", dropout=0.05).pool1.drop.p
        0.05
    """
    return build(apply_overrides(get_spec(name), **overrides))


register_model(S6)

# Kept importable for variant tables that use them.
__all__ = ["S6", "GAP", "Conv", "Linear", "Pool", "Transition", "get_model", "get_spec",
           "list_models", "register_model"]
