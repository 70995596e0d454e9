from __future__ import annotations

import pytest
import torch

from s6lab.models import S6
from s6lab.specs import (
    ConvBNSpec,
    GAPHeadSpec,
    LinearHeadSpec,
    NetSpec,
    PoolDropSpec,
    Transition1x1Spec,
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
    spec = NetSpec("bad", (ConvBNSpec(16), ConvBNSpec(32, in_channels=8), LinearHeadSpec()))
    with pytest.raises(ValueError, match=r"layer 2 \(conv2.*in_channels=8.*gives 16"):
        build(spec)


def test_spatial_collapse_names_the_layer():
    spec = NetSpec("shrinks", (ConvBNSpec(8, 5), PoolDropSpec(), ConvBNSpec(8, 5), PoolDropSpec(), ConvBNSpec(8, 5),
                               LinearHeadSpec()))
    with pytest.raises(ValueError, match=r"layer 5 \(conv3.*spatial size drops to 0x0"):
        build(spec)


def test_pool_collapse_is_caught():
    spec = NetSpec("pools", (PoolDropSpec(),) * 5 + (LinearHeadSpec(),))
    with pytest.raises(ValueError, match=r"layer 5 \(pool5"):
        build(spec)


@pytest.mark.parametrize("layers, match", [
    ((), "no layers"),
    ((ConvBNSpec(8),), "last layer must be a head"),
    ((ConvBNSpec(8), LinearHeadSpec(), GAPHeadSpec()), "head must be the last"),
    ((ConvBNSpec(8, dropout=2.0), LinearHeadSpec()), r"layer 1 \(conv1.*dropout"),
    ((Transition1x1Spec(0), LinearHeadSpec()), r"layer 1 \(trans1.*out_channels"),
])
def test_invalid_specs(layers, match):
    with pytest.raises(ValueError, match=match):
        build(NetSpec("x", layers))


def test_gap_head_and_padding():
    net = build(NetSpec("gap", (ConvBNSpec(8, padding=1), PoolDropSpec(), ConvBNSpec(16, padding=1), GAPHeadSpec())))
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
    ({"num_classes": 0}, "num_classes must be a whole number from 1 to 100,000, got 0"),
    ({"num_classes": 10**9}, "num_classes must be a whole number from 1 to 100,000"),
    ({"image_size": 100_000}, "image_size must be a whole number from 1 to 1,024, got 100000"),  # asked for 400 GB
    ({"in_channels": 65}, "in_channels must be a whole number from 1 to 64"),
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


def test_each_spec_is_named_after_the_block_it_builds():
    for spec_class, block in ((ConvBNSpec, "ConvBN"), (Transition1x1Spec, "Transition1x1"), (PoolDropSpec, "PoolDrop"),
                              (LinearHeadSpec, "LinearHead"), (GAPHeadSpec, "GAPHead")):
        assert spec_class.__name__ == block + "Spec"
    net = build(NetSpec("named", (ConvBNSpec(8), Transition1x1Spec(4), PoolDropSpec(), LinearHeadSpec())))
    assert [type(m).__name__ for m in net.children()] == ["ConvBN", "Transition1x1", "PoolDrop", "LinearHead"]


@pytest.mark.parametrize("old, new", [("Conv", ConvBNSpec), ("Transition", Transition1x1Spec),
                                      ("Pool", PoolDropSpec), ("Linear", LinearHeadSpec), ("GAP", GAPHeadSpec)])
def test_old_spec_names_still_import_with_a_deprecation_warning(old, new):
    import s6lab
    import s6lab.specs

    for module in (s6lab, s6lab.specs):
        with pytest.warns(DeprecationWarning, match=f"{old} is now {new.__name__}"):
            assert getattr(module, old) is new
    with pytest.raises(AttributeError):
        s6lab.specs.NoSuchSpec  # noqa: B018


def test_a_config_written_with_the_old_names_still_loads():
    old = spec_to_dict(S6)
    for layer in old["layers"]:
        layer["type"] = {"ConvBNSpec": "Conv", "Transition1x1Spec": "Transition", "PoolDropSpec": "Pool",
                         "LinearHeadSpec": "Linear"}[layer["type"]]
    assert spec_from_dict(old) == S6
    assert {layer["type"] for layer in spec_to_dict(S6)["layers"]} == {"ConvBNSpec", "Transition1x1Spec",
                                                                       "PoolDropSpec", "LinearHeadSpec"}


def test_the_deprecation_warning_points_at_the_callers_line():
    import s6lab

    with pytest.warns(DeprecationWarning) as caught:
        s6lab.Pool  # noqa: B018
    assert caught[0].filename == __file__
