from __future__ import annotations

import pytest
import torch

from s6lab.models import S6
from s6lab.specs import (
    GAP,
    Conv,
    Linear,
    NetSpec,
    Pool,
    Transition,
    apply_overrides,
    build,
    spec_from_dict,
    spec_to_dict,
)


def test_build_names_children_by_kind():
    net = build(S6)
    assert [n for n, _ in net.named_children()] == [
        "conv1", "conv2", "pool1", "trans1", "conv3", "pool2", "trans2", "head"]
    assert net.spec is S6


def test_channel_mismatch_names_the_layer():
    spec = NetSpec("bad", (Conv(16), Conv(32, in_channels=8), Linear()))
    with pytest.raises(ValueError, match=r"layer 2 \(conv2.*in_channels=8.*gives 16"):
        build(spec)


def test_spatial_collapse_names_the_layer():
    spec = NetSpec("shrinks", (Conv(8, 5), Pool(), Conv(8, 5), Pool(), Conv(8, 5), Linear()))
    with pytest.raises(ValueError, match=r"layer 5 \(conv3.*spatial size drops to 0x0"):
        build(spec)


def test_pool_collapse_is_caught():
    spec = NetSpec("pools", (Pool(),) * 5 + (Linear(),))
    with pytest.raises(ValueError, match=r"layer 5 \(pool5"):
        build(spec)


@pytest.mark.parametrize("layers, match", [
    ((), "no layers"),
    ((Conv(8),), "last layer must be a head"),
    ((Conv(8), Linear(), GAP()), "head must be the last"),
    ((Conv(8, dropout=2.0), Linear()), r"layer 1 \(conv1.*dropout"),
    ((Transition(0), Linear()), r"layer 1 \(trans1.*out_channels"),
])
def test_invalid_specs(layers, match):
    with pytest.raises(ValueError, match=match):
        build(NetSpec("x", layers))


def test_gap_head_and_padding():
    net = build(NetSpec("gap", (Conv(8, padding=1), Pool(), Conv(16, padding=1), GAP())))
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_overrides():
    spec = apply_overrides(S6, dropout=0.05, batchnorm=False)
    assert [getattr(layer, "dropout", 0) for layer in spec.layers].count(0.05) == 2
    assert not spec.batchnorm
    assert S6.batchnorm  # the registered spec is untouched


@pytest.mark.parametrize("overrides, match", [
    ({"dropuot": 0.1}, "unknown override.*dropuot.*valid overrides: dropout"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"dropout": "a"}, "dropout must be"),
    ({"batchnorm": 1}, "batchnorm must be True or False"),
    ({"num_classes": 0}, "num_classes must be a positive integer"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(S6, **overrides)


def test_spec_dict_round_trip():
    assert spec_from_dict(spec_to_dict(S6)) == S6


def test_spec_from_dict_rejects_unknown_layer():
    d = spec_to_dict(S6)
    d["layers"][0]["type"] = "Attention"
    with pytest.raises(ValueError, match="unknown layer type 'Attention'"):
        spec_from_dict(d)
