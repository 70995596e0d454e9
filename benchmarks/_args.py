"""The benchmarks' command line: bad input refused in one line, before the long work starts.

As the ``s6lab`` command does, a benchmark refuses a value a user can fix with one stderr line,
``benchmarks/SCRIPT.py: what is wrong; how to fix it``, and exit status 2, never a traceback:
`Parser` does it for argparse's own errors and each script's ``parser.error``, `run_main` for the
errors s6lab raises. `writable` checks an output path when the script starts, so that a benchmark
does not find out after ten minutes that its result cannot be written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

#: MNIST's training images: a window or subset asked to be larger would be cut short, and its rate overstated
TRAIN_IMAGES = 60_000


def prog() -> str:
    """``benchmarks/SCRIPT.py``: how a refusal names the script that is running."""
    return f"benchmarks/{Path(sys.argv[0]).name}"


def refuse(message: str, script: str | None = None) -> NoReturn:
    """Print ``SCRIPT: message`` on stderr (`prog` where None) and exit 2."""
    print(f"{script or prog()}: {message}", file=sys.stderr)
    raise SystemExit(2)


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line (no usage block), named as `refuse` names them."""

    def __init__(self, description: str, **kwargs) -> None:
        super().__init__(description=description, prog=kwargs.pop("prog", prog()), **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):  # argparse names the problem only
            message += f"; see `python {self.prog} --help`"
        refuse(message, self.prog)


def run_main(main: Callable[[], object]) -> None:
    """``main()``, with s6lab's errors a user can fix (`s6lab.errors.one_line`) refused in one line; any other exception
    is a bug and keeps its traceback."""
    try:
        main()
    except KeyboardInterrupt:  # every result is written whole (atomically) or not at all
        print(f"\n{prog()}: interrupted; nothing was left half written", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as e:
        errors = sys.modules.get("s6lab.errors")  # not loaded: s6lab was never imported, so it raised nothing
        if errors is None or (message := errors.one_line(e)) is None:
            raise
        refuse(message)


def exit_if_failed(returncode: int) -> None:
    """Exit with a child process's status where it failed (it has said why on stderr: a benchmark adds no
    traceback to a child's one-line refusal); -N, killed by signal N, exits 128 + N as a shell reports it."""
    if returncode:
        raise SystemExit(returncode if returncode > 0 else 128 - returncode)


def at_least(parser: argparse.ArgumentParser, least: int, args: argparse.Namespace, *flags: str) -> None:
    """Refuse each of ``flags`` (``--steps``; a list of values too) whose value is below ``least``."""
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        for v in value if isinstance(value, list) else [value]:
            if v is not None and v < least:
                parser.error(f"{flag} must be >= {least}, got {v}")


def valid_seeds(parser: argparse.ArgumentParser, flag: str, seeds: Iterable[int]) -> None:
    """Refuse a seed that `s6lab.TrainConfig` would refuse (the rule lives there), before any training."""
    from s6lab import TrainConfig
    from s6lab.errors import ConfigError

    for seed in seeds:
        try:
            TrainConfig(seed=seed)
        except ConfigError as e:
            parser.error(f"{flag}: {e}")


def writable(parser: argparse.ArgumentParser, path: str | Path, flag: str = "--out", *, folder: bool = False,
             write: bool = True) -> Path:
    """``path``, refused through ``parser`` unless a benchmark can write its result there at the end.

    A file (or with ``folder``, a folder) that is not the other kind, with no file in the place of a folder above
    it, and (with ``write``) whose nearest existing folder takes a new file: a probe file there, removed at once.
    Nothing else is created, so an interrupted benchmark leaves no empty result and no new folders.
    """
    path = Path(path)
    absolute = path.absolute()
    try:
        if not folder and path.is_dir():
            parser.error(f"{flag} {path} is a folder; name a file in it instead")
        if folder and path.exists() and not path.is_dir():
            parser.error(f"{flag} {path} is a file; name a folder instead")
        existing = next(p for p in ([absolute] if folder else []) + list(absolute.parents) if p.exists())
    except OSError as e:  # a folder on the way that this user may not enter
        parser.error(f"{flag} {path}: cannot reach {e.filename} ({e.strerror}); choose a folder you can write to")
    if not existing.is_dir():
        parser.error(f"{flag} {path}: {existing} is a file, not a folder; choose another path")
    if write:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as e:  # a folder of someone else's, a read-only disk, /proc
            parser.error(f"{flag} {path}: cannot write in {existing} ({e.strerror}); choose a folder you can "
                         "write to")
    return path


def refuse_bad_environment() -> None:
    """Refuse a setting of s6lab's in the environment that it cannot use (``S6LAB_THREADS=abc``), in one line, as
    the ``s6lab`` command does. ``import s6lab`` drops such a setting and goes on with its own choice, and the
    workers a benchmark starts inherit the environment without it: the benchmark would measure s6lab's choice
    under the user's name. Call it in the measuring process once it has imported s6lab (never in a worker that
    must import torch first)."""
    from s6lab.threads import environment_error

    if (problem := environment_error()) is not None:
        refuse(problem)
