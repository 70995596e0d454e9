"""Inside a trained net: the feature maps of every block for one digit, the learned kernels,
and what BatchNorm and ReLU do to one map.

Three layers, as everywhere in s6lab: `feature_maps`, `kernels` and
`block_stages` compute and return frozen dataclasses; `format_feature_maps`
gives text; the ``plot_*`` functions only draw and return the Figure.

Examples:
    >>> import torch
    >>> from s6lab import get_model
    >>> maps = feature_maps(get_model("s6"), torch.zeros(1, 1, 28, 28))
    >>> [(m.name, tuple(m.maps.shape), m.receptive_field) for m in maps][:2]
    [('conv1', (32, 26, 26), 3), ('conv2', (32, 24, 24), 5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from .._canvas import old_spellings, panel, panels
from .._table import render_table
from ..errors import ConfigError, UnknownNameError
from .hooks import forward_with_hooks

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class LayerMaps:
    """The output of one block for one digit."""

    name: str  # the block's name, e.g. "conv2"
    maps: torch.Tensor  # (C, H, W), fp32, on the CPU
    receptive_field: int | None  # pixels one unit of this map sees (None: unknown or global)
    zero_fraction: float  # share of exact zeros (after a ReLU: switched-off units)


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children (s6lab blocks), or the leaf layers of a plain model without children."""
    children = list(model.named_children())
    return children if children else [("", model)]


def feature_maps(model: nn.Module, image: torch.Tensor) -> list[LayerMaps]:
    """Run one digit through ``model`` in eval mode and keep every block's 4-D output.

    Args:
        model: an s6lab net (its top-level blocks are recorded) or any chain-shaped CNN.
        image: one normalized digit ``(1, 1, H, W)`` (or ``(1, H, W)``).

    Returns:
        One `LayerMaps` per block whose output is a map, in forward order.

    Raises:
        ConfigError: ``image`` is not one digit.
    """
    from .receptive_field import receptive_fields

    x = _one_image(image)
    rf_after = {}
    for row in receptive_fields(model, tuple(x.shape)):
        block = row.name.split(".")[0]
        rf_after[block] = int(row.rf_out) if row.status == "ok" and row.rf_out is not None else None
    outputs: list[tuple[str, torch.Tensor]] = []
    forward_with_hooks(model, x, [(module, lambda m, i, o, name=name: outputs.append((name, o.detach())))
                                  for name, module in _blocks(model)])
    return [LayerMaps(name, out[0].float().cpu(), rf_after.get(name), float((out == 0).float().mean()))
            for name, out in outputs if out.dim() == 4]


def _one_image(image: torch.Tensor) -> torch.Tensor:
    x = image if image.dim() == 4 else image.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ConfigError(f"pass one digit of shape (1, 1, H, W), got {tuple(image.shape)}")
    return x.float()


