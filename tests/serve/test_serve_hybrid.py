"""`vsplade serve` with hybrid=: a real service over an index built with --text-field answers as
Collection.search(hybrid=...) does; a bad mode is a 422; an index without the field one line."""

from __future__ import annotations

import pytest
from browser_support import chromium
from serve_support import run_server, vsplade

from vsplade import Collection


@pytest.fixture(scope="module")
def text_server(tmp_path_factory, pdf_dir):
    root = tmp_path_factory.mktemp("serve-hybrid")
    ix = root / "ix"
    vsplade("index", str(pdf_dir), "--model", "lexical", "--engine", "memory", "--index", str(ix), "--text-field")
    with run_server("memory", ix, root) as server:
        yield server


@pytest.mark.timeout(300)
def test_get_and_post_hybrid_equal_the_collection(text_server):
    col = Collection.open(text_server.index, engine="memory")
    for mode in ("rrf", "minmax:0.6"):
        want = col.search("install a package", k=5, hybrid=mode, source="debian-refcard-en-a4.pdf")
        status, got = text_server.get_json("/search", q="install a package", k=5, hybrid=mode,
                                           source="debian-refcard-en-a4.pdf")
        assert status == 200, got
        assert [h["id"] for h in got["hits"]] == [h.id for h in want] and want
        # JSON scores are rounded as Pyserini prints them (6 decimals)
        assert all(abs(h["score"] - w.score) <= 1e-6 for h, w in zip(got["hits"], want))
        for h, w in zip(got["hits"], want):
            sides = h["hybrid"]
            assert (sides.get("vector_rank"), sides.get("text_rank")) == (w.hybrid["vector_rank"], w.hybrid["text_rank"])
            assert all(abs(sides[s] - w.hybrid[s]) <= 1e-5 * max(1.0, w.hybrid[s])
                       for s in ("vector", "text") if w.hybrid[s] is not None)
        status, posted = text_server.post_json("/search", {"queries": ["install a package", "interface language"],
                                                           "k": 5, "hybrid": mode, "group_by": "file"})
        assert status == 200, posted
        files = col.search("interface language", k=5, hybrid=mode, group_by="file")
        assert [f["source"] for f in posted["results"][1]["files"]] == [f.source for f in files]
    status, info = text_server.get_json("/info")
    assert status == 200 and info.get("text_field") is True


@pytest.mark.timeout(300)
def test_a_bad_mode_is_422_and_an_index_without_text_one_line(text_server, tmp_path, pdf_dir):
    status, body = text_server.get_json("/search", q="package", hybrid="max")
    assert status == 422 and "minmax:W" in str(body)
    plain = tmp_path / "plain"
    vsplade("index", str(pdf_dir), "--model", "lexical", "--engine", "memory", "--index", str(plain))
    with run_server("memory", plain, tmp_path) as server:
        status, body = server.get_json("/search", q="package", hybrid="rrf")
        assert status >= 400 and "--text-field" in body["detail"] and "\n" not in body["detail"]


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_web_pages_text_toggle_searches_hybrid(text_server):
    """In Debian's Chromium (skipped without it): the "+ text" box sends hybrid=rrf, keeps it in
    the URL, and the cards are the hybrid hits; unticked, the vector hits."""
    q = "install a package"
    _, hybrid = text_server.get_json("/search", q=q, k=20, hybrid="rrf")
    _, plain = text_server.get_json("/search", q=q, k=20)
    assert [h["id"] for h in hybrid["hits"]] != [h["id"] for h in plain["hits"]]  # the toggle must show
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(text_server.base + "/")
        page.check("#hybrid")
        page.fill("#q", q)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelectorAll('#results .card').length === {len(hybrid['hits'])}"
                               " && location.search.includes('hybrid=rrf')", timeout=60_000)
        ids = page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.id)")
        assert ids == [h["id"] for h in hybrid["hits"]]
        page.uncheck("#hybrid")
        page.fill("#q", q)
        page.keyboard.press("Enter")
        page.wait_for_function("() => !location.search.includes('hybrid')", timeout=60_000)
        want = [h["id"] for h in plain["hits"]]
        page.wait_for_function(f"() => [...document.querySelectorAll('#results .card')].map(c => c.dataset.id)"
                               f".join(',') === {want!r}.join(',')", timeout=60_000)
        assert not errors, errors
