"""How many CPU threads train, and how they wait: chosen before torch starts OpenMP.

On a laptop another program often takes a core (a browser beside the notebook). OpenMP's
threads then spin-wait for the one that lost its core, and a 2-thread training step became up
to 8x slower on a 2-core AVX2 CPU (issue 18; ``benchmarks/load.py`` measures it on yours).
Threads that wait passively, and no more threads than the cores this process may use, avoid
the collapse at a small cost on a quiet machine. (A short spin before sleeping,
``GOMP_SPINCOUNT=3000``, kept less than PASSIVE with a core taken, and 30,000 collapsed like the
default: ``make bench-load-spincount``.)

``import s6lab`` (and so the ``s6lab`` command) applies the choice before it imports torch:

- ``OMP_WAIT_POLICY`` := ``PASSIVE``
- ``OMP_NUM_THREADS`` := the cores this process may run on (``os.sched_getaffinity``)
- and while `fit` trains, fewer threads while another program keeps a core busy
  ([`load_follower`][s6lab.load_follower], which says what it measured)

Anything you set yourself wins: ``OMP_WAIT_POLICY=ACTIVE``, ``OMP_NUM_THREADS=1``, or
``S6LAB_THREADS=N`` (s6lab's own override of the thread count). ``S6LAB_THREADS=auto``
(the default) means the cores available. ``S6LAB_FOLLOW_LOAD=0`` keeps the count fixed for the
whole run (the same bits whatever else runs). The choice only takes effect when s6lab is imported
before torch; `thread_choice` says what is in force.

A value s6lab cannot use is refused, never replaced in silence (`environment_error`, which `fit` and
the ``s6lab`` command report in one line): an ``S6LAB_THREADS`` that is not ``auto`` or a whole number from 1
to the physical cores available (more threads than cores only wait for one), an ``OMP_NUM_THREADS`` beyond
the logical CPUs (not read when ``S6LAB_THREADS`` decides), a wait policy other than ACTIVE or PASSIVE (in
any case), an ``S6LAB_FOLLOW_LOAD`` other than 1 or 0 (or yes/no, true/false, on/off).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the OpenMP wait policy s6lab chooses when you have not chosen one
WAIT_POLICY = "PASSIVE"


def available_cores() -> int:
    """The physical CPU cores this process may run on: its affinity mask, with hyperthread siblings
    counted once (two threads on one core only fight over its vector units)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


@dataclass(frozen=True)
class ThreadChoice:
    """What is in force, and who chose each part."""

    threads: int
    wait_policy: str  # PASSIVE | ACTIVE | the OpenMP default (spins, then sleeps)
    threads_by: str  # "s6lab" | "you" (environment) | "torch"
    wait_policy_by: str  # "s6lab" | "you" | "torch" (imported before s6lab: OpenMP had started)
    follows_load: bool = False  # fewer threads while another program keeps a core busy (s6lab.load_follower)

    def describe(self) -> str:
        """``2 threads (s6lab: the cores available, fewer while other programs keep one busy), OpenMP waits
        PASSIVE (s6lab)``; with ``S6LAB_FOLLOW_LOAD=0``, ``2 threads (s6lab: the cores available), ...``."""
        why = "the cores available" if self.threads_by == "s6lab" else "your environment"
        if self.follows_load:
            why += ", fewer while other programs keep one busy"
        return (f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.threads_by}: {why}), "
                f"OpenMP waits {self.wait_policy} ({self.wait_policy_by})")


_CHOICE: ThreadChoice | None = None
#: what was wrong with the thread settings at import, one sentence each (empty: nothing); `fit` and the CLI
#: refuse them (`environment_error`)
_BAD_ENVIRONMENT: tuple[str, ...] = ()


def available_cpus() -> int:
    """The logical CPUs this process may run on (its affinity mask; hyperthreads each count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def _thread_count(value: str, unset: str, *, logical: bool = False) -> int:
    """``value`` as a number of threads: a whole number from 1 to the physical cores available (to the logical
    CPUs with ``logical``: ``OMP_NUM_THREADS``, which other tools set too, often to the logical count).

    Raises:
        ValueError: what to give instead, ending with ``unset`` (how to leave the choice to s6lab).
    """
    if not (value.isascii() and value.isdigit() and value.strip("0")):
        raise ValueError(f"give a positive number of threads, {unset}")
    most = available_cpus() if logical else available_cores()
    if len(value) > 9 or int(value) > most:  # (int() refuses a number of thousands of digits)
        allowed, plural = ("1", "") if most == 1 else (f"1 to {most}", "s")
        what = (f"{most} logical CPU{plural} (its CPU affinity)" if logical else
                f"{most} physical core{plural} (its CPU affinity, hyperthreads counted once)")
        raise ValueError(f"this process may use {what}, and more threads only wait for one: give {allowed}, "
                         f"{unset}")
    return int(value)


def _wait_policy(value: str) -> str:
    """``value`` as an OpenMP wait policy, ``ACTIVE`` or ``PASSIVE``, whatever its case.

    Raises:
        ValueError: what to give instead (OpenMP would only warn, and wait its default way).
    """
    if value.upper() not in ("ACTIVE", "PASSIVE"):
        raise ValueError("give PASSIVE (waiting threads sleep: s6lab's choice) or ACTIVE (they spin), or unset it "
                         "for PASSIVE")
    return value.upper()


def _follow_load(value: str) -> bool:
    """``value`` as ``S6LAB_FOLLOW_LOAD``: 1 follows the load, 0 keeps the count fixed.

    Raises:
        ValueError: what to give instead.
    """
    from .env_flags import OFF, ON

    if value.lower() not in ON + OFF or not value:
        raise ValueError("give 1 (fewer threads while another program keeps a core busy) or 0 (the same count "
                         "for the whole run)")
    return value.lower() in ON


#: every thread setting s6lab reads, and how: its value, stripped, to what it means (a `ValueError` says what
#: to give instead); S6LAB_THREADS=auto means unset
_SETTINGS = {
    "S6LAB_THREADS": lambda value: None if value.lower() == "auto" else _thread_count(value, "or auto"),
    "OMP_NUM_THREADS": lambda value: _thread_count(value, "or unset it for the cores available", logical=True),
    "OMP_WAIT_POLICY": _wait_policy,
    "S6LAB_FOLLOW_LOAD": _follow_load,
}


def _read_settings(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """What each thread setting means (``None``: unset), and a sentence for each one s6lab cannot use."""
    values: dict[str, Any] = dict.fromkeys(_SETTINGS)
    problems = {}
    for name, read in _SETTINGS.items():
        if name == "OMP_NUM_THREADS" and env.get("S6LAB_THREADS", "").strip().lower() not in ("", "auto"):
            continue  # S6LAB_THREADS decides, and replaces it (configure_threads)
        if name in env:
            try:
                values[name] = read(env[name].strip())
            except ValueError as e:
                problems[name] = f"{name}={env[name].strip()!r}: {e}"
    return values, problems


def setting_problems(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each thread setting in the environment that s6lab cannot use, by variable name.

    Args:
        environ: the environment to read (default ``os.environ``).

    Returns:
        One sentence per bad variable, naming it, its value and what to give instead; empty when all are good.

    Examples:
        >>> print(setting_problems({"OMP_WAIT_POLICY": "bogus", "S6LAB_FOLLOW_LOAD": "0"})["OMP_WAIT_POLICY"])
        OMP_WAIT_POLICY='bogus': give PASSIVE (waiting threads sleep: s6lab's choice) or ACTIVE (they spin), \
or unset it for PASSIVE
    """
    return _read_settings(os.environ if environ is None else environ)[1]


