"""What the net is trained on: real digits beside their augmented copies, and the class balance.

The augmented copies come from the trainer's own [`augment_batch`][s6lab.train.augment_batch] with a
recipe's ``rotation`` and ``translate``, so the picture is exactly what training sees.

Examples:
    >>> import torch
    >>> from s6lab.data import TensorSplit
    >>> from s6lab.train import TrainConfig
    >>> split = TensorSplit(torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 1, 7]))
    >>> augmentation_preview(split, TrainConfig(), n=2).augmented.shape
    torch.Size([2, 3, 1, 28, 28])
    >>> class_balance(split)[1]
    ClassCount(digit=1, count=2, percent=50.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .._canvas import old_spellings, panel, panels
from .._style import TARGET_LINE
from .._table import render_table
from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class AugmentationPreview:
    """``n`` digits and ``copies`` augmented versions of each."""

    images: torch.Tensor  # (n, 1, H, W), normalized
    augmented: torch.Tensor  # (n, copies, 1, H, W), normalized
    labels: torch.Tensor  # (n,)
    rotation: float  # degrees, as in the recipe
    translate: float  # fraction of the side, as in the recipe


def augmentation_preview(split, config, *, n: int = 8, copies: int = 3, seed: int = 0) -> AugmentationPreview:
    """The first ``n`` digits of ``split`` and ``copies`` random augmentations of each, drawn with
    the recipe's settings by the trainer's own augmentation (seeded by ``seed``).

    Raises:
        ConfigError: ``n`` or ``copies`` below 1, or more digits than the split holds.
    """
    from ..train import augment_batch

    if n < 1 or copies < 1:
        raise ConfigError(f"n and copies must be >= 1, got n={n}, copies={copies}")
    if n > len(split):
        raise ConfigError(f"n={n} is more than the {len(split)} digits of the split")
    images = split.images[:n]
    generator = torch.Generator().manual_seed(seed)
    # (n, 1, H, W) -> (copies * n, 1, H, W): one batched call, as in training
    repeated = images.repeat(copies, 1, 1, 1)
    augmented = augment_batch(repeated, generator, config.rotation, config.translate) if config.augment \
        else repeated.clone()
    augmented = augmented.view(copies, n, *images.shape[1:]).transpose(0, 1)  # (n, copies, 1, H, W)
    return AugmentationPreview(images, augmented, split.labels[:n], config.rotation if config.augment else 0.0,
                               config.translate if config.augment else 0.0)


@dataclass(frozen=True)
class ClassCount:
    digit: int
    count: int
    percent: float


def class_balance(split, num_classes: int = 10) -> list[ClassCount]:
    """How many digits of each class the split holds."""
    counts = torch.bincount(split.labels, minlength=num_classes)
    total = int(counts.sum()) or 1
    return [ClassCount(d, int(c), round(100.0 * int(c) / total, 2)) for d, c in enumerate(counts)]


def format_class_balance(counts: list[ClassCount], markdown: bool = False) -> str:
    """One row per digit: count and share."""
    header = ("digit", "images", "%")
    body = [(str(c.digit), f"{c.count:,}", f"{c.percent:.1f}") for c in counts]
    return render_table(header, body, markdown=markdown, align="rrr")


@old_spellings(renamed=("fig",))
def plot_augmentation_preview(preview: AugmentationPreview, *, ax: Any = None) -> Figure:
    """One column per digit: the real digit on top, its augmented copies below.

    Args:
        preview: from `augmentation_preview`.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.
            ``1 + copies`` rows, one column per digit.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    from ..data import denormalize

    n, copies = preview.augmented.shape[:2]
    fig, axes = panels(ax, copies + 1, n, figsize=(1.2 * n, 1.25 * (copies + 1) + 0.4))
    for c in range(n):
        axes[0, c].imshow(denormalize(preview.images[c])[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[0, c].set_title(f"label {int(preview.labels[c])}", fontsize=8)
        for r in range(copies):
            axes[r + 1, c].imshow(denormalize(preview.augmented[c, r])[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    axes[0, 0].set_ylabel("real", fontsize=8)
    for r in range(copies):
        axes[r + 1, 0].set_ylabel("augmented", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"what training sees: rotation up to ±{preview.rotation:g}°, shift up to "
                 f"±{100 * preview.translate:g}% of the side", fontsize=10)
    return fig.figure


def plot_class_balance(counts: list[ClassCount], *, title: str = "Class balance", ax: Any = None) -> Figure:
    """Bar chart of the images per digit, with the even share marked.

    Args:
        counts: from `class_balance`.
        title: the axes' title.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, ax = panel(ax, figsize=(6, 2.8))
    ax.bar([str(c.digit) for c in counts], [c.percent for c in counts], color="#4c72b0")
    ax.axhline(100 / len(counts), **TARGET_LINE, label=f"even share ({100 / len(counts):g}%)")
    ax.set(xlabel="digit", ylabel="% of images", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return fig.figure
