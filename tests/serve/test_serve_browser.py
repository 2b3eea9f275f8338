"""The web page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright;
`playwright install` is never run): type a query, see thumbnails of the expected pages
(loaded, non-blank), open one, see its terms; keyboard and a narrow window too.
Skipped only when no Chromium is installed (`make test` installs it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from browser_support import CHROMIUM, MISSING, chromium, sync_api
from serve_support import run_server

SCREENSHOTS = os.environ.get("VSPLADE_SCREENSHOTS")  # a dir: keep screenshots there (to look at them)

if not Path(CHROMIUM).exists():
    pytest.skip(MISSING, allow_module_level=True)
sync_api()  # skips the module when playwright is not installed
pytestmark = pytest.mark.browser

# Pixel statistics of every thumbnail, drawn into a canvas (same origin, so readable).
THUMB_STATS = """() => [...document.querySelectorAll('#results img')].map(img => {
  const c = document.createElement('canvas');
  c.width = Math.min(64, img.naturalWidth || 1); c.height = Math.min(64, img.naturalHeight || 1);
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let min = 255, max = 0;
  for (let i = 0; i < d.length; i += 4) { const v = (d[i] + d[i+1] + d[i+2]) / 3; min = Math.min(min, v); max = Math.max(max, v); }
  return {src: img.getAttribute('src'), complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, min, max};
})"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _shot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=False)


def _wait_thumbnails(page, n):
    page.wait_for_function(
        f"() => {{ const im = [...document.querySelectorAll('#results img')]; "
        f"return im.length >= {n} && im.every(i => i.complete && i.naturalWidth > 0); }}", timeout=120_000)


def test_search_shows_thumbnails_and_why(browser, memory_server):
    s = memory_server
    _, expected = s.get_json("/search", q="debian package management", k=10)
    assert expected["hits"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(s.base) else None)
    page.goto(s.base + "/")
    page.fill("#q", "debian package management")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .card")
    cards = page.locator("#results .card")
    assert cards.count() == len(expected["hits"])
    assert [cards.nth(i).get_attribute("data-id") for i in range(cards.count())] == [h["id"] for h in expected["hits"]]
    _wait_thumbnails(page, len(expected["hits"]))
    stats = page.evaluate(THUMB_STATS)
    for st in stats:
        assert st["w"] > 0 and st["h"] > 0, st
        assert st["max"] - st["min"] > 40, f"thumbnail looks blank: {st}"
    top = cards.nth(0)
    assert "debian-refcard-en-a4.pdf" in top.inner_text() and "page 1" in top.inner_text()
    _shot(page, "results.png")

    top.locator("button.open").click()
    dialog = page.locator("#viewer")
    dialog.wait_for(state="visible")
    page.wait_for_function("() => { const i = document.querySelector('#viewer-img'); return i.complete && i.naturalWidth > 0; }",
                           timeout=120_000)
    assert page.eval_on_selector("#viewer-img", "i => i.naturalWidth") >= 960
    matched = page.locator("#matched li .tok").all_inner_texts()
    assert {"debian", "package"} <= set(matched), matched
    page.wait_for_selector("#page-terms li")
    assert "debian" in page.locator("#page-terms li").all_inner_texts()
    assert "debian-refcard-en-a4.pdf" in page.locator("#viewer-title").inner_text()
    _shot(page, "viewer.png")

    # keyboard: next hit, then Escape closes and focus returns to the grid
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#viewer-title').textContent.includes('page 2')")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.classList.contains('open')")
    assert not errors, errors
    assert not outside, f"the page fetched something outside the service: {outside}"
    page.close()


