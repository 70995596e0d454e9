"""Parameter budgets: where the parameters and the arithmetic go.

Per leaf layer and per top-level block: parameters, share of the total, running total,
multiply-adds (from torchinfo, per image) and output activation size.

Multiply-add conventions (torchinfo's): a convolution counts one per weight per output
position, and its bias one per output element; a Linear one per weight and bias; BatchNorm
two per channel (scale and shift), ReLU, pooling and dropout none. For a layer type with
weights that torchinfo has no rule for, it would report one multiply-add per parameter, a
guess: s6lab marks those layers *unknown* ("?") and leaves them out of the total, which is
then a lower bound (``Budget.unknown_mult_adds`` names them).

Examples:
    >>> from s6lab import get_model
    >>> b = parameter_budget(get_model("s6"))
    >>> b.total_params, b.blocks[1].name, b.blocks[1].params
    (19602, 'conv2', 9312)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.nn as nn

from .._canvas import old_spellings, panels
from .._table import render_table
from ..errors import ConfigError
from ..summary import summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class BudgetRow:
    """One layer (or block) of the budget."""

    name: str
    type: str
    params: int
    percent: float  # of all parameters
    cumulative: int  # parameters up to and including this row
    mult_adds: int | None  # per image; None: unknown (a layer type with weights and no MAC rule)
    activations: int  # output elements per image


@dataclass(frozen=True)
class Budget:
    layers: tuple[BudgetRow, ...]
    blocks: tuple[BudgetRow, ...]
    total_params: int
    trainable_params: int
    total_mult_adds: int  # of the layers whose multiply-adds are known: a lower bound if any are not
    unknown_mult_adds: tuple[str, ...] = ()  # layers whose multiply-adds are unknown

    def _repr_html_(self) -> str:
        """In a notebook, the per-block table as HTML (``format_budget(..., markdown=True)`` rendered)."""
        import markdown

        return markdown.markdown(format_budget(self, markdown=True), extensions=["tables"])


#: layer types whose multiply-adds torchinfo counts by a real rule (see the module docstring)
MAC_RULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)


def macs_known(module: nn.Module) -> bool:
    """Whether torchinfo's multiply-add count for ``module`` is a real count, not a guess."""
    return isinstance(module, MAC_RULES) or not any(True for _ in module.parameters(recurse=False))


def parameter_budget(model: nn.Module, input_size: tuple[int, ...] | None = None) -> Budget:
    """Compute the budget with a torchinfo pass.

    Returns:
        A `Budget` with per-layer and per-block rows (blocks are top-level children).
    """
    stats = summary(model, input_size)
    names = {id(m): n for n, m in model.named_modules()}
    total = stats.total_params
    raw = []
    for info in stats.summary_list:
        if info.is_leaf_layer and info.executed:
            numel = 1
            for v in info.output_size[1:]:
                numel *= v
            raw.append((names.get(id(info.module), info.var_name), info.class_name, info.num_params,
                        info.macs if macs_known(info.module) else None, numel))
    unknown = tuple(name for name, _, _, macs, _ in raw if macs is None)

    def rows(items: list[tuple[str, str, int, int | None, int]]) -> tuple[BudgetRow, ...]:
        out, running = [], 0
        for name, kind, params, macs, acts in items:
            running += params
            out.append(BudgetRow(name, kind, params, 100.0 * params / total if total else 0.0, running,
                                 macs, acts))
        return tuple(out)

    blocks: dict[str, list] = {}
    for name, kind, params, macs, acts in raw:
        top = name.split(".")[0]
        block_type = type(getattr(model, top, None)).__name__ if "." in name else kind
        entry = blocks.setdefault(top, [top, block_type, 0, 0, 0])
        entry[2] += params
        entry[3] = None if entry[3] is None or macs is None else entry[3] + macs  # unknown if any part is
        entry[4] = acts  # the block's output is its last layer's output
    known_total = sum(macs for *_, macs, _ in raw if macs is not None)
    return Budget(rows(raw), rows([tuple(v) for v in blocks.values()]), total, stats.trainable_params,
                  known_total, unknown)


