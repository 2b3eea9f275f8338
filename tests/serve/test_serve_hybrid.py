"""`vsplade serve` with hybrid=: a real service over an index built with --text-field answers as
Collection.search(hybrid=...) does; a bad mode is a 422; an index without the field one line."""

from __future__ import annotations

import pytest
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
