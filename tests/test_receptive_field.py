"""Receptive fields against hand calculations, and measured against analytic."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from s6lab import get_model
from s6lab.analysis.receptive_field import (
    analytic_extent,
    final_receptive_field,
    format_receptive_fields,
    measure_receptive_field,
    plot_measured_receptive_field,
    plot_receptive_field_growth,
    receptive_fields,
)
from tests.conftest import png_is_not_blank

MNIST = (1, 1, 28, 28)  # the input size the foreign nets below were built for


def strided_net():
    # hand: conv3 s2 p1 -> rf 3, j 2; conv3 p1 -> rf 3+2*2=7, j 2; avgpool2 -> rf 7+1*2=9, j 4
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10))


def dilated_net():
    # hand: conv3 d2 -> k_eff 5, rf 5; conv3 d3 -> k_eff 7, rf 11; maxpool3 s3 -> rf 13, j 3;
    # conv1x1 -> 13; global average pool -> global
    return nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2), nn.ReLU(), nn.Conv2d(4, 4, 3, dilation=3),
                         nn.ReLU(), nn.MaxPool2d(3), nn.Conv2d(4, 10, 1), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def padded_net():
    # hand: conv5 p2 -> rf 5 start 0.5; avgpool2 -> rf 6, j 2, start 1.0; conv3 s2 p1 -> rf 10, j 4,
    # start 1.0; avgpool 3 stride 1 p1 -> rf 18, j 4
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                         nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(4, 10, 1))


def conv_like(rows):
    return [(r.type, r.rf_out, r.jump_out, r.output_size) for r in rows if r.kernel is not None]


@pytest.mark.filterwarnings("ignore:the model is not an s6lab spec")  # its bare nn.Sequential is built for 28x28
def test_reference_net_by_hand():
    rows = receptive_fields(get_model("s6"))
    assert conv_like(rows) == [("Conv2d", 3, 1, 26), ("Conv2d", 5, 1, 24), ("MaxPool2d", 6, 2, 12),
                               ("Conv2d", 6, 2, 12), ("Conv2d", 14, 2, 8), ("MaxPool2d", 16, 4, 4),
                               ("Conv2d", 16, 4, 4)]
    fc = next(r for r in rows if r.type == "Linear")
    assert fc.status == "global" and fc.rf_out == 16 + 3 * 4  # the union of the 4x4 units' fields
    assert final_receptive_field(get_model("s6")) == 16 and type(final_receptive_field(get_model("s6"))) is int
    assert final_receptive_field(nn.Sequential(nn.Flatten(), nn.Linear(784, 10))) is None  # no spatial layer


def test_strided_conv_and_average_pooling_by_hand():
    rows = receptive_fields(strided_net(), (1, 1, 28, 28))
    assert conv_like(rows) == [("Conv2d", 3, 2, 14), ("Conv2d", 7, 2, 14), ("AvgPool2d", 9, 4, 7)]
    assert rows[-1].status == "global"
    # parameters by hand: 1*4*9+4, 4*8*9+8, BN 16, FC 392*10+10
    assert sum(p.numel() for p in strided_net().parameters()) == 40 + 296 + 16 + 3930


def test_dilation_and_global_pooling_by_hand():
    rows = receptive_fields(dilated_net(), (1, 1, 28, 28))
    assert conv_like(rows) == [("Conv2d", 5, 1, 24), ("Conv2d", 11, 1, 18), ("MaxPool2d", 13, 3, 6),
                               ("Conv2d", 13, 3, 6)]
    gap = next(r for r in rows if r.type == "AdaptiveAvgPool2d")
    assert gap.status == "global" and gap.rf_out == 13 + 5 * 3
    assert sum(p.numel() for p in dilated_net().parameters()) == 40 + 148 + 50


def test_padding_start_offsets_by_hand():
    rows = [r for r in receptive_fields(padded_net(), (1, 1, 28, 28)) if r.kernel is not None]
    assert [(r.rf_out, r.jump_out, r.start) for r in rows] == [
        (5, 1, 0.5), (6, 2, 1.0), (10, 4, 1.0), (18, 4, 1.0), (18, 4, 1.0)]


@pytest.mark.parametrize("factory", [lambda: get_model("s6"), strided_net, dilated_net, padded_net])
def test_measured_equals_analytic_for_every_conv(factory):
    model = factory()
    rows = receptive_fields(model, (1, 1, 28, 28))
    for row in rows:
        if row.type not in ("Conv2d", "MaxPool2d", "AvgPool2d") or row.output_size < 1:
            continue
        for unit in {(row.output_size // 2, row.output_size // 2), (0, 0), (row.output_size - 1, 1)}:
            measured = measure_receptive_field(model, row.name, unit=unit, image=torch.ones(1, 1, 28, 28))
            assert measured.rows == analytic_extent(row, unit[0], 28), (row.name, unit)
            assert measured.cols == analytic_extent(row, unit[1], 28), (row.name, unit)


def test_unknown_layer_is_warned_and_marked():
    class Weird(nn.Module):
        def forward(self, x):
            return x[:, :, ::2, ::2]

    model = nn.Sequential(nn.Conv2d(1, 2, 3), Weird(), nn.Conv2d(2, 2, 3))
    with pytest.warns(UserWarning, match=r"layer '1' \(Weird\).*marked unknown"):
        rows = receptive_fields(model, (1, 1, 28, 28))
    assert [r.status for r in rows] == ["ok", "unknown", "unknown"]
    assert rows[2].rf_out is None
    assert "unknown layer: not computed" in format_receptive_fields(rows)


def test_measure_errors():
    model = get_model("s6")
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*conv1.conv"):
        measure_receptive_field(model, "conv9")
    with pytest.raises(ValueError, match="outside the 26x26 output"):
        measure_receptive_field(model, "conv1.conv", unit=(30, 0))
    with pytest.raises(ValueError, match="no spatial output"):
        measure_receptive_field(model, "head.fc")


def test_markdown_table():
    text = format_receptive_fields(receptive_fields(get_model("s6")), markdown=True, only_changes=True)
    assert text.splitlines()[0].startswith("| layer | type | out |")
    assert "| conv3.conv | Conv2d | 8x8 | 5 | 1 | 0 | 1 | 2 | 2 | 6 | 14 | 7 |  |" in text
    assert "head.log_softmax" not in text


def test_plots_have_content(tmp_path, mnist_small):
    model = get_model("s6")
    fig = plot_receptive_field_growth(receptive_fields(model))
    fig.savefig(tmp_path / "growth.png")
    fig = plot_measured_receptive_field(model, "conv3.conv", mnist_small.test.images[:1])
    fig.savefig(tmp_path / "measured.png")
    assert png_is_not_blank(tmp_path / "growth.png") and png_is_not_blank(tmp_path / "measured.png")


def test_measured_field_figure_is_legible(mnist_small):
    """Real MNIST digit: black ink on white like every s6lab figure, and two boxes told apart by colour."""
    from matplotlib.colors import to_rgba

    fig = plot_measured_receptive_field(get_model("s6"), "conv3.conv", mnist_small.test.images[:1])
    ax = fig.axes[0]
    digit = ax.images[0]
    assert digit.get_cmap().name == "gray_r" and digit.get_clim() == (0, 1)  # 1 = ink = black
    measured, analytic = ax.patches
    assert measured.get_linestyle() == "solid" and analytic.get_linestyle() != "solid"
    a, b = to_rgba(measured.get_edgecolor()), to_rgba(analytic.get_edgecolor())
    assert sum(abs(x - y) for x, y in zip(a[:3], b[:3])) > 0.5  # colours that differ, not only dashes
    for colour in (a, b):
        assert sum(colour[:3]) < 2.4  # dark enough to read on white paper (no yellow, no cyan)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["measured 14x14", "analytic rf 14"]


class FunctionalPoolNet(nn.Module):
    """A conv, a functional max-pool in forward (invisible to hooks), a conv and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4 * 11 * 11, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(self.conv1(x), 2)  # 26 -> 13, no module
        return self.fc(torch.flatten(self.conv2(x), 1))


