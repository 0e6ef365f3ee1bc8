"""The smoke build of the book opened in a real browser (Chromium through Playwright).

Run by `make test` after `smoke-book` (target `browser-test`, which sets MEDFOUND_BROWSER_TEST=1 and
installs Debian's `chromium` when missing). Without that variable a missing build is skipped, so that
`pytest tests` works before any book was built; with it, a missing build or browser is a failure,
except that a machine where chromium cannot be installed skips with the reason.
"""
from __future__ import annotations
import os, re, shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "book" / "_build" / "html"
BUDGET = 3 * 2**20                      # bytes of scripts, styles and fonts per page
REQUIRED = os.environ.get("MEDFOUND_BROWSER_TEST") == "1"
FILE_NAME = re.compile(r"^\S+\.(png|jpe?g|svg|gif|webp)$|^[0-9a-f]{16,}", re.I)


def _pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
                  and p.name not in ("genindex.html", "search.html"))


def _chapters() -> list[Path]:
    "Pages of paper chapters (not the shared notebooks: core ones and a part's `<part>_common`)."
    import yaml
    papers = {p["slug"] for p in yaml.safe_load((ROOT / "book/papers.yaml").read_text())["papers"]}
    return sorted(p for p in (HTML / "chapters").rglob("*.html") if p.stem in papers)


@pytest.fixture(scope="module")
def browser():
    if not (HTML / "index.html").exists():
        if REQUIRED: pytest.fail(f"no book at {HTML}: run `make smoke-book` first")
        pytest.skip("no built book (book/_build/html): `make test` builds and checks it")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("MEDFOUND_NO_CHROMIUM"):
            pytest.skip(f"chromium could not be installed on this machine: {os.environ['MEDFOUND_NO_CHROMIUM']}")
        if REQUIRED: pytest.fail("chromium not found: `make chromium` installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (make chromium)")
    sync_api = pytest.importorskip("playwright.sync_api") if not REQUIRED else __import__(
        "playwright.sync_api", fromlist=["sync_playwright"])
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def visit(browser, path: Path) -> dict:
    "Open one page from disk; return its console errors, weight by resource type and the page handle."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, sizes = [], {}
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))

    def on_response(r):
        kind = r.request.resource_type
        if kind not in ("script", "stylesheet", "font"): return
        try: n = len(r.body())
        except Exception: n = 0
        sizes[urlparse(r.url).path] = (kind, n)
    page.on("response", on_response)
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    return dict(page=page, errors=errors, weight=sum(n for _, n in sizes.values()), sizes=sizes)


def test_book_has_pages():
    if not (HTML / "index.html").exists():
        if REQUIRED: pytest.fail("no built book")
        pytest.skip("no built book")
    names = {p.relative_to(HTML).as_posix() for p in _pages()}
    assert {"intro.html", "scorecard.html", "statistics.html", "running.html"} <= names, names
    assert _chapters(), "no paper chapter in the build"


def test_every_page_clean(browser):
    "No console error, weight under the budget, every <img> with alt text that is not a file name."
    problems = []
    for path in _pages():
        v = visit(browser, path); page = v["page"]; rel = path.relative_to(HTML).as_posix()
        problems += [f"{rel}: {e}" for e in v["errors"]]
        if v["weight"] > BUDGET:
            top = sorted(v["sizes"].items(), key=lambda kv: -kv[1][1])[:5]
            problems.append(f"{rel}: {v['weight'] / 2**20:.2f} MB of scripts/styles/fonts > 3 MB ({top})")
        for img in page.query_selector_all("img"):
            alt = (img.get_attribute("alt") or "").strip(); src = img.get_attribute("src") or ""
            if not alt or FILE_NAME.match(alt) or alt == Path(urlparse(src).path).name:
                problems.append(f"{rel}: <img src={src[:60]!r}> has alt {alt!r}")
        n_mathjax = page.evaluate("Array.from(document.scripts).filter(s => /mathjax/i.test(s.src)).length")
        if n_mathjax > 1: problems.append(f"{rel}: {n_mathjax} MathJax scripts")
        n_thebe = page.evaluate("Array.from(document.head.querySelectorAll('script')).filter(s => s.textContent.includes('THEBE_JS_URL')).length")
        if n_thebe > 1: problems.append(f"{rel}: the thebe setup script {n_thebe} times")
        page.close()
    assert not problems, "\n".join(problems)


def test_chapters_box_and_tables(browser):
    "Each chapter: the record box says 'smoke'; tables are HTML tables, no Markdown table text left raw."
    problems = []
    for path in _chapters():
        v = visit(browser, path); page = v["page"]; rel = path.relative_to(HTML).as_posix()
        box = page.query_selector("div.record-box")
        if box is None: problems.append(f"{rel}: no run-record box")
        else:
            text = box.inner_text()
            if "smoke" not in text.lower() or "not results" not in text:
                problems.append(f"{rel}: the record box does not say that smoke numbers are not results: {text[:200]!r}")
        main = page.query_selector("article") or page.query_selector("main")
        # rendered text only: source code that builds a Markdown table (inside .cell_input) is code, not a table
        raw = main.evaluate("""el => Array.from(el.querySelectorAll('p, pre, div.output'))
                               .filter(e => !e.closest('.cell_input'))
                               .map(e => e.innerText).filter(t => /\\|\\s*:?-{3,}:?\\s*\\|/.test(t)).length""")
        if raw: problems.append(f"{rel}: {raw} Markdown table(s) rendered as text")
        failed = box is not None and "This run failed" in box.inner_text()
        tables = page.evaluate("Array.from(document.querySelectorAll('article table')).filter(t => !t.closest('.record-box')).length")
        if not tables and not failed: problems.append(f"{rel}: no results <table> outside the record box")
        page.close()
    assert not problems, "\n".join(problems)


def test_scorecard(browser):
    "The scorecard: a table per part, claims counted, the forest plot with alt text."
    v = visit(browser, HTML / "scorecard.html"); page = v["page"]
    assert page.query_selector_all("article table"), "no table on the scorecard"
    img = page.query_selector("article img")
    assert img is not None and "Forest plot" in (img.get_attribute("alt") or "")
    assert "normalised" in page.inner_text("article")
    page.close()
