"""The one look of a reference line in every s6lab figure: a target, a budget, an even share.

Examples:
    >>> TARGET_LINE["color"], TARGET_LINE["ls"]
    ('crimson', '--')
"""

from __future__ import annotations

#: keyword arguments of ``ax.axhline`` / ``ax.axvline`` for the line a reader compares against
TARGET_LINE: dict[str, object] = {"color": "crimson", "ls": "--", "lw": 1}
