from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from s6lab import get_model
from s6lab.analysis.budget import check_budget, format_budget, parameter_budget, plot_budget
from tests.conftest import png_is_not_blank
from tests.test_receptive_field import dilated_net, padded_net, strided_net


def test_reference_blocks():
    b = parameter_budget(get_model("s6"))
    assert [(r.name, r.params) for r in b.blocks] == [
        ("conv1", 384), ("conv2", 9312), ("pool1", 0), ("trans1", 280), ("conv3", 6496), ("pool2", 0),
        ("trans2", 560), ("head", 2570)]
    assert b.total_params == 19_602 and b.blocks[-1].cumulative == 19_602
    assert sum(r.percent for r in b.blocks) == pytest.approx(100)
    # multiply-adds by hand, torchinfo's convention (the bias counts once per output):
    # out_h * out_w * out_c * (k*k*in_c + 1)
    conv1, conv2 = (r for r in b.layers if r.type == "Conv2d" and r.name in ("conv1.conv", "conv2.conv"))
    assert conv1.mult_adds == 26 * 26 * 32 * (9 + 1) and conv2.mult_adds == 24 * 24 * 32 * (32 * 9 + 1)
    assert conv2.activations == 32 * 24 * 24


@pytest.mark.parametrize("factory, params, conv_macs", [
    # by hand: params of each net; multiply-adds of its first conv = out_h*out_w*out_c*(k*k*in_c + 1)
    (strided_net, 40 + 296 + 16 + 3930, 14 * 14 * 4 * 10),
    (dilated_net, 40 + 148 + 50, 24 * 24 * 4 * 10),
    (padded_net, 104 + 148 + 50, 28 * 28 * 4 * 26),
])
def test_other_architectures_by_hand(factory, params, conv_macs):
    b = parameter_budget(factory(), (1, 1, 28, 28))
    assert b.total_params == params
    assert next(r for r in b.layers if r.type == "Conv2d").mult_adds == conv_macs


def test_check_budget():
    assert check_budget(get_model("s6"), 20_000).ok
    verdict = check_budget(get_model("s6"), 19_602)  # strictly fewer is required
    assert not verdict.ok and "largest block is conv2" in verdict.message
    with pytest.raises(ValueError, match="max_params must be a positive integer"):
        check_budget(get_model("s6"), 0)


def test_format_and_plot(tmp_path):
    b = parameter_budget(get_model("s6"))
    text = format_budget(b)
    assert text.splitlines()[-1].split()[:2] == ["total", "19,602"]
    assert "| conv2.conv | Conv2d | 9,248 |" in format_budget(b, level="layers", markdown=True)
    with pytest.raises(ValueError, match="level must be"):
        format_budget(b, level="modules")
    plot_budget(b).savefig(tmp_path / "b.png")
    assert png_is_not_blank(tmp_path / "b.png")


def test_budget_of_a_plain_module():
    b = parameter_budget(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)),
                         (1, 1, 28, 28))
    assert b.total_params == 20 + 13530


class Scale(torch.nn.Module):
    """A custom layer with weights: torchinfo has no multiply-add rule for it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        return x * self.weight


def test_multiply_adds_of_an_unknown_layer_with_weights_are_marked_unknown():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), Scale(4), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 26 * 26, 10))
    b = parameter_budget(net, (1, 1, 28, 28))
    scale = next(r for r in b.layers if r.type == "Scale")
    assert scale.mult_adds is None and b.unknown_mult_adds == ("1",)
    conv = 4 * 9 * 26 * 26 + 4 * 26 * 26  # weights per output position, plus the bias per output element
    assert b.total_mult_adds == conv + 4 * 26 * 26 * 10 + 10
    text = format_budget(b, level="layers")
    assert "?" in text and ">= " in text and "multiply-adds unknown for 1" in text
    assert next(r for r in b.blocks if r.name == "1").mult_adds is None


def test_a_budget_shows_as_an_html_table_in_a_notebook():
    from s6lab import get_model
    from s6lab.analysis.budget import parameter_budget

    html = parameter_budget(get_model("s6"))._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 10  # header, 8 blocks, total
    assert "<td>conv2</td>" in html and "9,312" in html
