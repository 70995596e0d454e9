"""The parent's side of a benchmark worker process: one request line in, one JSON line out.

The benchmark scripts run each configuration in its own process (some levers are
process-wide, and each gets clean peak-memory figures) and time the processes in turns;
`core_taken` is the busy core of their quiet/loaded comparisons (load.py, data_parallel.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class WorkerProcess:
    """A running ``python ARGV...`` that answers each request line with one JSON line."""

    def __init__(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker failed (exit {self.proc.wait()}); its error is above")
        return json.loads(line)

    def send(self, request: str) -> None:
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()

    def ask(self, request: str) -> dict:
        self.send(request)
        answer = self.read()
        time.sleep(0.3)  # let its OpenMP threads stop spinning before the next worker runs
        return answer

    def close(self, wait: bool = True) -> None:
        """End its input (the worker then exits) and, with ``wait``, wait until it has."""
        if self.proc.stdin:
            self.proc.stdin.close()
        if wait:
            self.proc.wait()


@contextmanager
def core_taken(taken: bool = True) -> Iterator[None]:
    """While inside, another process spins on a core (as a busy browser tab does beside a notebook);
    with ``taken`` false, nothing happens (the quiet half of a quiet/loaded loop)."""
    if not taken:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it take its core
        yield
    finally:
        spinner.kill()
        spinner.wait()
