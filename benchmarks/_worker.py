"""The parent's side of a benchmark worker process: one request line in, one JSON line out.

Both benchmark scripts run each configuration in its own process (some levers are
process-wide, and each gets clean peak-memory figures) and time the processes in turns.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time


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

    def ask(self, request: str) -> dict:
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        answer = self.read()
        time.sleep(0.3)  # let its OpenMP threads stop spinning before the next worker runs
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
