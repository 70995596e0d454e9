"""Run directories: what ``s6lab train`` writes and every analysis reads.

A run directory holds::

    config.json      the recipe (model spec, training config, data selection and root), and what
                     ran: the precision as resolved, the machine, the versions
    history.json     per-epoch history (rewritten atomically after every epoch)
    checkpoint.pt    model + optimizer + RNG state after the last finished epoch
    model.pt         final weights (state_dict), written when training ends

``check.md``, ``report.md`` and their figures are added by [`report`][s6lab.report] when asked
(``s6lab train`` and ``s6lab report`` do); this module only reads and writes the run's files.

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
from .data import MNISTTensors
from .errors import ConfigError
from .hardware import caps_text, command_prefix, machine_info, native_bf16
from .models import get_recipe, get_spec
from .recipe import Recipe, recorded_precision, same_architecture
from .specs import Net, NetSpec, build
from .train import EpochRecord, History, TrainConfig, checkpoint_weights, fit

log = logging.getLogger(__name__)

CONFIG, HISTORY, CHECKPOINT, WEIGHTS = "config.json", "history.json", "checkpoint.pt", "model.pt"
LOCK = ".lock"  # held by the process training into the directory


class RunError(RuntimeError):
    """A run directory is missing, incomplete or does not match what was asked."""


@dataclass
class Run:
    """A finished (or partial) run loaded from disk."""

    path: Path
    recipe: Recipe  # what decided it, as recorded in config.json
    history: History
    model: Net  # with the final weights (or the last checkpoint's, if unfinished)
    finished: bool
    meta: dict[str, Any]  # config.json: the recipe plus what ran (precision, machine, versions)

    @property
    def spec(self) -> NetSpec:
        return self.recipe.spec

    @property
    def config(self) -> TrainConfig:
        return self.recipe.train


def read_json(path: Path) -> Any:
    """A run file's JSON, or a `RunError` that names the file and what is wrong."""
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
        fix = ("delete it and train the run again (the checkpoint is what --resume continues from)"
               if path.name == CHECKPOINT else "delete it and resume from the run's checkpoint, or train the run again")
        raise RunError(f"{path} cannot be loaded as s6lab weights ({kind}: the file is truncated, damaged or not "
                       f"written by s6lab); {fix}") from None


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


def run_dir(out: str | Path, variant: str, seed: int, epochs: int, train_size: int | None = None) -> Path:
    """The one run-directory layout, ``OUT/runs/VARIANT/eEPOCHS-sSEED`` (``-nN`` for a training subset):
    where ``s6lab train`` writes by default (``OUT`` is the current folder) and ``compare`` keeps its runs,
    so a comparison into the same folder reuses a run trained on its own.

    Examples:
        >>> run_dir(".", "s6", 0, 18).as_posix()
        'runs/s6/e18-s0'
    """
    subset = f"-n{train_size}" if train_size else ""
    return Path(out) / "runs" / variant / f"e{epochs}-s{seed}{subset}"


def _wrong_fields(path: Path, error: Exception) -> RunError:
    """The refusal of a run directory whose config.json or history.json has missing or wrong fields."""
    return RunError(f"{path} holds a {CONFIG} or {HISTORY} with missing or wrong fields ({type(error).__name__}: "
                    f"{error}); it was not written by this s6lab: delete the directory and train again")


def recorded_in_full(path: Path) -> bool:
    """A run directory whose history has every epoch its config asked for (weights or not).

    Raises:
        RunError: config.json or history.json is damaged (named, with the fix).
    """
    if not (path / CONFIG).exists() or not (path / HISTORY).exists():
        return False
    meta, history = read_json(path / CONFIG), read_json(path / HISTORY)
    try:
        epochs = TrainConfig.from_dict(meta["train"]).epochs
        return len(history) == epochs
    except (KeyError, TypeError, AttributeError) as e:
        raise _wrong_fields(path, e) from None


