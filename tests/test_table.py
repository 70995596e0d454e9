"""The one table renderer every printed table goes through."""

from __future__ import annotations

import pytest

from s6lab._table import render_table


def test_text_aligns_numbers_right_and_strips_trailing_spaces():
    text = render_table(("name", "n", "note"), [("a", "1,000", ""), ("long name", "7", "x")], align="lrl")
    assert text.splitlines() == ["name           n  note", "a          1,000", "long name      7  x"]
    assert text.endswith("\n") and not any(line.endswith(" ") for line in text.splitlines())


def test_markdown_marks_right_aligned_columns():
    text = render_table(("name", "n"), [("a", 1)], markdown=True, align="lr")
    assert text == "| name | n |\n|---|---:|\n| a | 1 |\n"
    assert render_table(("x",), [], markdown=True) == "| x |\n|---|\n"


@pytest.mark.parametrize("rows, align, match", [
    ([("a", "b")], "lll", "one of l/r per column"),
    ([("a", "b")], "lc", "one of l/r per column"),
    ([("a",)], None, "a row has 1 cells for 2 columns"),
])
def test_a_row_or_alignment_of_the_wrong_width_is_named(rows, align, match):
    with pytest.raises(ValueError, match=match):
        render_table(("x", "y"), rows, align=align)
