"""On/off switches read from the environment (``S6LAB_QUICK``, ``S6LAB_OFFLINE``): the spellings people type for
yes and no are understood, and any other value is refused by name instead of read as "off"."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import ConfigError

ON = ("1", "true", "yes", "on")
OFF = ("", "0", "false", "no", "off")
#: the switches s6lab reads, with what "on" does
FLAGS = {"S6LAB_QUICK": "quick runs in notebooks", "S6LAB_OFFLINE": "MNIST from the offline copy, not torchvision"}


def flag_problem(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with the switch ``name`` in the environment, in one sentence, or None.

    Examples:
        >>> flag_problem("S6LAB_QUICK", {"S6LAB_QUICK": "Yes"}) is None
        True
        >>> print(flag_problem("S6LAB_QUICK", {"S6LAB_QUICK": "maybe"}))
        S6LAB_QUICK='maybe': give 1 (quick runs in notebooks) or 0, or unset it
    """
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip().lower() in ON + OFF:
        return None
    return f"{name}={value!r}: give 1 ({FLAGS[name]}) or 0, or unset it"


def flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the switch ``name`` is on.

    Raises:
        ConfigError: its value is neither a yes nor a no.
    """
    if (problem := flag_problem(name, environ)) is not None:
        raise ConfigError(problem)
    return (os.environ if environ is None else environ).get(name, "").strip().lower() in ON


def flag_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """`flag_problem` of every switch s6lab reads."""
    return [p for name in FLAGS if (p := flag_problem(name, environ)) is not None]