def test_narrow_window_and_url_state(browser, memory_server):
    s = memory_server
    page = browser.new_page(viewport={"width": 380, "height": 800})
    page.goto(s.base + "/?q=" + "camlidl%20interface" + "&k=10")
    page.wait_for_selector("#results .card")
    _wait_thumbnails(page, 1)
    # the grid fits the window: no horizontal scrolling
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.input_value("#q") == "camlidl interface"
    _, expected = s.get_json("/search", q="camlidl interface", k=10)
    first = page.locator("#results .card").nth(0).get_attribute("data-id")
    assert first == expected["hits"][0]["id"]
    _shot(page, "narrow.png")
    page.close()


def test_errors_are_shown_not_swallowed(browser, memory_server):
    page = browser.new_page()
    page.goto(memory_server.base + "/")
    page.fill("#q", "x" * 1000)
    page.evaluate("() => { document.querySelector('#q').value += 'y'; }")  # past maxlength, via script
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#status').classList.contains('error')")
    assert "1000" in page.inner_text("#status")
    page.close()


def test_page_with_token_asks_once_and_images_load(browser, indexes, tmp_path):
    token = "browser-token-0123456789abcdef"
    with run_server("memory", indexes["memory"], tmp_path, token=token) as s:
        page = browser.new_page()
        page.on("dialog", lambda d: d.accept(token))
        page.goto(s.base + "/?q=debian")
        page.wait_for_selector("#results .card")
        _wait_thumbnails(page, 1)
        assert json.loads(json.dumps(page.evaluate("() => document.cookie"))).startswith("vsplade_token=")
        page.close()


def test_lucene_page_results_and_unavailable_images_explained(browser, servers):
    if "lucene" not in servers:
        pytest.skip("the lucene connector is not installed")
    s = servers["lucene"]
    _, info = s.get_json("/info")
    _, expected = s.get_json("/search", q="debian package management", k=10)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(s.base + "/?q=debian%20package%20management")
    page.wait_for_selector("#results .card")
    ids = page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.id)")
    assert ids == [h["id"] for h in expected["hits"]]
    page.locator("#results button.open").first.click()
    page.locator("#viewer").wait_for(state="visible")
    assert {"debian", "package"} <= set(page.locator("#matched li .tok").all_inner_texts())
    if info["catalog"]:  # the engine records the files: the page renders
        page.wait_for_function("() => { const i = document.querySelector('#viewer-img'); return i.complete && i.naturalWidth > 0; }",
                               timeout=120_000)
    else:  # it does not (yet): the viewer says why, and the grid shows no broken pictures
        page.wait_for_selector("#viewer-img-error:not([hidden])", timeout=60_000)
        assert "cannot be shown" in page.inner_text("#viewer-img-error")
        page.wait_for_selector(".thumb.failed")
        assert "page image unavailable" in page.locator(".thumb.failed").first.inner_text()
        _shot(page, "lucene-viewer.png")
    page.close()


def test_by_document_groups_the_grid_and_why_reads_in_words(browser, memory_server):
    """'by document': the grid holds the API's files in order, each file's first card marked
    with its rank; the URL keeps the choice; "why this page" lists query words, not pieces."""
    s = memory_server
    _, expected = s.get_json("/search", q="debian package interface", k=20, group_by="file", pages_per_file=3)
    assert len(expected["files"]) >= 2
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(s.base + "/")
    page.check("#by-file")
    page.fill("#q", "debian package interface")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .card")
    cards = page.locator("#results .card")
    want = [h["id"] for f in expected["files"] for h in f["hits"]]
    assert [cards.nth(i).get_attribute("data-id") for i in range(cards.count())] == want
    starts = page.locator("#results .card.file-start")
    assert [starts.nth(i).get_attribute("data-file") for i in range(starts.count())] == [
        f"#{n}" for n in range(1, len(expected["files"]) + 1)]
    assert "group_by=file" in page.url and "documents" in page.locator("#status").inner_text()
    cards.nth(0).locator("button.open").click()
    page.locator("#viewer").wait_for(state="visible")
    words = page.locator("#matched li .tok").all_inner_texts()
    assert "debian" in words and not any(w.startswith("Ġ") for w in words), words
    page.close()


