from __future__ import annotations

import pytest
import torch

from s6lab import get_model
from s6lab.analysis.mistakes import find_mistakes
from s6lab.analysis.saliency import (
    DIVERGING,
    METHODS,
    SEQUENTIAL,
    SIGNED,
    attributions,
    default_gradcam_layer,
    default_methods,
    early_gradcam_layer,
    pick_samples,
    plot_saliency,
)
from tests.conftest import png_is_not_blank


def test_every_method_gives_finite_maps_of_image_shape(tiny_run, mnist_small):
    """Real MNIST subset, the tiny run's model."""
    x = mnist_small.test.images[:3]
    maps = attributions(tiny_run.model, x, methods=METHODS, smoothgrad_samples=4, ig_steps=8)
    assert set(maps) == set(METHODS)
    for name, m in maps.items():
        assert m.shape == (3, 28, 28), name
        assert torch.isfinite(m).all(), name
        assert m.abs().sum() > 0, name


def test_smoothgrad_is_seeded_and_leaves_the_global_generator_alone():
    model, x = get_model("s6"), torch.randn(2, 1, 28, 28)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = attributions(model, x, methods=("smoothgrad",), smoothgrad_samples=3)["smoothgrad"]
    assert torch.equal(torch.rand(3), expected_next)  # global state as before the call
    again = attributions(model, x, methods=("smoothgrad",), smoothgrad_samples=3)["smoothgrad"]
    other = attributions(model, x, methods=("smoothgrad",), smoothgrad_samples=3, seed=1)["smoothgrad"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_gradcam_layer_choice_and_errors():
    model = get_model("s6")
    assert default_gradcam_layer(model) == "conv3.conv"
    x = torch.randn(1, 1, 28, 28)
    assert attributions(model, x, methods=("gradcam",), layer="conv2.conv")["gradcam"].shape == (1, 28, 28)
    with pytest.raises(ValueError, match="unknown layer 'conv7' for gradcam"):
        attributions(model, x, methods=("gradcam",), layer="conv7")
    with pytest.raises(ValueError, match="unknown saliency method.*lime"):
        attributions(model, x, methods=("lime",))


def test_grid_figure(tmp_path, tiny_run, mnist_small):
    p = find_mistakes(tiny_run.model, mnist_small.test)
    idx = pick_samples(p, 4)
    assert len(idx) == 4 and (p.predicted[idx[:3]] != p.labels[idx[:3]]).all()
    maps = attributions(tiny_run.model, mnist_small.test.images[idx], methods=("saliency", "occlusion"))
    fig = plot_saliency(mnist_small.test.images[idx], maps, labels=p.labels[idx], predicted=p.predicted[idx],
                        confidence=p.confidence[idx])
    fig.savefig(tmp_path / "s.png")
    assert png_is_not_blank(tmp_path / "s.png")
    grid = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(grid) == 4 * 4  # digit, saliency, occlusion, saliency on the digit
    assert len(fig.axes) - len(grid) == 3  # a colour bar under each map column


def test_attributions_never_mutate_the_callers_tensor():
    from s6lab import get_model
    from s6lab.analysis.saliency import attributions, plot_saliency

    images = torch.zeros(2, 1, 28, 28)
    maps = attributions(get_model("s6"), images, methods=("saliency", "gradcam"))
    assert not images.requires_grad and images.grad is None
    plot_saliency(images, maps)  # the same tensor, drawn afterwards: no error


@pytest.mark.filterwarnings("ignore:the model is not an s6lab spec")  # a bare nn.Sequential, 28x28 is right
def test_gradcam_layer_is_the_last_conv_with_a_map_larger_than_1x1():
    import torch.nn as nn

    from s6lab.analysis.saliency import default_gradcam_layer

    # the last 3x3 conv runs at 1x1: Grad-CAM there would be a constant map
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 10, 3, padding=1), nn.Flatten(), nn.LogSoftmax(1))
    assert default_gradcam_layer(net) == "3"
    assert default_gradcam_layer(nn.Sequential(nn.Conv2d(1, 4, 1), nn.Flatten())) == "0"  # only 1x1: still one
    with pytest.raises(ValueError, match="no conv layer with an output map larger than 1x1"):
        default_gradcam_layer(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(1, 4, 1), nn.Flatten()))


def _columns(fig) -> dict[int, list]:
    """The grid's axes by column (colour bars left out), top to bottom."""
    cols: dict[int, list] = {}
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            cols.setdefault(ax.get_subplotspec().colspan.start, []).append(ax)
    return {c: sorted(axs, key=lambda a: a.get_subplotspec().rowspan.start) for c, axs in sorted(cols.items())}


