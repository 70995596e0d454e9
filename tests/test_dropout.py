"""The fast CPU dropout: same random variable as nn.Dropout, seeded, gradients through the mask."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from s6lab.blocks import PoolDrop
from s6lab.dropout import Dropout, fast_dropout, fast_dropout_enabled, fast_path_applies


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("p", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_drop_rate_and_scale_match_nn_dropout(dtype, p):
    torch.manual_seed(0)
    n = 400_000
    y = fast_dropout(torch.ones(n, dtype=dtype), p)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 sigma
    kept = y[y != 0].unique()
    reference = torch.nn.functional.dropout(torch.ones(1000, dtype=dtype), p, training=True)
    assert kept.tolist() == reference[reference != 0].unique().tolist()  # same rounded 1/(1-p)


@pytest.mark.parametrize("lane", range(4))
def test_every_lane_of_a_draw_is_uniform(lane):
    # four bf16 elements share one 64-bit draw; the top lane loses the sign bit: it must not bias it
    torch.manual_seed(1)
    y = fast_dropout(torch.ones(4 * 200_000, dtype=torch.bfloat16), 0.5).view(-1, 4)[:, lane]
    assert abs((y == 0).double().mean().item() - 0.5) < 5 * math.sqrt(0.25 / y.numel())


def test_elements_are_independent():
    torch.manual_seed(2)
    y = fast_dropout(torch.ones(800_000, dtype=torch.bfloat16), 0.3) == 0
    both = (y[:-1] & y[1:]).double().mean().item()  # neighbours (same draw and across draws)
    assert abs(both - 0.09) < 0.003


def test_seeded_and_layout_preserving():
    x = torch.randn(8, 32, 12, 12).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    a = fast_dropout(x, 0.1)
    torch.manual_seed(3)
    b = fast_dropout(x, 0.1)
    assert torch.equal(a, b)
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a != 0, x != 0) is False  # something was dropped
    kept = a != 0
    assert torch.allclose(a[kept].float(), (x[kept] * torch.tensor(1 / 0.9, dtype=x.dtype)).float())


def test_gradient_is_the_same_mask():
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    torch.manual_seed(4)
    y = fast_dropout(x, 0.2)
    y.sum().backward()
    expected = torch.where(y != 0, torch.tensor(1 / 0.8), torch.tensor(0.0))
    assert torch.allclose(x.grad, expected)


def test_edge_probabilities():
    x = torch.randn(100)
    assert torch.equal(fast_dropout(x, 0.0), x)
    assert torch.count_nonzero(fast_dropout(x, 1.0)) == 0
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\], got 1.5"):
        fast_dropout(x, 1.5)


def test_fallbacks_use_functional_dropout():
    assert not fast_path_applies(torch.ones(4, dtype=torch.float64))
    assert not fast_path_applies(torch.ones(4, 4)[:, ::2])  # strided: not dense
    assert not fast_path_applies(torch.ones(0))
    torch.manual_seed(5)
    y = fast_dropout(torch.ones(10_000, dtype=torch.float64), 0.5)
    assert y.dtype == torch.float64 and 0.45 < (y == 0).double().mean().item() < 0.55


def test_module_is_a_drop_in_nn_dropout():
    m = Dropout(0.1)
    assert isinstance(m, nn.Dropout) and repr(m) == repr(nn.Dropout(0.1)) and m.state_dict() == {}
    x = torch.randn(16, 8, 4, 4)
    assert torch.equal(m.eval()(x), x)
    assert isinstance(PoolDrop(8, dropout=0.1).drop, Dropout)


def test_switch_selects_the_path():
    m = Dropout(0.5).train()
    x = torch.ones(1000)
    torch.manual_seed(6)
    fast = m(x)
    with fast_dropout_enabled(False):
        torch.manual_seed(6)
        slow = m(x)
        torch.manual_seed(6)
        reference = torch.nn.functional.dropout(x, 0.5, training=True)
    assert torch.equal(slow, reference) and not torch.equal(fast, slow)
    torch.manual_seed(6)
    assert torch.equal(m(x), fast)  # restored after the block
