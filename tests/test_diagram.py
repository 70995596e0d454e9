"""Architecture diagrams: the boxes carry the budget's and the receptive-field module's numbers, the
figure shows them, plain nn.Sequential nets are grouped by layer, and what cannot be followed is refused."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import pytest
import torch.nn as nn

from s6lab import count_parameters, get_model, get_spec, list_models
from s6lab.analysis.budget import parameter_budget
from s6lab.analysis.diagram import (
    KINDS,
    DiagramBox,
    describe,
    diagram_boxes,
    format_diagram,
    plot_diagram,
    plot_diagrams_side_by_side,
)
from s6lab.analysis.receptive_field import final_receptive_field, receptive_fields
from s6lab.errors import ConfigError
from s6lab.specs import GAPHeadSpec, LinearHeadSpec
from tests.conftest import png_is_not_blank
from tests.test_receptive_field import FunctionalPoolNet, dilated_net, strided_net


def figure_text(fig) -> str:
    """Every string drawn on the figure: texts, titles and legend labels."""
    return "\n".join(t.get_text() for t in fig.findobj(plt.Text))


def test_reference_net_box_by_box():
    boxes = diagram_boxes(get_model("s6"))
    assert [(b.name, b.type, b.kind, b.output_shape, b.params, b.receptive_field, b.is_global) for b in boxes] == [
        ("conv1", "ConvBN", "conv", (32, 26, 26), 384, 3, False),
        ("conv2", "ConvBN", "conv", (32, 24, 24), 9312, 5, False),
        ("pool1", "PoolDrop", "pool", (32, 12, 12), 0, 6, False),
        ("trans1", "Transition1x1", "transition", (8, 12, 12), 280, 6, False),
        ("conv3", "ConvBN", "conv", (32, 8, 8), 6496, 14, False),
        ("pool2", "PoolDrop", "pool", (32, 4, 4), 0, 16, False),
        ("trans2", "Transition1x1", "transition", (16, 4, 4), 560, 16, False),
        ("head", "LinearHead", "head", (10,), 2570, 28, True),  # 28: the union of the 4x4 units' fields
    ]
    assert boxes[0].input_shape == (1, 28, 28)
    assert all(b.input_shape == a.output_shape for a, b in zip(boxes, boxes[1:]))  # the boxes chain
    assert [b.kernel for b in boxes] == [3, 3, 2, 1, 5, 2, 1, None]
    assert boxes[-1].layers == ("head.flatten", "head.fc", "head.log_softmax")
    assert sum(b.params for b in boxes) == 19_602


def test_numbers_are_the_budget_and_receptive_field_modules_numbers():
    model = get_model("s6")
    boxes = diagram_boxes(model)
    budget = parameter_budget(model)
    assert [(b.name, b.params, b.mult_adds) for b in boxes] == [(r.name, r.params, r.mult_adds) for r in budget.blocks]
    last_in_block = {}
    for row in receptive_fields(model):
        last_in_block[row.name.split(".")[0]] = row.rf_out
    assert [b.receptive_field for b in boxes] == [last_in_block[b.name] for b in boxes]
    spatial = [b for b in boxes if not b.is_global]
    assert spatial[-1].receptive_field == final_receptive_field(model) == 16


@pytest.mark.parametrize("name", list_models())
def test_every_registered_variant(name):
    model, spec = get_model(name), get_spec(name)
    boxes = diagram_boxes(model)
    assert [b.name for b in boxes] == [n for n, _ in model.named_children()]
    assert len(boxes) == len(spec.layers)
    assert sum(b.params for b in boxes) == count_parameters(model)
    assert all(b.kind in KINDS for b in boxes)
    # only the head sees the whole map, and it is a head of the spec's kind
    assert [b.is_global for b in boxes] == [False] * (len(boxes) - 1) + [True]
    head = boxes[-1]
    assert head.kind == "head" and head.output_shape == (spec.num_classes,)
    assert head.type == {LinearHeadSpec: "LinearHead", GAPHeadSpec: "GAPHead"}[type(spec.layers[-1])]
    # the map only shrinks toward the head
    sides = [b.output_shape[-1] for b in boxes[:-1]]
    assert sides == sorted(sides, reverse=True)


def test_variants_differ_where_their_specs_do():
    gap = diagram_boxes(get_model("s6-gap"))
    assert (gap[-1].type, gap[-1].params, gap[-1].mult_adds) == ("GAPHead", 16 * 10 + 10, 2720)
    assert gap[-1].layer_types == ("Conv2d", "AdaptiveAvgPool2d", "Flatten", "LogSoftmax")
    two = {b.name: b for b in diagram_boxes(get_model("s6-two-3x3"))}
    # two 3x3 convs in place of the 5x5 reach its receptive field (14) on the same 8x8 map
    assert (two["conv3"].output_shape, two["conv3"].receptive_field) == ((16, 10, 10), 10)
    assert (two["conv4"].output_shape, two["conv4"].receptive_field) == ((32, 8, 8), 14)
    small = diagram_boxes(get_model("s6-5k"))
    assert sum(b.params for b in small) == 4822 and small[-1].output_shape == (10,)
    assert [b.output_shape[-1] for b in small[:-1]] == [26, 24, 12, 12, 10, 8, 6]


def test_format_as_text_and_markdown():
    boxes = diagram_boxes(get_model("s6"))
    lines = format_diagram(boxes).splitlines()
    assert lines[0].split() == ["block", "type", "output", "size", "params", "mult-adds", "rf", "(px)"]
    assert lines[1].split() == ["input", "1", "x", "28", "x", "28"]
    assert lines[3].split() == ["conv2", "ConvBN", "3x3", "32", "x", "24", "x", "24", "26->24", "9,312", "5,326,912",
                                "5"]
    assert lines[-2].split() == ["head", "LinearHead", "10", "4->1", "2,570", "2,570", "global", "(28)"]
    assert lines[-1].split() == ["total", "19,602", "6,004,090"]
    markdown = format_diagram(boxes, markdown=True)
    assert "| trans1 | Transition1x1 | 8 x 12 x 12 | 12->12 | 280 | 38,032 | 6 |" in markdown
    with pytest.raises(ConfigError, match="no boxes to format"):
        format_diagram([])


def test_plain_sequential_groups_layers_into_boxes():
    boxes = diagram_boxes(strided_net(), (1, 28, 28))  # (C, H, W) is accepted as well as (1, C, H, W)
    assert [(b.name, b.layers, b.kind, b.output_shape, b.params, b.receptive_field, b.is_global)
            for b in boxes] == [
        ("0", ("0", "1"), "conv", (4, 14, 14), 40, 3, False),  # ReLU joins the conv before it
        ("2", ("2", "3", "4"), "conv", (8, 14, 14), 296 + 16, 7, False),  # so do BatchNorm and ReLU
        ("5", ("5",), "pool", (8, 7, 7), 0, 9, False),
        ("7", ("6", "7"), "head", (10,), 3930, 33, True),  # Flatten joins the Linear it feeds
    ]
    assert [describe(b) for b in boxes] == ["Conv2d 3x3 + ReLU", "Conv2d 3x3 + BN + ReLU", "AvgPool2d 2x2",
                                            "flatten + Linear"]
    assert diagram_boxes(strided_net(), (1, 1, 28, 28)) == boxes
    # global average pooling, then a Flatten at the very end: the Flatten closes the GAP box
    gap = diagram_boxes(dilated_net(), (1, 1, 28, 28))
    assert [(b.name, b.kind, b.output_shape, b.is_global) for b in gap] == [
        ("0", "conv", (4, 24, 24), False), ("2", "conv", (4, 18, 18), False), ("4", "pool", (4, 6, 6), False),
        ("5", "transition", (10, 6, 6), False), ("6", "head", (10,), True)]
    assert gap[-1].layers == ("6", "7")


def test_a_plain_model_without_input_size_is_assumed_mnist_with_a_warning():
    with pytest.warns(UserWarning, match="assuming one MNIST digit"):
        boxes = diagram_boxes(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    assert boxes[0].input_shape == (1, 28, 28) and boxes[0].output_shape == (2, 26, 26)


def test_a_single_layer_model():
    (box,) = diagram_boxes(nn.Conv2d(1, 2, 3), (1, 28, 28))
    assert (box.name, box.output_shape, box.params, box.receptive_field) == ("Conv2d", (2, 26, 26), 20, 3)


class Weird(nn.Module):
    def forward(self, x):
        return x[:, :, ::2, ::2]


class SharedReLU(nn.Module):
    """One ReLU module used twice: not a chain of blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu, self.conv2 = nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))))


