"""The built book in headless Chromium: every page loads, its math is rendered by the MathJax served
from the site itself, its figures and internal links resolve. Run by `make test-browser` after the
book build (not by `pytest tests/`).

Chromium comes from Debian's packages (`make chromium`). Without it the tests skip, except under
CI=true, where they fail. Chromium may reach nothing but the local server on 127.0.0.1, so a page
that needs a CDN shows it here.
"""

import concurrent.futures
import functools
import html
import html.parser
import http.server
import json
import os
import pathlib
import sys
import posixpath
import re
import shutil
import struct
import subprocess
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_pages  # noqa: E402  (tools/toc.py: the pages of _toc.yml)
SITE = ROOT / "_build" / "html"
SCREENSHOT = ROOT / "_build" / "browser" / "chapter.png"


PAGES = toc_pages(ROOT)
NOTEBOOK_CHAPTERS = [f for f in PAGES if (ROOT / f).with_suffix(".ipynb").exists()]

# TeX that MathJax should have replaced: a control word, or a display-math delimiter
RAW_TEX = re.compile(r"\\[A-Za-z]+|\$\$")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HIDDEN = {"script", "style", "noscript", "template", "textarea", "pre", "code"}  # code may hold TeX
BUDGET_MS = 30_000  # virtual time for the page and MathJax to settle; the clock skips idle waits


class Page(html.parser.HTMLParser):
    """What the tests read from one HTML document: visible text, math, images, links, anchors."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack = []  # [tag, is_math, rendered]
        self.hidden = 0
        self.text, self.ids, self.links, self.images = [], set(), [], []
        self.math, self.unrendered, self.mathjax_errors, self.mathjax_scripts = 0, 0, 0, []
        self.feed(text)
        self.close()
        self.text = " ".join(self.text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        if tag == "script" and "mathjax" in (a.get("src") or "").lower():
            self.mathjax_scripts.append(a["src"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "mjx-merror" or "data-mjx-error" in a:
            self.mathjax_errors += 1
        if tag == "mjx-container":
            for frame in self.stack:
                frame[2] = True
        if tag in VOID:
            return
        is_math = tag in ("span", "div") and "math" in (a.get("class") or "").split()
        self.math += is_math
        self.stack.append([tag, is_math, False])
        self.hidden += tag in HIDDEN

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if not any(frame[0] == tag for frame in self.stack):
            return
        while True:
            name, is_math, rendered = self.stack.pop()
            self.hidden -= name in HIDDEN
            self.unrendered += is_math and not rendered
            if name == tag:
                return

    def handle_data(self, data):
        if not self.hidden and any(frame[0] == "body" for frame in self.stack):
            self.text.append(data)


def _html_file(page):
    return SITE / f"{page}.html"


@functools.cache
def _static(path):
    return Page(path.read_text(encoding="utf-8"))


def _chromium():
    exe = shutil.which("chromium")
    if exe is None:
        why = "chromium is not installed (make chromium installs it from Debian's packages as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI needs it", pytrace=False)
        pytest.skip(why)
    return exe


def _run_chromium(exe, profile, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline but for the local server
           f"--virtual-time-budget={BUDGET_MS}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def server():
    """The built site on 127.0.0.1; records every request it could not answer."""
    if not (SITE / "index.html").exists():
        pytest.fail("no built book: run `make test-book` first", pytrace=False)
    failed = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            # /favicon.ico: Chromium's own guess, which no page names
            if int(getattr(code, "value", code)) >= 400 and self.path != "/favicon.ico":
                failed.append(f"{code} {self.path} (from {self.headers.get('Referer')})")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(SITE)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", failed
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def rendered(server, tmp_path_factory):
    """Each page's DOM after Chromium has run its scripts (MathJax included), two pages at a time."""
    exe = _chromium()
    base, _ = server

    # one fresh profile per page, made here: tmp_path_factory is not safe to call from the worker threads
    profiles = {page: tmp_path_factory.mktemp("profile") for page in PAGES}

    def dump(page):
        result = _run_chromium(exe, profiles[page], "--dump-dom", base + f"{page}.html")
        assert result.returncode == 0 and "<body" in result.stdout, f"{page}: chromium failed\n{result.stderr[-2000:]}"
        return Page(result.stdout)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(PAGES, pool.map(dump, PAGES)))


def test_the_toc_lists_chapters():
    assert NOTEBOOK_CHAPTERS, "_toc.yml lists no notebook chapter"
    assert "book/api" in PAGES, "_toc.yml lists no API page"
    assert any(map(_stored_figures, NOTEBOOK_CHAPTERS)), "no chapter stores a figure"


@pytest.mark.parametrize("page", PAGES)
def test_page_loads(page, rendered):
    dom = rendered[page]
    assert dom.ids and "main-content" in dom.ids, f"{page}: the page has no main content"
    assert dom.text.strip(), f"{page}: the page shows no text"


@pytest.mark.parametrize("page", PAGES)
def test_math_is_rendered_by_the_local_mathjax(page, rendered):
    built, dom = _static(_html_file(page)), rendered[page]
    if page in NOTEBOOK_CHAPTERS:
        assert built.math, f"{page}: a chapter without math"
    if built.math:
        assert len(built.mathjax_scripts) == 1, f"{page}: MathJax loaded {len(built.mathjax_scripts)} times"
        src = built.mathjax_scripts[0]
        assert "://" not in src, f"{page}: MathJax comes from {src}, not from the site"
        assert _resolve(page, src).is_file(), f"{page}: {src} is not in the built site"
        assert dom.math and not dom.unrendered, f"{page}: {dom.unrendered} of {dom.math} math elements not rendered"
        assert not dom.mathjax_errors, f"{page}: {dom.mathjax_errors} MathJax errors (undefined macros?)"
    raw = sorted(set(RAW_TEX.findall(dom.text)))
    assert not raw, f"{page}: raw TeX left in the visible text: {raw}"


