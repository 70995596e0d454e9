"""Fewer training threads while another program keeps a core busy, all of them when it stops
(on by default since session 14; ``S6LAB_FOLLOW_LOAD=0`` turns it off; see "Measured" below).

A training step on several threads waits for the slowest. When another program keeps a core
busy (a browser beside the notebook), the thread on that core gets part of it and the others
wait for it. One thread fewer, on the cores that are left, waits for nobody.

While `fit` trains on a CPU it looks about once a second at how much
of its cores the other programs used (``/proc/stat``, less this process's own time from
``/proc/self/stat``) and trains on the cores they leave:

    threads = min(chosen at start-up, max(1, cores - floor(others + 0.4)))

A program that keeps a core at least 60% busy takes it; a lighter one (a tab that wakes now and
then) does not. The count changes only when two samples in a row agree, so a burst of a second
does not move it, and never goes above the count chosen at start-up (``S6LAB_THREADS`` or the
cores available). It says so when it changes the count, and each epoch records the fewest
threads it trained on (``EpochRecord.fewest_threads``).

**Measured** (``make bench-load``, its "following the load" row, against two fixed threads with a core
taken, round by round):

- On a 2-core Intel Xeon VM with AVX-512 bf16 (session 14), two runs: 1.22x (rounds 1.14-1.25x) and
  1.16x (1.13-1.19x). There two fixed threads kept only 56% and 55% of their quiet rate with a core
  taken, below issue 18's 60%; following the load kept 67% and 66%.
- On the 2-core AVX2 VM (session 13), four runs: 1.27x, 1.02x, 0.97x and 1.01x. There, probably,
  two threads that wait passively already get about one free core's work done, so one thread has
  little to win; it lost nothing either.
- On a 16-core host run as 4, 8 and 16 cores, one round each: 0.95x, 1.11x and 1.14x
  (``benchmarks/results/gpu-nvidia-h100-many-cores.md``).

So it gains where it gains and costs nothing measurable elsewhere; it was off by default in
session 13, when only the AVX2 runs existed, and is on since the AVX-512 ones.

**Bits.** While the count is lowered, float sums run in another order, and the bits differ from a
quiet run's (the accuracy differs as one seed's from another's). On a quiet machine the count
never changes.

Linux only (other systems have no ``/proc/stat``); on CUDA the threads only feed the GPU, so it
stays off there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: seconds between two looks at the load
INTERVAL = 1.0
#: a core counts as taken when the other programs keep it at least this busy
TAKEN_AT = 0.6


@dataclass(frozen=True)
class CpuTimes:
    """CPU time in clock ticks since boot: busy on this process's CPUs, and this process's own."""

    busy: int  # user + nice + system + irq + softirq on the CPUs this process may use (no idle, no steal)
    own: int  # this process's user + system time, all its threads

    def others_since(self, before: CpuTimes, seconds: float, ticks_per_second: int) -> float:
        """How many CPUs the other programs kept busy on average since ``before``."""
        if seconds <= 0:
            return 0.0
        return max(0.0, ((self.busy - before.busy) - (self.own - before.own)) / ticks_per_second / seconds)


def busy_ticks(proc_stat: str, cpus: Iterable[int]) -> int:
    """The busy ticks of ``cpus`` in the text of ``/proc/stat`` (lines ``cpuN user nice system idle
    iowait irq softirq steal ...``): idle, iowait and steal (the hypervisor's) do not count.

    Raises:
        ValueError: no line for any of ``cpus``.
    """
    wanted = {f"cpu{c}" for c in cpus}
    total, found = 0, 0
    for line in proc_stat.splitlines():
        name, *fields = line.split()
        if name in wanted:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
            total += user + nice + system + irq + softirq
            found += 1
    if not found:
        raise ValueError(f"/proc/stat has no line for CPUs {sorted(wanted)}")
    return total


def own_ticks(proc_self_stat: str) -> int:
    """This process's user + system ticks from the text of ``/proc/self/stat`` (fields 14 and 15;
    the command name before them may hold spaces, so count from its closing parenthesis)."""
    fields = proc_self_stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def read_cpu_times(cpus: Iterable[int]) -> CpuTimes:
    """The `CpuTimes` now, from ``/proc``."""
    with open("/proc/stat") as f:
        busy = busy_ticks(f.read(), cpus)
    with open("/proc/self/stat") as f:
        own = own_ticks(f.read())
    return CpuTimes(busy, own)


def threads_for(others: float, cores: int, logical_cpus: int, chosen: int) -> int:
    """The threads to train on when the other programs keep ``others`` logical CPUs busy.

    Args:
        others: logical CPUs the other programs kept busy (from `CpuTimes.others_since`).
        cores: physical cores this process may use (hyperthread siblings once).
        logical_cpus: logical CPUs this process may use (``others`` is counted in these).
        chosen: the count chosen at start-up: never more.

    Examples:
        >>> threads_for(0.9, cores=2, logical_cpus=2, chosen=2)  # a core spinning elsewhere
        1
        >>> threads_for(0.3, cores=2, logical_cpus=2, chosen=2)  # a tab waking now and then
        2
    """
    in_cores = others * cores / max(1, logical_cpus)
    taken = math.floor(in_cores + (1 - TAKEN_AT))
    return max(1, min(chosen, cores - taken))


class LoadFollower:
    """Lowers and restores the training threads as the load of other programs comes and goes.

    Call `tick` after every training step: it reads ``/proc`` at most once per ``interval`` and
    returns a sentence when it changed the count (else ``None``).

    Args:
        chosen: the thread count chosen at start-up, the most it uses.
        cores: physical cores this process may use.
        cpus: the logical CPUs this process may use (``os.sched_getaffinity``).
        interval: seconds between two looks at the load.
        clock, read, set_threads, ticks_per_second: what it measures and moves (``time.monotonic``,
            `read_cpu_times`, ``torch.set_num_threads``, the kernel's clock ticks per second); tests
            give their own.
    """

    def __init__(self, chosen: int, cores: int, cpus: Iterable[int], *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 read: Callable[[Iterable[int]], CpuTimes] = read_cpu_times,
                 set_threads: Callable[[int], None] | None = None, ticks_per_second: int | None = None) -> None:
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self.chosen, self.cores, self.cpus = chosen, cores, sorted(cpus)
        self.threads = chosen
        self.interval, self.clock, self.read, self.set_threads = interval, clock, read, set_threads
        self.ticks_per_second = ticks_per_second or os.sysconf("SC_CLK_TCK")
        self.others = 0.0  # logical CPUs the other programs used in the last sample
        self.stopped: str | None = None  # why it no longer follows (None: it does)
        self._last: tuple[float, CpuTimes] | None = None
        self._pending: int | None = None  # a new count seen once, waiting for a second sample to agree

    def restart(self, current: int) -> str | None:
        """Start measuring afresh for a new training (the time since the last one does not count).

        Args:
            current: the thread count torch has now. When it is not the one this follower set,
                somebody chose another (``torch.set_num_threads`` in a notebook): that choice wins,
                and the follower stops for good, with the sentence returned saying so.
        """
        self._last, self._pending = None, None
        if self.stopped is None and current != self.threads:
            self.stopped = (f"torch.set_num_threads({current}) was called: s6lab keeps {current} thread"
                            f"{'s' if current != 1 else ''} and no longer follows the load")
            return self.stopped
        return None

    def tick(self) -> str | None:
        """Look at the load if ``interval`` has passed; change the thread count when two looks agree."""
        if self.stopped is not None:
            return None
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.interval:
            return None
        try:
            times = self.read(self.cpus)
        except (OSError, ValueError, IndexError) as e:  # a /proc this system does not fill in the usual way
            self.stopped = f"the load cannot be read here ({e}): training on {self.threads} threads from now on"
            return self.stopped
        last, self._last = self._last, (now, times)
        if last is None:
            return None
        self.others = times.others_since(last[1], now - last[0], self.ticks_per_second)
        wanted = threads_for(self.others, self.cores, len(self.cpus), self.chosen)
        if wanted == self.threads:
            self._pending = None
            return None
        if self._pending != wanted:  # seen once: wait for the next look
            self._pending = wanted
            return None
        before, self.threads, self._pending = self.threads, wanted, None
        self.set_threads(wanted)
        return self.describe_change(before)

    def describe_change(self, before: int) -> str:
        """What changed and why, in one line."""
        plural = "s" if self.threads != 1 else ""
        if self.threads < before:
            return (f"other programs are using {self.others:.1f} of the {len(self.cpus)} CPUs this training may "
                    f"use: training on {self.threads} thread{plural} while they do (S6LAB_FOLLOW_LOAD=0 keeps "
                    f"{self.chosen})")
        return f"the other programs are quieter now: training on {self.threads} thread{plural} again"


_FOLLOWER: LoadFollower | None = None


def load_follower() -> LoadFollower | None:
    """The process's follower (one: the thread count is the process's), or ``None`` where it is off:
    with ``S6LAB_FOLLOW_LOAD=0``, with torch imported before s6lab, one thread, or no ``/proc``."""
    global _FOLLOWER
    from .threads import available_cores, thread_choice

    choice = thread_choice()
    if not choice.follows_load:
        return None
    if _FOLLOWER is None:
        _FOLLOWER = LoadFollower(choice.threads, available_cores(), os.sched_getaffinity(0))
    return _FOLLOWER
