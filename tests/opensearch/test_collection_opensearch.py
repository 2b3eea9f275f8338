"""The one-object path on real OpenSearch nodes (both lines, conftest.py `server`) from a fresh
index: `Collection.create(name, engine="opensearch", url=...)`, index(folder), search(text, k,
source=, pages=), hits that show their page, delete, info, and Collection.open() of the same
index in a new object. Every hit list is compared with the memory engine's Collection on the
same folder (same ids, same order, scores within FeatureField's 9 significant bits: stored <=
true < stored x (1 + 2^-8)) and with the exact scorer over the values the cluster stores
(`feature_field_round`); filters with a brute-force filter over that scorer
(tests/collection_support.py). OpenSearch orders exactly equal scores by its internal doc ids,
which follow the bulk threads: there any order of an exact tie is accepted, and the queries
compared with memory are checked to hold none."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from collection_support import (FILTERS, PAGES, QUERIES, assert_hits, assert_ranked, brute_force, make_docs,
                                memory_batch, random_texts, stored_like, untied)
from PIL import Image

from vsplade import Collection
from vsplade.engines.memory import ExactScorer
from vsplade.render import hit_image
from vsplade.sparse import feature_field_round


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return make_docs(tmp_path_factory.mktemp("docs") / "docs")


@pytest.fixture(scope="module")
def mem(server, docs, tmp_path_factory):
    """One per server (the delete test removes a file from it too)."""
    c = Collection.create(tmp_path_factory.mktemp("mem") / "ix", model="lexical", engine="memory")
    assert c.index(docs, progress=False).ok
    return c


@pytest.fixture(scope="module")
def col(server, docs):
    name = f"vsplade-col-{uuid.uuid4().hex[:10]}"
    c = Collection.create(name, model="lexical", engine="opensearch", url=server.url, progress=False)
    report = c.index(docs, progress=False)
    assert report.ok and report.summary.indexed == PAGES, report.summary
    yield c
    c.close()
    from vsplade_opensearch.connection import Connection

    Connection.from_options({"url": server.url}).client().indices.delete(index=name, ignore=[404])


@pytest.fixture(scope="module")
def stored(mem):
    """The exact scorer over the 9-bit values OpenSearch's FeatureField stores and scores."""
    batch = stored_like(memory_batch(mem), lambda w: feature_field_round(w.astype(np.float32)))
    return batch, ExactScorer(batch)


def float_tol(s: float) -> float:  # 9 significant bits per stored weight, truncated toward 0
    return abs(s) * (2.0**-8 + 1e-6)


def exact_tol(s: float) -> float:  # float32 products, one float32 rounding of the sum
    return 1e-6 * max(1.0, abs(s))


def query(col, text):
    return col.query_encoder.encode(text)


def test_create_index_search_equals_memory_and_exact_scorer(col, mem, stored):
    assert col.engine.name == "opensearch" and col.model == "lexical"
    batch, scorer = stored
    seen = 0
    for text in QUERIES:
        got = col.search(text, k=8)
        want_mem = mem.search(text, k=8)
        full = brute_force(scorer, batch, query(col, text), None)
        assert untied(full, 8), f"{text!r} ties in the stored values: its order vs memory is not defined"
        assert_hits(got, [(h.id, h.score) for h in want_mem], float_tol, text)
        assert_hits(got, full[:8], exact_tol, text)
        assert [(h.source, h.page, h.path, h.sha256) for h in got] == [
            (h.source, h.page, h.path, h.sha256) for h in want_mem]
        seen += len(got)
    assert seen > 3 * len(QUERIES)  # real rankings, not empty lists


def test_filters_equal_a_brute_force_filter_over_the_exact_scorer(col, stored):
    batch, scorer = stored
    for n, (source, pages) in enumerate(FILTERS):
        for text in random_texts(4, seed=n):
            got = col.search(text, k=5, source=source, pages=pages)
            want = brute_force(scorer, batch, query(col, text), None, source, pages)
            assert_ranked(got, want, 5, exact_tol, (text, source, pages))  # some of these tie exactly
    got = col.search("package", k=10, source="debian-refcard-en-a4.pdf", pages=(2, 2))
    assert [(h.source, h.page) for h in got] == [("debian-refcard-en-a4.pdf", 2)]


def test_hits_show_their_page(col, mem, docs):
    hit = col.search("apt-get install a package", k=1)[0]
    ref = mem.search("apt-get install a package", k=1)[0]
    im = hit.image(width=240)
    assert im.mode == "RGB" and im.width == 240 and np.asarray(im).std() > 10
    assert np.array_equal(np.asarray(im), np.asarray(ref.image(width=240)))
    other = col.search("camlidl stub code generation", k=1)[0]
    assert (other.source, other.page) != (hit.source, hit.page)
    assert not np.array_equal(np.asarray(other.image(width=240)), np.asarray(im))
    png = next(r for r in col.engine.read_catalog() if r["source"] == "scan.png")
    assert np.array_equal(np.asarray(hit_image(png)), np.asarray(Image.open(docs / "scan.png").convert("RGB")))


def _stable(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("size_bytes", "location")}


def test_open_in_a_new_object_gives_the_same_hits(col, server):
    again = Collection.open(col.engine.index, engine="opensearch", url=server.url)
    try:
        assert again.model == "lexical" and again.engine.name == "opensearch"
        for text in QUERIES:
            assert [(h.id, h.score, h.source, h.page) for h in again.search(text, k=8)] == [
                (h.id, h.score, h.source, h.page) for h in col.search(text, k=8)]
        assert _stable(again.info()) == _stable(col.info())
    finally:
        again.close()
    with pytest.raises(Exception, match="already holds an index"):
        Collection.create(col.engine.index, model="lexical", engine="opensearch", url=server.url)


def test_delete_then_info_and_hits_follow(col, mem, stored, server):
    """Runs last: it removes a file from the module's collection (and from the memory one)."""
    batch, _ = stored
    info = col.info(sources=True)
    assert info["pages"] == PAGES == len(col) and info["encoder"]["model"] == "lexical"
    gone = "debian-refcard-en-a4.pdf"
    n_gone = sum(1 for m in batch.meta if m["source"] == gone)
    assert col.delete(sources=[gone]) == n_gone > 0
    assert mem.delete(sources=[gone]) == n_gone
    assert col.info()["pages"] == PAGES - n_gone == len(col)
    assert gone not in {r["source"] for r in col.engine.read_catalog()}
    rest = batch.select([r for r, m in enumerate(batch.meta) if m["source"] != gone])
    rest_scorer = ExactScorer(rest)
    for text in QUERIES:
        got = col.search(text, k=8)
        assert gone not in {h.source for h in got}
        full = brute_force(rest_scorer, rest, query(col, text), None)
        assert untied(full, 8), text
        assert_hits(got, [(h.id, h.score) for h in mem.search(text, k=8)], float_tol, text)
        assert_hits(got, full[:8], exact_tol, text)
    again = Collection.open(col.engine.index, engine="opensearch", url=server.url)
    try:
        assert [h.id for h in again.search("apt-get install a package", k=8)] == [
            h.id for h in col.search("apt-get install a package", k=8)]
        assert again.info()["pages"] == PAGES - n_gone
    finally:
        again.close()
