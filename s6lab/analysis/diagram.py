"""Architecture diagrams: one box per block with its output shape, parameters, multiply-adds and
receptive field, and arrows that show the map shrinking toward the head.

The numbers are not computed here a second time: shapes come from [`layer_rows`][s6lab.summary.layer_rows],
parameters and multiply-adds from [`parameter_budget`][s6lab.analysis.budget.parameter_budget], receptive fields
and the *global* mark from [`receptive_fields`][s6lab.analysis.receptive_field.receptive_fields]. This module only
groups their per-layer rows into blocks:

- an s6lab net (or any model whose top-level children are blocks): one box per top-level child;
- a plain ``nn.Sequential`` of layers: one box per layer that computes something (conv, pooling,
  Linear, ...); BatchNorm, activations, dropout and log-softmax join the box before them, and a
  ``Flatten`` joins the layer it feeds.

Three layers, as everywhere in s6lab: `diagram_boxes` returns frozen dataclasses,
`format_diagram` gives text, `plot_diagram` and `plot_diagrams_side_by_side` only draw.

Examples:
    >>> from s6lab import get_model
    >>> boxes = diagram_boxes(get_model("s6"))
    >>> [(b.name, b.output_shape, b.params, b.receptive_field) for b in boxes][:3]
    [('conv1', (32, 26, 26), 384, 3), ('conv2', (32, 24, 24), 9312, 5), ('pool1', (32, 12, 12), 0, 6)]
    >>> head = boxes[-1]
    >>> head.name, head.kind, head.is_global, sum(b.params for b in boxes)
    ('head', 'head', True, 19602)
    >>> print(format_diagram(boxes).splitlines()[2])
    conv1   ConvBN 3x3     32 x 26 x 26  28->26     384    216,384  3
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.nn as nn

from .._canvas import old_spellings, panel, panels
from .._table import render_table
from ..errors import ConfigError
from ..summary import input_size_of, layer_rows
from .budget import parameter_budget
from .receptive_field import PASSTHROUGH, RFRow, receptive_fields

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: colour groups of the boxes, in legend order
KINDS = ("conv", "transition", "pool", "head", "other")

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
#: short names for the layers that join a box in a plain model ("Conv2d 3x3 + BN + ReLU")
_SHORT = {"BatchNorm2d": "BN", "BatchNorm1d": "BN", "Dropout": "drop", "Dropout2d": "drop",
          "LogSoftmax": "log-softmax", "Softmax": "softmax", "Flatten": "flatten"}


@dataclass(frozen=True)
class DiagramBox:
    """One block of the diagram (numbers per image)."""

    name: str  # top-level child, e.g. "conv2"; in a plain Sequential the box's main layer, e.g. "3"
    type: str  # the block's class ("ConvBN"); in a plain Sequential the main layer's class ("Conv2d")
    kind: str  # colour group, one of KINDS: "conv" (k > 1), "transition" (1x1), "pool", "head", "other"
    input_shape: tuple[int, ...]  # (C, H, W) entering the block
    output_shape: tuple[int, ...]  # (C, H, W) leaving it; (classes,) after a head
    params: int  # from parameter_budget
    mult_adds: int | None  # from parameter_budget; None: a layer type with weights and no counting rule
    receptive_field: int  # px one output unit sees; for a global box the union of its input's fields
    is_global: bool  # the block (or one before it) sees the whole map: GAP, Linear after Flatten, ...
    kernel: int | None  # the largest conv or pooling window in the block; None: none (Linear)
    layers: tuple[str, ...]  # the dotted leaf layers it groups, in forward order
    layer_types: tuple[str, ...]  # their classes

    @property
    def is_block(self) -> bool:
        """The box is one module with children (an s6lab block), not a group of plain layers."""
        return any("." in name for name in self.layers)


# ---------------------------------------------------------------- compute


def diagram_boxes(model: nn.Module, input_size: tuple[int, ...] | None = None) -> list[DiagramBox]:
    """The blocks of ``model`` in forward order, with the numbers a diagram shows.

    Args:
        model: an s6lab net ([`build`][s6lab.specs.build], [`get_model`][s6lab.models.get_model]) or a
            chain-shaped CNN of standard layers (a plain ``nn.Sequential``).
        input_size: ``(1, C, H, W)`` or ``(C, H, W)``; default from the model's spec, else one
            MNIST digit with a warning (see [`input_size_of`][s6lab.summary.input_size_of]). The batch size
            is ignored: every number is per image.

    Returns:
        One `DiagramBox` per block.

    Raises:
        ConfigError: ``model`` is not an ``nn.Module``, does not run on ``input_size``, has no
            layers, runs one module twice, or has a layer the receptive-field analysis cannot
            follow (an unknown layer type, a functional pooling call in ``forward``). The message
            names the layer and the fix.

    Examples:
        >>> import torch.nn as nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        ...                     nn.Linear(4 * 13 * 13, 10))
        >>> [(b.name, b.layers, b.output_shape, b.is_global) for b in diagram_boxes(net, (1, 28, 28))]
        [('0', ('0', '1'), (4, 26, 26), False), ('2', ('2',), (4, 13, 13), False), ('4', ('3', '4'), (10,), True)]
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"diagram_boxes takes an nn.Module, got {type(model).__name__}; build one with "
                          "s6lab.get_model(name) or s6lab.build(spec)")
    if isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) and len(model) == 0:
        raise ConfigError("the model has no layers to draw; add blocks (s6lab.specs.build) or layers")
    size = _batch_of_one(input_size) if input_size is not None else input_size_of(model)
    rows = _receptive_field_rows(model, size)
    budget = {row.name: row for row in parameter_budget(model, size).layers}
    shapes = {row.name: row.output_shape for row in layer_rows(model, size)}
    modules = dict(model.named_modules())
    boxes: list[DiagramBox] = []
    input_shape = tuple(size[1:])
    for group in _group(rows, modules):
        main = next((r for r in group if not isinstance(modules[r.name], nn.Flatten)), group[0])
        top = main.name.split(".")[0]
        block = "." in main.name
        macs = [budget[r.name].mult_adds for r in group]
        kernels = [r.kernel for r in group if r.kernel is not None]
        box = DiagramBox(
            name=top if block else main.name or main.type,
            type=type(modules[top]).__name__ if block else main.type,
            kind=_kind([modules[r.name] for r in group], group),
            input_shape=input_shape,
            output_shape=tuple(shapes[group[-1].name]),
            params=sum(budget[r.name].params for r in group),
            mult_adds=None if None in macs else sum(macs),  # type: ignore[arg-type]
            receptive_field=int(group[-1].rf_out),  # type: ignore[arg-type]  # known: unknown rows raised
            is_global=any(r.status == "global" for r in group),
            kernel=max(kernels) if kernels else None,
            layers=tuple(r.name for r in group),
            layer_types=tuple(r.type for r in group),
        )
        boxes.append(box)
        input_shape = box.output_shape
    return boxes


