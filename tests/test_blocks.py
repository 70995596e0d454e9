from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from s6lab.blocks import ConvBN, GAPHead, LinearHead, PoolDrop, Transition1x1


def test_convbn_children_and_shape():
    block = ConvBN(1, 32, 3)
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "relu"]
    assert (block.in_channels, block.out_channels) == (1, 32)
    assert block(torch.zeros(2, 1, 28, 28)).shape == (2, 32, 26, 26)
    assert block.conv.bias is None  # no bias before BatchNorm by default


def test_convbn_without_batchnorm_has_bias_and_dropout_child():
    block = ConvBN(8, 16, 3, padding=1, batchnorm=False, dropout=0.1)
    assert [n for n, _ in block.named_children()] == ["conv", "relu", "drop"]
    assert block.conv.bias is not None
    assert block(torch.zeros(1, 8, 10, 10)).shape == (1, 16, 10, 10)


def test_relu_is_one_non_inplace_module_per_use():
    a, b = ConvBN(1, 4), ConvBN(4, 4)
    assert a.relu is not b.relu
    assert not a.relu.inplace


def test_transition_is_1x1_and_keeps_size():
    t = Transition1x1(32, 8)
    assert t.conv.kernel_size == (1, 1)
    assert t(torch.zeros(1, 32, 12, 12)).shape == (1, 8, 12, 12)


def test_pooldrop():
    p = PoolDrop(32, dropout=0.1)
    assert [n for n, _ in p.named_children()] == ["pool", "drop"]
    assert p(torch.zeros(1, 32, 24, 24)).shape == (1, 32, 12, 12)
    assert [n for n, _ in PoolDrop(32).named_children()] == ["pool"]


def test_heads_output_log_probabilities():
    x = torch.randn(3, 16, 4, 4)
    for head in (LinearHead(256), GAPHead(16)):
        out = head(x)
        assert out.shape == (3, 10)
        assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)


def test_blocks_compose_in_sequential():
    net = nn.Sequential(ConvBN(1, 8), PoolDrop(8), Transition1x1(8, 4), LinearHead(4 * 13 * 13))
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("kwargs, name", [
    (dict(in_channels=0, out_channels=8), "in_channels"),
    (dict(in_channels=1, out_channels=-1), "out_channels"),
    (dict(in_channels=1, out_channels=8, kernel_size=0), "kernel_size"),
    (dict(in_channels=1, out_channels=8, kernel_size=2.5), "kernel_size"),
    (dict(in_channels=1, out_channels=8, dropout=1.0), "dropout"),
    (dict(in_channels=1, out_channels=8, dropout=-0.1), "dropout"),
    (dict(in_channels=1, out_channels=8, padding=-1), "padding"),
    (dict(in_channels=1, out_channels=8, stride=0), "stride"),
    (dict(in_channels=1, out_channels=8, dilation=0), "dilation"),
    (dict(in_channels=True, out_channels=8), "in_channels"),
])
def test_convbn_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConvBN(**kwargs)


@pytest.mark.parametrize("factory, name", [
    (lambda: PoolDrop(0), "channels"),
    (lambda: PoolDrop(8, kernel_size=0), "kernel_size"),
    (lambda: PoolDrop(8, dropout=1.5), "dropout"),
    (lambda: Transition1x1(0, 8), "in_channels"),
    (lambda: LinearHead(0), "in_features"),
    (lambda: GAPHead(8, num_classes=0), "num_classes"),
])
def test_other_blocks_reject_bad_arguments(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()
