"""The built site in a real browser, with no network: every page of `_toc.yml`, served from
`_build/html` on 127.0.0.1, opened in headless Chromium that may fetch nothing else.

Per page the test checks that every plotly figure drew its SVG and every circuitsvis widget
rendered (as many as the page's notebook shows), that MathJax typeset every formula, that no
script threw, and that the page fetched nothing from outside the site; it fails naming each URL a
page tried to fetch elsewhere (blocked), each file missing from the site, and each count that falls
short or exceeds it. Full-page screenshots go to `_build/screenshots/<slug>.png`.

Needs the built site (`jb build`, as `make test` runs before this test) and Chromium from the
distribution (`apt-get install chromium`; `.ci/run` installs it when missing, and `CHROMIUM` names
another binary). Marked `site`, outside the default run: `pytest tests/site -m site`.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright
from site_pages import Figures, Page, book_pages, expected_figures

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
PAGES = book_pages(ROOT)
HOST = "127.0.0.1"

# Without the background-networking flags Chromium's own connections (component updates, sync,
# QUIC probes) are refused by a closed network and clutter its log. Playwright gives every launch
# a fresh temporary profile (--user-data-dir) itself; the host rule makes any request that
# escaped the route below unresolvable, so nothing reaches the network either way.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HOST}",
]
VIEWPORT = {"width": 1280, "height": 900}
LOAD_TIMEOUT_MS = 60_000
# After the load event plotly, React and MathJax draw, and MathJax fetches its components: the page
# is measured until it shows everything with no request in flight for IDLE_S, or until neither what
# it drew nor its requests changed for QUIET_S (what is missing then will not come), at most
# RENDER_S. (Playwright's own "networkidle" can fire during the parse of a long page and then
# never again; the test counts requests itself.)
IDLE_S = 0.5
QUIET_S = 5.0
RENDER_S = 60.0

# What the page drew. A plotly figure drew when its div holds plotly's `svg.main-svg`; a
# circuitsvis widget (the notebook's mount points, and any other on the page) rendered when React
# put elements into its mount point (circuitsvis's own `<div .../>` also holds the script).
MEASURE = """(ids) => {
  const rendered = (w) => w && [...w.children].some((c) => !["SCRIPT", "STYLE"].includes(c.tagName));
  const plots = new Set(document.querySelectorAll(".plotly-graph-div, .js-plotly-plot"));
  const widgets = new Set([
    ...document.querySelectorAll('[id^="circuits-vis-"], .circuitsvis-widget'),
    ...ids.map((id) => document.getElementById(id)).filter((w) => w),
  ]);
  const math = [...document.querySelectorAll(".math")];
  return {
    plots: plots.size,
    drawn: [...plots].filter((p) => p.querySelector("svg.main-svg")).length,
    widgets: widgets.size,
    rendered: [...widgets].filter(rendered).length,
    absent: ids.filter((id) => !document.getElementById(id)),
    unrendered: ids.filter((id) => document.getElementById(id) && !rendered(document.getElementById(id))),
    math: math.length,
    typeset: math.filter((m) => m.querySelector("mjx-container")).length,
  };
}"""
NEXT_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """`_build/html` served on an ephemeral port of 127.0.0.1, for this module."""
    if not (HTML / "index.html").is_file():
        pytest.fail(
            f"no built site: {HTML.relative_to(ROOT)}/index.html is missing; build it first with "
            "`.venv/bin/jb build . -n -W --keep-going` (`make test` builds it before this test)",
            pytrace=False,
        )
    server = ThreadingHTTPServer((HOST, 0), functools.partial(QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not executable:
        pytest.fail(
            "Chromium is not installed: `apt-get install chromium` (.ci/run installs it when missing), "
            "or set CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Requests:
    """The requests of a page still in flight, and when one last started or ended."""

    def __init__(self, tab) -> None:
        self.inflight: set = set()
        self.last = time.monotonic()
        tab.on("request", self.started)
        tab.on("requestfinished", self.ended)
        tab.on("requestfailed", self.ended)

    def started(self, request) -> None:
        self.inflight.add(request)
        self.last = time.monotonic()

    def ended(self, request) -> None:
        self.inflight.discard(request)
        self.last = time.monotonic()


def settled(tab, requests: Requests, expected: Figures) -> dict:
    """What `tab` drew, once it shows every expected figure and formula with the network idle, or
    once nothing changes any more."""
    start = last_change = time.monotonic()
    drawn = tab.evaluate(MEASURE, list(expected.widgets))
    while True:
        now = time.monotonic()
        complete = (
            drawn["drawn"] >= expected.plotly
            and not drawn["unrendered"]
            and drawn["typeset"] == drawn["math"]
        )
        if complete and not requests.inflight and now - requests.last >= IDLE_S:
            return drawn
        if now - max(last_change, requests.last) > QUIET_S or now - start > RENDER_S:
            return drawn
        tab.wait_for_timeout(250)
        now_drawn = tab.evaluate(MEASURE, list(expected.widgets))
        if now_drawn != drawn:
            drawn, last_change = now_drawn, time.monotonic()


def screenshot(tab, path: Path) -> None:
    """The whole page as one PNG. The viewport is made as tall as the page first: a full-page
    capture of a shorter viewport resizes the page while it captures, which clears the canvases
    of circuitsvis's charts (they redraw a frame later, after the capture)."""
    height = tab.evaluate("() => document.documentElement.scrollHeight")
    tab.set_viewport_size({"width": VIEWPORT["width"], "height": max(height, VIEWPORT["height"])})
    tab.evaluate(NEXT_FRAMES)
    tab.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=path, full_page=True, timeout=LOAD_TIMEOUT_MS)