def _stored_figures(page):
    """How many figures (image outputs) the notebook stores."""
    cells = json.loads((ROOT / page).with_suffix(".ipynb").read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return sum(any(k.startswith("image/") for k in o.get("data", {})) for o in outputs)


@pytest.mark.parametrize("page", NOTEBOOK_CHAPTERS)
def test_chapter_figures_are_in_the_build(page, rendered):
    images = rendered[page].images
    assert len(images) >= _stored_figures(page), f"{page}: {_stored_figures(page)} figures stored, {len(images)} shown"
    for src in images:
        assert src, f"{page}: an <img> without src"
        if not src.startswith("data:"):
            target = _resolve(page, src)
            assert target.is_file() and target.stat().st_size, f"{page}: figure {src} is missing"


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(page, rendered):
    broken = []
    for href in rendered[page].links:
        url = urllib.parse.urlsplit(href)
        if url.scheme or url.netloc or href == "#":
            continue
        target = _resolve(page, url.path) if url.path else _html_file(page)
        if not target.is_file():
            broken.append(f"{href} (no file)")
        elif url.fragment and target.suffix == ".html" and url.fragment not in _static(target).ids:
            broken.append(f"{href} (no anchor)")
    assert not broken, f"{page}: broken links: {broken}"


def test_every_request_was_answered(rendered, server):
    _, failed = server
    assert not failed, f"requests the site could not answer: {failed}"


def test_no_page_loads_mathjax_from_a_cdn():
    pages = [p for p in SITE.rglob("*.html") if "mathjax" not in p.relative_to(SITE).parts]
    remote = [f"{p.relative_to(SITE)}: {s}" for p in pages for s in _static(p).mathjax_scripts if "://" in s]
    assert not remote, remote


# Appended to every page of a copy of the site: once MathJax has typeset the page, record for each display
# equation its rendered width and the width of the text column it sits in.
WIDTH_PROBE = """<script>
window.addEventListener("load", function () {
  function report() {
    var out = [];
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (c) {
      var math = c.firstElementChild || c, column = c.closest("div.math") || c.parentElement;
      out.push({width: math.getBoundingClientRect().width, column: column.clientWidth,
                tex: (c.parentElement.textContent || "").trim().slice(0, 80)});
    });
    var pre = document.createElement("pre");
    pre.id = "mathjax-widths";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { MathJax.startup.promise.then(report); }
  else { report(); }
});
</script>"""
WIDTHS = re.compile(r'<pre id="mathjax-widths"[^>]*>(.*?)</pre>', re.S)
READING_WINDOW = "1280,1600"          # a laptop screen: the book's text column is about 680 px wide there


@pytest.fixture(scope="module")
def display_widths(tmp_path_factory):
    """Each math page's display equations, rendered in a laptop-sized window: [{width, column, tex}]."""
    exe = _chromium()
    site = tmp_path_factory.mktemp("probed") / "html"
    shutil.copytree(SITE, site)
    pages = [page for page in PAGES if _static(_html_file(page)).math]
    for page in pages:
        path = site / f"{page}.html"
        path.write_text(path.read_text(encoding="utf-8").replace("</body>", WIDTH_PROBE + "</body>"), encoding="utf-8")
    profiles = {page: tmp_path_factory.mktemp("profile") for page in pages}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"

    def measure(page):
        result = _run_chromium(exe, profiles[page], f"--window-size={READING_WINDOW}", "--dump-dom", base + f"{page}.html")
        found = WIDTHS.search(result.stdout)
        assert found, f"{page}: the width probe did not report\n{result.stderr[-1000:]}"
        return json.loads(html.unescape(found.group(1)))

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip(pages, pool.map(measure, pages)))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_display_math_fits_the_text_column(display_widths):
    """A display equation wider than the column is cut off (or hidden behind a scroll bar) in the browser."""
    assert any(display_widths.values()), "no page has display math"
    too_wide = [f"{page}: {d['width']:.0f} px in a {d['column']} px column: {d['tex'][:60]!r}"
                for page, displays in display_widths.items() for d in displays if d["width"] > d["column"] + 1]
    assert not too_wide, "display equations wider than the text column:\n" + "\n".join(too_wide)


def test_screenshot_of_a_chapter(server, tmp_path):
    exe = _chromium()
    base, _ = server
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    result = _run_chromium(exe, tmp_path, "--hide-scrollbars", "--window-size=1280,1600",
                           f"--screenshot={SCREENSHOT}", base + f"{NOTEBOOK_CHAPTERS[0]}.html")
    assert result.returncode == 0, result.stderr[-2000:]
    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    assert struct.unpack(">II", png[16:24]) == (1280, 1600)
    assert len(png) > 20_000, f"the screenshot is nearly blank ({len(png)} bytes)"


def _resolve(page, url):
    """The file in the built site that `url`, relative to the page, points to (query and anchor dropped)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    rel = path.lstrip("/") if path.startswith("/") else posixpath.join(posixpath.dirname(page), path)
    target = SITE / posixpath.normpath(rel)
    return target / "index.html" if target.is_dir() else target
