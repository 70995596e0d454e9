"""Receptive fields: the analytic per-layer table and the measured one.

Analytic: a forward pass with hooks records every leaf layer in execution order with
its input and output sizes; the standard recurrences then give, per layer,

    rf_out    = rf_in + (k_eff - 1) * jump_in          k_eff = dilation * (k - 1) + 1
    jump_out  = jump_in * stride
    start_out = start_in + ((k_eff - 1) / 2 - padding) * jump_in

where ``jump`` is the distance in input pixels between neighbouring units and ``start``
is the centre of the first unit's field. The recurrences assume the layers form a chain
(true for every model built from s6lab blocks and for plain ``nn.Sequential`` CNNs).

A layer that sees the whole map (``Linear`` after ``Flatten``, global pooling) is
marked *global*: its field is the union of all the previous layer's fields. Tools that
treat ``Linear`` as a 1x1 conv report the previous layer's field unchanged instead,
which understates what the classifier can use.

A layer type this module does not know is named in a warning and marked *unknown*, and
so is everything after it: never a silently wrong number.

Measured: back-propagate from one output unit of a layer to the input and take the
extent of the non-zero gradient. On a linearised copy of the model (ReLU -> identity,
max-pool -> average-pool of the same window, every weight 1, bias 0), a gradient is zero
only where the geometry says the unit cannot see, so the extent equals the analytic
field clipped to the image. On the trained model the non-zero region shows what the
unit actually uses for one input.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from .._canvas import old_spellings, panel
from .._style import TARGET_LINE
from .._table import render_table
from ..errors import ConfigError
from ..summary import input_size_of
from .hooks import forward_with_hooks

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PASSTHROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU,
               nn.ELU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LogSoftmax,
               nn.Softmax)
#: normalisations whose statistics are taken over the spatial map of each sample, in training and in
#: eval: every output unit depends on the whole map (BatchNorm in eval uses running statistics: pointwise)
SPACE_MIXING_NORMS = (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.LayerNorm)


def _first(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


@dataclass(frozen=True)
class RFRow:
    """One leaf layer of the receptive-field table (sizes along the height axis)."""

    name: str  # dotted module name, e.g. "conv2.conv"
    type: str  # class name
    output_size: int  # spatial size of the output map (1 after Flatten/Linear)
    kernel: int | None
    stride: int | None
    padding: int | None
    dilation: int | None
    jump_in: float | None
    jump_out: float | None
    rf_in: float | None
    rf_out: float | None
    start: float | None  # centre of the first output unit's field, input pixels
    status: str  # "ok", "global" or "unknown"

    @property
    def changes_rf(self) -> bool:
        return self.rf_in is not None and self.rf_out != self.rf_in


def _trace(model: nn.Module, input_size: tuple[int, ...]) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """Leaf modules in execution order with input and output shapes.

    Calls in ``forward`` that are not modules (``F.max_pool2d``, ``torch.flatten``, ...) are
    invisible to hooks; `receptive_fields` detects them where they change the map's
    size between two hooked layers.
    """
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[str, nn.Module, tuple, tuple]] = []

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        calls.append((names[module], module, tuple(inputs[0].shape), tuple(output.shape)))

    forward_with_hooks(model, torch.zeros(input_size), [(m, hook) for m in model.modules() if not any(m.children())])
    return calls


class RFTable(list):
    """The rows of [`receptive_fields`][s6lab.analysis.receptive_field.receptive_fields]: a plain list,
    which a notebook shows as an HTML table of the layers that change the field
    (``format_receptive_fields(rows, only_changes=True)``)."""

    def _repr_html_(self) -> str:
        import markdown

        return markdown.markdown(format_receptive_fields(list(self), markdown=True, only_changes=True),
                                 extensions=["tables"])


def receptive_fields(model: nn.Module, input_size: tuple[int, ...] | None = None) -> list[RFRow]:
    """The analytic receptive-field table of ``model``, derived by running it.

    Args:
        model: any chain-shaped CNN (s6lab nets, ``nn.Sequential`` of standard layers).
        input_size: ``(N, C, H, W)``; default from the model's spec, else ``(1, 1, 28, 28)``.

    Returns:
        One `RFRow` per executed leaf layer.

    Warns:
        UserWarning: for a layer it cannot reason about (marked unknown, as is everything after it).

    Examples:
        >>> from s6lab import get_model
        >>> rows = receptive_fields(get_model("s6"))
        >>> [(r.name, r.rf_out) for r in rows if r.type == "Conv2d"][:2]
        [('conv1.conv', 3.0), ('conv2.conv', 5.0)]
    """
    input_size = input_size or input_size_of(model)
    rf, jump, start = 1.0, 1.0, 0.5
    status = "ok"
    flattened = False
    map_size = input_size[2]  # spatial size of the last 4-D activation
    rows = []
    previous: tuple[str, tuple] | None = None  # the last hooked layer and its output shape
    for name, module, shape_in, shape_out in _trace(model, input_size):
        out_size = shape_out[2] if len(shape_out) == 4 else 1
        in_size = shape_in[2] if len(shape_in) == 4 else None
        k = s = p = d = None
        rf_in, jump_in = rf, jump
        was_global = status == "global"
        before = previous[1] if previous else tuple(input_size)
        if status == "ok" and len(shape_in) == 4 and len(before) == 4 and shape_in[2:] != before[2:]:
            # the map changed size where no hook saw it: a functional call in forward
            where = f"after {previous[0]!r}" if previous else "before the first layer"
            status = _unknown(name, module, f"the map changed from {before[2]}x{before[3]} to {shape_in[2]}x"
                                            f"{shape_in[3]} {where}, outside any module (a functional call "
                                            "such as F.max_pool2d in forward); use the nn.Module instead")
        previous = (name, shape_out)
        if status != "ok":
            pass
        elif isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = _first(module.kernel_size), _first(module.stride), _first(module.padding)
            d = _first(getattr(module, "dilation", 1))
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            if out_size == 1:
                status = "global"
            elif in_size is not None and in_size % out_size == 0:
                s = in_size // out_size  # adaptive pooling with an exact ratio is a plain pool
                k, p, d = s, 0, 1
            else:
                status = _unknown(name, module, "adaptive pooling with a non-integer ratio")
        elif isinstance(module, nn.Flatten):
            flattened = True
        elif isinstance(module, nn.Linear):
            if flattened or len(shape_in) == 2:
                status = "global"
        elif isinstance(module, PASSTHROUGH):
            pass
        elif isinstance(module, SPACE_MIXING_NORMS):
            if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) < 2:
                status = _unknown(name, module, "LayerNorm over part of a row mixes along one axis only")
            else:
                warnings.warn(f"receptive field: layer {name!r} ({type(module).__name__}) normalises over the "
                              "whole map, so every later unit depends on every input pixel: marked global",
                              stacklevel=2)
                status = "global"
        else:
            status = _unknown(name, module, "no receptive-field rule for this layer type")
        if k is not None and status == "ok":
            k_eff = d * (k - 1) + 1
            rf = rf + (k_eff - 1) * jump
            start = start + ((k_eff - 1) / 2 - p) * jump
            jump = jump * s
        elif status == "global" and not was_global:
            # a global layer sees every unit of its input map: the union of their fields, centred on
            # the middle of those units (s6lab's "start": the centre of the first output unit's field)
            rf = rf_in + (map_size - 1) * jump_in
            start = start + (map_size - 1) * jump_in / 2
        known = status != "unknown"
        rows.append(RFRow(name, type(module).__name__, out_size, k, s, p, d,
                          jump_in if known else None, jump if known else None,
                          rf_in if known else None, rf if known else None,
                          start if known else None, status))
        if len(shape_out) == 4:
            map_size = shape_out[2]
    return RFTable(rows)


def _unknown(name: str, module: nn.Module, why: str) -> str:
    warnings.warn(f"receptive field: layer {name!r} ({type(module).__name__}): {why}; it and every "
                  "later layer are marked unknown", stacklevel=3)
    return "unknown"


def final_receptive_field(model: nn.Module) -> int | None:
    """The receptive field (px) of the last spatial layer before the head.

    Returns:
        The field's side in input pixels, or ``None`` when no spatial layer's field is known
        (tables print it as "?").

    Examples:
        >>> from s6lab import get_model
        >>> final_receptive_field(get_model("s6"))
        16
    """
    spatial = [r for r in receptive_fields(model) if r.status == "ok" and r.output_size > 1]
    return int(spatial[-1].rf_out) if spatial else None  # type: ignore[arg-type]  # "ok" rows have one


def layers_that_change(rows: list[RFRow]) -> list[RFRow]:
    """Rows with a kernel (conv, pool), plus the first row of each global or unknown stretch."""
    return [r for i, r in enumerate(rows)
            if r.kernel is not None or (r.status != "ok" and (i == 0 or rows[i - 1].status != r.status))]


def format_receptive_fields(rows: list[RFRow], markdown: bool = False, only_changes: bool = False) -> str:
    """The table as aligned text or markdown.

    Args:
        rows: from `receptive_fields`.
        markdown: a markdown table instead of text.
        only_changes: keep layers that change size, jump or field (conv, pool, head).
    """
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:g}" if isinstance(v, float) else str(v)

    header = ("layer", "type", "out", "k", "s", "p", "d", "j_in", "j_out", "rf_in", "rf_out", "start", "")
    body = []
    for r in layers_that_change(rows) if only_changes else rows:
        note = {"global": "global: sees the whole input", "unknown": "unknown layer: not computed"}.get(
            r.status, "")
        body.append((r.name, r.type, f"{r.output_size}x{r.output_size}", *map(fmt, (
            r.kernel, r.stride, r.padding, r.dilation, r.jump_in, r.jump_out, r.rf_in, r.rf_out, r.start)),
            note))
    return render_table(header[:-1] + ("note",) if markdown else header, body, markdown=markdown)


# ---------------------------------------------------------------- measured


@dataclass(frozen=True)
class MeasuredRF:
    """Extent of the non-zero input gradient of one output unit (inclusive bounds).

    ``rows`` and ``cols`` bound the pixels the unit can see (the bounding box: what tables
    show); a dilated field has holes, so ``pixels_used`` counts the pixels inside that box
    whose gradient is non-zero.
    """

    layer: str
    unit: tuple[int, int]  # (row, col) of the output unit
    rows: tuple[int, int]
    cols: tuple[int, int]
    gradient: torch.Tensor  # |d unit / d input|, (H, W)

    @property
    def size(self) -> int:
        """Height of the bounding box of the non-zero region."""
        return self.rows[1] - self.rows[0] + 1

    @property
    def pixels_used(self) -> int:
        """Pixels with a non-zero gradient (fewer than the box holds when the field has holes)."""
        return int((self.gradient > 0).sum())

    @property
    def box_pixels(self) -> int:
        return self.size * (self.cols[1] - self.cols[0] + 1)


class LinearPool(nn.Module):
    """A max-pool's window as a sum: every pixel in the window gets gradient 1.

    Same kernel, stride, padding, dilation and ``ceil_mode`` as the max-pool it stands for,
    so the output has the same size and each output unit reads the same input pixels; a
    max-pool itself passes gradient to one pixel per window only.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool
        self.kernel_size = pool.kernel_size
        self.stride = pool.stride
        self.padding = pool.padding
        self.dilation = pool.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        k, s, p, d = (torch.nn.modules.utils._pair(v) for v in (self.kernel_size, self.stride or self.kernel_size,
                                                                 self.padding, self.dilation))
        with torch.no_grad():
            target = self.pool(x.detach()).shape[2:]  # the max-pool's own output size (ceil_mode included)
        # (N, C, H, W) -> zero-padded so that every window the max-pool reads exists, ceil-mode ones too
        need = [(target[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in (0, 1)]
        extra = [max(0, need[i] - (x.shape[2 + i] + 2 * p[i])) for i in (0, 1)]
        x = F.pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]))
        weight = torch.ones(x.shape[1], 1, *k, dtype=x.dtype, device=x.device)
        out = F.conv2d(x, weight, stride=s, dilation=d, groups=x.shape[1])
        return out[:, :, :target[0], :target[1]]


