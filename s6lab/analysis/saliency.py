"""Saliency maps with Captum: what the net looks at when it decides.

Methods (all attribute the *predicted* class unless targets are given):

- ``saliency``: |gradient of the class score w.r.t. the pixels|. Fast, noisy.
- ``integrated_gradients``: gradients integrated along the path from a black image to
  the digit; the baseline is the normalized black background, not 0 (0 is mid-grey
  after normalization).
- ``smoothgrad``: saliency averaged over noisy copies of the input (``NoiseTunnel``); the
  noise is drawn from its own generator seeded by ``seed``, so the maps are reproducible
  and the global random state is left as it was.
- ``gradcam``: LayerGradCam on a chosen conv layer, upsampled to 28x28. On the S6 Net
  the last conv map is 8x8 (or 4x4 after pooling), so the map is coarse by construction.
- ``occlusion``: the drop in the class score when a 4x4 patch is painted black.

Examples:
    >>> import torch
    >>> from s6lab import get_model
    >>> maps = attributions(get_model("s6"), torch.zeros(2, 1, 28, 28), methods=("saliency",))
    >>> maps["saliency"].shape
    torch.Size([2, 28, 28])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..data import MNIST_MEAN, MNIST_STD
from ..errors import ConfigError

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion")
BACKGROUND = -MNIST_MEAN / MNIST_STD  # a black pixel after normalization


def default_gradcam_layer(model: nn.Module) -> str:
    """The last Conv2d whose output map is larger than 1x1, preferring a kernel larger than 1x1
    (dotted name). A conv at 1x1 would make Grad-CAM a constant map.

    Raises:
        ValueError: the model has no conv layer with a spatial output.
    """
    from ..summary import input_size_of
    from .hooks import forward_with_hooks

    sizes: dict[str, tuple[int, int]] = {}
    names = {m: n for n, m in model.named_modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    forward_with_hooks(model, torch.zeros(input_size_of(model)),
                       [(m, lambda m, i, o: sizes.__setitem__(names[m], tuple(o.shape[2:]))) for m in convs])
    spatial = [names[m] for m in convs if names[m] in sizes and sizes[names[m]] != (1, 1)]
    wide = [names[m] for m in convs if names[m] in spatial and m.kernel_size != (1, 1)]
    if not spatial:
        raise ConfigError("the model has no conv layer with an output map larger than 1x1 for Grad-CAM")
    return (wide or spatial)[-1]


def attributions(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None, *,
                 methods: tuple[str, ...] = METHODS, layer: str | None = None,
                 smoothgrad_samples: int = 20, ig_steps: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Attribution maps for each method.

    Args:
        model: the network (put in eval mode; not modified otherwise).
        images: normalized digits ``(N, 1, H, W)``.
        targets: class per image; default the model's prediction.
        methods: any of :data:`METHODS`.
        layer: dotted name of the conv layer for ``gradcam``; default the last
            non-1x1 conv.
        smoothgrad_samples: noisy copies per image for ``smoothgrad``.
        ig_steps: integration steps for ``integrated_gradients``.
        seed: seeds the ``smoothgrad`` noise (the global random state is restored after).

    Returns:
        ``{method: (N, H, W) tensor}``, channel dimension summed, on the CPU.

    Raises:
        ValueError: an unknown method or layer name.
    """
    from captum.attr import (
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown saliency method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    model = model.eval()
    device = next(model.parameters()).device
    # a copy: captum wants a leaf that requires grad, and the caller's tensor must stay as it was
    x = images.detach().to(device).float().clone().contiguous().requires_grad_(True)
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(1)
    targets = targets.to(device)
    baseline = torch.full_like(x, BACKGROUND)
    maps: dict[str, torch.Tensor] = {}
    for method in methods:
        if method == "saliency":
            a = Saliency(model).attribute(x, target=targets, abs=True)
        elif method == "integrated_gradients":
            a = IntegratedGradients(model).attribute(x, baselines=baseline, target=targets, n_steps=ig_steps)
        elif method == "smoothgrad":
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):  # captum draws its noise from the global generator
                torch.manual_seed(seed)
                a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=smoothgrad_samples,
                                                           stdevs=0.3, target=targets, abs=True)
        elif method == "gradcam":
            name = layer or default_gradcam_layer(model)
            modules = dict(model.named_modules())
            if name not in modules:
                convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
                raise ConfigError(f"unknown layer {name!r} for gradcam; conv layers: {', '.join(convs)}")
            cam = LayerGradCam(model, modules[name]).attribute(x, target=targets, relu_attributions=True)
            a = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
        else:  # occlusion
            a = Occlusion(model).attribute(x, target=targets, sliding_window_shapes=(1, 4, 4),
                                           strides=(1, 2, 2), baselines=BACKGROUND)
        maps[method] = a.detach().sum(1).cpu()  # (N, H, W)
    return maps


def pick_samples(predictions, n: int = 8, n_wrong: int | None = None) -> torch.Tensor:
    """Default rows: the most confidently misclassified, then the most confident correct.

    Args:
        predictions: a :class:`~s6lab.analysis.gallery.Predictions`.
        n: total rows.
        n_wrong: how many of them wrong (default ``n - n // 4``, at least one correct).
    """
    n_wrong = n - max(1, n // 4) if n_wrong is None else n_wrong
    wrong = predictions.misclassified()
    wrong = wrong[predictions.confidence[wrong].argsort(descending=True)][:n_wrong]
    right = predictions.correct()[: n - len(wrong)]
    return torch.cat([wrong, right])


#: methods whose maps carry a sign (evidence for and against the class): a diverging colour map
SIGNED = frozenset({"integrated_gradients", "occlusion"})
TITLES = {"saliency": "Saliency", "integrated_gradients": "Integrated Gradients",
          "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM", "occlusion": "Occlusion"}


def plot_saliency(images: torch.Tensor, maps: dict[str, torch.Tensor], *, labels: torch.Tensor | None = None,
                  predicted: torch.Tensor | None = None, fig: Any = None):
    """One row per sample: the digit, then one column per method.

    The colour map is chosen per method, the same in every row: signed methods
    (integrated gradients, occlusion) use a diverging map centred on 0, non-negative ones
    (saliency, SmoothGrad, Grad-CAM after its ReLU) a sequential one. Each map is scaled on
    its own (by its largest absolute value), so compare shapes, not colours, across rows.

    Args:
        images: normalized digits ``(N, 1, H, W)``, un-normalized here for display.
        maps: from :func:`attributions`.
        labels: true labels for the row titles.
        predicted: predicted labels for the row titles.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from ..data import denormalize

    methods = list(maps)
    n, cols = images.shape[0], 1 + len(maps)
    if fig is None:
        fig = plt.figure(figsize=(1.8 * cols, 1.9 * n), constrained_layout=True)
    axes = fig.subplots(n, cols, squeeze=False)
    for r in range(n):
        ax = axes[r, 0]
        ax.imshow(denormalize(images[r])[0].cpu().numpy(), cmap="gray_r")
        if labels is not None and predicted is not None:
            wrong = int(labels[r]) != int(predicted[r])
            ax.set_title(f"true {int(labels[r])} / pred {int(predicted[r])}", fontsize=8,
                         color="crimson" if wrong else "black")
        for c, method in enumerate(methods, start=1):
            m = maps[method][r]
            scale = float(m.abs().max()) or 1.0
            signed = method in SIGNED
            axes[r, c].imshow(m.numpy(), cmap="RdBu_r" if signed else "magma", vmin=-scale if signed else 0,
                              vmax=scale)
            if r == 0:
                axes[r, c].set_title(TITLES.get(method, method), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
