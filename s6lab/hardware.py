"""What machine is this? The CPU model and capability, bf16 support, threads, the GPU.

Every time and every precision s6lab reports depends on the machine: an AVX-512 CPU with
native bf16 trains the reference net 3-4x faster than an AVX2 CPU without it, and the
precision that ``precision="auto"`` picks differs between them. This module answers the
questions once, so that ``fit``, ``s6lab train``, ``s6lab doctor``, run directories and
benchmarks all say the same thing.

A bigger CPU can preview a smaller one: environment variables cap the instruction set of
torch's libraries (`AVX2_PREVIEW`, what ``make TARGET PREVIEW=avx2`` sets). Such a machine
is labelled ``capped`` everywhere it is named (`effective_caps`, `MachineInfo.machine_class`),
so its numbers never pass for a real AVX2 CPU's.

Examples:
    >>> import torch
    >>> p = resolve_precision("fp32", torch.device("cpu"))
    >>> p.precision, p.reason
    ('fp32', 'fp32 was asked for')
"""

from __future__ import annotations

import os
import platform
import shlex
from collections.abc import Mapping, Sequence
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
    (lower than the CPU's own where ``ATEN_CPU_CAPABILITY`` caps it, see `effective_caps`)."""
    cpu = getattr(torch.backends, "cpu", None)
    return cpu.get_cpu_capability() if cpu is not None else "unknown"


# the environment variables that cap the instruction set, and what each caps. Each is read once, when torch first
# uses that library; oneDNN reads ONEDNN_MAX_CPU_ISA first and DNNL_MAX_CPU_ISA only without it.
CAPPED_LIBRARIES = {
    "ATEN_CPU_CAPABILITY": "ATen's kernels: BatchNorm, ReLU, pooling, the optimizer",
    "ONEDNN_MAX_CPU_ISA": "oneDNN's: the convolutions",
    "DNNL_MAX_CPU_ISA": "oneDNN's: the convolutions",
    "MKL_ENABLE_INSTRUCTIONS": "MKL's: the matmuls",
}
ISA_CAP_VARIABLES = tuple(CAPPED_LIBRARIES)
# what previews an AVX2 CPU without bf16 on a bigger one: all three libraries capped (`make TARGET PREVIEW=avx2`)
AVX2_PREVIEW = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
_LEVELS = ("DEFAULT", "AVX", "AVX2", "AVX512")  # lowest first, as torch names them


def isa_caps(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The instruction-set caps set in the environment (``os.environ`` by default), whether or not they
    lower anything: e.g. `AVX2_PREVIEW`. Empty when none is set.

    Examples:
        >>> isa_caps({"ONEDNN_MAX_CPU_ISA": " AVX2 ", "MKL_ENABLE_INSTRUCTIONS": "", "PATH": "/bin"})
        {'ONEDNN_MAX_CPU_ISA': 'AVX2'}
    """
    environ = os.environ if environ is None else environ
    return {name: environ[name].strip() for name in ISA_CAP_VARIABLES if environ.get(name, "").strip()}


def _library_level(value: str) -> int | None:
    """The rank in `_LEVELS` of a oneDNN or MKL instruction-set name (``AVX2``, ``AVX2_VNNI``, ``AVX512_CORE``,
    ``AVX512_E1``, ``SSE41``, ...); None for ``DEFAULT``/``ALL`` (no limit) and names it does not know."""
    value = value.upper()
    if value in ("DEFAULT", "ALL"):
        return None
    for prefix, level in (("AVX512", 3), ("AVX10", 3), ("AMX", 3), ("AVX2", 2), ("AVX", 1), ("SSE", 0)):
        if value.startswith(prefix):
            return level
    return None


def effective_caps(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caps of `isa_caps` that lower what this CPU offers (`hardware_capability`): what makes a machine
    `capped`. ATen's counts when torch dispatches below the CPU's level (torch ignores a value it does not
    know, such as an uppercase ``AVX2``); oneDNN's and MKL's when they name a lower level. Where the CPU's own
    level is unknown, every cap set counts, so a capped run is never passed off as an uncapped one."""
    caps = isa_caps(environ)
    if "ONEDNN_MAX_CPU_ISA" in caps:
        caps.pop("DNNL_MAX_CPU_ISA", None)  # oneDNN reads ONEDNN_ first
    own = hardware_capability()
    if own not in _LEVELS:
        return caps
    ceiling = _LEVELS.index(own)
    lowered = {}
    for name, value in caps.items():
        if name == "ATEN_CPU_CAPABILITY":
            level = _LEVELS.index(cpu_capability()) if cpu_capability() in _LEVELS else None
        else:
            level = _library_level(value)
        # AVX512_CORE on an AVX-512 CPU with bf16: oneDNN's AVX-512 kernels without their bf16 ones
        takes_bf16 = name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") and level == ceiling == len(_LEVELS) - 1 \
            and not _onednn_keeps_bf16(value) and _cpu_has_bf16()
        if level is not None and (level < ceiling or takes_bf16):
            lowered[name] = value
    return lowered


def _onednn_keeps_bf16(value: str) -> bool:
    """Whether a oneDNN instruction-set cap leaves its bf16 kernels (``AVX512_CORE_BF16``, ``AMX``, ...)."""
    value = value.upper()
    return value in ("DEFAULT", "ALL") or any(part in value for part in ("BF16", "FP16", "AMX", "AVX10"))


def _cpu_has_bf16() -> bool:
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def caps_text(caps: Mapping[str, str]) -> str:
    """Caps as a machine line names them: ``"ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"``.

    Examples:
        >>> caps_text({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
        'ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2'
    """
    return " ".join(f"{name}={value}" for name, value in caps.items())


def command_prefix(environ: Mapping[str, str] | None = None) -> str:
    """The instruction-set caps and ``S6LAB_NATIVE_BF16=0`` set in the environment (or in a run's recorded
    caps), as a shell prefix for a recorded command (``"ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ..."``),
    so the command reproduces what was measured; ``""`` when none is set. (Thread settings are recorded in the
    machine line instead.)

    Examples:
        >>> command_prefix({"ONEDNN_MAX_CPU_ISA": "AVX2", "S6LAB_NATIVE_BF16": "0", "PATH": "/bin"})
        'ONEDNN_MAX_CPU_ISA=AVX2 S6LAB_NATIVE_BF16=0 '
        >>> command_prefix({})
        ''
    """
    environ = os.environ if environ is None else environ
    settings = isa_caps(environ)
    if _bf16_switched_off_by_environment(environ):
        settings["S6LAB_NATIVE_BF16"] = "0"
    return "".join(f"{name}={shlex.quote(value)} " for name, value in settings.items())


def recorded_command(script: str, args: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """The command line a benchmark records with its result: the caps set (`command_prefix`), then
    ``python SCRIPT ARGS`` with every argument shell-quoted, so pasting it reproduces the measurement.

    Examples:
        >>> print(recorded_command("benchmarks/recipe.py", ["--rows", "layer 1's BN", "--seeds", "0"], {}))
        python benchmarks/recipe.py --rows 'layer 1'"'"'s BN' --seeds 0
        >>> recorded_command("benchmarks/load.py", [], {"ONEDNN_MAX_CPU_ISA": "AVX2"})
        'ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/load.py'
    """
    return command_prefix(environ) + "python " + shlex.join([script, *args])


def preview_name(environ: Mapping[str, str] | None = None) -> str | None:
    """``"avx2"`` when the environment holds `AVX2_PREVIEW` (what ``make TARGET PREVIEW=avx2`` sets), else None:
    the make option that reproduces a capped result."""
    caps = isa_caps(environ)
    return "avx2" if all(caps.get(name) == value for name, value in AVX2_PREVIEW.items()) else None


def capability_from_flags(flags: set[str] | frozenset[str]) -> str:
    """The SIMD level a CPU with these ``/proc/cpuinfo`` flags offers, named as torch names it.

    Examples:
        >>> capability_from_flags({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"})
        'AVX512'
        >>> capability_from_flags({"avx2", "fma"}), capability_from_flags({"avx2"}), capability_from_flags(set())
        ('AVX2', 'DEFAULT', 'DEFAULT')
    """
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512"
    return "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT"


@lru_cache(maxsize=1)
def hardware_capability() -> str | None:
    """The SIMD level this CPU itself offers (``AVX512``, ``AVX2``, ``DEFAULT``), whatever the caps say, from
    ``/proc/cpuinfo``'s flags; None where they cannot be read (not Linux, or no flags line)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return capability_from_flags(flags) if flags else None


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively here (AVX-512 bf16 / AMX on a CPU, bf16 support on CUDA).

    Without it, bf16 is emulated: correct, but many times slower than fp32. Setting the
    environment variable ``S6LAB_NATIVE_BF16=0`` makes s6lab treat this machine as one
    without native bf16 (``auto`` then trains in fp32, benchmarks skip bf16): how the
    tests check the AVX2 path on an AVX-512 machine, and a way to get fp32 everywhere.
    Unset, the hardware decides; any other value is refused (`bf16_setting_problem`).

    Raises:
        ConfigError: ``S6LAB_NATIVE_BF16`` is set to something other than 0.
    """
    return not _bf16_switched_off_by_environment() and _has_native_bf16(device)


def bf16_switched_off(device: torch.device | str = "cpu") -> bool:
    """Whether ``S6LAB_NATIVE_BF16=0`` hides native bf16 that ``device`` has: its runs are another machine
    class (``AVX512, no bf16``) than the machine's own, and a benchmark keeps their results apart.

    Raises:
        ConfigError: ``S6LAB_NATIVE_BF16`` is set to something other than 0 (`bf16_setting_problem`).
    """
    return _bf16_switched_off_by_environment() and _has_native_bf16(torch.device(device))


def bf16_setting_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with ``S6LAB_NATIVE_BF16`` in the environment (``os.environ`` by default), in one sentence,
    or ``None``: 0 switches native bf16 off (`native_bf16`), unset leaves it to the hardware, and no other value
    means anything (1 cannot switch on what the hardware lacks).

    Examples:
        >>> bf16_setting_problem({"S6LAB_NATIVE_BF16": " 0"}) is None and bf16_setting_problem({}) is None
        True
        >>> print(bf16_setting_problem({"S6LAB_NATIVE_BF16": "maybe"}))
        S6LAB_NATIVE_BF16='maybe': give 0 (treat this machine as one without native bf16), \
or unset it to let the hardware decide
    """
    environ = os.environ if environ is None else environ
    value = environ.get("S6LAB_NATIVE_BF16")
    if value is None or value.strip() == "0":
        return None
    return (f"S6LAB_NATIVE_BF16={value.strip()!r}: give 0 (treat this machine as one without native bf16), "
            "or unset it to let the hardware decide")


def _bf16_switched_off_by_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``S6LAB_NATIVE_BF16=0`` is set. Raises `ConfigError` for any other value (`bf16_setting_problem`)."""
    environ = os.environ if environ is None else environ
    if (problem := bf16_setting_problem(environ)) is not None:
        raise ConfigError(problem)
    return "S6LAB_NATIVE_BF16" in environ


def _has_native_bf16(device: torch.device) -> bool:
    """`native_bf16` as the hardware and the instruction-set caps decide it, whatever ``S6LAB_NATIVE_BF16`` says."""
    if device.type == "cuda":
        # native only: a T4 (sm_75) "supports" bf16 by emulation, which is slower than fp32 there
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch without the argument
            return torch.cuda.get_device_capability(device)[0] >= 8
    caps = isa_caps()
    onednn = caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA")
    if onednn and not _onednn_keeps_bf16(onednn):
        return False  # convolutions capped below AVX-512 bf16 (ONEDNN_MAX_CPU_ISA=AVX2): bf16 would not be native
    return cpu_capability() in ("AVX512", "AMX") and _cpu_has_bf16()


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
    capped = ", capped" if effective_caps() else ""
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
    isa_caps: dict[str, str] = field(default_factory=dict)  # effective_caps(): e.g. an AVX-512 CPU previewing AVX2
    hardware_capability: str | None = None  # the CPU's own SIMD level from /proc/cpuinfo (None where unreadable)

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
                       torch.get_num_threads(), torch.__version__, effective_caps(), hardware_capability())


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
    caps = caps_text(info.isa_caps)
    machine_class = f"{info.machine_class}: {caps}" if caps else info.machine_class
    return f"{info.cpu_model} ({machine_class}), {info.threads} threads, torch {info.torch}"