class _Reached(Exception):
    """Stops the forward pass once the measured layer has run (later layers are irrelevant)."""


def linearised(model: nn.Module) -> nn.Module:
    """A copy with ReLU -> Identity, MaxPool -> `LinearPool` (the same windows, ceil mode
    and dilation kept), weights 1, bias 0, BatchNorm and Dropout in eval mode: gradients are
    then zero only by geometry."""
    clone = copy.deepcopy(model).eval()
    for parent in list(clone.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)):
                setattr(parent, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, LinearPool(child))
    with torch.no_grad():
        for module in clone.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return clone


def measure_receptive_field(model: nn.Module, layer: str, *, unit: tuple[int, int] | None = None,
                            image: torch.Tensor | None = None, linearise: bool = True,
                            input_size: tuple[int, ...] | None = None) -> MeasuredRF:
    """Back-propagate from one output unit of ``layer`` and measure the gradient's extent.

    Args:
        model: the network.
        layer: dotted module name (see `receptive_fields`, column ``layer``).
        unit: ``(row, col)`` of the output unit; default the centre of the map.
        image: input ``(1, C, H, W)``; default ones (linearised) or required for trained.
        linearise: measure on `linearised` (geometry); ``False`` uses the model as is.
        input_size: ``(1, C, H, W)`` when no ``image`` is given; default from the model's spec
            (see [`input_size_of`][s6lab.summary.input_size_of]).

    Returns:
        `MeasuredRF` with inclusive row and column bounds.

    The rule linking the two: on the linearised model the measured box equals the analytic
    field of `analytic_extent` clipped to the image, except where strided layers never
    read the last rows or columns (an odd map pooled by 2 drops its last row): the measured
    box then ends earlier, at the last pixel any window reads.

    Raises:
        ValueError: unknown layer name, a unit outside the map, or no gradient at all.

    Examples:
        >>> from s6lab import get_model
        >>> measure_receptive_field(get_model("s6"), "conv2.conv").size
        5
    """
    names = dict(model.named_modules())
    if layer not in names or layer == "":
        convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
        raise ConfigError(f"unknown layer {layer!r}; layers with a spatial output include: {', '.join(convs)}")
    net = linearised(model) if linearise else copy.deepcopy(model).eval()
    if image is None:
        image = torch.ones(input_size or input_size_of(model))
    x = image.detach().clone().float().requires_grad_(True)
    captured: dict[str, torch.Tensor] = {}
    target = dict(net.named_modules())[layer]

    def capture(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        captured["out"] = output
        raise _Reached  # the head (a Linear that expects the real shapes, say) never runs

    handle = target.register_forward_hook(capture)
    try:
        net(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    out = captured["out"]
    if out.dim() != 4:
        raise ConfigError(f"layer {layer!r} has no spatial output (shape {tuple(out.shape)}); "
                         "choose a conv or pooling layer")
    h, w = out.shape[2:]
    unit = unit or (h // 2, w // 2)
    if not (0 <= unit[0] < h and 0 <= unit[1] < w):
        raise ConfigError(f"unit {unit} is outside the {h}x{w} output of {layer!r}")
    out[0, :, unit[0], unit[1]].sum().backward()
    grad = x.grad[0].abs().sum(0)  # (H, W)
    nz = torch.nonzero(grad > 0)
    if nz.numel() == 0:
        raise ConfigError(f"unit {unit} of {layer!r} has no input gradient for this image "
                         "(all ReLUs off); try linearise=True or another unit")
    rows = (int(nz[:, 0].min()), int(nz[:, 0].max()))
    cols = (int(nz[:, 1].min()), int(nz[:, 1].max()))
    return MeasuredRF(layer, unit, rows, cols, grad.detach())


def analytic_extent(row: RFRow, index: int, image_size: int) -> tuple[int, int]:
    """Inclusive pixel bounds of output unit ``index``'s field, clipped to the image."""
    centre = row.start + index * row.jump_out - 0.5  # start is measured from the pixel edge
    half = (row.rf_out - 1) / 2
    return max(0, math.ceil(centre - half - 1e-9)), min(image_size - 1, math.floor(centre + half + 1e-9))


# ---------------------------------------------------------------- plots


@old_spellings(positional=("ax",))
def plot_receptive_field_growth(rows: list[RFRow], image_size: int = 28, *, ax: Any = None) -> Figure:
    """Bar chart of the receptive field after each layer that changes it, against the image.

    Args:
        rows: from `receptive_fields`.
        image_size: the image side in pixels, drawn as the line to compare against.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, ax = panel(ax, figsize=(8, 3.8))
    shown = layers_that_change(rows)
    labels = [r.name.removesuffix(".conv").removesuffix(".pool") for r in shown]
    values = [r.rf_out if r.rf_out is not None else 0 for r in shown]
    colours = ["#4c72b0" if r.status == "ok" else "#dd8452" if r.status == "global" else "#999999"
               for r in shown]
    bars = ax.bar(labels, values, color=colours)
    for bar, r in zip(bars, shown):
        text = {"global": "global", "unknown": "?"}.get(r.status, f"{r.rf_out:g}")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=8)
    ax.axhline(image_size, **TARGET_LINE, label=f"image side ({image_size} px)")
    ax.set(ylabel="receptive field (px)", title="Receptive field after each layer")
    ax.tick_params(axis="x", rotation=45)
    ax.set_ylim(0, max(values + [image_size]) * 1.15)
    ax.legend(loc="upper left")
    return fig.figure


def plot_measured_receptive_field(model: nn.Module, layer: str, image: torch.Tensor, *,
                                  unit: tuple[int, int] | None = None, ax: Any = None) -> Figure:
    """Overlay one unit's field on a digit: the geometric measurement (solid blue box), the
    analytic field (dashed magenta box, drawn on top: where the two agree, the dashes run along
    the blue line) and the trained model's input gradient (orange heat, opaque where strongest).

    The digit is black ink on white, as in the gallery and the saliency maps.

    Args:
        model: trained network.
        layer: dotted module name.
        image: one normalized digit ``(1, 1, H, W)``.
        unit: output unit; default the map's centre.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    import matplotlib.patches as patches

    from ..data import denormalize

    fig, ax = panel(ax, figsize=(4, 4.3))
    geometric = measure_receptive_field(model, layer, unit=unit)
    trained = measure_receptive_field(model, layer, unit=geometric.unit, image=image, linearise=False)
    ax.imshow(denormalize(image)[0, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
    heat = (trained.gradient / trained.gradient.max()).cpu()  # (H, W) in [0, 1]
    # the same white-to-orange map as the saliency magnitudes; opacity follows the heat, so the
    # strokes stay readable where the gradient is weak and nothing is tinted outside the field
    ax.imshow(heat.numpy(), cmap="Oranges", vmin=0, vmax=1, alpha=(0.85 * heat.sqrt()).numpy())
    (r0, r1), (c0, c1) = geometric.rows, geometric.cols
    ax.add_patch(patches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                   ec="#0072B2", lw=3, label=f"measured {r1 - r0 + 1}x{c1 - c0 + 1}"))
    row = next(r for r in receptive_fields(model) if r.name == layer)
    a0, a1 = analytic_extent(row, geometric.unit[0], image.shape[-2])
    b0, b1 = analytic_extent(row, geometric.unit[1], image.shape[-1])
    ax.add_patch(patches.Rectangle((b0 - 0.5, a0 - 0.5), b1 - b0 + 1, a1 - a0 + 1, fill=False,
                                   ec="#CC0088", lw=1.8, ls=(0, (3, 3)), label=f"analytic rf {row.rf_out:g}"))
    ax.set_title(f"{layer}, unit {geometric.unit}")
    ax.legend(loc="upper center", fontsize=8, bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig.figure
