"""``s6lab doctor``: what this machine is, and what to expect from it.

Versions, threads, the CPU and its capability, native bf16 or not, CUDA devices, the
MNIST root and whether its files verify, and a short measurement: the reference net's
training step with the default recipe timed for a few seconds, turned into an estimate
of seconds per epoch. Times in the docs were measured on other machines; this says what
*this* one does.

Examples:
    >>> report = diagnose(measure=False)
    >>> report.machine.cpu_capability != ""
    True
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .hardware import (
    AVX2_PREVIEW,
    CAPPED_LIBRARIES,
    MachineInfo,
    caps_text,
    isa_caps,
    machine_info,
    resolve_precision,
)
from .threads import thread_choice

#: packages whose versions decide what runs
PACKAGES = ("torch", "torchvision", "torchinfo", "captum", "matplotlib", "seaborn")


@dataclass(frozen=True)
class EpochEstimate:
    """Seconds per training epoch of the reference net, extrapolated from a short timing."""

    seconds_per_epoch: float  # 60k training images / measured rate + one evaluation pass
    train_images_per_second: float
    precision: str  # what the default recipe trains in here
    measured_seconds: float  # how long the timing took
    images_timed: int


@dataclass(frozen=True)
class DoctorReport:
    """Everything ``s6lab doctor`` prints."""

    versions: dict[str, str | None]  # package -> version (None: not installed)
    machine: MachineInfo
    precision: str  # what precision="auto" resolves to here
    precision_reason: str
    cuda_devices: list[str]
    data_root: str
    data_ok: bool
    data_problems: list[str]
    estimate: EpochEstimate | None  # None when not measured
    load_before: float | None = None  # 1-minute load average when the timing started (Unix only)
    cores: int | None = None
    threads: str | None = None  # how many threads and how OpenMP waits, and who chose (s6lab.threads)
    patch_statistics: str | None = None  # whether the default computes layer 1's BatchNorm from patch statistics here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def estimate_epoch_seconds(device: str | torch.device = "auto", budget_seconds: float = 8.0) -> EpochEstimate:
    """Time the default recipe's training step on the reference net, for about ``budget_seconds``.

    Uses random tensors shaped like MNIST (speed does not depend on the pixels), so it
    needs no data. One warm-up window, then windows of 10 batches until the budget is spent;
    the rate is the median window's. Evaluation is estimated from one pass over 2,000 images.

    Raises:
        ValueError: ``budget_seconds`` is not positive.
    """
    import statistics

    from .data import MNISTTensors, TensorSplit
    from .models import get_model
    from .train import TrainConfig, evaluate, fit, resolve_device

    if not budget_seconds > 0:
        raise ConfigError(f"budget_seconds must be > 0, got {budget_seconds}")
    device = resolve_device(device) if isinstance(device, str) else device
    config = TrainConfig(epochs=1, device=str(device))
    images = 10 * config.batch_size
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(images, 1, 28, 28, generator=generator),
                        torch.randint(0, 10, (images,), generator=generator))
    test = TensorSplit(torch.randn(2000, 1, 28, 28, generator=generator),
                       torch.randint(0, 10, (2000,), generator=generator))
    data = MNISTTensors(train, test.subset(config.eval_batch_size))
    model = get_model("s6")
    started = time.perf_counter()
    fit(model, data, config, progress=False)  # warm-up: allocator, oneDNN kernels
    rates = []
    while time.perf_counter() - started < budget_seconds or len(rates) < 2:
        record = fit(model, data, config, progress=False).epochs[0]
        rates.append(images / record.train_seconds)
        if len(rates) >= 50:
            break
    t = time.perf_counter()
    evaluate(model, test, batch_size=config.eval_batch_size, device=device)
    eval_seconds = (time.perf_counter() - t) * 10_000 / len(test)
    rate = statistics.median(rates)
    return EpochEstimate(60_000 / rate + eval_seconds, rate, resolve_precision(config.precision, device).precision,
                         time.perf_counter() - started, images * (len(rates) + 1))


def diagnose(*, root: str | Path | None = None, measure: bool = True, device: str = "auto",
             budget_seconds: float = 8.0) -> DoctorReport:
    """Collect the doctor's report (``measure=False`` skips the timing)."""
    from .data import raw_folder, verify
    from .models import get_recipe
    from .train import resolve_device

    dev = resolve_device(device)
    patches = get_recipe("s6").patch_statistics(dev)
    precision = resolve_precision("auto", dev)
    cuda = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    problems = verify(root)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return DoctorReport(
        versions=package_versions(), machine=machine_info(dev), precision=precision.precision,
        precision_reason=precision.reason, cuda_devices=cuda, data_root=str(raw_folder(root).parent.parent),
        data_ok=not problems, data_problems=problems,
        estimate=estimate_epoch_seconds(dev, budget_seconds) if measure else None,
        load_before=load, cores=os.cpu_count(), threads=thread_choice().describe(),
        patch_statistics=f"{'from patch statistics' if patches.on else 'stock'} ({patches.why})")


