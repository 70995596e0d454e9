"""The one table renderer: every printed table of s6lab (text or markdown) goes through `render_table`.

Analysis modules compute rows of strings (formatting numbers is theirs: ``f"{n:,}"``); this
module only lays them out, so every table aligns, pads and marks its numeric columns alike.

Examples:
    >>> print(render_table(("name", "params"), [("conv1", "320"), ("head", "2,570")], align="lr"), end="")
    name   params
    conv1     320
    head    2,570
    >>> print(render_table(("name", "params"), [("conv1", "320")], align="lr", markdown=True), end="")
    | name | params |
    |---|---:|
    | conv1 | 320 |
"""

from __future__ import annotations

from collections.abc import Sequence


def render_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool = False,
                 align: str | None = None) -> str:
    """``header`` and ``rows`` as aligned text (two spaces between columns) or a markdown table.

    Args:
        header: the column titles.
        rows: one sequence of cells per row, as many as ``header``; cells are shown with ``str``.
        markdown: a markdown table instead of text.
        align: one letter per column, ``l`` (left) or ``r`` (right, for numbers); default all left.

    Returns:
        The table, one line per row, ending in a newline; text lines carry no trailing spaces.

    Raises:
        ValueError: a row or ``align`` of another width than ``header``.
    """
    align = align or "l" * len(header)
    cells = [[str(c) for c in row] for row in rows]
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs one of l/r per column ({len(header)}), got {align!r}")
    for row in cells:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row}")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"
    widths = [max(len(x) for x in column) for column in zip(header, *cells)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)).rstrip()

    return "\n".join(line(row) for row in [list(header), *cells]) + "\n"