@pytest.mark.filterwarnings("ignore:the model is not an s6lab spec")  # a foreign net built for 28x28, as assumed
def test_a_functional_pool_in_forward_marks_the_rest_unknown_with_a_warning():
    with pytest.warns(UserWarning, match=r"'conv2'.*changed from 26x26 to 13x13 after 'conv1'.*F.max_pool2d"):
        rows = receptive_fields(FunctionalPoolNet(), (1, 1, 28, 28))
    assert [(r.name, r.status, r.rf_out) for r in rows] == [("conv1", "ok", 3), ("conv2", "unknown", None),
                                                            ("fc", "unknown", None)]
    with pytest.warns(UserWarning, match="functional call"):
        assert final_receptive_field(FunctionalPoolNet()) == 3  # only what is known


@pytest.mark.parametrize("norm", [nn.GroupNorm(2, 4), nn.InstanceNorm2d(4), nn.LayerNorm([4, 26, 26])])
def test_normalisations_over_the_map_are_global(norm):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), norm, nn.Conv2d(4, 4, 3))
    with pytest.warns(UserWarning, match="normalises over the whole map"):
        rows = receptive_fields(net, (1, 1, 28, 28))
    assert [r.status for r in rows] == ["ok", "global", "global"]
    assert rows[1].rf_out == 3 + 25  # the union of the 26x26 units' 3-pixel fields: the whole image


