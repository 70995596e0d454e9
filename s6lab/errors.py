"""The errors a user can fix. The CLI prints exactly these as one line and exits 2; anything
else is a bug and keeps its traceback.

Both subclass the built-in type that Python code would expect (``ValueError``, ``KeyError``),
so ``except ValueError`` around s6lab calls keeps working.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A value given to s6lab is not valid; the message names it and how to fix it."""


class UnknownNameError(KeyError):
    """A name (model, layer, method) that does not exist; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""