def test_what_the_analysis_cannot_follow_is_one_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the receptive-field warning becomes the error, not an extra line
        with pytest.raises(ConfigError, match=r"cannot draw layer '1' \(Weird\): no receptive-field rule for this "
                                              r"layer type\..*replace that layer by one of them"):
            diagram_boxes(nn.Sequential(nn.Conv2d(1, 2, 3), Weird(), nn.Conv2d(2, 2, 3)), (1, 28, 28))
        with pytest.raises(ConfigError, match=r"cannot draw layer 'conv2' \(Conv2d\): the map changed from 26x26 to "
                                              r"13x13 after 'conv1'.*F.max_pool2d.*use the nn.Module instead"):
            diagram_boxes(FunctionalPoolNet(), (1, 1, 28, 28))
    with pytest.raises(ConfigError, match="module 'relu' runs more than once.*give each use its own module"):
        diagram_boxes(SharedReLU(), (1, 1, 28, 28))
    with pytest.raises(ConfigError, match=r"does not run on an input of \(1, 1, 28, 28\).*pass the "
                                          r"input_size=\(1, C, H, W\) it was built for"):
        diagram_boxes(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 30 * 30, 10)), (1, 28, 28))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="the model has no layers to draw"):
        diagram_boxes(nn.Sequential(), (1, 28, 28))
    with pytest.raises(ConfigError, match="takes an nn.Module, got str; build one with s6lab.get_model"):
        diagram_boxes("s6")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"input_size must be \(C, H, W\) or \(1, C, H, W\).*got \(28, 28\)"):
        diagram_boxes(get_model("s6"), (28, 28))
    with pytest.raises(ConfigError, match="pass a model or the non-empty list"):
        plot_diagram([])
    with pytest.raises(ConfigError, match="pass at least one model"):
        plot_diagrams_side_by_side({})
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ConfigError, match=r"draws 2 panels \(1 x 2\): pass 2 axes, got 3"):
        plot_diagrams_side_by_side({"a": get_model("s6"), "b": get_model("s6-gap")}, ax=axes)
    plt.close("all")