def conv_layers(model: nn.Module) -> list[str]:
    """Dotted names of the model's Conv2d layers, in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def kernels(model: nn.Module, layer: str | None = None) -> tuple[str, torch.Tensor]:
    """The learned weights of one conv layer (default: the first).

    Returns:
        ``(name, weight)`` with ``weight`` of shape ``(out_channels, in_channels, k, k)``.

    Raises:
        UnknownNameError: ``layer`` is not a conv layer of the model.
    """
    convs = conv_layers(model)
    if not convs:
        raise ConfigError("the model has no Conv2d layer")
    name = layer or convs[0]
    if name not in convs:
        raise UnknownNameError(f"unknown conv layer {name!r}; conv layers: {', '.join(convs)}")
    return name, dict(model.named_modules())[name].weight.detach().float().cpu()


def default_conv_layer(model: nn.Module, input_size: tuple[int, ...] | None = None) -> str | None:
    """The conv layer an analysis looks at when none is named: the last Conv2d whose output map is
    larger than 1x1, preferring a kernel larger than 1x1 (``conv3.conv``, the 5x5, in the reference net).

    Grad-CAM's map and the measured receptive field (report, docs) both use it: on a 1x1 map Grad-CAM
    is a constant, and a 1x1 conv only mixes the channels of the layer before it.

    Args:
        model: any CNN.
        input_size: ``(N, C, H, W)``; default from the model's spec, else ``(1, 1, 28, 28)``.

    Returns:
        Its dotted name, or ``None`` when no conv layer has an output map larger than 1x1.

    Examples:
        >>> from s6lab import get_model
        >>> default_conv_layer(get_model("s6"))
        'conv3.conv'
    """
    from ..summary import input_size_of

    sizes: dict[str, tuple[int, ...]] = {}
    names = {m: n for n, m in model.named_modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    forward_with_hooks(model, torch.zeros(input_size or input_size_of(model)),
                       [(m, lambda m, i, o: sizes.__setitem__(names[m], tuple(o.shape[2:]))) for m in convs])
    spatial = [m for m in convs if names[m] in sizes and sizes[names[m]] != (1, 1)]
    wide = [m for m in spatial if m.kernel_size != (1, 1)]
    return names[(wide or spatial)[-1]] if spatial else None


def widest_conv(model: nn.Module) -> str:
    """The conv layer with the largest kernel (the 5x5 of the reference net), the first on a tie."""
    modules = dict(model.named_modules())
    return max(conv_layers(model), key=lambda n: modules[n].kernel_size[0])


@dataclass(frozen=True)
class BlockStages:
    """One channel of a conv block at each stage: after the conv, after BatchNorm, after ReLU."""

    block: str
    channel: int
    stages: tuple[tuple[str, torch.Tensor], ...]  # (stage name, (H, W) map)


def block_stages(model: nn.Module, image: torch.Tensor, block: str, channel: int = 0) -> BlockStages:
    """What BatchNorm and ReLU do to one map of a ``ConvBN`` block, for one digit.

    Raises:
        UnknownNameError: ``block`` is not a block with a ``conv`` child.
        ConfigError: ``channel`` is outside the block's channels.
    """
    modules = dict(model.named_modules())
    conv_blocks = [n for n, m in model.named_children() if hasattr(m, "conv")]
    if block not in conv_blocks:
        raise UnknownNameError(f"unknown conv block {block!r}; conv blocks: {', '.join(conv_blocks)}")
    parts = [(stage, modules[f"{block}.{child}"]) for stage, child in
             (("conv", "conv"), ("BatchNorm", "bn"), ("ReLU", "relu")) if f"{block}.{child}" in modules]
    channels = parts[0][1].out_channels
    if not 0 <= channel < channels:
        raise ConfigError(f"channel must be in [0, {channels}), got {channel}")
    seen: dict[str, torch.Tensor] = {}
    forward_with_hooks(model, _one_image(image),
                       [(m, lambda m, i, o, stage=stage: seen.__setitem__(stage, o.detach())) for stage, m in parts])
    return BlockStages(block, channel, tuple((stage, seen[stage][0, channel].float().cpu()) for stage, _ in parts))


def format_feature_maps(maps: list[LayerMaps], markdown: bool = False) -> str:
    """One row per block: map shape, receptive field, share of switched-off units."""
    header = ("block", "maps (C x H x W)", "receptive field (px)", "zeros %")
    body = [(m.name, " x ".join(map(str, m.maps.shape)), "?" if m.receptive_field is None else
             str(m.receptive_field), f"{100 * m.zero_fraction:.0f}") for m in maps]
    return render_table(header, body, markdown=markdown, align="llrr" if markdown else "llll")


@old_spellings(renamed=("fig",))
def plot_feature_maps(maps: list[LayerMaps], image: torch.Tensor, *, channels: int = 8, ax: Any = None) -> Figure:
    """One row per block: the digit with the block's receptive field drawn at its centre, then
    the first ``channels`` maps (each on its own colour scale; black is zero).

    Args:
        maps: from `feature_maps`.
        image: the digit they were computed for ``(1, 1, H, W)``.
        channels: maps shown per block.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.
            One row per block, ``1 + channels`` columns.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    import matplotlib.patches as patches

    from ..data import denormalize

    if not maps:
        raise ConfigError("no feature maps to draw")
    digit = denormalize(_one_image(image))[0, 0].numpy()
    cols = 1 + channels
    fig, axes = panels(ax, len(maps), cols, figsize=(1.25 * cols, 1.35 * len(maps)))
    side = digit.shape[0]
    for r, m in enumerate(maps):
        ax = axes[r, 0]
        ax.imshow(digit, cmap="gray_r")
        if m.receptive_field is not None:
            size = min(m.receptive_field, side)
            start = (side - size) / 2 - 0.5
            ax.add_patch(patches.Rectangle((start, start), size, size, fill=False, ec="crimson", lw=1.5))
        ax.set_title(f"{m.name}: rf {m.receptive_field or '?'}", fontsize=8)
        for c in range(channels):
            ax = axes[r, 1 + c]
            if c < m.maps.shape[0]:
                ax.imshow(m.maps[c].numpy(), cmap="magma")
                if r == 0 or c == 0:
                    ax.set_title(f"{tuple(m.maps.shape[1:])[0]}x{m.maps.shape[2]} #{c}", fontsize=7)
            else:
                ax.set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig.figure


def plot_kernels(name: str, weight: torch.Tensor, *, max_kernels: int = 32, ax: Any = None) -> Figure:
    """The kernels of one conv layer as a grid (input channels averaged), on one diverging scale
    centred on 0: red weights add, blue weights subtract.

    Args:
        name: the layer's dotted name, for the title.
        weight: its weight ``(K, C, k, k)``.
        max_kernels: kernels shown (the first ones).
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    shown = weight[:max_kernels].mean(1)  # (K, k, k): the average over input channels
    n = shown.shape[0]
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    # (K, k, k) -> one mosaic with a 1-pixel gap, so all kernels share one colour scale
    k = shown.shape[-1]
    mosaic = torch.full((rows * (k + 1) - 1, cols * (k + 1) - 1), float("nan"))
    for i in range(n):
        r, c = divmod(i, cols)
        mosaic[r * (k + 1): r * (k + 1) + k, c * (k + 1): c * (k + 1) + k] = shown[i]
    fig, ax = panel(ax, figsize=(0.55 * cols * (k + 1) / 2 + 1.5, 0.55 * rows * (k + 1) / 2 + 0.8))
    scale = float(shown.abs().max()) or 1.0
    im = ax.imshow(mosaic.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    ax.set_title(f"{name}: {n} kernels of {k}x{k}" + (" (mean over input channels)" if weight.shape[1] > 1 else ""),
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig.figure


@old_spellings(renamed=("axes",))
def plot_block_stages(stages: BlockStages, *, ax: Any = None) -> Figure:
    """The same map after the conv, after BatchNorm and after ReLU, each with its colour bar.

    Args:
        stages: from `block_stages`.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.
            One panel per stage.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, axes = panels(ax, 1, len(stages.stages), figsize=(3.2 * len(stages.stages), 3.0))
    for ax, (stage, m) in zip(axes[0], stages.stages):
        scale = float(m.abs().max()) or 1.0
        im = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
        fig.colorbar(im, ax=ax, shrink=0.8)
        zeros = 100 * float((m == 0).float().mean())
        ax.set_title(f"after {stage}" + (f" ({zeros:.0f}% zeros)" if stage == "ReLU" else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{stages.block}, channel {stages.channel}: BatchNorm shifts and scales, ReLU cuts the negatives",
                 fontsize=10)
    return fig.figure
