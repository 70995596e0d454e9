"""A course notebook's recipe in s6lab: a plain nn.Module, torch's SGD without Nesterov, a torch
scheduler and torchvision augmentation, trained by fit; resume ends where an uninterrupted run does.
Synthetic tensors (128 images), so the numbers are about mechanics, not accuracy."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from s6lab.data import MNISTTensors, TensorSplit
from s6lab.errors import ConfigError
from s6lab.torch_parts import TorchAugmentation, TorchSchedule, check_augmentation, parse_calls
from s6lab.train import TrainConfig, fit, make_optimizer


def synthetic(n: int = 128) -> MNISTTensors:
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return MNISTTensors(split, split)


def notebook_net() -> nn.Module:
    """The kind of model a course notebook defines: plain torch, log-softmax at the end."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1),
                         nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
                         nn.LogSoftmax(dim=1))


COURSE = dict(epochs=4, batch_size=32, lr=0.05, nesterov=False, device="cpu", precision="fp32",
              scheduler="StepLR(step_size=1, gamma=0.5)", augmentation="RandomRotation(7, fill=0)")


def test_a_course_recipe_trains_with_torchs_own_classes():
    history = fit(notebook_net(), synthetic(), TrainConfig(**COURSE), progress=False)
    assert [e.lr for e in history.epochs] == pytest.approx([0.05, 0.025, 0.0125, 0.00625])  # StepLR, per epoch


def test_sgd_with_or_without_nesterov():
    net = notebook_net()
    assert make_optimizer(net, TrainConfig()).defaults["nesterov"] is True  # today's default recipe
    assert make_optimizer(net, TrainConfig(nesterov=False)).defaults["nesterov"] is False
    assert make_optimizer(net, TrainConfig(momentum=0.0)).defaults["nesterov"] is False  # torch needs momentum


def test_onecycle_with_the_notebooks_own_shape_takes_its_steps_from_the_data():
    config = TrainConfig(**{**COURSE, "scheduler": "OneCycleLR(max_lr=0.1, pct_start=0.25, div_factor=10, "
                                                    "final_div_factor=100)"})
    history = fit(notebook_net(), synthetic(), config, progress=False)
    # the last step of the last epoch runs at torch's end of the cycle: max_lr / div_factor / final_div_factor
    assert history.epochs[-1].lr == pytest.approx(0.1 / 10 / 100, rel=0.05)
    assert max(e.lr for e in history.epochs) <= 0.1


def test_reduce_on_plateau_steps_on_the_test_loss():
    config = TrainConfig(**{**COURSE, "lr": 0.01, "scheduler": "ReduceLROnPlateau(patience=0, factor=0.1, "
                                                               "threshold=0.5)"})
    history = fit(notebook_net(), synthetic(), config, progress=False)
    # the first epoch sets the best test loss; no later one beats it by half, so each cuts the rate tenfold
    assert [e.lr for e in history.epochs] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_resume_with_a_torch_scheduler_and_augmentation_ends_where_an_uninterrupted_run_does(tmp_path):
    config = TrainConfig(**COURSE)
    full_net = notebook_net()
    full = fit(full_net, synthetic(), config, progress=False)

    class Stop(Exception):
        pass

    def stop_after_two(history, model):
        if len(history) == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(notebook_net(), synthetic(), config, checkpoint=tmp_path / "c.pt", progress=False, on_epoch=stop_after_two)
    resumed_net = notebook_net()
    resumed = fit(resumed_net, synthetic(), config, checkpoint=tmp_path / "c.pt", resume=True, progress=False)
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in full.epochs]
    assert [e.lr for e in resumed.epochs] == [e.lr for e in full.epochs]
    for a, b in zip(resumed_net.state_dict().values(), full_net.state_dict().values()):
        assert torch.equal(a, b)


def test_pad_and_crop_keeps_the_size_and_fills_with_background():
    augment = TorchAugmentation("Pad(4), RandomCrop(28)")
    mean, std = 0.1307, 0.3081
    background = torch.full((16, 1, 28, 28), -mean / std)  # a black image, normalised
    torch.manual_seed(0)
    assert torch.allclose(augment(background, mean, std), background, atol=1e-6)


