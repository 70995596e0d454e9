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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_torch_save, atomic_write_text
from .data import MNISTTensors, default_root, load_mnist
from .hardware import machine_info, native_bf16, resolve_precision
from .models import get_recipe, get_spec
from .specs import Net, NetSpec, apply_overrides, build, spec_from_dict, spec_to_dict
from .train import EpochRecord, History, TrainConfig, fit, recipe_differences, resolve_device, seed_everything

log = logging.getLogger(__name__)

CONFIG, HISTORY, CHECKPOINT, WEIGHTS = "config.json", "history.json", "checkpoint.pt", "model.pt"
LOCK = ".lock"  # held by the process training into the directory


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


def read_json(path: Path) -> Any:
    """A run file's JSON, or a :class:`RunError` that names the file and what is wrong."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the run directory is damaged: "
                       "delete it and train again, or restore the file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"cannot read {path} ({e}); check its permissions, or delete the run directory and "
                       "train again") from None


def read_tensors(path: Path, device: str = "cpu") -> Any:
    """``torch.load`` of a run's weights or checkpoint with ``weights_only=True`` (never unpickles code).

    Raises:
        RunError: the file is truncated, not a PyTorch file, or holds more than tensors.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        kind = type(e).__name__
        raise RunError(f"{path} cannot be loaded as s6lab weights ({kind}: the file is truncated, damaged or not "
                       "written by s6lab); delete it and resume from the run's checkpoint, or train the run "
                       "again") from None


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold an OS lock on the run directory ``out`` (created), so two processes never train into it.

    Raises:
        RunError: ``out`` is a file, or another process holds the lock.
    """
    from filelock import FileLock, Timeout

    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a directory; choose a directory for the run")
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunError(f"{out} is being trained by another s6lab process right now; wait for it to finish "
                       "(then add --resume), or choose another --out") from None
    try:
        yield
    finally:
        lock.release()


def recorded_in_full(path: Path) -> bool:
    """A run directory whose history has every epoch its config asked for (weights or not).

    Raises:
        RunError: config.json or history.json is damaged (named, with the fix).
    """
    if not (path / CONFIG).exists() or not (path / HISTORY).exists():
        return False
    epochs = TrainConfig.from_dict(read_json(path / CONFIG)["train"]).epochs
    return len(read_json(path / HISTORY)) == epochs


def run_differences(meta: dict[str, Any], spec: NetSpec, config: TrainConfig, data: dict[str, Any],
                    device: torch.device) -> list[str]:
    """Whether a recorded run is the run asked for: the architecture, the data selection and the recipe
    (:func:`s6lab.train.recipe_differences`: speed-only fields ignored, precision compared as resolved).

    Returns:
        What differs, in words; empty when it is the same run.
    """
    differences = []
    if meta.get("model") != spec_to_dict(spec):
        differences.append(f"architecture (the layers of {spec.name!r} differ from the recorded ones)")
    if (meta.get("data") or {}) != data:
        differences.append(f"data selection ({meta.get('data')} recorded, {data} asked for)")
    recorded = TrainConfig.from_dict(meta.get("train", {}))  # fields added since then: their defaults
    return differences + recipe_differences(recorded, recorded_precision(meta), config, device)


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
    for name, needed in (("in_channels", 1), ("num_classes", 10), ("image_size", 28)):
        if getattr(spec, name) != needed:  # MNIST: 1 x 28 x 28 images of 10 digits
            raise RunError(f"{spec.name!r} has {name}={getattr(spec, name)}, but MNIST needs {name}={needed}; "
                           f"drop --set {name}=... (or pass {name}={needed})")
    if config is None:
        config = get_recipe(spec)
    out = Path(out)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    machine = machine_info(device)
    meta = {
        "model": spec_to_dict(spec), "train": config.to_dict(),
        "precision": precision.precision,  # what ran: "auto" resolves differently per machine
        "precision_reason": precision.reason,
        "torch": torch.__version__, "device": str(device), "bf16": precision.precision == "bf16",
        "machine": machine.to_dict(), "machine_class": machine.machine_class,
        "platform": platform.platform(), "threads": torch.get_num_threads(),
        "data": {"train_size": train_size, "test_size": test_size},
        "data_root": str(Path(data_root).expanduser() if data_root is not None else default_root()),
    }
    meta["trained_on"] = [{k: meta[k] for k in ("machine_class", "threads", "torch")}]  # grows on resume
    with run_lock(out):
        return _train_locked(spec, out, config, meta, device, resume=resume, data=data, data_root=data_root,
                             train_size=train_size, test_size=test_size, progress=progress,
                             write_report=write_report)


def _train_locked(spec: NetSpec, out: Path, config: TrainConfig, meta: dict[str, Any], device: torch.device, *,
                  resume: bool, data: MNISTTensors | None, data_root: str | Path | None, train_size: int | None,
                  test_size: int | None, progress: bool, write_report: bool) -> Run:
    """:func:`train_run` while holding the run directory's lock."""
    existing = out / CONFIG
    old = read_json(existing) if existing.exists() else None
    if resume and old is not None:  # keep where earlier parts of the run trained (threads, machine)
        before = old.get("trained_on") or [{k: old.get(k) for k in ("machine_class", "threads", "torch")}]
        now = {k: meta[k] for k in ("machine_class", "threads", "torch")}
        meta["trained_on"] = before + ([now] if now != before[-1] else [])
    # a run that failed before its first epoch left only config.json: nothing to keep, so no refusal
    started = (out / HISTORY).exists() or (out / CHECKPOINT).exists() or (out / WEIGHTS).exists()
    if old is not None and started:
        if not resume:
            raise RunError(f"{out} already holds a run; pass --resume (resume=True) to continue it, "
                           "or choose another --out")
        changed = run_differences(old, spec, config, meta["data"], device)
        if changed:
            original = train_command(spec.name, TrainConfig.from_dict(old.get("train", {})), old, out, resume=True)
            raise RunError(f"cannot resume {out}: its train settings differ from the ones given "
                           f"({', '.join(changed)}); repeat the original command (`{original}`), "
                           "or choose another --out")
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
        state = read_tensors(out / CHECKPOINT)
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


