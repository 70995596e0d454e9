"""Training curves: test accuracy and loss per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._canvas import old_spellings, panels
from .._style import TARGET_LINE
from ..check import TARGET_ACC
from ..train import History

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@old_spellings(renamed=("axes",))
def plot_history(history: History, *, target: float = TARGET_ACC, label: str | None = None,
                 ax: Any = None) -> Figure:
    """Test accuracy (left) and train/test loss (right) per epoch. A run trained with weight
    averaging (``TrainConfig.ema``) also shows its trained weights' own accuracy, dashed.

    Args:
        history: a run's history.
        target: accuracy line to draw (the assignment's 99.4%).
        label: legend label for the accuracy curve.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, axes = panels(ax, 1, 2, figsize=(10, 3.6))
    epochs = [e.epoch for e in history.epochs]
    acc_ax, loss_ax = axes[0]
    averaged = history.averaged
    raw = [e.raw_test_acc for e in history.epochs] if averaged else []
    acc_ax.plot(epochs, history.test_acc, marker="o", ms=3,
                label=label or ("test accuracy, averaged weights" if averaged else "test accuracy"))
    if averaged:  # what the last step's weights scored: the gap is what averaging bought
        acc_ax.plot(epochs, raw, marker="o", ms=3, ls="--", color="0.55", label="trained weights, not averaged")
    acc_ax.axhline(target, **TARGET_LINE, label=f"{target}% target")
    if len(epochs) >= 3:  # the assignment's rule: each of the last three epochs at the target or above
        acc_ax.axvspan(epochs[-3] - 0.5, epochs[-1] + 0.5, color="#dd8452", alpha=0.15,
                       label="last three epochs (the rule)")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    shown = history.test_acc + raw
    low, high = min([target - 0.5, *shown]), max(shown + [target])
    pad = max(0.1, 0.04 * (high - low))  # a far-off first epoch keeps its whole marker in view
    acc_ax.set_ylim(low - pad, min(100.0, high + max(0.3, pad)))
    acc_ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.xaxis.get_major_locator().set_params(integer=True)
    acc_ax.grid(alpha=0.3)
    # below the panel: the curve can pass through any corner of it (a short run climbs through lower right)
    acc_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    loss_ax.plot(epochs, [e.train_loss for e in history.epochs], marker="o", ms=3, label="train")
    loss_ax.plot(epochs, [e.test_loss for e in history.epochs], marker="o", ms=3, label="test")
    loss_ax.set(xlabel="epoch", ylabel="NLL loss", title="Loss", yscale="log")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()
    return fig.figure