def test_start_view_shows_the_collection_and_its_examples_run_queries(browser, server):
    """Before any query: the collection's size and /info's example queries as chips; a chip
    runs its query (the grid is the API's ranking for it); Back returns to the start view."""
    s = server
    _, info = s.get_json("/info")
    start = info["start"]
    assert start["pages"] == info["pages"] and start["files"] == info["files"]
    assert 4 <= len(start["examples"]) <= 6, start
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(s.base + "/")
    page.wait_for_selector("#examples .chip")
    assert page.is_visible("#start")
    assert f"{info['pages']} pages in {info['files']} files" in page.inner_text("#start-size")
    assert page.locator("#examples .chip").all_inner_texts() == start["examples"]
    assert page.locator("#results .card").count() == 0
    _shot(page, f"start-{s.engine}.png")
    for n, q in enumerate(start["examples"]):  # every example finds pages: none is a dud
        _, res = s.get_json("/search", q=q, k=20)
        assert res["hits"], (n, q)
    q = start["examples"][1]
    _, expected = s.get_json("/search", q=q, k=20)
    page.locator("#examples .chip").nth(1).click()
    page.wait_for_selector("#results .card")
    ids = page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.id)")
    assert ids == [h["id"] for h in expected["hits"]]
    assert page.input_value("#q") == q and not page.is_visible("#start")
    assert "q=" + q.replace(" ", "+") in page.url
    page.go_back()
    page.wait_for_selector("#start:not([hidden])")
    assert page.locator("#results .card").count() == 0 and page.input_value("#q") == ""
    assert not errors, errors
    page.close()


def test_thumbnail_size_choice_is_applied_and_kept_in_the_url(browser, memory_server):
    """small/large: the grid's cards and pictures grow, the URL keeps size=large (a reload or
    a shared link opens large), small drops it; group toggle, snippets and boxes still work."""
    s = memory_server
    q = "debian package interface"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(s.base + "/?q=" + q.replace(" ", "%20"))
    page.wait_for_selector("#results .card")
    _wait_thumbnails(page, 1)
    first_img = "() => document.querySelector('#results img').naturalWidth"
    small_w = page.eval_on_selector("#results .card", "c => c.getBoundingClientRect().width")
    assert page.evaluate(first_img) == 320
    page.select_option("#size", "large")
    assert "size=large" in page.url
    page.wait_for_function(f"() => {{ const i = document.querySelector('#results img'); return i.complete && i.naturalWidth >= 640; }}",
                           timeout=120_000)
    large_w = page.eval_on_selector("#results .card", "c => c.getBoundingClientRect().width")
    assert large_w > 1.5 * small_w, (small_w, large_w)
    page.reload()
    page.wait_for_selector("#results .card")
    assert page.input_value("#size") == "large" and "large" in page.get_attribute("#results", "class")
    # group by document keeps the size, and the URL holds both
    page.check("#by-file")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.querySelector('#results .card.file-start') !== null")
    assert "group_by=file" in page.url and "size=large" in page.url
    _wait_thumbnails(page, 1)
    page.wait_for_selector("#results .snippet:not([hidden]) mark")
    _shot(page, "grid-large-snippets.png")
    # the large view: boxes over the query's words
    page.locator("#results button.open").first.click()
    page.locator("#viewer").wait_for(state="visible")
    page.wait_for_function("() => { const i = document.querySelector('#viewer-img'); return i.complete && i.naturalWidth > 0; }",
                           timeout=120_000)
    page.wait_for_selector("#viewer-boxes .hl.whole")
    assert page.locator("#viewer-boxes .hl").count() >= 2
    _shot(page, "viewer-boxes.png")
    page.keyboard.press("Escape")
    page.select_option("#size", "small")
    assert "size=" not in page.url and "group_by=file" in page.url
    assert "large" not in (page.get_attribute("#results", "class") or "")
    page.close()