def recorded_precision(meta: dict[str, Any]) -> str:
    """The precision a recorded run actually trained in (``bf16`` or ``fp32``).

    Runs written before the resolved precision was recorded carry only the ``bf16`` flag.
    """
    if meta.get("precision") in ("bf16", "fp32"):
        return meta["precision"]
    return "bf16" if meta.get("bf16") else "fp32"


def machine_line(meta: dict[str, Any]) -> str:
    """Where a recorded run trained, in one line (older runs recorded less)."""
    m = meta.get("machine")
    if not m:
        return (f"device {meta.get('device')}, {meta.get('threads')} threads, torch {meta.get('torch')} "
                "(CPU model and capability not recorded by this older run)")
    name = m["device_name"] if str(m["device"]).startswith("cuda") else m["cpu_model"]
    return f"{name} ({meta.get('machine_class')}), {m['threads']} threads, torch {m['torch']}"


def reproduce_command(run: Run, *, resume: bool = False) -> str:
    """The ``s6lab train`` command that trains this exact run again.

    Every recipe field that differs from today's defaults is spelled out, and the precision
    is pinned to what ran, so the command means the same recipe on any machine.
    """
    return train_command(run.spec.name, run.config, run.meta, run.path, resume=resume)


def train_command(model: str, config: TrainConfig, meta: dict[str, Any], path: Path, *,
                  resume: bool = False) -> str:
    """See :func:`reproduce_command`; works from a run's recorded files alone."""
    import shlex

    defaults = TrainConfig().to_dict()
    parts = ["s6lab", "train", "--model", model]
    for key, value in config.to_dict().items():
        if key == "precision":
            value = recorded_precision(meta)
        elif value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            parts += [flag, str(value)]
    for key, value in (meta.get("data") or {}).items():
        if value:
            parts += ["--" + key.replace("_", "-"), str(value)]
    parts += ["--out", str(path)] + (["--resume"] if resume else [])
    return shlex.join(parts)


def load_run(path: str | Path, *, device: str = "cpu", need_weights: bool = True) -> Run:
    """Load a run directory: spec, config, history and the model with its weights.

    Args:
        path: the run directory.
        device: where to load the weights.
        need_weights: ``False`` accepts a directory with only config.json and history.json
            (a recorded run in a fresh clone: weights are not committed). The model is then
            the recorded architecture, untrained, and the run counts as finished when its
            history has every epoch: enough for the assignment check, not for predictions.

    Raises:
        RunError: the directory, its config or its weights are missing, or the weights
            belong to another architecture. The message says what to do.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory; train one with `s6lab train --out {path}`")
    if not (path / CONFIG).exists():
        raise RunError(f"{path} has no {CONFIG}; it is not a run directory written by `s6lab train`")
    meta = read_json(path / CONFIG)
    try:
        spec = spec_from_dict(meta["model"])
        config = TrainConfig.from_dict(meta["train"])
        history = History([EpochRecord(**row) for row in read_json(path / HISTORY)]) \
            if (path / HISTORY).exists() else History()
        model = build(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{path} holds a {CONFIG} or {HISTORY} with missing or wrong fields ({type(e).__name__}: "
                       f"{e}); it was not written by this s6lab: delete the directory and train again") from None
    finished = (path / WEIGHTS).exists()
    if finished:
        weights = read_tensors(path / WEIGHTS, device)
    elif (path / CHECKPOINT).exists():
        weights = read_tensors(path / CHECKPOINT, device)["model"]
    elif not need_weights:
        return Run(path, spec, config, history, model.eval(), len(history) == config.epochs, meta)
    elif len(history) == config.epochs:
        command = train_command(spec.name, config, meta, path, resume=True)
        native = recorded_precision(meta) == "fp32" or native_bf16(torch.device("cpu"))
        raise RunError(f"{path} is a recorded run: its {CONFIG} and {HISTORY} are here, but weights are not "
                       f"committed; retrain this exact run with `{command}`"
                       + ("" if native else " (it trained in bf16, which this CPU only emulates: slow)"))
    else:
        raise RunError(f"{path} has no {WEIGHTS} or {CHECKPOINT}: the run never finished an epoch; "
                       f"train it with `{train_command(spec.name, config, meta, path, resume=True)}`")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise RunError(f"the weights in {path} do not fit the architecture {spec.name!r} in its "
                       f"{CONFIG} ({first[1].strip() if len(first) > 1 else first[0]}); "
                       "the checkpoint belongs to another model") from None
    model.eval()
    return Run(path, spec, config, history, model, finished, meta)
