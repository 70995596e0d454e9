"""Inside a net: feature maps, kernels and the conv -> BatchNorm -> ReLU stages (synthetic digits, and the
tiny real-MNIST run for the command and the report)."""

from __future__ import annotations

import pytest
import torch

from s6lab import get_model
from s6lab.analysis.inside import (
    block_stages,
    default_conv_layer,
    feature_maps,
    format_feature_maps,
    kernels,
    plot_block_stages,
    plot_feature_maps,
    plot_kernels,
    widest_conv,
)
from s6lab.cli import main
from s6lab.errors import ConfigError, UnknownNameError
from tests.conftest import png_is_not_blank

DIGIT = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_feature_maps_of_every_block_with_their_receptive_field():
    maps = feature_maps(get_model("s6"), DIGIT)
    assert [(m.name, tuple(m.maps.shape), m.receptive_field) for m in maps] == [
        ("conv1", (32, 26, 26), 3), ("conv2", (32, 24, 24), 5), ("pool1", (32, 12, 12), 6),
        ("trans1", (8, 12, 12), 6), ("conv3", (32, 8, 8), 14), ("pool2", (32, 4, 4), 16),
        ("trans2", (16, 4, 4), 16)]
    conv1 = maps[0]
    assert conv1.zero_fraction == pytest.approx(float((conv1.maps == 0).float().mean()))
    assert 0 < conv1.zero_fraction < 1  # a ReLU block switches some units off, not all
    text = format_feature_maps(maps, markdown=True)
    assert "| conv3 | 32 x 8 x 8 | 14 |" in text


def test_kernels_first_and_widest():
    model = get_model("s6")
    name, weight = kernels(model)
    assert name == "conv1.conv" and weight.shape == (32, 1, 3, 3)
    assert widest_conv(model) == "conv3.conv" and kernels(model, "conv3.conv")[1].shape == (32, 8, 5, 5)
    with pytest.raises(UnknownNameError, match="unknown conv layer 'conv9'; conv layers: conv1.conv"):
        kernels(model, "conv9")


def test_one_default_conv_layer_for_gradcam_the_report_and_the_docs():
    import torch.nn as nn

    from s6lab.analysis.saliency import default_gradcam_layer

    # the 5x5, not the 1x1 after the last pool: both run on a map, the 1x1 only mixes channels
    assert default_conv_layer(get_model("s6")) == default_gradcam_layer(get_model("s6")) == "conv3.conv"
    assert default_conv_layer(get_model("s6-two-3x3")) == "conv4.conv"
    assert default_conv_layer(get_model("s6-5k")) == "conv5.conv"
    with pytest.warns(UserWarning, match="declares no input_size"):
        assert default_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(784, 10))) is None


def test_batchnorm_and_relu_stages_of_one_map():
    stages = block_stages(get_model("s6"), DIGIT, "conv2", channel=3)
    names = [name for name, _ in stages.stages]
    assert names == ["conv", "BatchNorm", "ReLU"]
    bn, relu = stages.stages[1][1], stages.stages[2][1]
    assert torch.equal(relu, bn.clamp(min=0)) and relu.shape == (24, 24)
    with pytest.raises(UnknownNameError, match="unknown conv block 'pool1'"):
        block_stages(get_model("s6"), DIGIT, "pool1")
    with pytest.raises(ConfigError, match=r"channel must be in \[0, 32\), got 32"):
        block_stages(get_model("s6"), DIGIT, "conv2", channel=32)


def test_one_digit_only():
    with pytest.raises(ConfigError, match=r"pass one digit of shape \(1, 1, H, W\), got \(2, 1, 28, 28\)"):
        feature_maps(get_model("s6"), torch.zeros(2, 1, 28, 28))


def test_plots_have_content(tmp_path):
    model = get_model("s6")
    maps = feature_maps(model, DIGIT)
    figures = {"maps": plot_feature_maps(maps, DIGIT, channels=4), "kernels": plot_kernels(*kernels(model)),
               "stages": plot_block_stages(block_stages(model, DIGIT, "conv1"))}
    for name, fig in figures.items():
        fig.savefig(tmp_path / f"{name}.png")
        assert png_is_not_blank(tmp_path / f"{name}.png"), name
    assert len(figures["maps"].axes) == len(maps) * 5


def test_inside_command_and_report_section(tiny_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir)
    assert "## Inside the network" in (run_dir / "report.md").read_text()
    assert png_is_not_blank(run_dir / "inside.png") and png_is_not_blank(run_dir / "stages.png")
    out = tmp_path / "mine"
    assert main(["inside", str(run_dir), "--index", "3", "-n", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test digit 3 (label" in printed and "| conv1 | 32 x 26 x 26 | 3 |" in printed
    assert {p.name for p in out.iterdir()} == {"inside.png", "kernels_first.png", "kernels_widest.png", "stages.png"}
    assert main(["inside", str(run_dir), "--index", "2000"]) == 2
    assert "--index must be in [0, 2000)" in capsys.readouterr().err