def test_the_figure_shows_every_box(tmp_path):
    model = get_model("s6")
    boxes = diagram_boxes(model)
    fig = plot_diagram(model)
    text = figure_text(fig)
    assert "s6\n19,602 params, 6.00 M MACs per image" in text
    assert "input" in text and "1 \u00d7 28 \u00d7 28" in text
    for b in boxes:
        assert f"{b.name}  \u00b7  {describe(b)}" in text
        assert " \u00d7 ".join(map(str, b.output_shape)) in text
        assert f"{b.params:,} params" in text
        expected_rf = f"RF global ({b.receptive_field} px)" if b.is_global else f"RF {b.receptive_field} px"
        assert expected_rf in text
        assert f"{b.input_shape[-1]} \u2192 {b.output_shape[-1] if len(b.output_shape) == 3 else 1}" in text
    assert "conv2  \u00b7  ConvBN 3x3" in text and "9,312 params (48%)" in text and "5.33 M MACs" in text
    for label in ("conv (k > 1)", "1x1 transition", "pooling", "head", "global: sees the whole map"):
        assert label in text
    # the head alone is drawn dashed (global), and the arrows get thinner as the map shrinks
    ax = fig.axes[0]
    dashed = [p for p in ax.patches if p.get_linestyle() not in ("-", "solid")]
    assert len(dashed) == 1
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == len(boxes)
    widths = [float(p.get_arrowstyle().tail_width) for p in arrows]
    assert widths == sorted(widths, reverse=True) and widths[0] > 3 * widths[-1]
    fig.savefig(tmp_path / "s6.png")
    assert png_is_not_blank(tmp_path / "s6.png")
    assert figure_text(plot_diagram(boxes, title="mine")).count("mine") == 1
    plt.close("all")


def test_side_by_side_marks_what_differs(tmp_path):
    fig = plot_diagrams_side_by_side({"s6": get_model("s6"), "s6-gap": get_model("s6-gap")})
    assert len(fig.axes) == 2
    text = figure_text(fig)
    assert "s6\n19,602 params" in text and "s6-gap\n17,202 params" in text
    assert "head  \u00b7  LinearHead" in text and "head  \u00b7  GAPHead" in text and "170 params (1%)" in text
    assert "differs from s6" in text
    # one red bar per column: the heads are the only blocks that differ
    for ax in fig.axes:
        bars = [p for p in ax.patches if type(p).__name__ == "Rectangle" and p.get_facecolor()[:3] == pytest.approx(
            (0.839, 0.153, 0.157), abs=1e-2)]
        assert len(bars) == 1 and bars[0].get_y() < -7.5  # at the depth of the head (the 9th row)
    fig.savefig(tmp_path / "pair.png")
    assert png_is_not_blank(tmp_path / "pair.png")
    # the same scale in both columns, whatever their depths
    fig = plot_diagrams_side_by_side({"s6": diagram_boxes(get_model("s6")), "s6-two-3x3": get_model("s6-two-3x3")})
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    plt.close("all")


def test_boxes_are_frozen_data():
    box = diagram_boxes(get_model("s6"))[0]
    assert isinstance(box, DiagramBox) and box.is_block
    with pytest.raises(AttributeError):
        box.params = 0  # type: ignore[misc]
