"""The trainer: ``fit`` / ``evaluate`` / ``predict``, the config and the history.

Fast on a CPU because the data lives in tensors (no per-sample PIL transforms),
augmentation is batched on tensors (one ``affine_grid`` + ``grid_sample`` per batch),
weights and activations are channels_last, convolutions run under bf16 autocast
where the CPU supports it, and s6lab's Dropout draws its masks with integer ops
([`dropout`][s6lab.dropout]). While training, each ReLU that feeds a max-pool runs after the
pool, on a quarter of the elements with the same result ([`relu_after_pool`][s6lab.relu_after_pool]).
On glibc the process keeps freed activation buffers for reuse
(``retain_memory``, [`allocator`][s6lab.allocator]). Every lever kept has a switch in
`TrainConfig` and a measured gain on some machine class; the ones that measured no gain on
every class tried (in-place ReLU, the fused optimizer kernel, ``torch.compile``) left the
trainer and live in the benchmark that measured them (``benchmarks/levers.py``, see
`RETIRED`). The same code runs on CUDA.

Seeded: ``fit`` draws data order, augmentation and dropout from RNGs seeded with
``config.seed``, and a checkpoint stores their state, so a resumed run ends exactly
where an uninterrupted one does.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import sys
import time
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._io import atomic_torch_save
from .allocator import retain_freed_memory
from .averaging import moving_average, too_long_for
from .data import MNIST_MEAN, MNIST_STD, MNISTTensors, TensorSplit
from .dropout import fast_dropout_enabled
from .errors import ConfigError
from .hardware import Precision, native_bf16, resolve_precision, training_line
from .load_follower import LoadFollower, load_follower
from .patch_batchnorm import PatchChoice, choose_patch_statistics, first_batchnorm_from_patches
from .relu_after_pool import relu_after_pool
from .threads import environment_error
from .torch_parts import FLOAT32_MAX, TorchAugmentation, TorchSchedule, check_augmentation, check_scheduler

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "step", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
#: the allowed values of the TrainConfig fields that take one of a few strings
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS}
#: evaluation batch size: with glibc's malloc defaults 500+ ran up to 3x slower than 250 (levers-full.md
#: as recorded at commit 3b0d2c3); with freed memory retained, 250 was as fast as 500-2,000 on the AMD EPYC
#: AVX-512 VM (levers-avx512-bf16-amd-epyc.md), 1.2x faster on the Intel Xeon in bf16 (levers.md) and 3% slower
#: than 500 capped to AVX2 (levers-avx2-no-bf16-capped-on-avx512.md)
EVAL_BATCH_SIZE = 250
#: metadata of a TrainConfig field that changes speed, not the numbers (see SPEED_ONLY)
SPEED = {"speed_only": True}


@functools.cache
def field_kinds() -> dict[str, tuple[type, ...]]:
    """Each TrainConfig field and the types it accepts (``bool | None`` -> ``(bool, NoneType)``): what
    ``TrainConfig`` checks values against, and how ``--set`` knows which fields take ``auto``."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: typing.get_args(hints[f.name]) or (hints[f.name],) for f in fields(TrainConfig)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Defaults are the measured recipe: fast, and with margin
    over the assignment on every seed measured (results/recipe-confirm.md; with layer 1's BatchNorm from
    patch statistics, on by default on CPUs: results/recipe-confirm-patch-statistics.md)."""

    epochs: int = 18  # passes over the 60k training images (the assignment allows < 20; 15 left no margin)
    batch_size: int = 256  # lr 0.1; on AVX-512 bf16 128 ran 0.95x, 512 1.05x (levers.md); 512 reaches 99.4% later
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.1  # peak learning rate (onecycle) or starting rate (step, constant)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # SGD: Nesterov momentum (torch.optim.SGD's nesterov), when momentum > 0
    weight_decay: float = 5e-4  # L2 penalty (decoupled for adamw); 5e-4 with 18 epochs: results/recipe-confirm.md
    schedule: str = "onecycle"  # onecycle | step | constant, evaluated per step
    scheduler: str | None = None  # instead of schedule: a torch.optim.lr_scheduler call, e.g. "StepLR(step_size=6)"
    warmup: float = 0.2  # onecycle: fraction of steps spent rising to lr
    step_epochs: int = 5  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    augment: bool = True  # batched random rotation and translation
    rotation: float = 7.0  # augmentation: max rotation in degrees
    translate: float = 0.08  # augmentation: max shift as a fraction of the image side
    augmentation: str | None = None  # replaces rotation, translate: torchvision v2, e.g. "Pad(2), RandomCrop(28)"
    clean_last_epochs: int = 0  # the last N epochs train on the images as they are, without augmentation
    label_smoothing: float = 0.0  # on the NLL loss
    ema: float = 0.0  # weight averaging: evaluate and keep an average of the weights, decay per step (e.g. 0.998) or 0
    seed: int = 0  # data order, augmentation, dropout (and model init via seed_everything)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where supported) | bf16 | fp32; evaluation is fp32
    channels_last: bool = True  # NHWC memory format for weights and activations
    fast_dropout: bool = True  # s6lab Dropout layers draw their CPU masks with integer ops (s6lab.dropout)
    relu_after_pool: bool = field(default=True, metadata=SPEED)  # exact: a ReLU feeding a max-pool runs after it
    first_bn_from_patches: bool | None = None  # layer 1's BatchNorm from patch statistics (None: auto, on for CPUs)
    retain_memory: bool = field(default=True, metadata=SPEED)  # glibc keeps freed buffers: steadier (s6lab.allocator)
    eval_batch_size: int = field(default=EVAL_BATCH_SIZE, metadata=SPEED)  # batch size of evaluate / predict

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"TrainConfig.{name} {why}, got {getattr(self, name)!r}")

        for name, kinds in field_kinds().items():  # the type first: "abc" for a number is one line, not a TypeError
            value = getattr(self, name)
            if value is None and type(None) in kinds:
                continue
            if bool in kinds and not isinstance(value, bool):
                auto = f", or None for auto (null in JSON, --set {name}=auto)" if type(None) in kinds else ""
                raise bad(name, f"must be True or False{auto}")
            if float in kinds and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise bad(name, "must be a number")
            if float in kinds and not isinstance(value, (int, float)):  # np.float32 and the like: JSON-ready
                object.__setattr__(self, name, float(value))
            if int in kinds and isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
                object.__setattr__(self, name, int(value))  # np.int64: an int (the checks below say the rest)
            if str in kinds and not isinstance(value, str):
                raise bad(name, "must be a string" + (" (or None)" if type(None) in kinds else ""))
        for name in ("epochs", "batch_size", "step_epochs", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "must be a positive integer")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr <= FLOAT32_MAX):
            raise bad("lr", f"must be a positive finite number a float32 holds (at most {FLOAT32_MAX:.3g})")
        for name, lo, hi in (("momentum", 0, 1), ("warmup", 0, 1), ("gamma", 0, 1),
                             ("label_smoothing", 0, 1), ("ema", 0, 1)):
            if not lo <= getattr(self, name) < hi or (name == "gamma" and self.gamma == 0):
                raise bad(name, f"must be in [{lo}, {hi})" if name != "gamma" else "must be in (0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63 - 1:
            raise bad("seed", "must be an integer in [0, 2**63 - 1)")
        if isinstance(self.clean_last_epochs, bool) or not isinstance(self.clean_last_epochs, int) or not (
                0 <= self.clean_last_epochs < self.epochs):
            raise bad("clean_last_epochs", f"must be an integer in [0, epochs) = [0, {self.epochs})")
        for name in ("weight_decay", "rotation"):  # nan fails every comparison and inf passes a lower bound
            if not (0 <= getattr(self, name) <= FLOAT32_MAX):
                raise bad(name, f"must be a finite number >= 0 a float32 holds (at most {FLOAT32_MAX:.3g})")
        if not 0 <= self.translate < 0.5:
            raise bad("translate", "must be in [0, 0.5)")
        if self.scheduler is not None:
            check_scheduler(self.scheduler)
        if self.augmentation is not None:
            check_augmentation(self.augmentation)
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {', '.join(choices)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys with the list of valid ones.

        Fields that left the trainer (`RETIRED`) are dropped: runs recorded with them still load.
        """
        values = without_retired(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differing(self, other: TrainConfig, ignore: frozenset[str] = frozenset()) -> list[str]:
        """Sorted names of the fields whose values differ from ``other``'s, minus ``ignore``.

        Examples:
            >>> TrainConfig(seed=1, epochs=3).differing(TrainConfig(epochs=3, seed=2, lr=0.2))
            ['lr', 'seed']
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in ignore and mine[k] != theirs[k])


#: Levers that measured no gain on every machine class tried, and left `TrainConfig` (and the CLI) for
#: ``benchmarks/levers.py``, which keeps measuring them. Each maps to the measurement, train img/s
#: against the s6lab defaults (``make bench-levers``). Run files that still carry these fields load.
RETIRED: dict[str, str] = {
    "inplace_relu": "in-place ReLU: 1.00x on AVX-512 with bf16 (AMD EPYC, levers-avx512-bf16-amd-epyc.md; "
                    "Intel Xeon, levers.md), 0.95x over 15 rounds (Intel Xeon, retired-levers-avx512-bf16.md), "
                    "1.01x on AVX2 without (levers-avx2-no-bf16.md)",
    "fused": "fused SGD kernel instead of foreach: 0.99x on AVX-512 with bf16 (AMD EPYC), 1.04x and 0.97x over "
             "15 rounds (Intel Xeon, levers.md, retired-levers-avx512-bf16.md), 1.02x on AVX2 without, all "
             "within the rounds' spread",
    "compile": "torch.compile of the training forward: 0.65x (AMD EPYC) and 0.69x (Intel Xeon) on AVX-512 with "
               "bf16, 0.80x on AVX2 without, plus 19-36 s of compiling; not measured on CUDA",
}

def without_retired(values: dict[str, Any]) -> dict[str, Any]:
    """Training fields as a run file recorded them, minus the levers that have left `TrainConfig` since
    (`RETIRED`): the one place where old run files are read past them."""
    return {k: v for k, v in values.items() if k not in RETIRED}


#: TrainConfig fields that change speed, not the numbers (marked on the field): runs differing only there
#: are the same run
SPEED_ONLY = frozenset(f.name for f in fields(TrainConfig) if f.metadata.get("speed_only"))
"""TrainConfig fields marked ``speed_only``: runs that differ only there are the same run."""


def recorded_patches(train: dict[str, Any], resolved: bool | None, here: bool) -> bool:
    """Whether a recorded run computed layer 1's BatchNorm from patch statistics.

    Args:
        train: its training fields as written (``config.json``'s ``train``, a checkpoint's ``config``).
        resolved: what it recorded as resolved (``patch_statistics``; runs since the auto default), or None.
        here: what auto (None) resolves to here: a field left at None with nothing resolved, as in a
            hand-written config, means auto here too.

    Returns:
        ``resolved`` if recorded, else the field as written, else False: runs older than the field trained
        with the stock BatchNorm.
    """
    if resolved is not None:
        return bool(resolved)
    if "first_bn_from_patches" not in train:
        return False
    written = train["first_bn_from_patches"]
    return here if written is None else bool(written)


def recipe_differences(recorded: TrainConfig, recorded_precision: str, wanted: TrainConfig,
                       device: torch.device, *, recorded_patches: bool, wanted_patches: bool) -> list[str]:
    """The one "is this the same run?" rule: what makes ``wanted`` another recipe than a recorded run.

    Fields are compared as written, except the speed-only ones (`SPEED_ONLY`) and the
    precision, which is compared as resolved: ``auto`` means bf16 on a CPU with native bf16
    and fp32 on one without, so a run recorded as ``auto`` in bf16 is the same recipe as
    ``precision="bf16"``, and another recipe than ``auto`` on an AVX2 CPU. So is
    ``first_bn_from_patches``: whether layer 1's BatchNorm came from patch statistics there
    (``recorded_patches``) and would here (``wanted_patches``, see
    [`choose_patch_statistics`][s6lab.patch_batchnorm.choose_patch_statistics]).

    Returns:
        Sorted field names that differ, then ``"precision (bf16 there, fp32 here: why)"``
        when the resolved precisions differ, then the patch statistics when they do;
        empty when it is the same recipe.
    """
    differences = recorded.differing(wanted, ignore=SPEED_ONLY | {"precision", "first_bn_from_patches"})
    here = resolve_precision(wanted.precision, device)
    if recorded_precision != here.precision:
        differences.append(f"precision ({recorded_precision} there, {here.precision} here: {here.reason})")
    if recorded_patches != wanted_patches:
        on_off = {True: "on", False: "off"}
        differences.append(f"first_bn_from_patches (layer 1's BatchNorm from patch statistics "
                           f"{on_off[recorded_patches]} there, {on_off[wanted_patches]} here)")
    return differences


@dataclass
class EpochRecord:
    """One epoch of a history."""

    epoch: int
    train_loss: float
    train_acc: float  # on augmented training batches, with dropout on
    test_loss: float
    test_acc: float  # on the test split, fp32, eval mode
    lr: float  # learning rate at the end of the epoch
    seconds: float  # wall-clock seconds for training plus evaluation
    train_seconds: float = float("nan")  # of which training alone
    raw_test_acc: float | None = None  # with TrainConfig.ema: the trained weights' own accuracy (test_acc: the average)
    fewest_threads: int | None = None  # other programs kept a core busy: the fewest threads this epoch trained on


@dataclass
class History:
    """Per-epoch results of a run, JSON round-trippable."""

    epochs: list[EpochRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def test_acc(self) -> list[float]:
        return [e.test_acc for e in self.epochs]

    @property
    def averaged(self) -> bool:
        """Trained with weight averaging (``TrainConfig.ema``): every epoch also records the trained
        weights' own accuracy (``raw_test_acc``)."""
        return bool(self.epochs) and all(e.raw_test_acc is not None for e in self.epochs)

    @property
    def best_acc(self) -> float:
        return max(self.test_acc) if self.epochs else float("nan")

    @property
    def final_acc(self) -> float:
        return self.epochs[-1].test_acc if self.epochs else float("nan")

    def first_epoch_reaching(self, target: float) -> int | None:
        """The first epoch (1-based) whose test accuracy is >= ``target``, or None."""
        return next((e.epoch for e in self.epochs if e.test_acc >= target), None)

    def seconds_to_reach(self, target: float) -> float | None:
        """Wall-clock seconds (training plus evaluation) until the end of the first epoch at
        >= ``target``, or None if no epoch reaches it."""
        epoch = self.first_epoch_reaching(target)
        return None if epoch is None else sum(e.seconds for e in self.epochs if e.epoch <= epoch)

    def to_json(self) -> str:
        return json.dumps([{k: v for k, v in asdict(e).items() if v is not None} for e in self.epochs], indent=2)

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls([EpochRecord(**row) for row in json.loads(text)])


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite, or exploded past `DIVERGED_LOSS`."""


#: a mean NLL above this has exploded: chance level for 10 classes is 2.3, and logits would have to be
#: about a thousand apart on average; a run there never recovers, so fit stops instead of "succeeding"
DIVERGED_LOSS = 1e3


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is native here (see [`native_bf16`][s6lab.hardware.native_bf16])."""
    return native_bf16(device)


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    """Whether ``config`` trains in bf16 on ``device`` (``auto``: where it is native)."""
    return resolve_precision(config.precision, device).precision == "bf16"


def seed_everything(seed: int) -> None:
    """Seed torch's global RNGs (model initialisation, dropout)."""
    torch.manual_seed(seed)


def lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Learning rate at optimizer step ``step`` (0-based): a pure function, so resuming
    needs no scheduler state.

    onecycle: linear rise from ``lr/25`` to ``lr`` over ``warmup`` of the steps, then a
    cosine fall to ``lr/1e4``; step: ``lr * gamma**(epoch // step_epochs)``.
    """
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.gamma ** ((step // steps_per_epoch) // config.step_epochs)
    rise = max(1, round(config.warmup * total))
    start, end = config.lr / 25, config.lr / 1e4
    if step < rise:
        return start + (config.lr - start) * step / rise
    progress = min(1.0, (step - rise) / max(1, total - rise))
    return end + (config.lr - end) * 0.5 * (1 + math.cos(math.pi * progress))


def augment_batch(images: torch.Tensor, generator: torch.Generator, rotation: float,
                  translate: float) -> torch.Tensor:
    """Random rotation and translation of a whole batch in one ``grid_sample``.

    Pixels brought in from outside are the normalized background (black), not zero.

    Args:
        images: normalized batch.
        generator: RNG for the random angles and shifts (on the images' device).
        rotation: max absolute angle in degrees.
        translate: max absolute shift as a fraction of the side.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``
    """
    n = images.shape[0]
    device = images.device
    angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(rotation)
    # affine_grid works in [-1, 1] coordinates: a shift of f * side is 2f there
    shift = (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * (2 * translate)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, H, W, 2)
    background = -MNIST_MEAN / MNIST_STD
    return F.grid_sample(images - background, grid, align_corners=False) + background


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    impl = {"foreach": True}  # one multi-tensor kernel per step (the fused kernel measured no faster: RETIRED)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay, **impl)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **impl)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **impl)


def _to_device(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _batch(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass(frozen=True)
class Evaluation:
    """Loss and accuracy of a model on a split."""

    loss: float
    accuracy: float
    n: int


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = EVAL_BATCH_SIZE,
            device: str | torch.device = "auto", channels_last: bool = True) -> torch.Tensor:
    """Log-probabilities of ``model`` on ``images`` in eval mode, fp32, no autograd.

    Shape:
        ``(N, 1, 28, 28) -> (N, num_classes)`` on the CPU.

    Examples:
        >>> from s6lab import get_model
        >>> predict(get_model("s6"), torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """
    device = resolve_device(device) if isinstance(device, str) else device
    was_training = model.training
    _to_device(model, device, channels_last)
    model.eval()
    outs = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            xb = _batch(images[start:start + batch_size], device, channels_last)
            outs.append(model(xb).float().cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, 0)


def evaluate(model: nn.Module, split: TensorSplit, *, batch_size: int = EVAL_BATCH_SIZE,
             device: str | torch.device = "auto", channels_last: bool = True) -> Evaluation:
    """Mean NLL loss and accuracy (in %) of ``model`` on a split."""
    logp = predict(model, split.images, batch_size=batch_size, device=device,
                   channels_last=channels_last)
    loss = F.nll_loss(logp, split.labels).item()
    accuracy = 100.0 * (logp.argmax(1) == split.labels).float().mean().item()
    return Evaluation(loss, accuracy, len(split))


def progress_bar_class():
    """tqdm's notebook bar where ipywidgets is installed, else its text bar.

    ``tqdm.auto`` picks the notebook bar in Jupyter even without ipywidgets, and then warns
    ("IProgress not found") on every run; the text bar works everywhere.
    """
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


#: Called after each epoch with the history so far (resumed epochs included) and the model.
EpochCallback = Callable[["History", nn.Module], None]


def fit(
    model: nn.Module,
    data: MNISTTensors,
    config: TrainConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: EpochCallback | Sequence[EpochCallback] | None = None,
    label: str | None = None,
) -> History:
    """Train ``model`` on ``data.train``, evaluating on ``data.test`` after each epoch.

    The model must return log-probabilities (every s6lab model ends in LogSoftmax). While an epoch
    trains, two exact rewrites may change the model's modules for the training steps: each ReLU that
    feeds a max-pool runs behind it (``config.relu_after_pool``) and, on a CPU, layer 1's BatchNorm
    comes from patch statistics (``config.first_bn_from_patches``); the net is as built again before
    each evaluation, each callback and the return. A hook registered on those modules before training
    keeps them as built.

    Args:
        model: the network; trained in place. With ``config.ema`` it ends holding the moving
            average of its weights, the network that was evaluated ([`averaging`][s6lab.averaging]).
        data: preloaded tensors from [`load_mnist`][s6lab.data.load_mnist].
        config: the training recipe (``get_recipe(name).train``); ``None`` means the defaults.
        checkpoint: file written atomically after every epoch (model, optimizer, RNG
            states, history); loaded with ``weights_only=True`` on resume.
        resume: continue from ``checkpoint`` if it exists.
        progress: show a tqdm bar (works in notebooks) and one line per epoch.
        on_epoch: called after every epoch with the history so far and the model evaluated, or a list
            of such callables (e.g. [`LivePlot`][s6lab.callbacks.LivePlot], [`CSVLogger`][s6lab.callbacks.CSVLogger]).
        label: what is training, shown before the epoch on the bar and the per-epoch line
            (``"s6-gap seed 1"``; ``train_run`` and ``compare`` set it).

    Returns:
        The `History`, one record per epoch.

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.
        ConfigError: ``resume`` with a checkpoint from a different config.

    Examples:
        >>> from s6lab import get_recipe, load_mnist
        >>> recipe = get_recipe("s6", epochs=1)
        >>> history = fit(recipe.build(), load_mnist(), recipe.train)  # doctest: +SKIP
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"fit takes a TrainConfig, got {type(config).__name__}; pass recipe.train")
    callbacks = [] if on_epoch is None else [on_epoch] if callable(on_epoch) else list(on_epoch)
    state = _set_up(model, config, progress, steps_per_epoch=math.ceil(len(data.train.labels) / config.batch_size))
    state.label = f"{label}, " if label else ""
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        _resume(state, ckpt_path)
    with reproducible(state.device):
        for epoch in range(state.start_epoch, config.epochs + 1):
            record = _train_and_evaluate_epoch(state, data, epoch)
            state.history.epochs.append(record)
            if progress:  # one line per epoch that stays: what a learner scrolls back to
                raw = "" if record.raw_test_acc is None else \
                    f" (averaged weights; the trained ones {record.raw_test_acc:.2f}%)"
                state.tqdm.write(f"{state.label}epoch {epoch}/{config.epochs}: test accuracy "
                                 f"{record.test_acc:.2f}%{raw}, test loss {record.test_loss:.4f}, "
                                 f"train loss {record.train_loss:.4f}, {record.seconds:.1f} s", file=sys.stderr)
            log.info("epoch %d: test accuracy %.2f%%", epoch, record.test_acc)
            if ckpt_path is not None:
                _save_checkpoint(state, epoch, ckpt_path)
            for callback in callbacks:
                callback(state.history, _evaluated(state))
    if state.average is not None:  # the model handed back is the one evaluated: the average
        model.load_state_dict(state.average.module.state_dict())
    return state.history


@contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """On CUDA, cuDNN's deterministic algorithms while `fit` trains: the same seed then gives the same
    bits, and a resumed run ends exactly where an uninterrupted one does, as on a CPU.

    Without it, cuDNN picks convolution backward algorithms that sum in a varying order (two
    identical runs differed in the fourth digit of the loss on an H100). The previous settings
    are restored afterwards; on a CPU this does nothing.
    """
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


@dataclass
class _Training:
    """What the steps of `fit` share: the model, its optimizer, the RNG and the history."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    precision: str  # bf16 | fp32, as resolved here
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # data order and augmentation
    progress: bool
    tqdm: Any
    schedule: TorchSchedule | None = None  # a torch scheduler (config.scheduler) instead of lr_at
    augmentation: TorchAugmentation | None = None  # torchvision transforms (config.augmentation)
    average: torch.optim.swa_utils.AveragedModel | None = None  # the moving average of the weights (config.ema)
    follower: LoadFollower | None = None  # fewer threads while other programs keep a core busy (CPU only)
    patches: PatchChoice = PatchChoice(False, "not chosen")  # _set_up chooses (config.first_bn_from_patches)
    history: History = field(default_factory=History)
    start_epoch: int = 1
    label: str = ""  # "s6-gap seed 1, " before the epoch on the bar and the per-epoch line


def start_line(device: torch.device, precision: Precision, patches: PatchChoice) -> str:
    """What a training run says at its start: the machine, threads and precision (`training_line`), and
    the patch statistics where they are on."""
    return training_line(device, precision) + (f"; {patches.describe()}" if patches.on else "")


def patch_flag(on: bool) -> str:
    """The command-line flag that asks for the patch statistics ``on`` or off."""
    return "--first-bn-from-patches" if on else "--no-first-bn-from-patches"


def _set_up(model: nn.Module, config: TrainConfig, progress: bool, *, steps_per_epoch: int) -> _Training:
    """Resolve the device and precision (and say so), place the model, seed the RNGs."""
    if (problem := environment_error()) is not None:
        raise ConfigError(problem)
    tqdm = progress_bar_class()
    device = resolve_device(config.device)
    patches = choose_patch_statistics(config.first_bn_from_patches, model, device)  # refusals before anything trains
    precision = resolve_precision(config.precision, device)
    announce = start_line(device, precision, patches)
    log.info(announce)
    if progress:  # beside the progress bars, on stderr
        tqdm.write(announce, file=sys.stderr)
    if precision.emulated:
        warnings.warn(f"{precision.reason}; use precision='fp32' (--precision fp32) on this machine", stacklevel=3)
    if config.retain_memory and device.type == "cpu":
        retain_freed_memory()
    _to_device(model, device, config.channels_last)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    torch.manual_seed(config.seed + 1)  # dropout draws from the global RNG
    schedule = None if config.scheduler is None else TorchSchedule(
        config.scheduler, optimizer, lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
    augmentation = None if config.augmentation is None or not config.augment else \
        TorchAugmentation(config.augmentation)
    average = moving_average(model, config.ema) if config.ema > 0 else None
    too_long = too_long_for(config.ema, config.epochs * steps_per_epoch) if average is not None else None
    if too_long:
        warnings.warn(too_long, stacklevel=3)
    follower = load_follower() if device.type == "cpu" else None
    if follower is not None and (stopped := follower.restart(torch.get_num_threads())) is not None:
        log.info(stopped)
        if progress:
            tqdm.write(stopped, file=sys.stderr)
    if follower is not None and follower.stopped is not None:
        follower = None
    return _Training(model, config, device, precision.precision, optimizer, generator, progress, tqdm,
                     schedule, augmentation, average, follower, patches)


def _resume(state: _Training, path: Path) -> None:
    """Continue from a checkpoint written by `_save_checkpoint` with the same recipe."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign or planted file: never unpickle code to find out
        raise ConfigError(f"cannot resume from {path}: it cannot be loaded as an s6lab checkpoint "
                          f"({type(e).__name__}: truncated, damaged or not written by s6lab); delete it to "
                          "start over") from None
    recorded = TrainConfig.from_dict(saved["config"])  # older checkpoints: defaults fill in new fields
    ran = saved.get("precision", state.precision)  # older checkpoints did not record it
    auto_here = choose_patch_statistics(None, state.model, state.device).on
    patched = recorded_patches(saved["config"], saved.get("patch_statistics"), auto_here)
    changed = recipe_differences(recorded, ran, state.config, state.device,
                                 recorded_patches=patched, wanted_patches=state.patches.on)
    if changed:
        raise ConfigError(f"cannot resume from {path}: it was written with a different config "
                          f"({', '.join(changed)} differ); use the same settings (--precision {ran}"
                          f"{'' if patched == state.patches.on else ', ' + patch_flag(patched)}) or a new --out")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if state.device.type == "cuda" and "cuda_rng" in saved:  # dropout's masks on a GPU
        torch.cuda.set_rng_state(saved["cuda_rng"], state.device)
    if state.schedule is not None:
        state.schedule.load_state_dict(saved["scheduler"])
    if state.average is not None:
        state.average.load_state_dict(saved["average"])
    state.history = History.from_json(saved["history"])
    state.start_epoch = saved["epoch"] + 1
    log.info("resuming from %s at epoch %d", path, state.start_epoch)


def _train_and_evaluate_epoch(state: _Training, data: MNISTTensors, epoch: int) -> EpochRecord:
    """One pass over the training images in a seeded order, then the test split in fp32."""
    config, device, model, optimizer = state.config, state.device, state.model, state.optimizer
    started = time.perf_counter()
    train_x, train_y = data.train.images, data.train.labels
    n = train_y.numel()
    steps_per_epoch = math.ceil(n / config.batch_size)
    model.train()
    order = torch.randperm(n, generator=state.generator)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    bar = state.tqdm(range(steps_per_epoch), desc=f"{state.label}epoch {epoch}/{config.epochs}",
                     disable=not state.progress, leave=True, dynamic_ncols=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=state.precision == "bf16")
    augmenting = config.augment and epoch <= config.epochs - config.clean_last_epochs
    # the fewest threads the load follower trained this epoch on, and the most it may use
    fewest_threads, chosen = (None, None) if state.follower is None else (state.follower.threads, state.follower.chosen)
    with fast_dropout_enabled(config.fast_dropout), first_batchnorm_from_patches(model, state.patches.on), \
            relu_after_pool(model, config.relu_after_pool):
        for i in bar:
            if state.schedule is None:  # the built-in schedule: a pure function of the step
                lr = lr_at((epoch - 1) * steps_per_epoch + i, steps_per_epoch, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            else:
                lr = optimizer.param_groups[0]["lr"]
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            xb, yb = train_x[idx], train_y[idx]
            if augmenting and state.augmentation is not None:
                xb = state.augmentation(xb, MNIST_MEAN, MNIST_STD)
            elif augmenting:
                xb = augment_batch(xb, state.generator, config.rotation, config.translate)
            xb = _batch(xb, device, config.channels_last)
            yb = yb.to(device, non_blocking=True)
            with autocast:
                out = model(xb)
            loss = F.nll_loss(out.float(), yb, reduction="mean") if config.label_smoothing == 0 else \
                F.cross_entropy(out.float(), yb, label_smoothing=config.label_smoothing)
            value = loss.item()
            if not math.isfinite(value) or value > DIVERGED_LOSS:
                raise TrainingDiverged(
                    f"the training loss became {value:.4g} at epoch {epoch}, step {i + 1} "
                    f"(lr {lr:.4g}): training diverged; lower the learning rate (--lr, now {config.lr}) "
                    "or use precision='fp32'")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if state.average is not None:
                state.average.update_parameters(model)
            if state.schedule is not None:
                state.schedule.after_step()
            if state.follower is not None and (change := state.follower.tick()) is not None:
                log.info(change)
                if state.progress:
                    state.tqdm.write(f"{state.label}epoch {epoch}, step {i + 1}: {change}", file=sys.stderr)
                fewest_threads = min(fewest_threads, state.follower.threads)
            loss_sum += loss.detach() * yb.numel()
            correct += (out.argmax(1) == yb).sum()
            if state.progress and (i % 20 == 0 or i == steps_per_epoch - 1):
                seen = min(n, (i + 1) * config.batch_size)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{100 * correct.item() / seen:.2f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the last step's kernels count toward this epoch
    train_seconds = time.perf_counter() - started
    test = evaluate(_evaluated(state), data.test, batch_size=config.eval_batch_size, device=device,
                    channels_last=config.channels_last)
    seconds = time.perf_counter() - started
    # with weight averaging, the trained weights' own accuracy too, for comparison: not counted in `seconds`
    raw = None if state.average is None else evaluate(
        model, data.test, batch_size=config.eval_batch_size, device=device, channels_last=config.channels_last)
    if state.schedule is not None:
        state.schedule.after_epoch(test.loss)
    lowered = fewest_threads is not None and fewest_threads < chosen
    record = EpochRecord(
        epoch=epoch, train_loss=loss_sum.item() / n, train_acc=100.0 * correct.item() / n,
        test_loss=test.loss, test_acc=test.accuracy, lr=lr, seconds=seconds, train_seconds=train_seconds,
        raw_test_acc=None if raw is None else raw.accuracy,
        fewest_threads=fewest_threads if lowered else None)
    if state.progress:
        bar.set_postfix(loss=f"{record.train_loss:.4f}", acc=f"{record.train_acc:.2f}",
                        test_acc=f"{record.test_acc:.2f}")
        bar.close()
    return record


def _evaluated(state: _Training) -> nn.Module:
    """The network that is evaluated, reported and kept: the moving average with ``ema``, else the model."""
    return state.model if state.average is None else state.average.module


def checkpoint_weights(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The model's weights inside a checkpoint written by `fit` (loaded with ``weights_only=True``):
    the checkpoint's layout is the trainer's own, so readers ask here instead of indexing it. With
    weight averaging (``TrainConfig.ema``) these are the averaged weights, the ones evaluated.

    Raises:
        ConfigError: ``checkpoint`` is not one written by `fit`.
    """
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ConfigError("not a checkpoint written by s6lab's fit: it has no model weights")
    average = checkpoint.get("average")
    if isinstance(average, dict):
        return {k.removeprefix("module."): v for k, v in average.items() if k.startswith("module.")}
    return checkpoint["model"]


def _save_checkpoint(state: _Training, epoch: int, path: Path) -> None:
    """Everything `_resume` needs to continue exactly, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({
        "epoch": epoch, "config": state.config.to_dict(), "precision": state.precision,
        "patch_statistics": state.patches.on,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(), "generator": state.generator.get_state(),
        "torch_rng": torch.get_rng_state(), "history": state.history.to_json(),
        **({"cuda_rng": torch.cuda.get_rng_state(state.device)} if state.device.type == "cuda" else {}),
        **({"scheduler": state.schedule.state_dict()} if state.schedule is not None else {}),
        **({"average": state.average.state_dict()} if state.average is not None else {}),
    }, path)
