"""Layer 1's BatchNorm from patch statistics: the same outputs, gradients and running statistics as
Conv2d -> BatchNorm2d in training mode (checked in float64), wired into fit, refused for nets it cannot fold
when asked for, and chosen by the auto default only where it changes nothing a learner can see."""

from __future__ import annotations

import copy

import pytest
import torch

from s6lab import TrainConfig, fit, get_model
from s6lab.blocks import ConvBN
from s6lab.errors import ConfigError
from s6lab.patch_batchnorm import (
    choose_patch_statistics,
    first_batchnorm_from_patches,
    first_conv_bn,
    patch_rows,
    watched,
)


def net(block: torch.nn.Module) -> torch.nn.Sequential:
    return torch.nn.Sequential(block, torch.nn.Flatten())


@pytest.mark.parametrize("in_channels, kernel_size, padding, stride, dilation, bias", [
    (1, 3, 0, 1, 1, True),  # the reference net's conv1
    (1, 3, 1, 1, 1, True),
    (1, 3, 0, 2, 1, False),
    (2, 3, 1, 1, 2, True),
    (1, 5, 2, 2, 1, True),
])
def test_same_math_as_conv_then_batchnorm(in_channels, kernel_size, padding, stride, dilation, bias):
    torch.manual_seed(0)
    stock = net(ConvBN(in_channels, 6, kernel_size, padding=padding, stride=stride, dilation=dilation,
                       bias=bias)).double().train()
    with torch.no_grad():  # not BatchNorm's fresh 1 and 0, so that the scale and shift matter
        stock[0].bn.weight.uniform_(0.5, 1.5)
        stock[0].bn.bias.uniform_(-0.5, 0.5)
    folded = copy.deepcopy(stock)
    x = torch.randn(5, in_channels, 13, 12, dtype=torch.float64) * 2 + 0.3

    expected = stock(x)
    upstream = torch.randn_like(expected)  # some gradient from the layers above
    (expected * upstream).sum().backward()
    with first_batchnorm_from_patches(folded):
        got = folded(x)
        (got * upstream).sum().backward()

    torch.testing.assert_close(got, expected)
    for (name, a), (_, b) in zip(stock.named_parameters(), folded.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=f"gradient of {name}")
    for (name, a), (_, b) in zip(stock.named_buffers(), folded.named_buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=f"buffer {name}")
    assert int(folded[0].bn.num_batches_tracked) == 1


def test_the_whole_reference_net_trains_the_same_in_float64():
    """Outputs, every gradient and the running statistics of the s6 net, dropout masks alike."""
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8 + 0.1
    results = []
    for folded in (False, True):
        torch.manual_seed(0)
        model = get_model("s6").double()
        torch.manual_seed(1)  # the same dropout masks
        with first_batchnorm_from_patches(model, folded):
            out = model(x)
            out.sum().backward()
        results.append((model, out))
    (stock, expected), (ours, got) = results
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    for (name, a), (_, b) in zip(stock.named_parameters(), ours.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=1e-10 * max(1.0, a.grad.abs().max().item()),
                                   msg=f"gradient of {name}")
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours.conv1.bn, name), getattr(stock.conv1.bn, name), rtol=0, atol=1e-12)


def test_bf16_autocast_stays_close_to_the_stock_block():
    torch.manual_seed(0)
    stock = get_model("s6").train()
    folded = copy.deepcopy(stock)
    x = torch.randn(16, 1, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(1)
        expected = stock[0](x)
        with first_batchnorm_from_patches(folded):
            got = folded[0](x)
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0.02)


def test_evaluation_is_the_stock_forward_and_the_context_leaves_nothing_behind():
    model = get_model("s6").eval()
    x = torch.randn(4, 1, 28, 28)
    expected = model(x)
    with first_batchnorm_from_patches(model):
        assert "forward" in vars(model[0])
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert "forward" not in vars(model[0])
    with pytest.raises(RuntimeError, match="inside"), first_batchnorm_from_patches(model):
        raise RuntimeError("inside")
    assert "forward" not in vars(model[0])  # restored on an error too


def test_patch_rows_are_the_columns_the_conv_multiplies():
    conv = torch.nn.Conv2d(2, 4, 3, padding=1, stride=2, dilation=2, bias=False).double()
    x = torch.randn(3, 2, 11, 10, dtype=torch.float64)
    rows = patch_rows(x, conv)  # (C*k*k, N*H'*W')
    out = conv(x)  # (N, out, H', W')
    by_matmul = (conv.weight.reshape(4, -1) @ rows).reshape(4, 3, *out.shape[-2:]).transpose(0, 1)
    torch.testing.assert_close(by_matmul, out)


