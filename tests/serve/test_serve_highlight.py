"""Where on the page, over HTTP (memory and Lucene): snippets in /search hits (opt-in), word
boxes from GET /pages/{id}/highlights lying on the query's words of the indexed PDF, matched
terms equal to the engine's explain for that page, an image page that says it has no text
layer; and the web page's snippets and boxes in a real Chromium when one is installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser_support import chromium
from highlight_support import alnum, text_under
from serve_support import run_server, vsplade

pytestmark = pytest.mark.slow

QUERY = "apt install"


def _marked(snippet) -> list[str]:
    return [snippet["text"][s:e] for s, e in snippet["marks"]]


def test_snippets_are_opt_in_and_mark_the_query_words(server):
    status, plain = server.get_json("/search", q=QUERY, k=5)
    assert status == 200 and plain["hits"]
    assert all("snippet" not in h for h in plain["hits"])
    status, body = server.get_json("/search", q=QUERY, k=5, snippet="true")
    assert status == 200
    assert [h["id"] for h in body["hits"]] == [h["id"] for h in plain["hits"]]  # same ranking
    top = body["hits"][0]
    assert top["source"].endswith("debian-refcard-en-a4.pdf")
    sn = top["snippet"]
    assert {"apt", "install"} <= {m.lower() for m in _marked(sn)}
    assert "<mark>apt</mark>" in sn["html"].lower() and len(sn["text"]) <= 224
    for h in body["hits"]:
        if "snippet" in h:
            assert h["snippet"]["marks"], h  # every snippet of a hit for this query marks something


def test_snippets_in_batches_and_groups(server):
    status, body = server.post_json("/search", {"queries": [QUERY, "camlidl interface"], "k": 3, "snippet": True})
    assert status == 200, body
    for r in body["results"]:
        assert r["hits"] and all(h["snippet"]["marks"] for h in r["hits"]), r
    status, body = server.post_json("/search", {"q": QUERY, "k": 2, "snippet": True, "group_by": "file"})
    assert status == 200, body
    pages = [h for f in body["files"] for h in f["hits"]]
    assert pages and all("snippet" in h for h in pages)


def test_highlight_boxes_lie_on_the_query_words(server):
    status, body = server.get_json("/search", q=QUERY, k=1, explain="true")
    assert status == 200
    hit = body["hits"][0]
    status, hl = server.get_json(f"/pages/{hit['id']}/highlights", q=QUERY)
    assert status == 200, hl
    assert hl["id"] == hit["id"] and hl["text_layer"] is True and hl["boxes"]
    # the matched terms are the engine's explain for this page, every one accounted for
    listed = {t["term"] for key in ("on_page", "not_on_page", "unmarked") for t in hl[key]}
    assert listed == {t["term"] for t in hit["explain"]} and len(listed) == hit["matched_terms"]
    assert hl["not_on_page"] == [] and hl["note"] == ""
    status, page = server.get_json(f"/pages/{hit['id']}")
    pdf = Path(__file__).resolve().parents[1] / "data" / "pdfs" / "debian-refcard-en-a4.pdf"
    whole = [b for b in hl["boxes"] if b["whole"]]
    assert whole and {alnum(b["text"]).lower() for b in whole} == {"apt", "install"}
    for b in hl["boxes"]:
        assert alnum(text_under(pdf, page["page"], b["box"])).lower() == alnum(b["text"]).lower()
        x0, y0, x1, y1 = b["rel"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert hl["snippet"]["marks"]


def test_highlight_requests_refused_clearly(server):
    status, body = server.get_json("/pages/no-such-page/highlights", q=QUERY)
    assert status == 404 and "no such page" in body["detail"]
    status, body = server.get_json("/search", q=QUERY, k=1)
    pid = body["hits"][0]["id"]
    status, body = server.get_json(f"/pages/{pid}/highlights")
    assert status == 422
    status, body = server.get_json(f"/pages/{pid}/highlights", q="x" * 5000)
    assert status == 422


@pytest.mark.timeout(600)
def test_image_page_has_no_boxes_and_says_so(tmp_path, pdf_dir, data_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(data_dir / "sample_page.png", docs / "scan.png")
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", docs / "ref.pdf")
    ix = tmp_path / "ix"
    vsplade("index", str(docs), "--model", "lexical", "--engine", "memory", "--index", str(ix))
    from vsplade import Collection

    with Collection.open(ix, engine="memory") as col:
        scan = [r for r in col.catalog() if r["source"] == "scan.png"][0]
    with run_server("memory", ix, tmp_path) as server:
        # the scan has no text layer, so the lexical index cannot find it: it is asked for by id
        status, body = server.get_json("/search", q="debian", k=50)
        assert status == 200 and scan["id"] not in {h["id"] for h in body["hits"]}
        status, hl = server.get_json(f"/pages/{scan['id']}/highlights", q=QUERY)
        assert status == 200, hl
        assert hl["text_layer"] is False and hl["boxes"] == [] and hl["snippet"] is None
        assert "no text layer" in hl["note"]


# -- the web page ------------------------------------------------------------------------------

SCREENSHOTS = os.environ.get("VSPLADE_SCREENSHOTS")


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_web_page_shows_snippets_and_boxes(memory_server):
    s = memory_server
    _, expected = s.get_json("/search", q=QUERY, k=10, snippet="true")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(s.base + "/?q=" + QUERY.replace(" ", "+") + "&k=10")
        page.wait_for_selector("#results .card .snippet mark", timeout=120_000)
        snippets = page.locator("#results .card .snippet")
        first = snippets.nth(0)
        assert first.inner_text() == expected["hits"][0]["snippet"]["text"]
        assert [m.lower() for m in first.locator("mark").all_inner_texts()] == \
            [m.lower() for m in _marked(expected["hits"][0]["snippet"])]
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SCREENSHOTS) / "grid-snippets.png"))
        page.locator("#results .card button.open").nth(0).click()
        page.wait_for_function("() => { const i = document.querySelector('#viewer-img'); "
                               "return i.complete && i.naturalWidth > 0; }", timeout=120_000)
        page.wait_for_selector("#viewer-boxes .hl", timeout=60_000)
        _, hl = s.get_json(f"/pages/{expected['hits'][0]['id']}/highlights", q=QUERY)
        assert page.locator("#viewer-boxes .hl").count() == len(hl["boxes"])
        # each box sits over its word: the same place on the picture as the API's fractions
        img = page.locator("#viewer-img").bounding_box()
        box = page.locator("#viewer-boxes .hl").nth(0).bounding_box()
        x0, y0, x1, y1 = hl["boxes"][0]["rel"]
        assert box["x"] == pytest.approx(img["x"] + x0 * img["width"], abs=2)
        assert box["y"] == pytest.approx(img["y"] + y0 * img["height"], abs=2)
        assert box["width"] == pytest.approx((x1 - x0) * img["width"], abs=2)
        if SCREENSHOTS:
            page.screenshot(path=str(Path(SCREENSHOTS) / "viewer-boxes.png"))
        assert not errors, errors
