"""A run's report as one self-contained web page: ``report.html`` beside ``report.md``.

The page is a formatting of ``report.md`` (see [`report`][s6lab.report]), nothing more: the same text and
tables, every figure embedded as a base64 ``data:`` URI, the style sheet and a small sort script
inline. It opens from disk, offline, and can be mailed or attached as one file.

- Tables sort by clicking a header (numbers as numbers; a ``total`` row stays last). A table wider
  than the page scrolls inside its own box; the page itself never scrolls sideways.
- Headings get anchors, and the sections are listed under the title.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from ._io import atomic_write_text
from .runs import RunError

REPORT_MD, REPORT_HTML = "report.md", "report.html"

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #3f51b5; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.55; font-size: 16px;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0 0 1rem; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 0.75rem; padding-bottom: 0.3rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.15rem; margin: 1.75rem 0 0.5rem; }
h1 a.anchor, h2 a.anchor, h3 a.anchor { color: var(--line); text-decoration: none; margin-left: 0.4rem;
                                        visibility: hidden; }
h1:hover a.anchor, h2:hover a.anchor, h3:hover a.anchor { visibility: visible; }
p, ul, ol { margin: 0 0 1rem; }
a { color: var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
       font-size: 0.875em; background: var(--soft); padding: 0.1em 0.35em; border-radius: 4px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 0.9rem 1rem;
      overflow-x: auto; line-height: 1.35; }
pre code { background: none; padding: 0; font-size: 0.8rem; }
img { display: block; max-width: 100%; height: auto; margin: 0.5rem 0 1.25rem; }
nav.toc { font-size: 0.92rem; color: var(--muted); margin: 0 0 1.5rem; }
nav.toc ol { margin: 0.25rem 0 0; padding-left: 1.25rem; columns: 2; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 0 0 1.25rem; }
table { border-collapse: collapse; font-size: 0.875rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.35rem 0.7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--soft); border-bottom: 2px solid var(--line); text-align: left; white-space: nowrap;
           cursor: pointer; user-select: none; }
thead th:hover, thead th:focus { background: #eaeef2; outline: none; }
thead th::after { content: "\\2195"; color: var(--line); margin-left: 0.3rem; font-weight: normal; }
thead th[aria-sort="ascending"]::after { content: "\\25B2"; color: var(--accent); }
thead th[aria-sort="descending"]::after { content: "\\25BC"; color: var(--accent); }
tbody tr:nth-child(even) { background: #fbfcfd; }
tbody tr:hover { background: #f0f3f6; }
td:last-child { min-width: 4rem; }
"""

# Sort on a header click. A column whose filled cells all start with a number sorts numerically
# ("19,602", "93.25%", "7.32e-02", "99.45 ± 0.01" -> 99.45); empty and "-" cells go last either way;
# ties keep the original order; a row whose first cell is "total" stays at the bottom.
_JS = r"""
(function () {
  var NUM = /^[<>=~]*\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)/i;
  function text(cell) { return cell ? cell.textContent.trim() : ""; }
  function number(s) { var m = NUM.exec(s.replace(/,/g, "")); return m ? parseFloat(m[1]) : NaN; }
  function blank(s) { return s === "" || s === "-"; }
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var pinned = rows.filter(function (r) { return text(r.cells[0]).toLowerCase() === "total"; });
    rows = rows.filter(function (r) { return pinned.indexOf(r) < 0; });
    var values = rows.map(function (r, i) { return {row: r, i: i, s: text(r.cells[col])}; });
    var numeric = values.every(function (v) { return blank(v.s) || !isNaN(number(v.s)); });
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    values.sort(function (a, b) {
      if (blank(a.s) !== blank(b.s)) return blank(a.s) ? 1 : -1;
      var c = numeric ? number(a.s) - number(b.s)
                      : a.s.localeCompare(b.s, undefined, {numeric: true, sensitivity: "base"});
      return c !== 0 ? dir * c : a.i - b.i;
    });
    values.forEach(function (v) { body.appendChild(v.row); });
    pinned.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortTable(table, col, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col, th); }
      });
    });
  });
})();
"""

_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.)\s")