def test_a_transform_that_changes_the_size_is_refused_when_it_is_made():
    with pytest.raises(ConfigError, match=r"turns a 28x28 digit into \(1, 32, 32\); end with a crop"):
        TorchAugmentation("Pad(2)")
    with pytest.raises(ConfigError, match=r"fails on a 28x28 digit \(Required crop size \(999, 999\)"):
        TorchAugmentation("RandomCrop(999)")


@pytest.mark.parametrize("field, text, message", [
    ("scheduler", "LambdaLR(lambda e: 0.9)", "not Python call syntax|must be literals|not one s6lab can build"),
    ("scheduler", "StepLR", "is not a class call"),
    ("scheduler", "NoSuchLR(3)", "not one s6lab can build from text"),
    ("scheduler", "StepLR(step_size=__import__('os'))", "must be literals"),
    ("scheduler", "StepLR(1), StepLR(2)", "names 2 classes; give one"),
    ("augmentation", "RandomRotate(7)", "not a torchvision.transforms.v2 transform"),
    ("augmentation", "RandomRotation(7", "not Python call syntax"),
])
def test_bad_torch_classes_are_named_with_the_fix(field, text, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: text})


def test_torch_refusing_the_arguments_is_named():
    with pytest.raises(ConfigError, match="torch's StepLR refused its arguments"):
        fit(notebook_net(), synthetic(), TrainConfig(**{**COURSE, "scheduler": "StepLR(gamma=0.5)"}),
            progress=False)
    with pytest.raises(ConfigError, match="torchvision refused its arguments"):
        TorchAugmentation("RandomRotation(colour=3)")


def test_parse_calls_reads_tuples_and_keywords():
    assert parse_calls("RandomAffine(degrees=0, translate=(0.1, 0.1))", "augmentation") == [
        ("RandomAffine", (), {"degrees": 0, "translate": (0.1, 0.1)})]


def test_a_transform_that_resizes_only_sometimes_is_refused_every_time():
    """RandomZoomOut changes the size with probability 0.5: the check's seeded trials catch it whatever the
    training's RNG holds, and leave that RNG where it was."""
    for seed in range(5):
        torch.manual_seed(seed)
        before = torch.random.get_rng_state()
        with pytest.raises(ConfigError, match="turns a 28x28 digit into"):
            check_augmentation("RandomZoomOut()")
        assert torch.equal(torch.random.get_rng_state(), before)


def test_the_size_is_checked_again_on_every_batch(monkeypatch):
    """The last guard: a transform that passed the check but resizes a real batch is refused there too."""
    augment = TorchAugmentation("RandomRotation(5)")
    monkeypatch.setattr(augment, "transform", lambda image: image[:, :14, :14])
    with pytest.raises(ConfigError, match="changed the image size.*end with a crop"):
        augment(torch.zeros(2, 1, 28, 28), 0.1307, 0.3081)


@pytest.mark.parametrize("text, message", [
    ("StepLR(step_size=0)", r"fails after epoch 1 of a 3-epoch run \(ZeroDivisionError"),
    ("CosineAnnealingLR(T_max=0)", r"fails after epoch 1 of a 3-epoch run \(ZeroDivisionError"),
    ("StepLR(step_size='a')", r"fails after epoch 1 of a 3-epoch run \(TypeError"),
    ("StepLR(step_size=1, gamma=-5)", "sets the learning rate to -0.5 after epoch 1"),
    ("CyclicLR(max_lr=-1.0, step_size_up=1)", "sets the learning rate to -1 at step 1 of epoch 1"),
])
def test_a_scheduler_that_would_fail_mid_run_is_refused_before_training(text, message):
    """These passed torch's constructor and crashed (or ran with a negative learning rate) after an epoch of
    training; stepped through the whole run on a stand-in optimizer first, they are refused at once."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=message):
        TorchSchedule(text, optimizer, lr=0.1, epochs=3, steps_per_epoch=4)
    assert optimizer.param_groups[0]["lr"] == 0.1  # the real optimizer was not touched


@pytest.mark.parametrize("text", ["StepLR(step_size=1)", "OneCycleLR()", "ReduceLROnPlateau()", "CyclicLR()",
                                  "ExponentialLR(gamma=0.9)"])
def test_the_usual_schedulers_pass_the_rehearsal(text):
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    TorchSchedule(text, optimizer, lr=0.1, epochs=3, steps_per_epoch=4)