def listed(items: Counter) -> list[str]:
    return [f"    {item}" + (f" ({n} times)" if n > 1 else "") for item, n in sorted(items.items())]


@pytest.mark.parametrize("page", PAGES, ids=[page.slug for page in PAGES])
def test_page_renders_offline(page: Page, site: str, browser):
    expected = expected_figures(ROOT, page)
    outside: Counter = Counter()  # requests blocked: they leave the site
    missing: Counter = Counter()  # requests to the site that failed
    errors: list[str] = []  # uncaught exceptions

    def route(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob", "about") or url.hostname == HOST:
            route.continue_()
        else:
            outside[route.request.url] += 1
            route.abort("blockedbyclient")

    def on_response(response):
        if response.status >= 400 and urlsplit(response.url).hostname == HOST:
            missing[f"{response.url} (HTTP {response.status})"] += 1

    def on_request_failed(request):
        if urlsplit(request.url).hostname == HOST:
            missing[f"{request.url} ({request.failure})"] += 1

    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    try:
        context.route("**/*", route)
        tab = context.new_page()
        requests = Requests(tab)
        tab.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
        tab.on("response", on_response)
        tab.on("requestfailed", on_request_failed)
        response = tab.goto(f"{site}/{page.html}", wait_until="load", timeout=LOAD_TIMEOUT_MS)
        if response is None or not response.ok:
            pytest.fail(
                f"{page.html}: HTTP {response and response.status}: not in the built site", pytrace=False
            )
        drawn = settled(tab, requests, expected)
        try:
            screenshot(tab, SCREENSHOTS / f"{page.slug}.png")
        except PlaywrightError as error:
            errors.append(f"screenshot failed: {error.message}")
    finally:
        context.close()

    source = page.notebook.relative_to(ROOT) if page.notebook else "a Markdown page"
    problems = []
    if outside:
        problems.append(
            f"fetched {sum(outside.values())} time(s) from outside the site (blocked; the site must serve "
            "these itself):"
        )
        problems += listed(outside)
    if missing:
        problems.append("requests to the site that failed (files missing from _build/html?):")
        problems += listed(missing)
    stale = " (is _build/html older than the notebook? rebuild it)"
    if drawn["drawn"] != expected.plotly or drawn["plots"] != expected.plotly:
        problems.append(
            f"plotly figures: {drawn['drawn']} drew their SVG, of {drawn['plots']} on the page; "
            f"{source} shows {expected.plotly}" + (stale if drawn["plots"] != expected.plotly else "")
        )
    widgets = (drawn["rendered"], drawn["widgets"], drawn["absent"], drawn["unrendered"])
    if widgets != (expected.circuitsvis, expected.circuitsvis, [], []):
        problems.append(
            f"circuitsvis widgets: {drawn['rendered']} rendered, of {drawn['widgets']} on the page; "
            f"{source} shows {expected.circuitsvis}"
            + (f"; not rendered: {', '.join(drawn['unrendered'])}" if drawn["unrendered"] else "")
            + (f"; not on the page: {', '.join(drawn['absent'])}{stale}" if drawn["absent"] else "")
        )
    if drawn["typeset"] != drawn["math"]:
        problems.append(f"math: MathJax typeset {drawn['typeset']} of the page's {drawn['math']} formulas")
    if errors:
        problems.append("JavaScript errors:")
        problems += listed(Counter(errors))
    summary = (
        f"{page.html} ({SCREENSHOTS.relative_to(ROOT)}/{page.slug}.png): {drawn['drawn']} plotly figures, "
        f"{drawn['rendered']} circuitsvis widgets, {drawn['typeset']} formulas"
    )
    if problems:
        pytest.fail("\n".join([summary, *problems]), pytrace=False)
