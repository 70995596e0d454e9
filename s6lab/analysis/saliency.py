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
  the last conv map is 8x8 (or 4x4 after pooling), so the map is coarse by construction:
  bilinear upsampling spreads each cell over ~3.5 pixels, and its blobs spill onto the
  background around the strokes.
- ``gradcam_early``: the same on an earlier, finer conv (`early_gradcam_layer`,
  ``conv2.conv`` at 24x24 in the S6 Net): it stays on the strokes, at the price of seeing
  less context. Costs one backward pass, like ``gradcam``.
- ``occlusion``: the drop in the class score when a 4x4 patch is painted black.

Examples:
    >>> import torch
    >>> from s6lab import get_model
    >>> maps = attributions(get_model("s6"), torch.zeros(2, 1, 28, 28), methods=("saliency",))
    >>> maps["saliency"].shape
    torch.Size([2, 28, 28])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from .._canvas import old_spellings, panels
from ..data import MNIST_MEAN, MNIST_STD
from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam", "gradcam_early", "occlusion")
BACKGROUND = -MNIST_MEAN / MNIST_STD  # a black pixel after normalization


def default_gradcam_layer(model: nn.Module) -> str:
    """The last Conv2d whose output map is larger than 1x1, preferring a kernel larger than 1x1
    (dotted name). A conv at 1x1 would make Grad-CAM a constant map.

    The rule is [`default_conv_layer`][s6lab.analysis.inside.default_conv_layer], shared with the measured
    receptive field.

    Raises:
        ValueError: the model has no conv layer with a spatial output.
    """
    from ..summary import input_size_of
    from .inside import default_conv_layer

    name = default_conv_layer(model, input_size_of(model))  # asked here: its warning names our caller
    if name is None:
        raise ConfigError("the model has no conv layer with an output map larger than 1x1 for Grad-CAM")
    return name