def _loosen_lists(text: str) -> str:
    """Put a blank line before a list that follows a paragraph line directly.

    ``report.md`` writes "What the rules allow you to try next:" with its items on the next line,
    which renders as a list on GitHub but which Python-Markdown would fold into the paragraph.
    Code fences are left as they are.
    """
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif (not fenced and _LIST_ITEM.match(line) and out and out[-1].strip()
              and not _LIST_ITEM.match(out[-1]) and not out[-1].startswith((" ", "\t", "|", "#"))):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


def _data_uri(run_dir: Path, src: str) -> str:
    """The figure ``src`` (relative to the run directory) as a base64 data URI."""
    path = run_dir / src
    if not path.is_file():
        raise RunError(f"{run_dir / REPORT_MD} shows {src}, which is missing from {run_dir}: "
                       f"run `s6lab report {run_dir}` to redraw the figures")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def to_html(text: str, run_dir: str | Path) -> str:
    """Format a report's markdown as one self-contained HTML document.

    Args:
        text: the report (``report.md``'s content): headings, lists, pipe tables, fenced code, images.
        run_dir: the directory the report's relative image paths point into.

    Returns:
        The HTML document: figures as ``data:`` URIs, inline CSS, inline sort script. An image
        whose address has a scheme (``data:``, ``https:``) is left as written.

    Raises:
        RunError: an image the report shows is not in ``run_dir``.

    Example:
        >>> page = to_html("# Run\\n\\n| a | b |\\n|---|---:|\\n| x | 2 |\\n", ".")
        >>> page.count("<table"), "sortTable" in page
        (1, True)
    """
    import markdown

    run_dir = Path(run_dir)
    md = markdown.Markdown(extensions=["tables", "fenced_code", "toc"],
                           extension_configs={"toc": {"permalink": "¶", "permalink_class": "anchor"}},
                           output_format="html")
    body = md.convert(_loosen_lists(text))

    def embed(match: re.Match[str]) -> str:
        src = html.unescape(match.group(2))
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", src):
            return match.group(0)
        return f'{match.group(1)}"{_data_uri(run_dir, src)}"'

    body = re.sub(r'(<img\b[^>]*?\bsrc=)"([^"]*)"', embed, body)
    # every table sorts, and scrolls inside its own box when it is wider than the page
    body = body.replace("<table>", '<div class="table-wrap"><table class="sortable">').replace(
        "</table>", "</table></div>")

    tokens = md.toc_tokens  # type: ignore[attr-defined]
    title = html.unescape(re.sub(r"<[^>]+>", "", tokens[0]["name"])) if tokens else "s6lab run report"
    sections = [t for top in tokens for t in top["children"]] if len(tokens) == 1 else tokens
    toc = ""
    if len(sections) > 1:
        items = "".join(f'<li><a href="#{t["id"]}">{t["name"]}</a></li>' for t in sections)
        toc = f'<nav class="toc" aria-label="sections">Sections<ol>{items}</ol></nav>\n'
        # the section list goes right under the title and the run's description
        first_h2 = body.find("<h2")
        body = body[:first_h2] + toc + body[first_h2:] if first_h2 >= 0 else toc + body

    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n<script>{_JS}</script>\n</body>\n</html>\n")


def render_html(run_dir: str | Path) -> Path:
    """Write ``report.html`` beside the run's ``report.md``: one file that opens offline.

    Args:
        run_dir: a run directory whose report has been written (``s6lab report RUN``,
            [`write_report`][s6lab.report.write_report], or the end of ``s6lab train``).

    Returns:
        The path of ``report.html`` (written atomically).

    Raises:
        RunError: ``run_dir`` has no ``report.md``, or a figure the report shows is missing.

    Example:
        >>> from s6lab.report_html import render_html
        >>> render_html("runs/s6-seed0")  # doctest: +SKIP
        PosixPath('runs/s6-seed0/report.html')
    """
    run_dir = Path(run_dir)
    source = run_dir / REPORT_MD
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run directory; train one with `s6lab train --out {run_dir}`")
    if not source.is_file():
        raise RunError(f"{run_dir} has no {REPORT_MD}; write it first with `s6lab report {run_dir}`")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"cannot read {source} ({e}); rewrite it with `s6lab report {run_dir}`") from None
    return atomic_write_text(run_dir / REPORT_HTML, to_html(text, run_dir))
