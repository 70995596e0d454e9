from __future__ import annotations

import pytest
import torch

from s6lab import get_model
from s6lab.analysis.gallery import interpret
from s6lab.analysis.saliency import METHODS, attributions, default_gradcam_layer, pick_samples, plot_saliency
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
    p = interpret(tiny_run.model, mnist_small.test)
    idx = pick_samples(p, 4)
    assert len(idx) == 4 and (p.predicted[idx[:3]] != p.labels[idx[:3]]).all()
    maps = attributions(tiny_run.model, mnist_small.test.images[idx], methods=("saliency", "occlusion"))
    fig = plot_saliency(mnist_small.test.images[idx], maps, labels=p.labels[idx], predicted=p.predicted[idx])
    fig.savefig(tmp_path / "s.png")
    assert png_is_not_blank(tmp_path / "s.png")
    assert len(fig.axes) == 4 * 3


def test_attributions_never_mutate_the_callers_tensor():
    from s6lab import get_model
    from s6lab.analysis.saliency import attributions, plot_saliency

    images = torch.zeros(2, 1, 28, 28)
    maps = attributions(get_model("s6"), images, methods=("saliency", "gradcam"))
    assert not images.requires_grad and images.grad is None
    plot_saliency(images, maps)  # the same tensor, drawn afterwards: no error


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


def test_colour_maps_are_chosen_per_method_not_per_map():
    from s6lab.analysis.saliency import plot_saliency

    images = torch.zeros(2, 1, 28, 28)
    # row 0 of integrated gradients happens to be all positive: still the diverging map
    maps = {"integrated_gradients": torch.stack([torch.rand(28, 28), torch.randn(28, 28)]),
            "saliency": torch.rand(2, 28, 28)}
    fig = plot_saliency(images, maps)
    cmaps = [[im.get_cmap().name for im in ax.images] for ax in fig.axes]
    assert cmaps[1] == cmaps[4] == ["RdBu_r"] and cmaps[2] == cmaps[5] == ["magma"]