def early_gradcam_layer(model: nn.Module) -> str:
    """The layer ``gradcam_early`` looks at: the last Conv2d whose output map is larger than that of
    `default_gradcam_layer`, preferring a kernel larger than 1x1 (dotted name).

    One resolution step finer than the default: ``conv2.conv`` (24x24) against ``conv3.conv`` (8x8)
    in the S6 Net, so the upsampled map can place evidence on a stroke instead of next to it.

    Raises:
        ValueError: no conv layer has a larger output map than the default Grad-CAM layer.

    Examples:
        >>> from s6lab import get_model
        >>> early_gradcam_layer(get_model("s6"))
        'conv2.conv'
    """
    from ..summary import input_size_of
    from .hooks import forward_with_hooks

    last = default_gradcam_layer(model)
    names = {m: n for n, m in model.named_modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pixels: dict[str, int] = {}  # output map height * width per conv
    forward_with_hooks(model, torch.zeros(input_size_of(model)),
                       [(m, lambda m, i, o: pixels.__setitem__(names[m], o.shape[-2] * o.shape[-1])) for m in convs])
    finer = [m for m in convs if pixels.get(names[m], 0) > pixels[last]]
    if not finer:
        raise ConfigError(f"no conv layer has a larger output map than {last!r} for gradcam_early; "
                          "name one with early_layer=")
    wide = [m for m in finer if m.kernel_size != (1, 1)]
    return names[(wide or finer)[-1]]


def default_methods(model: nn.Module) -> tuple[str, ...]:
    """`METHODS` less those this model cannot run: ``gradcam_early`` when no conv is finer than
    the Grad-CAM layer, both Grad-CAMs when no conv has a map larger than 1x1.

    Examples:
        >>> from s6lab import get_model
        >>> default_methods(get_model("s6")) == METHODS
        True
    """
    try:
        default_gradcam_layer(model)
    except ValueError:
        return tuple(m for m in METHODS if m not in ("gradcam", "gradcam_early"))
    try:
        early_gradcam_layer(model)
    except ValueError:
        return tuple(m for m in METHODS if m != "gradcam_early")
    return METHODS


def attributions(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None, *,
                 methods: tuple[str, ...] = METHODS, layer: str | None = None,
                 smoothgrad_samples: int = 20, ig_steps: int = 32, seed: int = 0,
                 early_layer: str | None = None) -> dict[str, torch.Tensor]:
    """Attribution maps for each method.

    Args:
        model: the network (put in eval mode; not modified otherwise).
        images: normalized digits ``(N, 1, H, W)``.
        targets: class per image; default the model's prediction.
        methods: any of `METHODS`.
        layer: dotted name of the conv layer for ``gradcam``; default the last
            non-1x1 conv.
        smoothgrad_samples: noisy copies per image for ``smoothgrad``.
        ig_steps: integration steps for ``integrated_gradients``.
        seed: seeds the ``smoothgrad`` noise (the global random state is restored after).
        early_layer: dotted name of the conv layer for ``gradcam_early``; default
            `early_gradcam_layer`.

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
        elif method in ("gradcam", "gradcam_early"):
            if method == "gradcam":
                name = layer or default_gradcam_layer(model)
            else:
                name = early_layer or early_gradcam_layer(model)
            modules = dict(model.named_modules())
            if name not in modules:
                convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
                raise ConfigError(f"unknown layer {name!r} for {method}; conv layers: {', '.join(convs)}")
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
        predictions: a [`Predictions`][s6lab.analysis.mistakes.Predictions].
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
#: colour map of signed methods (red: for the class, blue: against, white: 0) and of magnitudes
#: (white: 0). Both are white at zero, so a map blended on the black-on-white digit leaves the paper white.
DIVERGING, SEQUENTIAL = "RdBu_r", "Oranges"
TITLES = {"saliency": "Saliency", "integrated_gradients": "Integrated Gradients",
          "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM\n(last conv)", "gradcam_early": "Grad-CAM\n(earlier conv)",
          "occlusion": "Occlusion"}
_OVERLAY_ALPHA = 0.6  # heat over the digit: enough colour to read, the strokes still show through


def _row_title(labels: torch.Tensor | None, predicted: torch.Tensor | None, confidence: torch.Tensor | None,
               r: int) -> str:
    """"true 3 / pred 5 (87%)", or the parts of it that are known."""
    parts = [f"true {int(labels[r])}"] if labels is not None else []
    if predicted is not None:
        parts.append(f"pred {int(predicted[r])}")
    text = " / ".join(parts)
    if confidence is not None:
        text += f" ({float(confidence[r]):.0%})"
    return text.strip()


def _draw_map(fig: Any, ax: Any, attr: torch.Tensor, digit: torch.Tensor | None, *, signed: bool,
              outlier_perc: float) -> Any:
    """One attribution map with Captum's ``visualize_image_attr``: a heat map, or blended on ``digit``
    (``(H, W)`` in [0, 1], white ink) when one is given. Returns the heat's AxesImage."""
    from captum.attr import visualization

    cmap, lo = (DIVERGING, -1) if signed else (SEQUENTIAL, 0)
    # captum draws the digit with cmap "gray": give it the inverted digit so the ink stays black on
    # white, as in every other s6lab figure; (H, W) -> (H, W, 1), the layout captum expects
    paper = None if digit is None else (1 - digit).unsqueeze(-1).numpy()
    peak = float(attr.abs().max())
    if peak == 0:  # captum cannot scale an all-zero map; draw it as the zero it is
        if paper is not None:
            ax.imshow(paper[..., 0] * 255, cmap="gray", vmin=0, vmax=255)
        return ax.imshow(attr.numpy(), cmap=cmap, vmin=lo, vmax=1, alpha=_OVERLAY_ALPHA if paper is not None else None)
    # divided by its peak first: captum's scaling is scale-free, and it warns on maps of tiny values
    visualization.visualize_image_attr((attr / peak).unsqueeze(-1).numpy(), paper,
                         method="heat_map" if paper is None else "blended_heat_map",
                         sign="all" if signed else "absolute_value", plt_fig_axis=(fig, ax), cmap=cmap,
                         outlier_perc=outlier_perc, alpha_overlay=_OVERLAY_ALPHA, use_pyplot=False)
    if paper is not None:
        ax.images[0].set_clim(0, 255)  # the digit on the full grey range: a faint digit is not stretched
    return ax.images[-1]


def _overlay_methods(methods: list[str], overlay: str | tuple[str, ...] | None) -> list[str]:
    if overlay is None:
        return []
    if overlay == "auto":
        chosen = [m for m in ("integrated_gradients", "gradcam") if m in methods]
        return chosen or methods[:1]
    chosen = [overlay] if isinstance(overlay, str) else list(overlay)
    missing = [m for m in chosen if m not in methods]
    if missing:
        raise ConfigError(f"overlay of {', '.join(missing)}: not among the maps ({', '.join(methods)})")
    return chosen


@old_spellings(renamed=("fig",))
def plot_saliency(images: torch.Tensor, maps: dict[str, torch.Tensor], *, labels: torch.Tensor | None = None,
                  predicted: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                  overlay: str | tuple[str, ...] | None = "auto", outlier_perc: float = 2.0,
                  ax: Any = None) -> Figure:
    """One row per sample: the digit, one column per method, then the overlay columns (a map blended
    on the digit). Maps are drawn with Captum's ``visualize_image_attr``.

    One colour map per method, the same in every row, with a colour bar under its column: signed
    methods (integrated gradients, occlusion) use a diverging map with limits symmetric around 0
    (red: evidence for the class, blue: against), magnitudes (saliency, SmoothGrad, Grad-CAM after
    its ReLU) a sequential one from white. Each map is scaled on its own, so that its strongest
    pixels saturate (Captum's ``outlier_perc``): compare shapes, not colours, across rows.

    Args:
        images: normalized digits ``(N, 1, H, W)``, un-normalized here for display (black ink on white,
            as in the gallery).
        maps: from `attributions`.
        labels: true labels for the row titles.
        predicted: predicted labels for the row titles.
        confidence: probability of the predicted class, shown as a percentage in the row titles.
        overlay: methods to draw again blended on the digit: ``"auto"`` (integrated gradients and
            Grad-CAM, those present; else the first method), a name, a tuple of names, or ``None``.
        outlier_perc: percent of each map's total attribution saturated at the ends of the colour bar.
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.
            One row per sample, ``1 + methods + overlays`` columns.

    Returns:
        The matplotlib Figure the plot is drawn in.

    Raises:
        ValueError: an overlay method that is not among ``maps``.

    Examples:
        >>> import torch
        >>> maps = {"saliency": torch.rand(2, 28, 28)}
        >>> fig = plot_saliency(torch.zeros(2, 1, 28, 28), maps, labels=torch.tensor([3, 5]),
        ...                     predicted=torch.tensor([3, 6]), confidence=torch.tensor([0.99, 0.6]))
        >>> fig.axes[0].get_title()
        'true 3 / pred 3 (99%)'
    """
    from ..data import denormalize

    methods = list(maps)
    overlays = _overlay_methods(methods, overlay)
    columns = [(m, False) for m in methods] + [(m, True) for m in overlays]  # (method, blended on the digit)
    n, cols = images.shape[0], 1 + len(columns)
    fig, axes = panels(ax, n, cols, figsize=(1.75 * cols, 1.8 * n + 0.8))
    digits = denormalize(images.detach().cpu())[:, 0]  # (N, H, W) in [0, 1], white ink
    heats = [[None] * n for _ in columns]
    for r in range(n):
        ax = axes[r, 0]
        ax.imshow(digits[r].numpy(), cmap="gray_r", vmin=0, vmax=1)
        title = _row_title(labels, predicted, confidence, r)
        if title:
            wrong = labels is not None and predicted is not None and int(labels[r]) != int(predicted[r])
            ax.set_title(title, fontsize=8, color="crimson" if wrong else "black")
        for c, (method, blended) in enumerate(columns):
            heats[c][r] = _draw_map(fig, axes[r, c + 1], maps[method][r].detach().cpu().float(),
                                    digits[r] if blended else None, signed=method in SIGNED,
                                    outlier_perc=outlier_perc)
            if r == 0:
                name = TITLES.get(method, method)
                axes[r, c + 1].set_title(f"{name}\non the digit" if blended else name, fontsize=8)
    for c, (method, _) in enumerate(columns):
        bar = fig.colorbar(heats[c][-1], ax=axes[:, c + 1], location="bottom", shrink=0.85, aspect=12, pad=0.01)
        signed = method in SIGNED
        bar.set_ticks([-1, 0, 1] if signed else [0, 1])
        bar.set_ticklabels(["\u2212max", "0", "+max"] if signed else ["0", "max"])
        bar.ax.tick_params(labelsize=7)
        bar.set_label("against | for" if signed else "magnitude", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig.figure