def _batch_of_one(input_size: tuple[int, ...]) -> tuple[int, ...]:
    size = tuple(input_size)
    if len(size) not in (3, 4) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ConfigError(f"input_size must be (C, H, W) or (1, C, H, W) of positive integers, got {input_size!r}")
    return (1, *size[-3:])


def _receptive_field_rows(model: nn.Module, size: tuple[int, ...]) -> list[RFRow]:
    """`receptive_fields`, with the layers it cannot follow turned into one ConfigError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows = receptive_fields(model, size)
        except RuntimeError as e:  # shapes that do not chain: the net was built for another input
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"the model does not run on an input of {tuple(size)}: {first}; pass the "
                              "input_size=(1, C, H, W) it was built for") from None
    unknown = next((r for r in rows if r.status == "unknown"), None)
    for w in caught:
        if unknown is None or "marked unknown" not in str(w.message):
            warnings.warn(w.message, w.category, stacklevel=3)  # e.g. a GroupNorm marked global
    if not rows:
        raise ConfigError("the model ran no layer to draw; add blocks (s6lab.specs.build) or layers")
    if unknown is not None:
        said = next((str(w.message) for w in caught if "marked unknown" in str(w.message)), "")
        why = said.split("): ", 1)[-1].split("; it and every later layer", 1)[0] or "not followed"
        raise ConfigError(f"cannot draw layer {unknown.name!r} ({unknown.type}): {why}. The diagram follows "
                          "chain-shaped nets of s6lab blocks or standard layers (Conv2d, MaxPool2d, AvgPool2d, "
                          "BatchNorm, ReLU, Dropout, Flatten, Linear, adaptive pooling): replace that layer "
                          "by one of them")
    return rows


def _group(rows: list[RFRow], modules: dict[str, nn.Module]) -> list[list[RFRow]]:
    """Leaf rows grouped into boxes: one per top-level block, or per computing layer of a plain model."""
    units: list[tuple[str, list[RFRow]]] = []  # consecutive rows of one top-level child
    for row in rows:
        top = row.name.split(".")[0]
        if units and units[-1][0] == top:
            units[-1][1].append(row)
        elif any(name == top for name, _ in units):
            raise ConfigError(f"module {top!r} runs more than once in forward, so the net is not a chain of "
                              "blocks; give each use its own module (one ReLU per use, as s6lab blocks do)")
        else:
            units.append((top, [row]))
    groups: list[list[RFRow]] = []
    waiting: list[RFRow] = []  # a Flatten (and what follows it) waiting for the layer it feeds
    for _, unit in units:
        layer = modules[unit[0].name] if len(unit) == 1 and "." not in unit[0].name else None
        if isinstance(layer, nn.Flatten) or (waiting and isinstance(layer, PASSTHROUGH)):
            waiting.extend(unit)
        elif isinstance(layer, PASSTHROUGH) and groups:
            groups[-1].extend(unit)  # BatchNorm, ReLU, Dropout, ... belong to the layer before them
        else:
            groups.append(waiting + unit)
            waiting = []
    if waiting:  # a Flatten at the end (after global pooling) closes the last box
        if groups:
            groups[-1].extend(waiting)
        else:
            groups.append(waiting)
    return groups


def _kind(modules: list[nn.Module], rows: list[RFRow]) -> str:
    if any(isinstance(m, nn.Linear) for m in modules) or any(
            isinstance(m, _GLOBAL_POOLS) and r.output_size == 1 for m, r in zip(modules, rows)):
        return "head"
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    if any(max(m.kernel_size) > 1 for m in convs):
        return "conv"
    if convs:
        return "transition"
    if any(isinstance(m, _POOLS) for m in modules):
        return "pool"
    return "other"


# ---------------------------------------------------------------- text


def describe(box: DiagramBox) -> str:
    """What the box is, in a few words: ``"ConvBN 3x3"``, ``"Conv2d 3x3 + BN + ReLU"``, ``"LinearHead"``."""
    if box.is_block:
        window = f"{box.kernel}x{box.kernel}"
        return box.type if box.kernel is None or box.kind == "head" or window in box.type else f"{box.type} {window}"
    parts = []
    for kind in box.layer_types:
        part = _SHORT.get(kind, kind)
        if kind == box.type and box.kernel is not None and box.kind != "head":
            part += f" {box.kernel}x{box.kernel}"
        parts.append(part)
    return " + ".join(parts)


def format_shape(shape: tuple[int, ...]) -> str:
    """``(32, 26, 26)`` -> ``"32 x 26 x 26"``; ``(10,)`` -> ``"10"``."""
    return " x ".join(map(str, shape))


def _side(shape: tuple[int, ...]) -> str:
    """The spatial size as text: ``"26"`` for a square map, ``"26x20"`` otherwise, ``"1"`` for a vector."""
    if len(shape) < 3:
        return "1"
    return str(shape[-2]) if shape[-2] == shape[-1] else f"{shape[-2]}x{shape[-1]}"


def _macs(value: int | None) -> str:
    if value is None:
        return "?"
    if value >= 1_000_000:
        return f"{value / 1e6:.2f} M"
    if value >= 1_000:
        return f"{value / 1e3:.1f} k"
    return str(value)


def _rf(box: DiagramBox) -> str:
    return f"global ({box.receptive_field})" if box.is_global else str(box.receptive_field)


def format_diagram(boxes: list[DiagramBox], markdown: bool = False) -> str:
    """The diagram as a table: one row per block, with the map size on the way in and out.

    Args:
        boxes: from `diagram_boxes`.
        markdown: a markdown table instead of aligned text.
    """
    if not boxes:
        raise ConfigError("no boxes to format; pass the list that diagram_boxes(model) returns")
    header = ("block", "type", "output", "size", "params", "mult-adds", "rf (px)")
    body = [("input", "", format_shape(boxes[0].input_shape), "", "", "", "")]
    body += [(b.name, describe(b), format_shape(b.output_shape), f"{_side(b.input_shape)}->{_side(b.output_shape)}",
              f"{b.params:,}", "?" if b.mult_adds is None else f"{b.mult_adds:,}", _rf(b)) for b in boxes]
    known = [b.mult_adds for b in boxes if b.mult_adds is not None]
    lower = ">= " if len(known) < len(boxes) else ""
    body.append(("total", "", "", "", f"{sum(b.params for b in boxes):,}", f"{lower}{sum(known):,}", ""))
    return render_table(header, body, markdown=markdown, align="llllrrl")


# ---------------------------------------------------------------- plots

#: fill, edge and legend label of each kind (and of the input box)
STYLE = {
    "conv": ("#dbe8f6", "#2b5d8f", "conv (k > 1)"),
    "transition": ("#dcefd8", "#2e7d32", "1x1 transition"),
    "pool": ("#fde5cc", "#c0631b", "pooling"),
    "head": ("#eadcf2", "#6a3d9a", "head"),
    "other": ("#ececec", "#666666", "other"),
    "input": ("#f7f7f7", "#888888", "input"),
}
_STEP = 1.0  # vertical distance between box centres (data units)
_BOX_H = 0.6  # box height
_X0, _X1 = 0.0, 10.0  # box left and right edges
_ROW_INCHES = 0.72  # figure height per box
_CHANGED = "#d62728"  # the mark of a block that differs from the first column's


def _boxes_of(model_or_boxes: Any) -> list[DiagramBox]:
    if isinstance(model_or_boxes, nn.Module):
        return diagram_boxes(model_or_boxes)
    boxes = list(model_or_boxes) if isinstance(model_or_boxes, (list, tuple)) else None
    if not boxes or not all(isinstance(b, DiagramBox) for b in boxes):
        raise ConfigError(f"pass a model or the non-empty list that diagram_boxes(model) returns, got "
                          f"{type(model_or_boxes).__name__}")
    return boxes


def _default_title(model_or_boxes: Any, boxes: list[DiagramBox]) -> str:
    """The spec's name (else the model's class) over the totals."""
    name = "network"
    if isinstance(model_or_boxes, nn.Module):
        spec = getattr(model_or_boxes, "spec", None)
        name = spec.name if spec is not None else type(model_or_boxes).__name__
    return f"{name}\n{_totals(boxes)}"


def _totals(boxes: list[DiagramBox]) -> str:
    known = [b.mult_adds for b in boxes if b.mult_adds is not None]
    lower = ">= " if len(known) < len(boxes) else ""
    return f"{sum(b.params for b in boxes):,} params, {lower}{_macs(sum(known))} MACs per image"


def _draw_box(ax: Any, y: float, kind: str, title: str, shape: str, stats: str, dashed: bool,
              changed: bool = False) -> None:
    from matplotlib.patches import FancyBboxPatch, Rectangle

    fill, edge, _ = STYLE[kind]
    ax.add_patch(FancyBboxPatch((_X0, y - _BOX_H / 2), _X1 - _X0, _BOX_H, boxstyle="round,pad=0,rounding_size=0.12",
                                fc=fill, ec=edge, lw=2.2 if dashed else 1.3, ls=(0, (4, 2)) if dashed else "-",
                                zorder=2))
    if changed:  # a bar left of the box: this block differs from the first column's
        ax.add_patch(Rectangle((_X0 - 0.32, y - _BOX_H / 2), 0.14, _BOX_H, fc=_CHANGED, ec="none", zorder=2))
    top, bottom = (y + _BOX_H * 0.2, y - _BOX_H * 0.22) if stats else (y, y)
    ax.text(_X0 + 0.25, top, title, ha="left", va="center", fontsize=9.5, fontweight="bold", zorder=3)
    ax.text(_X1 - 0.25, top, shape, ha="right", va="center", fontsize=9.5, fontweight="bold", color=edge, zorder=3)
    if stats:
        ax.text(_X0 + 0.25, bottom, stats, ha="left", va="center", fontsize=8.2, color="#333333", zorder=3)


def _draw_arrow(ax: Any, y_from: float, y_to: float, side: float, label: str, shrinks: bool) -> None:
    """An arrow whose width follows ``side`` (the map it carries, as a fraction of the input's side)."""
    from matplotlib.patches import FancyArrowPatch

    x = (_X0 + _X1) / 2
    tail = 1.5 + 12.0 * side  # points
    ax.add_patch(FancyArrowPatch((x, y_from - _BOX_H / 2), (x, y_to + _BOX_H / 2), mutation_scale=1,
                                 arrowstyle=f"simple,tail_width={tail},head_width={tail + 7},head_length=6",
                                 fc="#8a8a8a", ec="none", zorder=1, shrinkA=0, shrinkB=0))
    ax.text(x + 0.4 + tail / 35, (y_from + y_to) / 2, label, ha="left", va="center", fontsize=8,
            color="#222222" if shrinks else "#8a8a8a", fontweight="bold" if shrinks else "normal")


def _draw(ax: Any, boxes: list[DiagramBox], title: str | None, rows: int,
          changed: frozenset[int] | None = None) -> None:
    """Draw one column: the input, then each box, top to bottom, with arrows between them.

    ``rows`` fixes the vertical scale (columns side by side share it); ``changed`` holds the indices
    of the boxes to mark as different (``None``: a lone diagram, no room kept for the marks).
    """
    first = boxes[0].input_shape
    largest = max(first[-2:]) if len(first) >= 3 else 1
    total = sum(b.params for b in boxes) or 1
    ax.set_xlim(_X0 - (0.1 if changed is None else 0.4), _X1 + 0.1)
    ax.set_ylim(-(rows - 1) * _STEP - _BOX_H / 2 - 0.12, _BOX_H / 2 + 0.12)
    ax.axis("off")
    _draw_box(ax, 0.0, "input", "input", format_shape(first).replace(" x ", " \u00d7 "), "", False)
    for i, b in enumerate(boxes, start=1):
        y = -i * _STEP
        side = (max(b.input_shape[-2:]) if len(b.input_shape) >= 3 else 1) / largest
        before, after = _side(b.input_shape), _side(b.output_shape)
        _draw_arrow(ax, y + _STEP, y, side, f"{before} \u2192 {after}", before != after)
        macs = "? MACs" if b.mult_adds is None else f"{_macs(b.mult_adds)} MACs"
        rf = f"RF {b.receptive_field} px" if not b.is_global else f"RF global ({b.receptive_field} px)"
        params = f"{b.params:,} params ({100 * b.params / total:.0f}%)" if b.params else "0 params"
        shape = format_shape(b.output_shape).replace(" x ", " \u00d7 ")
        _draw_box(ax, y, b.kind, f"{b.name}  \u00b7  {describe(b)}", shape,
                  f"{params}   \u00b7   {macs}   \u00b7   {rf}", b.is_global, changed is not None and i - 1 in changed)
    if title:
        ax.set_title(title, fontsize=10.5, loc="center")


def _legend_handles(boxes: list[DiagramBox]) -> list[Any]:
    from matplotlib.patches import Patch

    kinds = {b.kind for b in boxes}
    handles = [Patch(fc=STYLE[k][0], ec=STYLE[k][1], label=STYLE[k][2]) for k in KINDS if k in kinds]
    if any(b.is_global for b in boxes):
        handles.append(Patch(fc="white", ec="#333333", ls=(0, (4, 2)), lw=1.6, label="global: sees the whole map"))
    return handles


@old_spellings(positional=("ax", "title"))
def plot_diagram(model_or_boxes: nn.Module | list[DiagramBox], *, title: str | None = None,
                 ax: Any = None) -> Figure:
    """Draw the architecture top to bottom: one box per block, coloured by kind.

    Each box shows the block's name and type, its output shape (C x H x W), parameters,
    multiply-adds per image and the receptive field after it; global blocks (GAP head, Linear
    over the whole map) have a dashed border and say "global". The arrows between boxes are as
    wide as the map they carry and are labelled with the spatial size on the way in and out
    ("28 -> 26").

    Args:
        model_or_boxes: a model (see `diagram_boxes`) or the boxes it returned.
        title: default the spec's name (or the model's class) and the totals.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    boxes = _boxes_of(model_or_boxes)
    fig, ax = panel(ax, figsize=(6.4, 1.1 + _ROW_INCHES * (len(boxes) + 1)))
    _draw(ax, boxes, _default_title(model_or_boxes, boxes) if title is None else title, len(boxes) + 1)
    handles = _legend_handles(boxes)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles) if len(
        handles) <= 5 else 3, fontsize=7.5, frameon=False, handlelength=1.6, columnspacing=1.2)
    return fig.figure


def _same(a: DiagramBox, b: DiagramBox) -> bool:
    return (a.type, a.kernel, a.input_shape, a.output_shape, a.params, a.receptive_field, a.is_global) == (
        b.type, b.kernel, b.input_shape, b.output_shape, b.params, b.receptive_field, b.is_global)


def _changed(columns: list[list[DiagramBox]]) -> list[frozenset[int]]:
    """Per column, the indices of the boxes that differ from the first column's box of the same name
    (or have no such box); a first-column box is marked when any other column differs there."""
    base = {b.name: b for b in columns[0]}
    marks: list[set[int]] = [set() for _ in columns]
    for col, boxes in enumerate(columns[1:], start=1):
        names = {b.name: b for b in boxes}
        for i, b in enumerate(boxes):
            if b.name not in base or not _same(base[b.name], b):
                marks[col].add(i)
        marks[0] |= {i for i, b in enumerate(columns[0]) if b.name not in names or not _same(b, names[b.name])}
    return [frozenset(m) for m in marks]


@old_spellings(renamed=("axes",), positional=("ax",))
def plot_diagrams_side_by_side(models: dict[str, nn.Module | list[DiagramBox]], *, ax: Any = None) -> Figure:
    """Two (or more) architectures next to each other on one scale, to compare at a glance.

    Boxes are drawn at the same size in every column, so blocks at the same depth line up, and a
    red bar marks each block that differs from the first column's block of the same name (type,
    kernel, shapes, parameters or receptive field), in both columns.

    Args:
        models: column title -> model (or its boxes), left to right.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill. One panel per model.

    Returns:
        The matplotlib Figure the plot is drawn in.

    Raises:
        ConfigError: ``models`` is empty, or ``ax`` does not hold one axes per model.
    """
    if not models:
        raise ConfigError("pass at least one model, e.g. {'s6': get_model('s6'), 's6-gap': get_model('s6-gap')}")
    columns = {name: _boxes_of(m) for name, m in models.items()}
    rows = 1 + max(len(b) for b in columns.values())
    fig, axes = panels(ax, 1, len(columns), figsize=(6.0 * len(columns), 1.3 + _ROW_INCHES * rows))
    changed = _changed(list(columns.values()))
    everything: list[DiagramBox] = []
    for column, (name, boxes), marks in zip(axes[0], columns.items(), changed):
        _draw(column, boxes, f"{name}\n{_totals(boxes)}", rows, marks)
        everything += boxes
    handles = _legend_handles(everything)
    if any(changed):
        from matplotlib.patches import Patch

        handles.append(Patch(fc=_CHANGED, ec="none", label=f"differs from {next(iter(columns))}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5, frameon=False)
    return fig.figure
