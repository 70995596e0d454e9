"""The recipe: everything that decides a run's numbers, in one frozen object.

A `Recipe` is the architecture ([`NetSpec`][s6lab.specs.NetSpec]), the training
([`TrainConfig`][s6lab.train.TrainConfig]) and the data selection (`DataSelection`). A run
directory's ``config.json`` is a recipe written out (`Recipe.to_dict`), with the facts
resolved on the machine that ran it (precision, device, machine) beside it.

This module holds the two rules every path shares:

- `merge`: the one place where a variant's own recipe and your overrides are merged
  (architecture overrides, ``TrainConfig`` fields and data fields, by name);
- `Recipe.differences`: the one answer to "is this recorded run the run asked for?"
  (speed-only fields ignored, precision compared as resolved).

Examples:
    >>> from s6lab import get_recipe
    >>> recipe = get_recipe("s6-step-lr", seed=3, train_size=1000)
    >>> recipe.spec.name, recipe.train.schedule, recipe.train.seed, recipe.data.train_size
    ('s6-step-lr', 'step', 3, 1000)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .data import MNISTTensors, TensorSplit, default_root, load_mnist, load_split
from .errors import ConfigError
from .hardware import Precision, resolve_precision
from .patch_batchnorm import PatchChoice, choose_patch_statistics
from .specs import OVERRIDES, Net, NetSpec, apply_overrides, build, spec_from_dict, spec_to_dict
from .train import (
    TrainConfig,
    recipe_differences,
    recorded_patches,
    resolve_device,
    seed_everything,
    without_retired,
)


@dataclass(frozen=True)
class DataSelection:
    """Which MNIST images a run trains and is tested on."""

    root: str | None = None  # MNIST data root; None: $S6LAB_DATA or ~/.cache/s6lab (where, not which images)
    train_size: int | None = None  # train on the first N training images only (quick runs); None: all 60k
    test_size: int | None = None  # evaluate on the first N test images only (quick runs); None: all 10k

    def __post_init__(self) -> None:
        for name, most in (("train_size", 60_000), ("test_size", 10_000)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most):
                raise ConfigError(f"{name} must be a number of images from 1 to {most:,} (MNIST's "
                                  f"{name.split('_')[0]} set), got {value!r} (--{name.replace('_', '-')} N, or "
                                  "leave it out for all)")

    def resolved_root(self) -> Path:
        """The root this selection reads from (the default root when none was given)."""
        return Path(self.root).expanduser() if self.root is not None else default_root()

    def load(self) -> MNISTTensors:
        """Both splits, fetched and verified first (see [`load_mnist`][s6lab.data.load_mnist])."""
        return load_mnist(self.root, train_size=self.train_size, test_size=self.test_size)

    def readable_root(self) -> str | None:
        """The recorded root where it exists on this machine; ``None`` (the default root) for a run
        trained elsewhere."""
        return self.root if self.root is not None and Path(self.root).expanduser().exists() else None

    def test_split(self, root: str | Path | None = None) -> TensorSplit:
        """The test images a run was evaluated on (all 10k unless it used a subset).

        Args:
            root: read from here instead of [`readable_root`][s6lab.recipe.DataSelection.readable_root].
        """
        return load_split(root if root is not None else self.readable_root(), train=False, size=self.test_size)

    def sizes(self) -> dict[str, int | None]:
        """The part that decides the numbers (the root is only where the same files live)."""
        return {"train_size": self.train_size, "test_size": self.test_size}


#: DataSelection fields, as `merge` accepts them by name
DATA_FIELDS = tuple(f.name for f in fields(DataSelection))


#: The one quick mode, shared by the examples (``--quick``), the notebooks (``S6LAB_QUICK=1``) and the
#: docs tests: one epoch on the first 1,000 training and 500 test images of real MNIST. It shows that
#: the code runs end to end, not what a layer choice does.
QUICK_RUN: dict[str, int] = {"epochs": 1, "train_size": 1000, "test_size": 500}
#: the environment variable that asks notebooks (and anything calling `quick_mode`) for quick runs
QUICK_ENV = "S6LAB_QUICK"


def quick_mode() -> bool:
    """Whether ``S6LAB_QUICK=1`` asks for quick runs (the test suite sets it to run the notebooks; ``true``,
    ``yes`` and ``on`` also mean yes, and a value that is neither yes nor no raises `ConfigError`).

    Examples:
        >>> QUICK_RUN  # what a quick run changes: see Recipe.quick
        {'epochs': 1, 'train_size': 1000, 'test_size': 500}
    """
    from .env_flags import flag

    return flag(QUICK_ENV)


@dataclass(frozen=True)
class Resolved:
    """What a recipe means on this machine: the device, the precision ``auto`` resolves to, and whether
    layer 1's BatchNorm comes from patch statistics."""

    device: torch.device
    precision: Precision
    patches: PatchChoice