def train_run(
    model: str | NetSpec | Recipe,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    data: MNISTTensors | None = None,
    progress: bool = True,
    **overrides: Any,
) -> Run:
    """Train a recipe into a run directory: ``config.json`` first, then ``history.json`` after
    every epoch, the checkpoint, and the final weights. The report is not written here: ask for
    it with [`write_report`][s6lab.report.write_report] (``s6lab train`` does).

    Args:
        model: a registered name, a spec or a [`Recipe`][s6lab.recipe.Recipe]; a name trains the
            variant's own recipe (see [`get_recipe`][s6lab.models.get_recipe]).
        out: the run directory (created).
        config: a whole training config instead of the variant's own.
        resume: continue an interrupted run in ``out``.
        data: preloaded tensors matching the recipe's data selection; ``None`` loads them.
        progress: tqdm bars and one line per epoch.
        **overrides: recipe overrides by name: architecture (``dropout=0.05``), training
            (``seed=3``) and data (``root=...``, ``train_size=2000``, ``test_size=500``).

    Returns:
        The finished `Run`.

    Raises:
        RunError: ``out`` already holds a different run, or holds one and ``resume`` is off.
    """
    recipe = get_recipe(model, train=config, **overrides)
    spec = recipe.spec
    for name, needed in (("in_channels", 1), ("num_classes", 10), ("image_size", 28)):
        if getattr(spec, name) != needed:  # MNIST: 1 x 28 x 28 images of 10 digits
            raise RunError(f"{spec.name!r} has {name}={getattr(spec, name)}, but MNIST needs {name}={needed}; "
                           f"drop --set {name}=... (or pass {name}={needed})")
    out = Path(out)
    resolved = recipe.resolve()
    machine = machine_info(resolved.device)
    meta = {
        **recipe.to_dict(),
        "precision": resolved.precision.precision,  # what ran: "auto" resolves differently per machine
        "precision_reason": resolved.precision.reason,
        "patch_statistics": resolved.patches.on,  # layer 1's BatchNorm from patch statistics (auto: CPU only)
        "torch": torch.__version__, "device": str(resolved.device), "bf16": resolved.precision.precision == "bf16",
        "machine": machine.to_dict(), "machine_class": machine.machine_class,
        "platform": platform.platform(), "threads": torch.get_num_threads(),
    }
    meta["trained_on"] = [{k: meta[k] for k in ("machine_class", "threads", "torch")}]  # grows on resume
    with run_lock(out):
        return _train_locked(recipe, out, meta, resolved.device, resume=resume, data=data, progress=progress)


def _train_locked(recipe: Recipe, out: Path, meta: dict[str, Any], device: torch.device, *, resume: bool,
                  data: MNISTTensors | None, progress: bool) -> Run:
    """`train_run` while holding the run directory's lock."""
    existing = out / CONFIG
    old = read_json(existing) if existing.exists() else None
    if old is not None and not isinstance(old, dict):
        raise RunError(f"{existing} holds no s6lab run settings (a JSON {type(old).__name__}); the run directory is "
                       "damaged: delete it, or choose another --out")
    if resume and old is not None:  # keep where earlier parts of the run trained (threads, machine)
        before = old.get("trained_on") or [{k: old.get(k) for k in ("machine_class", "threads", "torch")}]
        now = {k: meta[k] for k in ("machine_class", "threads", "torch")}
        meta["trained_on"] = before + ([now] if now != before[-1] else [])
    # a run that failed before its first epoch left only config.json: nothing to keep, so no refusal
    started = (out / HISTORY).exists() or (out / CHECKPOINT).exists() or (out / WEIGHTS).exists()
    if old is not None and started:
        if not resume:
            raise RunError(f"{out} already holds a run; add --resume to continue it, or choose another --out")
        changed = recipe.differences(old, device)
        if changed:
            original = train_command(_recipe_of(old), old, out, resume=True)
            raise RunError(f"cannot resume {out}: its train settings differ from the ones given "
                           f"({', '.join(changed)}); repeat the original command (`{original}`), "
                           "or choose another --out")
    atomic_write_text(out / CONFIG, json.dumps(meta, indent=2))

    net = recipe.build()
    if data is None:
        data = recipe.data.load()

    def on_epoch(history: History, _: Any) -> None:  # a killed run leaves a readable history
        atomic_write_text(out / HISTORY, history.to_json())

    history = fit(net, data, recipe.train, checkpoint=out / CHECKPOINT, resume=resume,
                  progress=progress, on_epoch=on_epoch, label=f"{recipe.name} seed {recipe.train.seed}")
    atomic_write_text(out / HISTORY, history.to_json())
    atomic_torch_save(net.state_dict(), out / WEIGHTS)
    lowered = [e.fewest_threads for e in history.epochs if e.fewest_threads is not None]
    if lowered:  # other programs kept a core busy: the machine line says the fewer threads too
        meta["trained_on"][-1]["fewest_threads"] = min(lowered)
        atomic_write_text(out / CONFIG, json.dumps(meta, indent=2))
    return load_run(out)


