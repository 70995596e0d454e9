"""What a reader sees, checked in a real browser: Playwright drives the system Chromium at 1280x900.

- The HTML report of the tiny real-MNIST run (``tiny_report``): every figure loads, no console error,
  nothing is fetched from outside the file, the check table fits without sideways scrolling, a
  header click sorts.
- The docs site (built once per session by ``docs_site``), served over HTTP: on every Tutorials
  page no table is wider than its column, every image loads, no console error, and every link
  inside the site resolves (page and anchor).

Screenshots go to ``artifacts/browser/`` (or ``$S6LAB_ARTIFACTS/browser/``). Chromium comes from the
system (Debian: ``apt-get install chromium``; ``.ci/run`` does it), never from ``playwright install``.
Without Chromium or Playwright the tests are skipped with the reason, except under ``CI=true``, where
they fail: CI installs both.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).parents[1]
ARTIFACTS = Path(os.environ.get("S6LAB_ARTIFACTS") or ROOT / "artifacts") / "browser"
VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(reason: str) -> None:
    """Skip with the reason; under CI, where .ci/run installs the browser, fail instead."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true: .ci/run installs it, so this is a set-up failure)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """The system Chromium: Debian names it ``chromium``, Ubuntu and others ``chromium-browser``."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium on PATH: apt-get install chromium (Debian) or chromium-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A 1280x900 page (``.page``) with its console errors, uncaught exceptions and blocked requests."""

    def __init__(self, browser, allow: str):
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.context = browser.new_context(viewport=VIEWPORT)
        # anything outside `allow` (a CDN, a web font) is cut off, so the page renders the same online and offline
        self.context.route(re.compile(r"^(?!" + re.escape(allow) + r"|data:|blob:)"), self._block)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _block(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort()

    def _console(self, message) -> None:
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        if source and source.split("?")[0] in {u.split("?")[0] for u in self.blocked}:
            return  # "Failed to load resource" for a request the test itself blocked
        self.errors.append(f"{message.text} ({source})")


@pytest.fixture
def new_page(browser):
    opened: list[Watched] = []

    def make(allow: str) -> Watched:
        """A page that may load only addresses starting with ``allow``."""
        opened.append(Watched(browser, allow))
        return opened[-1]

    yield make
    for w in opened:
        w.context.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# Waits for every <img> to finish (loaded or failed) and returns the ones that did not load.
BROKEN_IMAGES = """async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('alt') || i.src.slice(0, 80));
}"""

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


# ---- the HTML report ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_page(tiny_report, tmp_path_factory) -> Path:
    """report.html of the tiny real-MNIST run's report (a copy: render_html writes beside report.md)."""
    from s6lab.report_html import render_html

    run_dir = tmp_path_factory.mktemp("html-report") / "run"
    shutil.copytree(tiny_report, run_dir, ignore=shutil.ignore_patterns("*.pt"))
    return render_html(run_dir)


def column(table, index: int) -> list[str]:
    return table.evaluate(f"t => [...t.tBodies[0].rows].map(r => r.cells[{index}].textContent.trim())")


def test_html_report_in_chromium(browser, new_page, report_page):
    watched = new_page(allow="file:")
    page = watched.page
    page.goto(report_page.as_uri(), wait_until="load")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (report_page.parent / "report.md").read_text())

    assert page.evaluate("document.images.length") == len(figures) >= 8
    assert page.evaluate(BROKEN_IMAGES) == []
    assert watched.blocked == [], "the report fetched something from outside its own file"

    check = page.locator("#the-assignment-check ~ .table-wrap table").first
    assert check.is_visible()
    box = check.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    assert check.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")

    # per-class accuracy: numbers sort as numbers, up then down
    table = page.locator("table", has=page.locator("th", has_text="accuracy")).last
    header = table.locator("th", has_text="accuracy")
    index = int(header.evaluate("th => th.cellIndex"))
    numbers = lambda: [float(v.rstrip("%")) for v in column(table, index)]  # noqa: E731
    header.click()
    assert header.get_attribute("aria-sort") == "ascending" and numbers() == sorted(numbers())
    header.click()
    assert header.get_attribute("aria-sort") == "descending" and numbers() == sorted(numbers(), reverse=True)

    # the budget's total row stays last whatever the order
    budget = page.locator("table", has=page.locator("th", has_text="cumulative"))
    budget.locator("th", has_text="params").click()
    assert column(budget, 0)[-1] == "total"
    params = [int(v.replace(",", "")) for v in column(budget, 2)[:-1]]
    assert params == sorted(params)

    assert watched.errors == []
    screenshot(page, "report")


# ---- the docs site -------------------------------------------------------------------------------

def tutorial_pages() -> list[str]:
    """The pages under "Tutorials" in mkdocs.yml's nav, as site paths (``tutorials/speed/``); none
    without PyYAML (the docs extra), and docs_site would skip then anyway."""
    try:
        import yaml
    except ImportError:
        return []
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    section = next(entry["Tutorials"] for entry in nav if isinstance(entry, dict) and "Tutorials" in entry)
    return [next(iter(item.values())).removesuffix(".md") + "/" for item in section]


@pytest.fixture(scope="module")
def docs_server(docs_site):
    """The built site over HTTP on a free local port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(docs_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@functools.cache
def fetch(url: str) -> tuple[int, frozenset[str]]:
    """HTTP status of ``url`` and, for a page, the ids an anchor can point at (cached: pages share links)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as e:
        return e.code, frozenset()
    ids = _Ids()
    if kind == "text/html":
        ids.feed(body.decode("utf-8", "replace"))
    return status, frozenset(ids.ids)


# Tables whose content is wider than the article column (hidden behind a scroll bar, or sticking out).
WIDE_TABLES = """() => [...document.querySelectorAll('article table')].map(t => {
  const box = t.closest('.md-typeset__scrollwrap') || t.parentElement;
  const article = t.closest('article').getBoundingClientRect();
  const right = t.getBoundingClientRect().right;
  const head = [...t.querySelectorAll('th')].map(th => th.textContent.trim()).join(' | ');
  return {head, scroll: box.scrollWidth, visible: box.clientWidth, right, column: article.right};
}).filter(t => t.scroll > t.visible + 1 || t.right > t.column + 1)"""


@pytest.mark.parametrize("path", tutorial_pages(), ids=lambda p: p.rstrip("/").split("/")[-1])
def test_tutorial_page_in_chromium(path, browser, new_page, docs_server):
    watched = new_page(allow=docs_server)
    page = watched.page
    url = urljoin(docs_server, path)
    page.goto(url, wait_until="load")

    wide = page.evaluate(WIDE_TABLES)
    assert wide == [], f"tables wider than the content column at 1280 px: {[t['head'] for t in wide]}"
    assert page.evaluate(BROKEN_IMAGES) == []
    assert page.evaluate(NO_SIDEWAYS_SCROLL)

    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    origin = urlsplit(docs_server).netloc
    broken = []
    for href in sorted(set(hrefs)):
        if urlsplit(href).netloc != origin:
            continue  # outside the site: not this test's business
        target, anchor = urldefrag(href)
        status, ids = fetch(target)
        if status != 200:
            broken.append(f"{href}: HTTP {status}")
        elif anchor and anchor not in ids:
            broken.append(f"{href}: no element with id {anchor!r}")
    assert broken == []

    assert watched.errors == []
    screenshot(page, "docs-" + path.strip("/").replace("/", "-"))