def test_nets_it_cannot_fold_are_refused_with_the_way_out():
    no_bn = get_model("s6-no-bn")
    assert first_conv_bn(no_bn) is None
    with pytest.raises(ConfigError, match=r"needs a net whose first block is a ConvBN.*--no-first-bn-from-patches"):
        with first_batchnorm_from_patches(no_bn):
            pass
    with first_batchnorm_from_patches(no_bn, enabled=False):  # off: nothing to check, nothing patched
        assert "forward" not in vars(no_bn[0])
    cumulative = get_model("s6")
    cumulative[0].bn.momentum = None  # a cumulative average: not BatchNorm's update this module copies
    assert first_conv_bn(cumulative) is None
    pool_first = torch.nn.Sequential(torch.nn.MaxPool2d(2), ConvBN(1, 4))
    assert first_conv_bn(pool_first) is None


def test_fit_refuses_before_training(mnist_small, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(ConfigError, match="TrainConfig.first_bn_from_patches=True needs"):
        fit(get_model("s6-no-bn"), mnist_small, TrainConfig(epochs=1, first_bn_from_patches=True),
            checkpoint=ckpt, progress=False)
    assert not ckpt.exists()


def test_auto_is_on_for_a_cpu_and_a_net_that_folds_and_off_elsewhere_without_refusing():
    s6, no_bn = get_model("s6"), get_model("s6-no-bn")
    auto = choose_patch_statistics(None, s6, "cpu")
    assert auto.on and "layer 1's BatchNorm from patch statistics (auto" in auto.describe()
    assert not choose_patch_statistics(None, s6, "cuda").on  # measured on CPUs only
    off = choose_patch_statistics(None, no_bn, "cpu")  # a variant it cannot fold: quietly the stock path
    assert not off.on and off.describe() == "" and "does not fold" in off.why
    assert not choose_patch_statistics(False, s6, "cpu").on
    forced = choose_patch_statistics(True, s6, "cuda")
    assert forced.on and forced.why == "asked for"
    handle = s6[0].bn.register_forward_hook(lambda module, args, out: None)
    assert not choose_patch_statistics(None, s6, "cpu").on  # a watched net keeps the stock block under auto
    assert choose_patch_statistics(True, s6, "cpu").on  # unless asked for
    handle.remove()
    with pytest.raises(ConfigError, match="=True needs a net whose first block is a ConvBN"):
        choose_patch_statistics(True, no_bn, "cpu")


@pytest.mark.parametrize("bad", [1, 0, "auto", "on"])
def test_the_setting_is_none_true_or_false(bad):
    with pytest.raises(ConfigError, match=r"first_bn_from_patches must be True or False, or None for auto \(null"):
        TrainConfig(first_bn_from_patches=bad)


def test_a_hook_on_layer_1_is_watching():
    model = get_model("s6")
    assert not watched(model)
    for part in (model[0].conv, model[0].bn):
        handle = part.register_forward_pre_hook(lambda module, args: None)
        assert watched(model)
        handle.remove()
    handle = model[0].bn.register_full_backward_hook(lambda module, grad_in, grad_out: None)
    assert watched(model)
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        assert watched(model)  # a global hook sees every module
    finally:
        handle.remove()
    assert not watched(model) and not watched(get_model("s6-no-bn"))
    model[0].relu.register_forward_hook(lambda module, args, out: None)  # relu still runs: no need to step aside
    assert not watched(model)


def test_the_default_folds_in_training_and_leaves_a_watched_net_alone(mnist_small):
    """TrainConfig's default (None): layer 1's block trains through the patch statistics (seen from a hook on
    the block, which still fires), unless a hook watches its bn when training starts: then the stock block,
    and the hook fires in every training step."""
    data = type(mnist_small)(mnist_small.train.subset(256), mnist_small.test.subset(100))
    config = TrainConfig(epochs=1, batch_size=128, precision="fp32")
    model = get_model("s6")
    folded = []
    model[0].register_forward_hook(lambda block, args, out: folded.append(block.training and "forward" in vars(block)))
    fit(model, data, config, progress=False)
    assert folded.count(True) == 2  # both training steps
    watched_model = get_model("s6")
    calls = []
    watched_model[0].bn.register_forward_hook(lambda module, args, out: calls.append(module.training))
    fit(watched_model, data, config, progress=False)
    assert calls.count(True) == 2


def test_a_wrapper_such_as_distributed_data_parallel_folds_the_net_it_runs():
    class Wrapper(torch.nn.Module):  # DistributedDataParallel's shape: the net as .module, its only child
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    wrapped = Wrapper(get_model("s6")).train()
    assert first_conv_bn(wrapped) is wrapped.module[0] and choose_patch_statistics(None, wrapped, "cpu").on
    with first_batchnorm_from_patches(wrapped):
        assert "forward" in vars(wrapped.module[0])
        assert wrapped(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert "forward" not in vars(wrapped.module[0])


def test_fit_trains_through_it_and_lands_where_the_stock_block_does(mnist_small):
    """Real MNIST, 512 training images, one epoch in fp32: layer 1's bn is skipped while training, and the
    result matches the stock training up to rounding (different rounding: the weights differ by ~5e-5 after
    one step, the loss by ~0.15% after four; in float64 the two are the same, test above)."""
    data = type(mnist_small)(mnist_small.train.subset(512), mnist_small.test.subset(200))
    runs = {}
    for folded in (False, True):
        torch.manual_seed(0)
        model = get_model("s6")
        calls = []
        model[0].bn.register_forward_hook(lambda module, args, out, calls=calls: calls.append(module.training))
        config = TrainConfig(epochs=1, batch_size=128, precision="fp32", first_bn_from_patches=folded)
        history = fit(model, data, config, progress=False)
        runs[folded] = (history.epochs[-1], model, calls)
    (stock, stock_model, stock_calls), (ours, ours_model, our_calls) = runs[False], runs[True]
    assert stock_calls.count(True) == 4 and our_calls.count(True) == 0  # 4 steps: bn ran, or was folded
    assert our_calls.count(False) > 0  # evaluation runs the stock block
    assert ours.train_loss == pytest.approx(stock.train_loss, rel=5e-3)
    torch.testing.assert_close(ours_model[0].bn.running_var, stock_model[0].bn.running_var, rtol=1e-2, atol=1e-3)
    assert abs(ours.test_acc - stock.test_acc) <= 1.0


def test_why_the_statistics_are_float64(mnist_small):
    """Real MNIST, 256 digits, the s6 net's conv1 at its seed-0 init. MNIST's neighbouring pixels are nearly
    equal, so the 9x9 patch covariance is nearly singular, and w^T cov w for a filter with mixed signs
    cancels: from fp32 statistics the worst channel's variance is off by ~5e-4 of its value with MKL's
    AVX-512 matmul and ~6e-6 with its AVX2 one (BatchNorm's own fp32 pass over the output: ~6e-8 and
    ~8e-8). From float64 statistics it is exact to ~1e-13, and the folded net's layer-1 weight gradient
    in fp32 lands closer to a float64 reference than the stock fp32 path's (~1.4e-5 against ~6.2e-4
    relative, measured on an Intel Xeon with AVX-512)."""
    import torch.nn.functional as F

    x, y = mnist_small.train.images[:256].float(), mnist_small.train.labels[:256]
    torch.manual_seed(0)
    model = get_model("s6")
    conv = model.conv1.conv
    exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double()).var(dim=(0, 2, 3), unbiased=False)

    def variance_from_patches(dtype):
        patches = patch_rows(x.to(dtype), conv)  # (9, n)
        mean = patches.mean(1)
        cov = patches @ patches.T / patches.shape[1] - torch.outer(mean, mean)
        weight = conv.weight.detach().to(dtype).reshape(conv.out_channels, -1)
        return ((weight @ cov) * weight).sum(1).double()

    def worst(var):
        return ((var - exact).abs() / exact).max().item()

    stock_pass = F.conv2d(x, conv.weight, conv.bias).var(dim=(0, 2, 3), unbiased=False).double()
    assert worst(variance_from_patches(torch.float64)) < 1e-10
    assert worst(stock_pass) < 1e-6 and worst(variance_from_patches(torch.float32)) > 20 * worst(stock_pass)

    def layer1_gradient(folded, dtype):
        net = copy.deepcopy(model).to(dtype).train()
        for module in net.modules():  # no dropout: the same function in every run
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        with first_batchnorm_from_patches(net, folded):
            F.nll_loss(net(x.to(dtype)), y).backward()
        return net.conv1.conv.weight.grad.double()

    reference = layer1_gradient(False, torch.float64)
    stock, folded = (((layer1_gradient(f, torch.float32) - reference).norm() / reference.norm()).item()
                     for f in (False, True))
    assert folded < stock