def _recipe_of(meta: dict[str, Any]) -> Recipe:
    """The recipe recorded in a run's config.json, or a `RunError` naming what is wrong."""
    try:
        return Recipe.from_dict(meta)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise RunError(f"its {CONFIG} has missing or wrong fields ({e}); it was not written by this s6lab: "
                       "delete the directory and train again") from None


def machine_line(meta: dict[str, Any]) -> str:
    """Where a recorded run trained, in one line (older runs recorded less)."""
    m = meta.get("machine")
    if not m:
        return (f"device {meta.get('device')}, {meta.get('threads')} threads, torch {meta.get('torch')} "
                "(CPU model and capability not recorded by this older run)")
    parts = meta.get("trained_on", [])
    counts = sorted({m["threads"], *(t.get("threads", m["threads"]) for t in parts),
                     *(t["fewest_threads"] for t in parts if t.get("fewest_threads"))})
    threads = f"{counts[0]}-{counts[-1]} threads" if len(counts) > 1 else \
        f"{counts[0]} thread{'' if counts[0] == 1 else 's'}"
    # a run resumed under another torch names each, in the order they trained it
    versions = " then ".join(dict.fromkeys([*(t["torch"] for t in parts if t.get("torch")), m["torch"]]))
    if str(m["device"]).startswith("cuda"):  # the class names the GPU; the threads are the host CPU's
        return f"{meta.get('machine_class')}, host CPU {m['cpu_model']} ({threads}), torch {versions}"
    caps = caps_text(m.get("isa_caps") or {})
    return f"{m['cpu_model']} ({meta.get('machine_class')}{': ' + caps if caps else ''}), {threads}, torch {versions}"


def reproduce_command(run: Run, *, resume: bool = False) -> str:
    """The ``s6lab train`` command that trains this exact run again.

    Every recipe field that differs from the variant's own recipe is spelled out, and the
    precision is pinned to what ran, so the command means the same recipe on any machine. A
    net that is not a registered variant (or was changed with ``--set``) is named by its
    ``config.json`` (``--config``).
    """
    return train_command(run.recipe, run.meta, run.path, resume=resume)