def configure_threads(environ: dict[str, str] | None = None) -> ThreadChoice:
    """Set the OpenMP environment before torch is imported (see the module docstring).

    Args:
        environ: the environment to read and change (default ``os.environ``).

    Returns:
        What is in force.

    Raises:
        ValueError: a setting s6lab cannot use, each named (`setting_problems`): ``S6LAB_THREADS`` not ``auto``
            or a whole number from 1 to the cores available, ``OMP_NUM_THREADS`` not such a number,
            ``OMP_WAIT_POLICY`` not ACTIVE or PASSIVE, ``S6LAB_FOLLOW_LOAD`` not 0 or 1.
    """
    global _CHOICE
    env = os.environ if environ is None else environ
    value, problems = _read_settings(env)
    if problems:
        raise ValueError("; ".join(problems.values()))
    asked = value["S6LAB_THREADS"]  # None: auto
    threads = asked or value["OMP_NUM_THREADS"] or available_cores()
    threads_by = "s6lab" if asked is None and value["OMP_NUM_THREADS"] is None else "you"
    policy = value["OMP_WAIT_POLICY"] or WAIT_POLICY
    policy_by = "s6lab" if value["OMP_WAIT_POLICY"] is None else "you"
    follow = value["S6LAB_FOLLOW_LOAD"] is not False  # unset: on
    if environ is None and "torch" in sys.modules:
        # OpenMP read its environment when torch loaded: only the thread count can still change, and the
        # environment is left alone (programs this one starts keep what you gave them)
        import torch

        if asked is not None:
            torch.set_num_threads(threads)
        choice = ThreadChoice(torch.get_num_threads(), "as torch started it (import s6lab before torch to choose)",
                              "you" if asked is not None else "torch", "torch")
    else:
        env["OMP_NUM_THREADS"] = str(threads)
        env["OMP_WAIT_POLICY"] = policy
        follows = follow and threads > 1 and _can_see_load()  # at most the count chosen, yours or s6lab's
        choice = ThreadChoice(threads, policy, threads_by, policy_by, follows)
    if environ is None:
        _CHOICE = choice
    return choice


def configure_threads_at_import() -> None:
    """`configure_threads` for ``import s6lab``: a bad thread setting does not break the import (a traceback
    before any of s6lab's own code could explain it). Each bad variable is removed from the environment before
    torch loads (so OpenMP does not read it and warn on its own), s6lab's choice applies in its place, and
    `environment_error` keeps the problem, which `fit` and the ``s6lab`` command report in one line."""
    global _BAD_ENVIRONMENT
    problems = setting_problems()
    for name in problems:
        del os.environ[name]
    _BAD_ENVIRONMENT = tuple(problems.values())
    configure_threads()


def environment_error() -> str | None:
    """What is wrong with s6lab's settings in the environment, in one line, or ``None``: the thread settings as
    ``import s6lab`` found them (`setting_problems`) and ``S6LAB_NATIVE_BF16`` as it is now
    (`s6lab.hardware.bf16_setting_problem`)."""
    from .env_flags import flag_problems
    from .hardware import bf16_setting_problem  # here: hardware loads torch, which must start after the settings

    problems = [*_BAD_ENVIRONMENT, *filter(None, [bf16_setting_problem()]), *flag_problems()]
    return "; ".join(problems) + " (in the environment)" if problems else None


def _can_see_load() -> bool:
    """Whether this system shows every program's CPU time (Linux's ``/proc/stat``)."""
    return hasattr(os, "sched_getaffinity") and os.path.exists("/proc/stat")


def thread_choice() -> ThreadChoice:
    """What `configure_threads` chose at import (configuring now if it has not run)."""
    return _CHOICE if _CHOICE is not None else configure_threads()
