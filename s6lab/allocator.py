"""Keep freed activation buffers in the process instead of returning them to the OS.

A training step allocates and frees the same few multi-megabyte activation tensors
every batch. With glibc's defaults, blocks that large are ``mmap``-ed and ``munmap``-ed
(or trimmed off the heap) each time, so a step can pay the kernel to fault in and zero
fresh pages. How much depends on the process: glibc adapts its thresholds to the
sizes it has seen, so two runs of the same training can settle into different patterns.
Measured over fresh processes (the "allocator" table of ``benchmarks/levers.py``), the
slowest of seven processes with the defaults ran about 11% below their median, the slowest
with freed memory kept about 2% below, and the median was no lower. So ``fit`` turns it
on by default. Raising glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` with ``mallopt``
keeps the memory for reuse. This is the in-process version of the usual advice to run CPU
training under jemalloc or tcmalloc.

The setting is process-wide and stays on once made (it cannot be undone reliably);
the cost is that the process keeps its peak heap size. Elsewhere than glibc (macOS,
Windows, musl) it does nothing. Switched by ``TrainConfig.retain_memory``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB: larger than any activation of the nets here

_state: bool | None = None  # None: not tried yet


def retain_freed_memory() -> bool:
    """Ask glibc malloc to keep freed memory for reuse; returns whether it is in effect.

    Safe to call many times: the first call decides.

    Examples:
        >>> isinstance(retain_freed_memory(), bool)
        True
    """
    global _state
    if _state is None:
        _state = _mallopt()
    return _state


def _mallopt() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _THRESHOLD) == 1
    log.debug("mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD = %d): %s", _THRESHOLD, ok)
    return ok
