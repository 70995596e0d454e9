"""The ReLU behind its max-pool while training: the same bits, the net put back as built."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from s6lab import get_model
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.relu_after_pool import relu_after_pool
from s6lab.train import TrainConfig, fit


def outputs_and_gradients(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(1)  # the same dropout masks
    out = model(x)
    out.sum().backward()
    return out, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_reference_net_gives_the_same_bits_forward_and_backward(dtype):
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    built = get_model("s6").to(dtype)
    moved = get_model("s6").to(dtype)
    moved.load_state_dict(built.state_dict())
    out_a, grads_a = outputs_and_gradients(built, x.to(dtype))
    with relu_after_pool(moved) as count:
        assert count == 2  # conv2's ReLU (24x24) and conv3's (8x8)
        assert isinstance(moved.conv2.relu, nn.Identity) and isinstance(moved.pool1.pool[1], nn.ReLU)
        out_b, grads_b = outputs_and_gradients(moved, x.to(dtype))
    assert torch.equal(out_a, out_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_fit_trains_the_same_weights_with_and_without_it():
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(256, 1, 28, 28, generator=g), torch.arange(256) % 10)
    weights = []
    for on in (True, False):
        torch.manual_seed(0)
        model = get_model("s6")
        fit(model, MNISTTensors(split, split), TrainConfig(epochs=2, batch_size=64, precision="fp32",
                                                           relu_after_pool=on), progress=False)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_fit_moves_them_by_default_and_puts_them_back(monkeypatch):
    """On by default; inside the training loop the pool holds the ReLU, and after fit the net is as built."""
    import s6lab.train as train

    assert TrainConfig().relu_after_pool is True
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(64, 1, 28, 28, generator=g), torch.arange(64) % 10)
    model = get_model("s6")
    seen = []
    stock = train.F.nll_loss

    def watching(*args, **kwargs):  # once per training step, then once by the evaluation
        seen.append((type(model.conv2.relu).__name__, type(model.pool1.pool).__name__))
        return stock(*args, **kwargs)

    monkeypatch.setattr(train.F, "nll_loss", watching)
    fit(model, MNISTTensors(split, split), TrainConfig(epochs=1, batch_size=32, precision="fp32"), progress=False)
    assert seen == [("Identity", "Sequential")] * 2 + [("ReLU", "MaxPool2d")]  # two steps, then evaluation
    assert type(model.conv2.relu) is nn.ReLU and type(model.pool1.pool) is nn.MaxPool2d
    seen.clear()  # and off: the training steps see the net as built
    fit(model, MNISTTensors(split, split), TrainConfig(epochs=1, batch_size=32, precision="fp32",
                                                       relu_after_pool=False), progress=False)
    assert seen == [("ReLU", "MaxPool2d")] * 3


def test_the_net_is_put_back_as_built_also_after_an_error():
    model = get_model("s6")
    before = str(model)
    relu = model.conv2.relu
    with pytest.raises(RuntimeError, match="stop"):
        with relu_after_pool(model):
            raise RuntimeError("stop")
    assert str(model) == before and model.conv2.relu is relu  # the same module object, back in place


def test_a_hooked_relu_or_pool_stays_where_it_is():
    model = get_model("s6")
    seen = []
    model.conv2.relu.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with relu_after_pool(model) as count:
        assert count == 1  # only conv3's ReLU moved
        model(torch.zeros(2, 1, 28, 28))
    assert seen == [torch.Size([2, 32, 24, 24])]


def test_a_plain_sequential_and_what_does_not_qualify():
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    with relu_after_pool(plain) as count:
        assert count == 1 and isinstance(plain[1], nn.Identity) and isinstance(plain[2][1], nn.ReLU)
    assert isinstance(plain[1], nn.ReLU) and isinstance(plain[2], nn.MaxPool2d)
    # average pooling does not commute with ReLU; a module between them breaks the chain; disabled is a no-op
    for model, enabled in ((nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2)), True),
                           (nn.Sequential(nn.ReLU(), nn.Dropout(0.1), nn.MaxPool2d(2)), True),
                           (get_model("s6"), False)):
        before = str(model)
        with relu_after_pool(model, enabled) as count:
            assert count == 0 and str(model) == before


def test_a_hook_on_the_block_around_the_relu_or_the_pool_keeps_the_pair():
    """conv2's output and pool1's input would change while conv2's ReLU sits behind the pool."""
    for block in ("conv2", "pool1"):
        model = get_model("s6")
        getattr(model, block).register_forward_pre_hook(lambda m, i: None)
        with relu_after_pool(model) as count:
            assert count == 1 and type(model.conv2.relu) is nn.ReLU  # only conv3's ReLU moved


def test_a_global_module_hook_keeps_every_pair():
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        with relu_after_pool(get_model("s6")) as count:
            assert count == 0
    finally:
        handle.remove()


def test_pools_with_indices_subclasses_with_their_own_forward_and_compiled_nets_are_left_alone():
    class Tapped(nn.Sequential):  # its own forward: the ReLU's output is used twice
        def forward(self, x):
            y = self[1](self[0](x))
            return self[2](y) + y.mean()

    indices = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2, return_indices=True))
    tapped = Tapped(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    compiled = torch.compile(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2)))  # not run: no compile
    for model in (indices, tapped, compiled):
        with relu_after_pool(model) as count:
            assert count == 0