def train_command(recipe: Recipe, meta: dict[str, Any], path: Path, *, resume: bool = False) -> str:
    """See `reproduce_command`; works from a run's recorded files alone."""
    import shlex

    from .models import list_models

    registered = recipe.name in list_models() and same_architecture(get_spec(recipe.name), recipe.spec)
    base = get_recipe(recipe.name) if registered else None
    parts = ["s6lab", "train"] + (["--model", recipe.name] if base is not None else
                                  ["--config", str(Path(path) / CONFIG)])
    defaults = (base.train if base is not None else recipe.train).to_dict()
    for key, value in recipe.train.to_dict().items():
        if key == "precision":
            value = recorded_precision(meta)
        elif key == "first_bn_from_patches":  # pinned to what ran, as the precision is (auto differs per device)
            value = recipe.patches_that_ran(meta, torch.device(meta.get("device") or "cpu"))
            if value == defaults[key]:
                continue
        elif value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            parts += [flag, str(value)]
    for key, value in recipe.data.sizes().items():
        if value and base is not None:
            parts += ["--" + key.replace("_", "-"), str(value)]
    parts += ["--out", str(path)] + (["--resume"] if resume else [])
    caps = (meta.get("machine") or {}).get("isa_caps") or {}  # trained capped (an AVX2 preview): the same kernels
    return command_prefix(caps) + shlex.join(parts)


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
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} is a file, not a run directory; give the folder that `s6lab train --out` wrote")
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory; train one with `s6lab train --out {path}`")
    if not (path / CONFIG).exists():
        raise RunError(f"{path} has no {CONFIG}; it is not a run directory written by `s6lab train`")
    meta = read_json(path / CONFIG)
    try:
        recipe = Recipe.from_dict(meta)
        history = History([EpochRecord(**row) for row in read_json(path / HISTORY)]) \
            if (path / HISTORY).exists() else History()
        model = build(recipe.spec)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise _wrong_fields(path, e) from None
    for record in history.epochs:
        for name in ("train_acc", "test_acc"):
            value = getattr(record, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 100):  # nan fails both comparisons
                raise RunError(f"{path / HISTORY} holds {name}={value!r} at epoch {record.epoch}, not a percentage; "
                               "the run's record is damaged: delete the directory and train again")
    finished = (path / WEIGHTS).exists()
    if not history and (finished or (path / CHECKPOINT).exists()):  # weights with no record of how they came
        rebuild = ("rebuilds it from the checkpoint" if (path / CHECKPOINT).exists()
                   else "trains the run again from the start (there is no checkpoint)")
        raise RunError(f"{path} holds weights but its {HISTORY} is missing or empty; the run's record is damaged: "
                       f"`{train_command(recipe, meta, path, resume=True)}` {rebuild}, or delete the directory and "
                       "train again")
    if finished:
        weights = read_tensors(path / WEIGHTS, device)
    elif (path / CHECKPOINT).exists():
        try:
            weights = checkpoint_weights(read_tensors(path / CHECKPOINT, device))
        except ConfigError as e:
            raise RunError(f"{path / CHECKPOINT}: {e}; delete it and train the run again") from None
    elif not need_weights:
        return Run(path, recipe, history, model.eval(), len(history) == recipe.train.epochs, meta)
    elif len(history) == recipe.train.epochs:
        command = train_command(recipe, meta, path, resume=True)
        native = recorded_precision(meta) == "fp32" or native_bf16(torch.device("cpu"))
        raise RunError(f"{path} is a recorded run: its {CONFIG} and {HISTORY} are here, but weights are not "
                       f"committed; retrain this exact run with `{command}`"
                       + ("" if native else " (it trained in bf16, which this CPU only emulates: slow)"))
    else:
        raise RunError(f"{path} has no {WEIGHTS} or {CHECKPOINT}: the run never finished an epoch; "
                       f"train it with `{train_command(recipe, meta, path, resume=True)}`")
    if not isinstance(weights, dict):
        raise RunError(f"{path / WEIGHTS} holds a {type(weights).__name__}, not a model's state dict; it was not "
                       "written by s6lab: delete it and resume from the run's checkpoint, or train the run again")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise RunError(f"the weights in {path} do not fit the architecture {recipe.name!r} in its "
                       f"{CONFIG} ({first[1].strip() if len(first) > 1 else first[0]}); "
                       "the checkpoint belongs to another model") from None
    model.eval()
    return Run(path, recipe, history, model, finished, meta)