def format_doctor(report: DoctorReport) -> str:
    """The report as aligned text lines."""
    m = report.machine
    rows = [(name, version or "not installed") for name, version in report.versions.items()]
    rows += [
        ("device", f"{m.device} ({m.device_name})"),
        ("CPU", f"{m.cpu_model}, capability {m.cpu_capability}"),
        *([("instruction set", isa_cap_line(m))] if m.isa_caps or isa_caps() else []),
        ("native bf16", "yes" if m.native_bf16 else "no (bf16 would be emulated: slow)"),
        ("precision (auto)", f"{report.precision}: {report.precision_reason}"),
        ("threads", report.threads or str(m.threads)),
        ("layer 1's BatchNorm", report.patch_statistics or "not recorded"),
        ("CUDA devices", ", ".join(report.cuda_devices) or "none"),
        ("MNIST root", report.data_root),
        ("MNIST files", "verified (sha256)" if report.data_ok else
         f"not ready: {report.data_problems[0]} (run `s6lab data` to fetch and verify)"),
    ]
    e = report.estimate
    if e is not None:
        rows.append(("s/epoch estimate", f"about {duration(e.seconds_per_epoch)} per epoch of the reference net "
                                         f"({e.train_images_per_second:,.0f} train img/s, {e.precision}; "
                                         f"measured over {e.measured_seconds:.0f} s)"))
        rows.append(("default run", f"about {duration(e.seconds_per_epoch * _default_epochs())} for "
                                    f"`s6lab train` ({_default_epochs()} epochs), if nothing else is busy"))
        if report.load_before is not None and report.cores and report.load_before > 0.5:
            rows.append(("warning", f"other programs were busy (load {report.load_before:.1f} on {report.cores} "
                                    "cores): this estimate is slower than a quiet machine; close them and rerun"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def isa_cap_line(m: MachineInfo, caps_set: dict[str, str] | None = None) -> str:
    """What the instruction-set caps do here: which lower what this CPU offers (``m.isa_caps``), which are
    ignored and why, and what is missing for a preview of an AVX2 CPU (`s6lab.hardware.AVX2_PREVIEW`).

    Args:
        m: the machine, as `machine_info` describes it (its ``isa_caps`` are the effective ones).
        caps_set: every cap set in the environment (default: `isa_caps()`), effective or not.
    """
    caps_set = isa_caps() if caps_set is None else caps_set
    own = m.hardware_capability or "unknown"
    parts = [f"capped by {caps_text(m.isa_caps)} (this CPU's own level: {own})"
             if m.isa_caps else f"not capped (this CPU's own level: {own})"]
    for name, value in caps_set.items():
        if name in m.isa_caps:
            continue
        if name == "ATEN_CPU_CAPABILITY" and value != value.lower():
            why = f"torch reads it in lowercase ({value.lower()})"
        elif name == "DNNL_MAX_CPU_ISA" and "ONEDNN_MAX_CPU_ISA" in caps_set:
            why = "oneDNN reads ONEDNN_MAX_CPU_ISA instead"
        else:
            why = "it lowers nothing on this CPU"
        parts.append(f"{name}={value} is ignored: {why}")
    if m.isa_caps:
        capped = set(m.isa_caps) | ({"ONEDNN_MAX_CPU_ISA"} if "DNNL_MAX_CPU_ISA" in m.isa_caps else set())
        missing = [f"{name}={value} ({CAPPED_LIBRARIES[name]})" for name, value in AVX2_PREVIEW.items()
                   if name not in capped]
        parts.append(f"to preview an AVX2 CPU also set {', '.join(missing)}" if missing else
                     "numbers measured this way preview an AVX2 CPU; they are not measurements of one"
                     if m.cpu_capability == "AVX2" else "numbers measured this way are not this CPU's own")
    return "; ".join(parts)


def duration(seconds: float) -> str:
    """A time a learner reads at a glance: ``0.9 s``, ``26 s``, ``13 min``, ``1.5 h``.

    >>> [duration(s) for s in (0.92, 26.2, 59.6, 761, 5400)]
    ['0.9 s', '26 s', '60 s', '13 min', '1.5 h']
    """
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _default_epochs() -> int:
    from .train import TrainConfig

    return TrainConfig().epochs


def doctor_json(report: DoctorReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
