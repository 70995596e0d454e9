"""Run directories: what ``s6lab train`` writes and every analysis reads.

A run directory holds::

    config.json      model spec, training config, versions, device
    history.json     per-epoch history (rewritten atomically after every epoch)
    checkpoint.pt    model + optimizer + RNG state after the last finished epoch
    model.pt         final weights (state_dict), written when training ends
    check.md         the assignment check
    report.md        the run's report (see :mod:`s6lab.report`)

Every file is written atomically; ``resume=True`` continues an interrupted run and ends
with the same result as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_torch_save, atomic_write_text
from .data import MNISTTensors, load_mnist
from .models import get_spec
from .specs import Net, NetSpec, apply_overrides, build, spec_from_dict, spec_to_dict
from .train import EpochRecord, History, TrainConfig, fit, resolve_device, seed_everything, use_bf16

log = logging.getLogger(__name__)

CONFIG, HISTORY, CHECKPOINT, WEIGHTS = "config.json", "history.json", "checkpoint.pt", "model.pt"


class RunError(RuntimeError):
    """A run directory is missing, incomplete or does not match what was asked."""


@dataclass
class Run:
    """A finished (or partial) run loaded from disk."""

    path: Path
    spec: NetSpec
    config: TrainConfig
    history: History
    model: Net  # with the final weights (or the last checkpoint's, if unfinished)
    finished: bool
    meta: dict[str, Any]


def resolve_spec(model: str | NetSpec, **overrides: Any) -> NetSpec:
    """A registered name or a spec, with overrides applied."""
    spec = get_spec(model) if isinstance(model, str) else model
    return apply_overrides(spec, **overrides) if overrides else spec


def train_run(
    model: str | NetSpec,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    data: MNISTTensors | None = None,
    data_root: str | Path | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    progress: bool = True,
    write_report: bool = True,
    **overrides: Any,
) -> Run:
    """Train a registered model (or a spec) into a run directory.

    The model is initialised from ``config.seed``; the spec's own training overrides
    (``spec.train``) apply unless ``config`` is given explicitly.

    Args:
        model: registry name or :class:`NetSpec`.
        out: the run directory (created).
        config: training config; ``None`` means defaults plus the spec's ``train``.
        resume: continue an interrupted run in ``out``.
        data: preloaded tensors; ``None`` loads MNIST from ``data_root``.
        data_root: MNIST root (see :func:`s6lab.data.default_root`).
        train_size: train on the first ``train_size`` images only (quick runs).
        test_size: evaluate on the first ``test_size`` test images only (quick runs).
        progress: tqdm bars.
        write_report: write ``report.md`` and its figures at the end.
        **overrides: model overrides (``dropout=0.05``, ...).

    Returns:
        The finished :class:`Run`.

    Raises:
        RunError: ``out`` already holds a different run, or holds one and ``resume`` is off.
    """
    spec = resolve_spec(model, **overrides)
    if config is None:
        config = TrainConfig.from_dict({**TrainConfig().to_dict(), **spec.train})
    out = Path(out)
    device = resolve_device(config.device)
    meta = {
        "model": spec_to_dict(spec), "train": config.to_dict(),
        "torch": torch.__version__, "device": str(device), "bf16": use_bf16(config, device),
        "platform": platform.platform(), "threads": torch.get_num_threads(),
        "data": {"train_size": train_size, "test_size": test_size},
    }
    existing = out / CONFIG
    if existing.exists():
        if not resume:
            raise RunError(f"{out} already holds a run; pass --resume (resume=True) to continue it, "
                           "or choose another --out")
        old = json.loads(existing.read_text())
        # fill fields added since the run was written with their defaults before comparing
        old["train"] = TrainConfig.from_dict(old.get("train", {})).to_dict()
        for key in ("model", "train", "data"):
            if old.get(key) != meta[key]:
                raise RunError(f"cannot resume {out}: its {key} settings differ from the ones given; "
                               "repeat the original command with --resume, or choose another --out")
    atomic_write_text(out / CONFIG, json.dumps(meta, indent=2))

    seed_everything(config.seed)
    net = build(spec)
    if data is None:
        data = load_mnist(data_root, train_size=train_size, test_size=test_size)

    # history.json is rewritten after every epoch, so a killed run leaves a readable one
    records: list[EpochRecord] = []

    def on_epoch(record: EpochRecord, _: Any) -> None:
        records.append(record)
        atomic_write_text(out / HISTORY, History(records).to_json())

    if resume and (out / CHECKPOINT).exists():
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
        records.extend(History.from_json(state["history"]).epochs)
    history = fit(net, data, config, checkpoint=out / CHECKPOINT, resume=resume,
                  progress=progress, on_epoch=on_epoch)
    atomic_write_text(out / HISTORY, history.to_json())
    atomic_torch_save(net.state_dict(), out / WEIGHTS)
    run = load_run(out)
    if write_report:
        from .report import write_report as _write_report

        _write_report(run)
    return run


def load_run(path: str | Path, *, device: str = "cpu") -> Run:
    """Load a run directory: spec, config, history and the model with its weights.

    Raises:
        RunError: the directory, its config or its weights are missing, or the weights
            belong to another architecture. The message says what to do.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory; train one with `s6lab train --out {path}`")
    if not (path / CONFIG).exists():
        raise RunError(f"{path} has no {CONFIG}; it is not a run directory written by `s6lab train`")
    meta = json.loads((path / CONFIG).read_text())
    spec = spec_from_dict(meta["model"])
    config = TrainConfig.from_dict(meta["train"])
    history = History.from_json((path / HISTORY).read_text()) if (path / HISTORY).exists() else History()
    model = build(spec)
    finished = (path / WEIGHTS).exists()
    if finished:
        weights = torch.load(path / WEIGHTS, map_location=device, weights_only=True)
    elif (path / CHECKPOINT).exists():
        weights = torch.load(path / CHECKPOINT, map_location=device, weights_only=True)["model"]
    else:
        raise RunError(f"{path} has no {WEIGHTS} or {CHECKPOINT}: the run never finished an epoch; "
                       f"train it with `s6lab train --model {spec.name} --out {path} --resume`")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise RunError(f"the weights in {path} do not fit the architecture {spec.name!r} in its "
                       f"{CONFIG} ({first[1].strip() if len(first) > 1 else first[0]}); "
                       "the checkpoint belongs to another model") from None
    model.eval()
    return Run(path, spec, config, history, model, finished, meta)
