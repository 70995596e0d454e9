"""report.html: one self-contained page made from report.md (synthetic reports; one real run)."""

from __future__ import annotations

import base64
import re
import shutil

import pytest

from s6lab.report_html import REPORT_HTML, render_html, to_html
from s6lab.runs import RunError

# a 1x1 PNG: enough to check that the bytes travel into the page unchanged
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                       "AAAABJRU5ErkJggg==")

REPORT = """# Run report: `s6`

The reference net.

- seed 0, 2 of 2 epochs

## The assignment check

| requirement | rule | this run | result |
|---|---|---|---|
| parameters | < 20,000 | 19,602 | PASS |
| epochs | < 20 | 2 | PASS |

What the rules allow you to try next:
- train longer
- run other seeds

## Training

![accuracy and loss per epoch](curves.png)

| epoch | test acc | seconds |
|---:|---:|---:|
| 1 | 85.65% | 18.8 |
| 2 | 93.25% | 21.6 |

```text
Net
- not a list: code is left as written
```

![confusion matrix](confusion.png)
"""


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "report.md").write_text(REPORT)
    for name in ("curves.png", "confusion.png"):
        (tmp_path / name).write_bytes(PNG)
    return tmp_path


def test_render_html_embeds_every_figure(run_dir):
    path = render_html(run_dir)
    assert path == run_dir / REPORT_HTML
    page = path.read_text()
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page)
    assert len(sources) == 2
    assert all(s == "data:image/png;base64," + base64.b64encode(PNG).decode() for s in sources)
    assert 'alt="accuracy and loss per epoch"' in page


def test_render_html_is_self_contained(run_dir):
    page = render_html(run_dir).read_text()
    assert "<style>" in page and "<script>" in page
    # nothing to fetch: no linked style sheet, no external script, no remote address
    assert not re.search(r"<link\b|<script\b[^>]*\bsrc=|\b(?:src|href)=\"(?:https?:)?//", page)
    assert not list(run_dir.glob(".*.part"))  # written atomically: no temporary file left


def test_render_html_tables_sort_and_scroll_in_their_own_box(run_dir):
    page = render_html(run_dir).read_text()
    assert page.count('<table class="sortable">') == 2 == page.count('<div class="table-wrap">')
    assert page.count("</table></div>") == 2
    assert "function sortTable" in page and 'querySelectorAll("table.sortable")' in page
    assert 'style="text-align: right;"' in page  # the markdown's column alignment survives
    assert "<th>requirement</th>" in page and "<td>19,602</td>" in page


def test_render_html_text_structure(run_dir):
    page = render_html(run_dir).read_text()
    assert "<title>Run report: s6</title>" in page
    assert "<li>train longer</li>" in page  # a list straight after its paragraph line is a list
    assert "- not a list: code is left as written" in page  # ... but not inside a code block
    assert '<h2 id="the-assignment-check">' in page
    assert '<nav class="toc"' in page and 'href="#training"' in page


def test_render_html_overwrites_an_older_page(run_dir):
    (run_dir / REPORT_HTML).write_text("old")
    assert render_html(run_dir).read_text().startswith("<!DOCTYPE html>")


def test_to_html_leaves_addresses_with_a_scheme_alone(tmp_path):
    page = to_html("![x](data:image/gif;base64,R0lGODlhAQABAAAAACw=)\n", tmp_path)
    assert 'src="data:image/gif;base64,R0lGODlhAQABAAAAACw="' in page


def test_render_html_missing_run_directory(tmp_path):
    with pytest.raises(RunError, match=r"is not a run directory; train one with `s6lab train"):
        render_html(tmp_path / "none")


def test_render_html_missing_report(tmp_path):
    with pytest.raises(RunError, match=r"has no report.md; write it first with `s6lab report ") as e:
        render_html(tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / REPORT_HTML).exists()


def test_render_html_missing_figure(run_dir):
    (run_dir / "confusion.png").unlink()
    with pytest.raises(RunError, match=r"shows confusion.png, which is missing .*`s6lab report .*` to redraw") as e:
        render_html(run_dir)
    assert "\n" not in str(e.value)
    assert not (run_dir / REPORT_HTML).exists()


def test_render_html_unreadable_report(run_dir):
    (run_dir / "report.md").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(RunError, match="cannot read .*report.md"):
        render_html(run_dir)


def test_render_html_of_a_real_report(tiny_report, tmp_path):
    """The report that write_report wrote for the tiny real-MNIST run: every figure and table arrives."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_report, run_dir, ignore=shutil.ignore_patterns("*.pt"))
    text = (run_dir / "report.md").read_text()
    page = render_html(run_dir).read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) >= 8
    assert page.count('src="data:image/png;base64,') == len(figures)
    tables = len(re.findall(r"^\|[-:|]+\|$", text, flags=re.M))  # one separator row per table
    assert page.count('<table class="sortable">') == tables >= 5
    assert "failed" not in page
