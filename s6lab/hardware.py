"""What machine is this? The CPU model and capability, bf16 support, threads, the GPU.

Every time and every precision s6lab reports depends on the machine: an AVX-512 CPU with
native bf16 trains the reference net 3-4x faster than an AVX2 CPU without it, and the
precision that ``precision="auto"`` picks differs between them. This module answers the
questions once, so that ``fit``, ``s6lab train``, ``s6lab doctor``, run directories and
benchmarks all say the same thing.

Examples:
    >>> import torch
    >>> p = resolve_precision("fp32", torch.device("cpu"))
    >>> p.precision, p.reason
    ('fp32', 'fp32 was asked for')
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import torch

from .errors import ConfigError


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_capability() -> str:
    """The SIMD level torch dispatches to: ``AVX2``, ``AVX512``, ``AMX``, ``DEFAULT``, ...
    (lower than the CPU's own where ``ATEN_CPU_CAPABILITY`` caps it, see `isa_caps`)."""
    cpu = getattr(torch.backends, "cpu", None)
    return cpu.get_cpu_capability() if cpu is not None else "unknown"


# the environment variables that cap the instruction set: ATen's vectorised kernels (BatchNorm, ReLU, pooling,
# the optimizer), oneDNN's (the convolutions) and MKL's (the matmuls). Each is read once, when torch first uses it.
ISA_CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
# what previews an AVX2 CPU without bf16 on a bigger one: all three libraries capped
AVX2_PREVIEW = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def isa_caps() -> dict[str, str]:
    """The instruction-set caps set in this process's environment, e.g. `AVX2_PREVIEW`'s
    ``{"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}``: how an
    AVX-512 machine previews an AVX2 laptop (all three: ATen's kernels, oneDNN's convolutions, MKL's matmuls).
    Empty when none is set."""
    return {name: os.environ[name].strip() for name in ISA_CAP_VARIABLES if os.environ.get(name, "").strip()}


def command_prefix() -> str:
    """The environment settings that change what a benchmark measures here, as a shell prefix for the
    command a result file records (``"ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "``), so the command
    reproduces it; ``""`` when none is set.

    Examples:
        >>> import os
        >>> os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        >>> command_prefix()
        'ONEDNN_MAX_CPU_ISA=AVX2 '
        >>> del os.environ["ONEDNN_MAX_CPU_ISA"]
    """
    settings = dict(isa_caps())
    if os.environ.get("S6LAB_NATIVE_BF16", "").strip() == "0":
        settings["S6LAB_NATIVE_BF16"] = "0"
    return "".join(f"{name}={value} " for name, value in settings.items())


@lru_cache(maxsize=1)
def hardware_capability() -> str | None:
    """The SIMD level this CPU itself offers, from ``/proc/cpuinfo``'s flags, named as torch names it
    (``AVX512``, ``AVX2``, ``DEFAULT``), whatever `isa_caps` set; None where the flags cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if not flags:
        return None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512"
    return "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT"


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively here (AVX-512 bf16 / AMX on a CPU, bf16 support on CUDA).

    Without it, bf16 is emulated: correct, but many times slower than fp32. Setting the
    environment variable ``S6LAB_NATIVE_BF16=0`` makes s6lab treat this machine as one
    without native bf16 (``auto`` then trains in fp32, benchmarks skip bf16): how the
    tests check the AVX2 path on an AVX-512 machine, and a way to get fp32 everywhere.
    """
    if os.environ.get("S6LAB_NATIVE_BF16", "").strip() == "0":
        return False
    if device.type == "cuda":
        # native only: a T4 (sm_75) "supports" bf16 by emulation, which is slower than fp32 there
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch without the argument
            return torch.cuda.get_device_capability(device)[0] >= 8
    is_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    onednn = isa_caps().get("ONEDNN_MAX_CPU_ISA") or isa_caps().get("DNNL_MAX_CPU_ISA")
    if onednn and not any(part in onednn.upper() for part in ("BF16", "FP16", "AMX", "AVX10", "ALL")):
        return False  # convolutions capped below AVX-512 bf16 (ONEDNN_MAX_CPU_ISA=AVX2): bf16 would not be native
    return cpu_capability() in ("AVX512", "AMX") and bool(is_bf16())


@dataclass(frozen=True)
class Precision:
    """The precision a run trains in, and why."""

    precision: str  # "bf16" or "fp32": what actually runs, never "auto"
    reason: str  # one clause a user can read, e.g. "this CPU has no native bf16"
    emulated: bool = False  # bf16 asked for where it is not native: correct but slow


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """Turn ``auto`` | ``bf16`` | ``fp32`` into what runs on ``device``.

    Raises:
        ValueError: an unknown precision.
    """
    native = native_bf16(device)
    capped = ", capped" if isa_caps() else ""
    where = "this GPU" if device.type == "cuda" else f"this CPU ({cpu_capability()}{capped})"
    if requested == "auto":
        if native:
            return Precision("bf16", f"{where} has native bf16: bf16 autocast (auto)")
        return Precision("fp32", f"{where} has no native bf16: training in fp32 (auto)")
    if requested == "bf16":
        if native:
            return Precision("bf16", "bf16 was asked for")
        return Precision("bf16", f"bf16 was asked for, but {where} has no native bf16: it is emulated "
                                 "and several times slower than fp32", emulated=True)
    if requested == "fp32":
        return Precision("fp32", "fp32 was asked for")
    raise ConfigError(f"precision must be auto, bf16 or fp32, got {requested!r}")


@dataclass(frozen=True)
class MachineInfo:
    """The machine a number was measured on."""

    device: str  # "cpu" or "cuda:0"
    device_name: str  # CPU model or GPU name
    cpu_model: str
    cpu_capability: str  # AVX2, AVX512, AMX, ...
    native_bf16: bool
    threads: int  # torch intra-op threads
    torch: str
    isa_caps: dict[str, str] = field(default_factory=dict)  # see isa_caps(): an AVX-512 CPU previewing AVX2
    hardware_capability: str | None = None  # the CPU's own SIMD level, when isa_caps lowered cpu_capability

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def machine_class(self) -> str:
        """A short class name for tables: ``AVX2, no bf16`` / ``AVX512, bf16`` / the GPU; a capped CPU
        says so (``AVX2, no bf16, capped on AVX512``), so its numbers never pass for a real AVX2 CPU's."""
        if self.device.startswith("cuda"):
            return f"CUDA {self.device_name}"
        name = f"{self.cpu_capability}, {'bf16' if self.native_bf16 else 'no bf16'}"
        if not self.isa_caps:
            return name
        real = self.hardware_capability
        return f"{name}, capped on {real}" if real and real != self.cpu_capability else f"{name}, capped"


def machine_info(device: torch.device | str = "cpu") -> MachineInfo:
    """Describe ``device`` and this process's torch."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return MachineInfo(str(device), name, cpu_model(), cpu_capability(), native_bf16(device),
                       torch.get_num_threads(), torch.__version__, isa_caps(), hardware_capability())


def training_line(device: torch.device, precision: Precision) -> str:
    """What a training run says at its start: the machine and the precision, with why."""
    from .threads import thread_choice

    threads = "" if device.type == "cuda" else f" [{thread_choice().describe()}]"
    return f"training on {describe_machine(device)}{threads}: {precision.reason}"


def describe_machine(device: torch.device | str = "cpu") -> str:
    """One line: ``AMD EPYC (AVX2, no bf16), 2 threads, torch 2.14.1``; a capped CPU names its caps:
    ``Intel Xeon (AVX2, no bf16, capped on AVX512: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ...), ...``."""
    info = machine_info(device)
    if info.device.startswith("cuda"):
        return f"{info.device_name} ({info.device}), host CPU {info.cpu_model}, torch {info.torch}"
    caps = " ".join(f"{name}={value}" for name, value in info.isa_caps.items())
    machine_class = f"{info.machine_class}: {caps}" if caps else info.machine_class
    return f"{info.cpu_model} ({machine_class}), {info.threads} threads, torch {info.torch}"
