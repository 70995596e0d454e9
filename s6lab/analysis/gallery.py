"""Deprecated: this module is now [`s6lab.analysis.mistakes`][s6lab.analysis.mistakes].

One name for one concept: the module, its functions, the report section, the tutorial and the
command are all "mistakes". ``interpret`` is now ``find_mistakes`` and ``plot_gallery`` is
``plot_mistakes``. The old names work, with a DeprecationWarning, until the next release.
"""

from __future__ import annotations

import warnings

from .mistakes import *  # noqa: F403
from .mistakes import find_mistakes as interpret  # noqa: F401
from .mistakes import plot_mistakes as plot_gallery  # noqa: F401

warnings.warn("s6lab.analysis.gallery is now s6lab.analysis.mistakes (interpret is find_mistakes, plot_gallery is "
              "plot_mistakes); the old names go in the next release", DeprecationWarning, stacklevel=2)
