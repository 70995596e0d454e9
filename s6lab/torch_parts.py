"""A recipe written with torch's own classes: a learning-rate scheduler from
``torch.optim.lr_scheduler`` and an augmentation from ``torchvision.transforms.v2``, each named
as you would write it in a notebook, with its arguments.

Course notebooks train with ``OneCycleLR(max_lr=..., pct_start=..., div_factor=...)``,
``StepLR``, ``ReduceLROnPlateau``, and ``RandomRotation`` or ``Pad`` + ``RandomCrop``. A
[`TrainConfig`][s6lab.train.TrainConfig] takes them as text, so a recipe stays data (JSON, a command
line) and means exactly the torch class::

    TrainConfig(scheduler="OneCycleLR(max_lr=0.05, pct_start=0.3, div_factor=10)",
                augmentation="RandomRotation(7), RandomAffine(degrees=0, translate=(0.1, 0.1))")

Only literal arguments are accepted (numbers, strings, tuples, lists, booleans, None): the
text is parsed, never executed.

Examples:
    >>> parse_call("StepLR(step_size=6, gamma=0.1)", "scheduler")
    ('StepLR', (), {'step_size': 6, 'gamma': 0.1})
    >>> [name for name, _, _ in parse_calls("Pad(2), RandomCrop(28)", "augmentation")]
    ['Pad', 'RandomCrop']
"""

from __future__ import annotations

import ast
from typing import Any

import torch

from .errors import ConfigError

#: schedulers that take only the optimizer and numbers (LambdaLR and friends need functions or other schedulers)
SCHEDULERS = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
              "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "ReduceLROnPlateau")
#: schedulers torch steps after every batch; the others step once per epoch
PER_STEP = frozenset({"OneCycleLR", "CyclicLR"})

Call = tuple[str, tuple, dict]


def parse_calls(text: str, what: str) -> list[Call]:
    """``"Pad(2), RandomCrop(28)"`` -> one ``(name, args, kwargs)`` per call, in order.

    Raises:
        ConfigError: not calls with literal arguments; the message shows the form to use.
    """
    example = {"scheduler": "StepLR(step_size=6, gamma=0.1)",
               "augmentation": "RandomRotation(7), RandomAffine(degrees=0, translate=(0.1, 0.1))"}[what]
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ConfigError(f"{what} {text!r} is not Python call syntax ({e.msg}); write it like {example}") from None
    calls = tree.elts if isinstance(tree, ast.Tuple) else [tree]
    parsed = []
    for call in calls:
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            raise ConfigError(f"{what} {text!r}: {ast.unparse(call)!r} is not a class call; write it like {example}")
        try:
            args = tuple(ast.literal_eval(a) for a in call.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
        except ValueError:
            raise ConfigError(f"{what} {text!r}: the arguments of {call.func.id} must be literals (numbers, strings, "
                              f"tuples), not expressions; write it like {example}") from None
        parsed.append((call.func.id, args, kwargs))
    if not parsed:
        raise ConfigError(f"{what} {text!r} is empty; write it like {example}")
    return parsed


def parse_call(text: str, what: str) -> Call:
    """One call: see `parse_calls`."""
    calls = parse_calls(text, what)
    if len(calls) != 1:
        raise ConfigError(f"{what} {text!r} names {len(calls)} classes; give one")
    return calls[0]


def check_scheduler(text: str) -> str:
    """The scheduler's class name, after checking that torch has it (for ``TrainConfig``)."""
    name, _, _ = parse_call(text, "scheduler")
    if name not in SCHEDULERS:
        raise ConfigError(f"scheduler {name!r} is not one s6lab can build from text; use one of "
                          f"{', '.join(SCHEDULERS)} (torch.optim.lr_scheduler)")
    return name


#: the largest number a float32 holds: a learning rate or decay above it cannot reach the optimizer's tensors
FLOAT32_MAX = 3.4028234663852886e38

#: how many times `check_augmentation` tries the transforms on a blank digit: a transform applied with some
#: probability (``RandomZoomOut(p=0.5)``) shows a wrong size only on some draws; 32 draws miss a p=0.5 one
#: with a chance of 2**-32
TRIALS = 32


def check_augmentation(text: str) -> list[str]:
    """The transforms' class names, after `augmentation_transform` has checked them."""
    augmentation_transform(text)
    return [name for name, _, _ in parse_calls(text, "augmentation")]


def augmentation_transform(text: str) -> Any:
    """The ``torchvision.transforms.v2.Compose`` of ``text``'s transforms, after checking that torchvision has
    them, that it takes their arguments, and that together they turn a blank 28x28 digit into one of the same
    size (so a ``RandomCrop(999)`` is refused when the recipe is made, not at the first batch of a training).

    Raises:
        ConfigError: naming the transform or the text, and the fix.
    """
    from torchvision.transforms import v2

    transforms = []
    for name, args, kwargs in parse_calls(text, "augmentation"):
        if not (isinstance(getattr(v2, name, None), type) and issubclass(getattr(v2, name), v2.Transform)):
            raise ConfigError(f"augmentation {name!r} is not a torchvision.transforms.v2 transform; use e.g. "
                              "RandomRotation, RandomAffine, Pad, RandomCrop, RandomResizedCrop, ElasticTransform")
        try:
            transforms.append(getattr(v2, name)(*args, **kwargs))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"augmentation {name}: torchvision refused its arguments ({e}); see "
                              f"torchvision.transforms.v2.{name}") from None
    transform, digit = v2.Compose(transforms), torch.zeros(1, 28, 28)
    with torch.random.fork_rng(devices=[]):  # the trials draw no number from the training's RNG
        torch.manual_seed(0)  # the same verdict every time: a random transform is tried on the same draws
        for _ in range(TRIALS):
            try:
                out = transform(digit)
            except (TypeError, ValueError, RuntimeError, IndexError) as e:
                raise ConfigError(f"augmentation {text!r} fails on a 28x28 digit ({e}); check its sizes") from None
            if not isinstance(out, torch.Tensor) or out.shape != digit.shape:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(f"augmentation {text!r} turns a 28x28 digit into {shape}; end with a crop back "
                                  "to 28x28 (e.g. Pad(2), RandomCrop(28))")
    return transform