@dataclass(frozen=True)
class BudgetCheck:
    ok: bool
    total: int
    limit: int
    message: str


def check_budget(model: nn.Module, max_params: int) -> BudgetCheck:
    """Whether ``model`` has fewer than ``max_params`` parameters, with a message naming the
    largest block when it does not.

    Raises:
        ValueError: ``max_params`` is not a positive integer.
    """
    if isinstance(max_params, bool) or not isinstance(max_params, int) or max_params < 1:
        raise ConfigError(f"max_params must be a positive integer, got {max_params!r}")
    budget = parameter_budget(model)
    total = budget.total_params
    if total < max_params:
        return BudgetCheck(True, total, max_params, f"{total:,} parameters: fewer than {max_params:,}, as the "
                           f"rule asks ({max_params - total - 1:,} more would still fit)")
    biggest = max(budget.blocks, key=lambda r: r.params)
    return BudgetCheck(False, total, max_params, f"{total:,} parameters: the rule asks for fewer than "
                       f"{max_params:,}, so remove at least {total - max_params + 1:,}; the largest block is "
                       f"{biggest.name} ({biggest.params:,}, {biggest.percent:.0f}%)")


def format_budget(budget: Budget, *, level: str = "blocks", markdown: bool = False) -> str:
    """The budget as text or markdown; ``level`` is ``"blocks"`` or ``"layers"``."""
    if level not in ("blocks", "layers"):
        raise ConfigError(f"level must be 'blocks' or 'layers', got {level!r}")
    items = budget.blocks if level == "blocks" else budget.layers
    header = ("name", "type", "params", "%", "cumulative", "mult-adds", "% MACs", "activations")
    total_macs = budget.total_mult_adds or 1
    body = [(r.name, r.type, f"{r.params:,}", f"{r.percent:.1f}", f"{r.cumulative:,}",
             "?" if r.mult_adds is None else f"{r.mult_adds:,}",
             "?" if r.mult_adds is None else f"{100 * r.mult_adds / total_macs:.1f}", f"{r.activations:,}")
            for r in items]
    lower = ">= " if budget.unknown_mult_adds else ""
    body.append(("total", "", f"{budget.total_params:,}", "100.0", "", f"{lower}{budget.total_mult_adds:,}",
                 "100.0", ""))
    note = (f"\n? multiply-adds unknown for {', '.join(budget.unknown_mult_adds)} (a layer type with weights and "
            "no counting rule): left out of the total, which is a lower bound\n") if budget.unknown_mult_adds else ""
    return render_table(header, body, markdown=markdown, align="ll" + "r" * (len(header) - 2)) + note


@old_spellings(renamed=("axes",), positional=("ax",))
def plot_budget(budget: Budget, *, ax: Any = None) -> Figure:
    """Two bar charts per block: share of parameters and share of multiply-adds.

    Args:
        budget: from `parameter_budget`.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, axes = panels(ax, 1, 2, figsize=(10, 3.6), sharey=True)
    names = [r.name for r in budget.blocks]
    total_macs = budget.total_mult_adds or 1
    for panel, values, title, colour in (
        (axes[0, 0], [r.percent for r in budget.blocks], f"Parameters ({budget.total_params:,})", "#4c72b0"),
        (axes[0, 1], [100 * (r.mult_adds or 0) / total_macs for r in budget.blocks],
         f"Multiply-adds per image ({budget.total_mult_adds / 1e6:.2f} M)", "#dd8452"),
    ):
        bars = panel.barh(names, values, color=colour)
        for bar, v in zip(bars, values):
            panel.annotate(f"{v:.1f}%", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                           va="center", fontsize=8, xytext=(2, 0), textcoords="offset points")
        # first block on top; set, not inverted, so axes that share y (or not) end up alike
        panel.set(title=title, xlabel="% of total", xlim=(0, max(values + [1]) * 1.18),
                  ylim=(len(names) - 0.5, -0.5))
        panel.grid(axis="x", alpha=0.3)
    return fig.figure