def _synthetic_maps(n: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    maps = {m: torch.rand(n, 28, 28, generator=g) for m in METHODS}
    for m in SIGNED:
        maps[m] = torch.randn(n, 28, 28, generator=g)
    maps["integrated_gradients"][0] = maps["integrated_gradients"][0].abs()  # all positive: still diverging
    return maps


def _digits(n: int = 3) -> torch.Tensor:
    from s6lab.data import MNIST_MEAN, MNIST_STD

    ink = torch.zeros(n, 1, 28, 28)
    ink[:, :, 6:22, 12:16] = 1.0  # a "1": white ink on black, as MNIST stores it
    return (ink - MNIST_MEAN) / MNIST_STD


def test_one_colour_map_per_method_fixed_down_the_rows_with_a_colour_bar_each():
    maps = _synthetic_maps()
    fig = plot_saliency(_digits(), maps, overlay=None)
    cols = _columns(fig)
    assert len(cols) == 1 + len(METHODS)
    for c, method in enumerate(METHODS, start=1):
        heats = [ax.images[-1] for ax in cols[c]]
        names = {im.get_cmap().name for im in heats}
        assert names == {DIVERGING if method in SIGNED else SEQUENTIAL}, method
        lo, hi = heats[0].get_clim()
        assert all(im.get_clim() == (lo, hi) for im in heats), method
        if method in SIGNED:
            assert lo == -hi and hi > 0, method  # symmetric around 0
        else:
            assert (lo, hi) == (0, 1), method
        bars = {im.colorbar for im in heats} - {None}
        assert len(bars) == 1, method  # exactly one colour bar for the column
        assert bars.pop().mappable.get_cmap().name == heats[0].get_cmap().name
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == len(METHODS)


def test_row_titles_show_true_label_prediction_and_confidence():
    import re

    fig = plot_saliency(_digits(2), {"saliency": torch.rand(2, 28, 28)}, labels=torch.tensor([7, 1]),
                        predicted=torch.tensor([1, 1]), confidence=torch.tensor([0.913, 0.5]))
    titles = [ax.get_title() for ax in _columns(fig)[0]]
    assert titles == ["true 7 / pred 1 (91%)", "true 1 / pred 1 (50%)"]
    for t in titles:
        assert "true" in t and "pred" in t and re.search(r"\(\d+%\)", t)
    assert _columns(fig)[0][0].title.get_color() == "crimson"  # the wrong one stands out


def test_overlay_columns_blend_the_map_on_a_black_on_white_digit():
    maps = _synthetic_maps(2)
    fig = plot_saliency(_digits(2), maps)  # "auto": integrated gradients and Grad-CAM on the digit
    cols = _columns(fig)
    assert len(cols) == 1 + len(METHODS) + 2
    overlays = [cols[1 + len(METHODS)], cols[2 + len(METHODS)]]
    assert [axs[0].get_title() for axs in overlays] == ["Integrated Gradients\non the digit",
                                                        "Grad-CAM\n(last conv)\non the digit"]
    for axs, cmap in zip(overlays, (DIVERGING, SEQUENTIAL)):
        for ax in axs:
            digit, heat = ax.images  # the digit under the heat
            assert heat.get_cmap().name == cmap and 0 < heat.get_alpha() < 1
            rgba = digit.to_rgba(digit.get_array())
            assert rgba[0, 0, :3].min() > 0.95 and rgba[14, 13, :3].max() < 0.05  # white paper, black ink
    rgba = cols[0][0].images[0].to_rgba(cols[0][0].images[0].get_array())  # the digit column agrees
    assert rgba[0, 0, :3].min() > 0.95 and rgba[14, 13, :3].max() < 0.05
    assert len(_columns(plot_saliency(_digits(2), maps, overlay="occlusion"))) == 1 + len(METHODS) + 1
    with pytest.raises(ValueError, match="overlay of lime: not among the maps"):
        plot_saliency(_digits(2), maps, overlay="lime")


def test_an_all_zero_map_is_drawn_not_rejected():
    maps = {"gradcam": torch.zeros(1, 28, 28), "occlusion": torch.zeros(1, 28, 28)}
    fig = plot_saliency(_digits(1), maps, overlay=("gradcam",))
    assert len(_columns(fig)) == 4


def test_gradcam_early_is_a_finer_layer_and_a_full_size_map():
    model = get_model("s6")
    assert early_gradcam_layer(model) == "conv2.conv"
    x = torch.randn(2, 1, 28, 28)
    maps = attributions(model, x, methods=("gradcam", "gradcam_early"))
    assert maps["gradcam_early"].shape == (2, 28, 28) and (maps["gradcam_early"] >= 0).all()
    picked = attributions(model, x, methods=("gradcam_early",), early_layer="conv1.conv")["gradcam_early"]
    assert picked.shape == (2, 28, 28) and not torch.equal(picked, maps["gradcam_early"])
    with pytest.raises(ValueError, match="unknown layer 'conv9' for gradcam_early"):
        attributions(model, x, methods=("gradcam_early",), early_layer="conv9")


@pytest.mark.filterwarnings("ignore:the model is not an s6lab spec")  # a bare nn.Sequential, 28x28 is right
def test_a_net_with_no_finer_conv_has_no_gradcam_early():
    import torch.nn as nn

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    with pytest.raises(ValueError, match="no conv layer has a larger output map than '0'"):
        early_gradcam_layer(net)
    assert default_methods(net) == tuple(m for m in METHODS if m != "gradcam_early")
    assert default_methods(get_model("s6")) == METHODS
