"""Atomic writes: a file is written under a temporary name and renamed into place, so
an interrupted write never leaves a half-written file that later loads."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise _naming(e, path) from e
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file follows the umask like open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` about the file the caller asked for, not the temporary file beside it (a user never typed
    ``.report.md.x1y2.part``): the same type and errno, with ``path`` as its file name. A folder in the way
    (``path`` is one) reads as `IsADirectoryError` of ``path``; a file in the way of a folder the path needs
    (mkdir's ``FileExistsError``) as `NotADirectoryError`."""
    if error.errno is None:  # raised by a writer (a figure's library) with a message of its own: keep it
        return error
    named = type(error)(error.errno, error.strerror, str(path))
    try:
        if path.is_dir():
            return IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    except OSError:  # the path itself cannot be looked at (a name too long, a loop of links): say that
        return named
    if isinstance(error, FileExistsError) or error.errno == errno.ENOTDIR:
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        return NotADirectoryError(errno.ENOTDIR, f"{blocking} is a file, not a folder", str(path))
    return named


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically. Serialised in memory first: writing straight to a full disk, torch
    raises a RuntimeError from its zip writer instead of the OSError (ENOSPC) that names the problem."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure atomically as PNG (110 dpi, tight) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path