def rehearse_schedule(text: str, *, lr: float, epochs: int, steps_per_epoch: int) -> None:
    """Step the scheduler ``text`` through a whole run on a stand-in optimizer, before any training: an argument
    torch accepts but cannot step with (``StepLR(step_size=0)`` divides by zero after the first epoch) or a
    learning rate that leaves [0, a float32's range] (``StepLR(step_size=1, gamma=-5)``) is refused now, not
    after an epoch of training. A run's worth of steps costs milliseconds.

    Raises:
        ConfigError: naming the scheduler, what went wrong and when.
    """
    stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = TorchSchedule(text, stand_in, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch, rehearse=False)
    where = "when it was made"
    try:
        for epoch in range(1, epochs + 1):
            for step in range(steps_per_epoch if schedule.per_step else 0):
                where = f"at step {step + 1} of epoch {epoch}"
                stand_in.step()  # (no gradient: changes nothing) as fit does, before the schedule: torch warns else
                schedule.after_step()
                _check_lr(stand_in, text, where)
            where = f"after epoch {epoch}"
            stand_in.step()
            schedule.after_epoch(1.0)
            _check_lr(stand_in, text, where)
    except ConfigError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError, OverflowError) as e:
        raise ConfigError(f"scheduler {text!r} fails {where} of a {epochs}-epoch run ({type(e).__name__}: {e}); "
                          "check its arguments") from None


def _check_lr(optimizer: torch.optim.Optimizer, text: str, where: str) -> None:
    lr = optimizer.param_groups[0]["lr"]
    if not (isinstance(lr, (int, float)) and 0 <= lr <= FLOAT32_MAX):
        raise ConfigError(f"scheduler {text!r} sets the learning rate to {lr:.3g} {where}; a learning rate is a "
                          "number from 0 to a float32's largest: check its arguments (gamma, factor, ...)")


class TorchSchedule:
    """A ``torch.optim.lr_scheduler`` instance and when [`fit`][s6lab.train.fit] steps it."""

    def __init__(self, text: str, optimizer: torch.optim.Optimizer, *, lr: float, epochs: int,
                 steps_per_epoch: int, rehearse: bool = True) -> None:
        name, args, kwargs = parse_call(text, "scheduler")
        check_scheduler(text)
        if rehearse:
            rehearse_schedule(text, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
        if name == "OneCycleLR":  # what the notebook leaves to the data: the peak and the number of steps
            kwargs.setdefault("max_lr", lr)
            if "total_steps" not in kwargs:
                kwargs.setdefault("epochs", epochs)
                kwargs.setdefault("steps_per_epoch", steps_per_epoch)
        if name == "CyclicLR":
            kwargs.setdefault("base_lr", lr / 10)
            kwargs.setdefault("max_lr", lr)
        cls = getattr(torch.optim.lr_scheduler, name)
        try:
            self.scheduler = cls(optimizer, *args, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"scheduler {text!r}: torch's {name} refused its arguments ({e}); see "
                              f"torch.optim.lr_scheduler.{name}") from None
        self.name = name
        self.per_step = name in PER_STEP
        self.on_metric = name == "ReduceLROnPlateau"

    def after_step(self) -> None:
        if self.per_step:
            self.scheduler.step()

    def after_epoch(self, test_loss: float) -> None:
        if self.on_metric:
            self.scheduler.step(test_loss)
        elif not self.per_step:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class TorchAugmentation:
    """``torchvision.transforms.v2`` transforms applied image by image, as a DataLoader would.

    The transforms see each image in [0, 1] (before normalisation, as in a course notebook, so
    ``fill=0`` is black background); the result is normalised again. Random parameters come from
    torch's global RNG, which [`fit`][s6lab.train.fit] seeds and checkpoints.
    """

    def __init__(self, text: str) -> None:
        self.transform = augmentation_transform(text)

    def __call__(self, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
        """Shape: ``(N, C, H, W) -> (N, C, H, W)`` (a transform that changes the size is refused)."""
        raw = images * std + mean
        out = torch.stack([self.transform(image) for image in raw])
        if out.shape != images.shape:
            raise ConfigError(f"augmentation changed the image size from {tuple(images.shape[1:])} to "
                              f"{tuple(out.shape[1:])}; end with a crop back to it (e.g. Pad(2), RandomCrop(28))")
        return (out - mean) / std
