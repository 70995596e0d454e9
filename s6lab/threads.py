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
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

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
#: what was wrong with the environment at import (``None``: nothing); `fit` and the CLI refuse it
_BAD_ENVIRONMENT: str | None = None


def configure_threads(environ: dict[str, str] | None = None) -> ThreadChoice:
    """Set the OpenMP environment before torch is imported (see the module docstring).

    Args:
        environ: the environment to read and change (default ``os.environ``).

    Returns:
        What is in force.

    Raises:
        ValueError: ``S6LAB_THREADS`` is not ``auto`` or a positive integer, or ``S6LAB_FOLLOW_LOAD``
            is not 0 or 1.
    """
    global _CHOICE
    env = os.environ if environ is None else environ
    asked = env.get("S6LAB_THREADS", "auto").strip().lower()
    if asked != "auto" and not (asked.isdigit() and int(asked) >= 1):
        raise ValueError(f"S6LAB_THREADS={asked!r}: give a positive number of threads, or auto")
    follow = env.get("S6LAB_FOLLOW_LOAD", "1").strip()
    if follow not in ("0", "1"):
        raise ValueError(f"S6LAB_FOLLOW_LOAD={follow!r}: give 1 (fewer threads while another program keeps a "
                         "core busy) or 0 (the same count for the whole run)")
    threads_by = "you" if asked != "auto" or "OMP_NUM_THREADS" in env else "s6lab"
    policy_by = "you" if "OMP_WAIT_POLICY" in env else "s6lab"
    raw = asked if asked != "auto" else env.get("OMP_NUM_THREADS", str(available_cores())).strip()
    threads = int(raw) if raw.isdigit() and int(raw) >= 1 else available_cores()
    policy = env.get("OMP_WAIT_POLICY", WAIT_POLICY).strip().upper()
    if environ is None and "torch" in sys.modules:
        # OpenMP read its environment when torch loaded: only the thread count can still change, and the
        # environment is left alone (programs this one starts keep what you gave them)
        import torch

        if asked != "auto":
            torch.set_num_threads(threads)
        choice = ThreadChoice(torch.get_num_threads(), "as torch started it (import s6lab before torch to choose)",
                              "you" if asked != "auto" else "torch", "torch")
    else:
        env["OMP_NUM_THREADS"] = str(threads)
        env["OMP_WAIT_POLICY"] = policy
        follows = follow == "1" and threads > 1 and _can_see_load()  # at most the count chosen, yours or s6lab's
        choice = ThreadChoice(threads, policy, threads_by, policy_by, follows)
    if environ is None:
        _CHOICE = choice
    return choice


def configure_threads_at_import() -> None:
    """`configure_threads` for ``import s6lab``: a bad ``S6LAB_THREADS`` or ``S6LAB_FOLLOW_LOAD`` does not
    break the import (a traceback before any of s6lab's own code could explain it). The defaults apply,
    and `environment_error` keeps the problem, which `fit` and the ``s6lab`` command report in one line."""
    global _BAD_ENVIRONMENT
    try:
        configure_threads()
    except ValueError as e:
        _BAD_ENVIRONMENT = f"{e} (in the environment)"
        os.environ.pop("S6LAB_THREADS", None)
        os.environ.pop("S6LAB_FOLLOW_LOAD", None)
        configure_threads()


def environment_error() -> str | None:
    """What was wrong with ``S6LAB_THREADS`` or ``S6LAB_FOLLOW_LOAD`` at import, or ``None``."""
    return _BAD_ENVIRONMENT


def _can_see_load() -> bool:
    """Whether this system shows every program's CPU time (Linux's ``/proc/stat``)."""
    return hasattr(os, "sched_getaffinity") and os.path.exists("/proc/stat")


def thread_choice() -> ThreadChoice:
    """What `configure_threads` chose at import (configuring now if it has not run)."""
    return _CHOICE if _CHOICE is not None else configure_threads()
