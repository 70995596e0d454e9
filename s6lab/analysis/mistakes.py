"""Reading the mistakes: predictions, top losses, confusion matrix, most-confused pairs.

Computing and drawing are separate (as in fastai's ``Interpretation``):
`find_mistakes` returns data; the ``plot_*`` functions only draw it.

Examples:
    >>> import torch
    >>> p = Predictions(torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])),
    ...                 torch.tensor([0, 0, 1]))
    >>> p.misclassified().tolist()  # highest loss first: -log(0.2) > -log(0.3)
    [1, 2]
    >>> confusion_matrix(p).tolist()
    [[1, 1], [1, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._canvas import old_spellings, panel, panels
from .._table import render_table
from ..data import TensorSplit
from ..errors import ConfigError
from ..train import EVAL_BATCH_SIZE, predict

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Predictions:
    """A model's log-probabilities on a split, with the true labels.

    Shape:
        log_probs: ``(N, K)``; labels: ``(N,)``.
    """

    log_probs: torch.Tensor
    labels: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.log_probs.argmax(1)

    @property
    def confidence(self) -> torch.Tensor:
        """Probability of the predicted class."""
        return self.log_probs.max(1).values.exp()

    @property
    def losses(self) -> torch.Tensor:
        """Per-sample NLL loss."""
        return F.nll_loss(self.log_probs, self.labels, reduction="none")

    @property
    def num_classes(self) -> int:
        return self.log_probs.shape[1]

    @property
    def accuracy(self) -> float:
        return 100.0 * (self.predicted == self.labels).float().mean().item()

    def misclassified(self) -> torch.Tensor:
        """Indices of wrong predictions, highest loss first."""
        wrong = torch.nonzero(self.predicted != self.labels).flatten()
        return wrong[self.losses[wrong].argsort(descending=True)]

    def correct(self) -> torch.Tensor:
        """Indices of right predictions, most confident first."""
        right = torch.nonzero(self.predicted == self.labels).flatten()
        return right[self.confidence[right].argsort(descending=True)]


def find_mistakes(model: nn.Module, split: TensorSplit, *, batch_size: int = EVAL_BATCH_SIZE) -> Predictions:
    """Predict a whole split (eval mode, fp32): the `Predictions` that every mistakes function reads."""
    return Predictions(predict(model, split.images, batch_size=batch_size), split.labels)


@dataclass(frozen=True)
class TopLoss:
    """One sample among the highest losses (fastai's ``top_losses``)."""

    index: int
    label: int
    predicted: int
    loss: float  # NLL of the true class
    true_probability: float  # what the net gave the right answer
    confidence: float  # what it gave its own (wrong or right) answer


def top_losses(p: Predictions, k: int = 9) -> list[TopLoss]:
    """The ``k`` samples with the highest loss, right or wrong, highest first.

    Examples:
        >>> import torch
        >>> p = Predictions(torch.tensor([[0.0, -9.0], [-0.1, -2.4]]).log_softmax(1), torch.tensor([1, 0]))
        >>> [(t.index, t.predicted) for t in top_losses(p, 1)]
        [(0, 0)]
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    order = p.losses.argsort(descending=True)[:k]
    probs = p.log_probs.exp()
    return [TopLoss(int(i), int(p.labels[i]), int(p.predicted[i]), float(p.losses[i]),
                    float(probs[i, p.labels[i]]), float(p.confidence[i])) for i in order]


def confusion_matrix(p: Predictions) -> torch.Tensor:
    """``(K, K)`` counts; row = true class, column = predicted class."""
    k = p.num_classes
    return torch.bincount(p.labels * k + p.predicted, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class ConfusedPair:
    true: int
    predicted: int
    count: int


def most_confused(p: Predictions, min_count: int = 1) -> list[ConfusedPair]:
    """Off-diagonal (true, predicted) pairs with at least ``min_count`` errors, most first."""
    cm = confusion_matrix(p)
    pairs = [ConfusedPair(t, q, int(cm[t, q])) for t in range(cm.shape[0]) for q in range(cm.shape[1])
             if t != q and cm[t, q] >= min_count]
    return sorted(pairs, key=lambda c: (-c.count, c.true, c.predicted))


@dataclass(frozen=True)
class ClassAccuracy:
    label: int
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else float("nan")


def per_class_accuracy(p: Predictions) -> list[ClassAccuracy]:
    cm = confusion_matrix(p)
    return [ClassAccuracy(k, int(cm[k, k]), int(cm[k].sum())) for k in range(cm.shape[0])]


def format_mistakes(p: Predictions, *, top: int = 10, markdown: bool = False) -> str:
    """Most-confused pairs and per-class accuracy as text or markdown."""
    pairs = most_confused(p)[:top]
    classes = per_class_accuracy(p)
    errors = len(p.misclassified())
    head = f"{errors} of {len(p.labels)} test images misclassified (accuracy {p.accuracy:.2f}%)"
    confused = render_table(("true", "predicted as", "count"), [(c.true, c.predicted, c.count) for c in pairs],
                            markdown=markdown, align="rrr") if pairs else "none: every test image is right\n"
    per_class = render_table(("class", "correct", "total", "accuracy"),
                             [(c.label, c.correct, c.total, f"{c.accuracy:.2f}%") for c in classes],
                             markdown=markdown, align="rrrr")
    if markdown:
        return f"{head}\n\n{confused}\n{per_class}"
    return f"{head}\n\nmost confused\n{confused}\nper-class accuracy\n{per_class}"


@old_spellings(renamed=("fig",))
def plot_mistakes(images: torch.Tensor, p: Predictions, indices: torch.Tensor | None = None, *,
                  n: int = 25, ncols: int = 5, ax: Any = None) -> Figure:
    """A grid of images titled "true / predicted (confidence)" and "loss, probability of the true
    class" (fastai's ``plot_top_losses``); default the ``n`` highest-loss mistakes.

    Args:
        images: the split's normalized images ``(N, 1, H, W)``.
        p: predictions on that split.
        indices: which samples to show; default ``p.misclassified()[:n]``.
        n: at most this many images.
        ncols: images per row.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.
            ``ceil(shown / ncols)`` rows of ``ncols`` panels.

    Returns:
        The matplotlib Figure the plot is drawn in.

    Raises:
        ConfigError: there is nothing to show (no misclassified samples), or ``n`` < 1.
    """
    from ..data import denormalize

    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    indices = p.misclassified()[:n] if indices is None else indices[:n]
    if len(indices) == 0:
        raise ConfigError("no misclassified samples to show: every prediction is correct")
    rows = (len(indices) + ncols - 1) // ncols
    fig, axes = panels(ax, rows, ncols, figsize=(1.9 * ncols, 2.1 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices.tolist()):
        ax.imshow(denormalize(images[i])[0].cpu().numpy(), cmap="gray_r")
        right = p.predicted[i] == p.labels[i]
        true_probability = float(p.log_probs[i, p.labels[i]].exp())
        ax.set_title(f"true {int(p.labels[i])} / pred {int(p.predicted[i])} ({p.confidence[i]:.0%})\n"
                     f"loss {float(p.losses[i]):.2f}, p(true) {true_probability:.0%}",
                     fontsize=8, color="black" if right else "crimson")
    return fig.figure


@old_spellings(renamed=("fig",))
def plot_top_losses(images: torch.Tensor, p: Predictions, k: int = 9, *, ncols: int = 3, ax: Any = None) -> Figure:
    """fastai's name for the gallery: the ``k`` highest-loss mistakes, each titled with its true and
    predicted label, the confidence, the loss and the probability given to the true class (see
    [`plot_mistakes`][s6lab.analysis.mistakes.plot_mistakes]).

    Args:
        images: the split's normalized images ``(N, 1, H, W)``.
        p: predictions on that split.
        k: at most this many mistakes.
        ncols: images per row.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    return plot_mistakes(images, p, n=k, ncols=ncols, ax=ax)


def plot_confusion(p: Predictions, *, normalize: bool = False, hide_diagonal: bool = False,
                   ax: Any = None) -> Figure:
    """Seaborn heatmap of the confusion matrix (counts, or row-normalized %).

    Args:
        p: predictions.
        normalize: percent of each true class instead of counts.
        hide_diagonal: leave the correct predictions out, so the mistakes carry the colour scale.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    import seaborn as sns

    cm = confusion_matrix(p).float()
    if normalize:
        cm = 100 * cm / cm.sum(1, keepdim=True).clamp(min=1)
    fig, ax = panel(ax, figsize=(6.2, 5.2))
    mask = torch.eye(cm.shape[0], dtype=torch.bool).numpy() if hide_diagonal else None
    sns.heatmap(cm.numpy(), annot=True, fmt=".1f" if normalize else ".0f", cmap="Blues", ax=ax, cbar=True,
                mask=mask, annot_kws={"fontsize": 7}, square=True)
    ax.set(xlabel="predicted", ylabel="true",
           title="Confusion matrix (% of each true class)" if normalize else "Confusion matrix (counts)")
    return fig.figure