def test_layernorm_over_one_axis_is_unknown():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LayerNorm(26), nn.Conv2d(4, 4, 3))
    with pytest.warns(UserWarning, match="one axis only"):
        assert [r.status for r in receptive_fields(net, (1, 1, 28, 28))] == ["ok", "unknown", "unknown"]


def test_global_rows_are_centred_on_the_image():
    fc = next(r for r in receptive_fields(get_model("s6")) if r.type == "Linear")
    assert fc.start == 14 and fc.rf_out == 28  # centre of the union of the 4x4 units' fields


def ceil_net():
    # conv2 on 28 -> 27; ceil-mode max-pool 2 -> 14 (its last window reads row 26 only); Linear head
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(2, 2, 3),
                         nn.Flatten(), nn.Linear(2 * 12 * 12, 10))


def test_measuring_before_a_linear_head_and_a_ceil_mode_unit():
    m = measure_receptive_field(ceil_net(), "1", unit=(13, 13), input_size=MNIST)  # the ceil-mode unit exists
    assert m.rows == (26, 27) and m.cols == (26, 27)  # reads conv rows 26 (only): input rows 26-27
    with pytest.raises(ValueError, match=r"unit \(14, 0\) is outside the 14x14 output of '1'"):
        measure_receptive_field(ceil_net(), "1", unit=(14, 0), input_size=MNIST)
    rf = measure_receptive_field(ceil_net(), "2", input_size=MNIST).size
    assert rf == 2 + 1 * 1 + 2 * 2  # rf 2 -> 3 (pool, j 2) -> 7


def test_a_dilated_pool_measures_its_bounding_box_and_reports_the_holes():
    net = nn.Sequential(nn.MaxPool2d(3, stride=1, dilation=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    rows = receptive_fields(net, (1, 1, 28, 28))
    assert rows[0].rf_out == 5
    m = measure_receptive_field(net, "0", input_size=MNIST)
    assert m.size == 5 and m.box_pixels == 25 and m.pixels_used == 9  # a 3x3 lattice with holes


def test_input_size_is_never_assumed_silently():
    def gap_net():  # built for 32x32: a GAP head accepts any size, so 28x28 would "work"
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    with pytest.warns(UserWarning, match=r"declares no input_size: assuming one MNIST digit \(1, 1, 28, 28\)"):
        assert receptive_fields(gap_net())[1].rf_out == 3 + 27
    assert receptive_fields(gap_net(), (1, 1, 32, 32))[1].rf_out == 3 + 31
    declared = gap_net()
    declared.input_size = (1, 1, 32, 32)
    assert receptive_fields(declared)[1].rf_out == 34
    assert measure_receptive_field(declared, "0", unit=(31, 31)).rows == (30, 31)
    assert measure_receptive_field(gap_net(), "0", input_size=(1, 1, 32, 32), unit=(31, 0)).rows == (30, 31)
    with pytest.raises(ValueError, match="3-channel images, so it is not an MNIST net: pass input_size"):
        receptive_fields(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))


def test_the_rows_show_as_an_html_table_in_a_notebook():
    from s6lab import get_model

    rows = receptive_fields(get_model("s6"))
    html = rows._repr_html_()
    changes = format_receptive_fields(rows, markdown=True, only_changes=True).strip().splitlines()
    assert isinstance(rows, list) and html.startswith("<table>")
    assert "<td>conv3.conv</td>" in html and html.count("<tr>") == len(changes) - 1  # the separator is no row