@dataclass(frozen=True)
class Recipe:
    """What decides a run: the architecture, the training and the data selection.

    Build the model with `build` (it seeds the initialisation from ``train.seed``),
    load the data with ``recipe.data.load()`` and train with ``fit(model, data, recipe.train)``.

    Examples:
        >>> from s6lab import get_spec
        >>> recipe = Recipe(get_spec("s6-gap"), TrainConfig(epochs=2))
        >>> recipe.name, recipe.train.epochs, recipe.data.train_size
        ('s6-gap', 2, None)
    """

    spec: NetSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataSelection = field(default_factory=DataSelection)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, NetSpec):
            raise ConfigError(f"Recipe.spec must be a NetSpec, got {type(self.spec).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"Recipe.train must be a TrainConfig, got {type(self.train).__name__}")

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self) -> Net:
        """A freshly initialised model, seeded from ``train.seed``: the same weights on every call."""
        seed_everything(self.train.seed)
        return build(self.spec)

    def resolve(self) -> Resolved:
        """The device, the precision and the patch statistics this recipe trains with here.

        Raises:
            ConfigError: ``first_bn_from_patches=True`` and the net cannot fold them.
        """
        device = resolve_device(self.train.device)
        return Resolved(device, resolve_precision(self.train.precision, device), self.patch_statistics(device))

    def patch_statistics(self, device: torch.device) -> PatchChoice:
        """Whether layer 1's BatchNorm comes from patch statistics when this recipe trains on ``device``.

        Raises:
            ConfigError: ``first_bn_from_patches=True`` and the net cannot fold them.
        """
        with torch.device("meta"):  # only the layers are read: no memory, no draw from the RNG
            layers = build(self.spec)
        return choose_patch_statistics(self.train.first_bn_from_patches, layers, device)

    def patches_that_ran(self, recorded: dict[str, Any], device: torch.device) -> bool:
        """Whether the run recorded in ``recorded`` (a ``config.json``) computed layer 1's BatchNorm from
        patch statistics (see [`recorded_patches`][s6lab.train.recorded_patches]); a field left at None with
        nothing resolved means what auto chooses for this recipe's net on ``device``."""
        auto = self.replace(first_bn_from_patches=None).patch_statistics(device).on
        return recorded_patches(recorded.get("train") or {}, recorded.get("patch_statistics"), auto)

    def replace(self, **overrides: Any) -> Recipe:
        """This recipe with ``overrides`` applied: see `merge`."""
        return merge(self, **overrides)

    def quick(self) -> Recipe:
        """This recipe in the quick mode (`QUICK_RUN`): one epoch on 1,000 training and 500 test images.

        Examples:
            >>> from s6lab import get_recipe
            >>> quick = get_recipe("s6").quick()
            >>> quick.train.epochs, quick.data.train_size, quick.data.test_size
            (1, 1000, 500)
        """
        return merge(self, **QUICK_RUN)

    def to_dict(self) -> dict[str, Any]:
        """The recipe part of a run's ``config.json``."""
        return {"model": spec_to_dict(self.spec), "train": self.train.to_dict(), "data": self.data.sizes(),
                "data_root": str(self.data.resolved_root())}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, base_train: TrainConfig | None = None) -> Recipe:
        """The recipe of a run's ``config.json`` (or a file in the same form).

        ``train`` and ``data`` may be partial: missing training fields come from ``base_train``
        (default: the default recipe). Older run files carry the spec's training overrides inside
        ``model``; they are read and dropped (their ``train`` holds every field). To name a
        registered variant instead of writing its spec, use [`recipe_from_dict`][s6lab.models.recipe_from_dict].

        Raises:
            ConfigError: unknown keys or fields, or a malformed spec.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"a recipe is a JSON object with model, train and data; got {type(values).__name__}")
        known = {"model", "train", "data", "data_root"}
        unknown = sorted(set(values) - known - _RESOLVED_KEYS)
        if unknown:
            raise ConfigError(f"unknown recipe key(s) {', '.join(unknown)}; a recipe has {', '.join(sorted(known))}")
        model = values.get("model")
        if not isinstance(model, dict):
            raise ConfigError("the recipe's model is not a spec; give a spec as written in a run's config.json, or "
                              "name a registered variant through s6lab.models.recipe_from_dict")
        try:
            spec = spec_from_dict(model)
        except (KeyError, TypeError) as e:
            raise ConfigError(f"the recipe's model is not a spec ({type(e).__name__}: {e}); give a registered "
                              "name (\"model\": \"s6\") or a spec as written in a run's config.json") from None
        for part in ("train", "data"):
            if values.get(part) is not None and not isinstance(values[part], dict):
                raise ConfigError(f"the recipe's {part} is a JSON {type(values[part]).__name__}; give an object of "
                                  f"{'TrainConfig' if part == 'train' else 'DataSelection'} fields, as a run's "
                                  "config.json has it")
        data = dict(values.get("data") or {})
        if values.get("data_root") is not None:
            data["root"] = values["data_root"]
        base = cls(spec, base_train if base_train is not None else TrainConfig())
        train = without_retired(values.get("train") or {})
        if _RESOLVED_KEYS & set(values) and train.get("first_bn_from_patches") is None and (
                "patch_statistics" in values or "first_bn_from_patches" not in train):
            # a recorded run's config.json: pinned to what ran (older runs, without the field: the stock
            # BatchNorm), so that `--config` of a run trains that run on any machine
            train["first_bn_from_patches"] = recorded_patches(train, values.get("patch_statistics"), False)
        return merge(base, **train, **data)

    def differences(self, recorded: dict[str, Any], device: torch.device | None = None) -> list[str]:
        """The one "is this the same run?" rule, for a recorded run's ``config.json``.

        The architecture and the data sizes must match, and the training fields must match
        except the speed-only ones ([`SPEED_ONLY`][s6lab.train.SPEED_ONLY]); the precision is compared
        as resolved, so ``auto`` in bf16 there is the same recipe as ``bf16`` here. Where the
        images are read from (the data root) does not count.

        Returns:
            What differs, in words; empty when it is the same run.
        """
        differences = []
        try:
            spec = spec_from_dict({k: v for k, v in recorded.get("model", {}).items() if k != "train"})
        except (ConfigError, KeyError, TypeError):
            spec = None
        if spec is None or not same_architecture(spec, self.spec):
            differences.append(f"architecture (the layers of {self.spec.name!r} differ from the recorded ones)")
        sizes = {k: (recorded.get("data") or {}).get(k) for k in ("train_size", "test_size")}
        if sizes != self.data.sizes():
            differences.append(f"data selection ({sizes} recorded, {self.data.sizes()} asked for)")
        train = TrainConfig.from_dict(recorded.get("train", {}))  # fields added since then: their defaults
        device = device if device is not None else resolve_device(self.train.device)
        return differences + recipe_differences(train, recorded_precision(recorded), self.train, device,
                                                recorded_patches=self.patches_that_ran(recorded, device),
                                                wanted_patches=self.patch_statistics(device).on)


#: keys of config.json that record what ran, beside the recipe (not part of it)
_RESOLVED_KEYS = frozenset({"resolved", "precision", "precision_reason", "patch_statistics", "torch", "device",
                            "bf16", "machine", "machine_class", "platform", "threads", "trained_on"})


def same_architecture(a: NetSpec, b: NetSpec) -> bool:
    """Whether two specs build the same network (names and descriptions aside)."""
    def architecture(spec: NetSpec) -> tuple:
        return (spec.layers, spec.batchnorm, spec.in_channels, spec.image_size, spec.num_classes)

    return architecture(a) == architecture(b)


def recorded_precision(meta: dict[str, Any]) -> str:
    """The precision a recorded run actually trained in (``bf16`` or ``fp32``).

    Runs written before the resolved precision was recorded carry only the ``bf16`` flag.
    """
    if meta.get("precision") in ("bf16", "fp32"):
        return meta["precision"]
    return "bf16" if meta.get("bf16") else "fp32"


def merge(base: Recipe, *, train: TrainConfig | None = None, **overrides: Any) -> Recipe:
    """The one merge: ``base`` (a variant's own recipe), then ``train`` (replaces its training
    wholesale, if given), then ``overrides`` by name.

    Args:
        base: the recipe to start from.
        train: a whole training config to use instead of ``base.train``.
        **overrides: architecture overrides (``dropout``, ``batchnorm``, ... see
            [`apply_overrides`][s6lab.specs.apply_overrides]), ``TrainConfig`` fields (``seed``, ``epochs``,
            ...) and data fields (``root``, ``train_size``, ``test_size``).

    Raises:
        ConfigError: a name that is none of these (the message lists them), or an invalid value.

    Examples:
        >>> from s6lab import get_recipe
        >>> merge(get_recipe("s6"), dropout=0.05, epochs=2).train.epochs
        2
    """
    train_fields = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - train_fields - set(OVERRIDES) - set(DATA_FIELDS))
    if unknown:
        raise ConfigError(f"unknown recipe field(s) {', '.join(unknown)}; training: {', '.join(sorted(train_fields))}; "
                          f"architecture: {', '.join(OVERRIDES)}; data: {', '.join(DATA_FIELDS)}")
    spec_changes = {k: v for k, v in overrides.items() if k in OVERRIDES}
    train_changes = {k: v for k, v in overrides.items() if k in train_fields}
    data_changes = {k: v for k, v in overrides.items() if k in DATA_FIELDS}
    if "root" in data_changes and data_changes["root"] is not None:
        data_changes["root"] = str(data_changes["root"])
    base_train = train if train is not None else base.train
    return Recipe(
        apply_overrides(base.spec, **spec_changes) if spec_changes else base.spec,
        TrainConfig.from_dict({**base_train.to_dict(), **train_changes}) if train_changes else base_train,
        dataclasses.replace(base.data, **data_changes) if data_changes else base.data)
