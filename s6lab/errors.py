"""The errors a user can fix. The CLI prints exactly these as one line and exits 2; anything
else is a bug and keeps its traceback.

Both subclass the built-in type that Python code would expect (``ValueError``, ``KeyError``),
so ``except ValueError`` around s6lab calls keeps working.
"""

from __future__ import annotations

import errno


class ConfigError(ValueError):
    """A value given to s6lab is not valid; the message names it and how to fix it."""


class UnknownNameError(KeyError):
    """A name (model, layer, method) that does not exist; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


#: the errors a user can fix, by module and name. They are looked up among the modules already loaded, so a
#: caller that has not imported torch (a benchmark refusing its arguments) need not import it to check: an
#: error of a module that is not loaded cannot have been raised.
USER_ERRORS = (("s6lab.errors", "ConfigError"), ("s6lab.errors", "UnknownNameError"), ("s6lab.data", "DataError"),
               ("s6lab.runs", "RunError"), ("s6lab.train", "TrainingDiverged"))

#: errors of the disk or the file system a user can fix, by errno, with the fix
DISK_FIXES = {errno.ENOENT: "check the path", errno.ENOSPC: "free some disk space",
              errno.EDQUOT: "free some of your disk quota", errno.EACCES: "choose a folder you can write to",
              errno.EROFS: "choose a folder on a writable disk",
              errno.ENOTDIR: "a file is in the way: move it, or choose another path",
              errno.EISDIR: "give a file name, not a folder",
              errno.ENAMETOOLONG: "shorten the name (at most 255 characters for each folder or file name)",
              errno.ELOOP: "a symbolic link on the path points back at itself: fix the link, or choose another path",
              errno.EEXIST: "a file is in the way: move it, or choose another path"}


def one_line(error: BaseException) -> str | None:
    """The one line a command prints for ``error`` when a user can fix it (`USER_ERRORS`, `DISK_FIXES`), or
    None for a bug, which keeps its traceback.

    Examples:
        >>> one_line(ConfigError("epochs must be >= 1"))
        'epochs must be >= 1'
        >>> one_line(FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/x.md"))
        'No such file or directory: /nope/x.md; check the path'
        >>> one_line(KeyError("internal")) is None
        True
    """
    import sys

    kinds = tuple(getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)
    if isinstance(error, kinds):
        return str(error)
    if isinstance(error, OSError) and error.errno in DISK_FIXES:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}; {DISK_FIXES[error.errno]}"
    return None
