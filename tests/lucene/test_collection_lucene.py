"""The one-object path on real Lucene from a fresh index: `Collection.create(..., engine="lucene")`,
index(folder), search(text, k, source=, pages=), hits that show their page, delete, info, and
Collection.open() of the same index in a new object. Every hit list is compared with the memory
engine's Collection on the same folder (same ids, same order, scores within the quantization
bound of the default scale 10000) and, exactly, with the exact scorer over the integer impacts
Lucene stores; filters with a brute-force filter over that scorer (tests/collection_support.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from collection_support import (FILTERS, PAGES, QUERIES, assert_hits, brute_force, make_docs, memory_batch,
                                random_texts, stored_like)
from PIL import Image

from vsplade import Collection
from vsplade.engines.memory import ExactScorer
from vsplade.render import hit_image
from vsplade_lucene.store import read_config

SCALE = 10000.0  # a new Lucene index's default (README: "--scale defaults to 10000")


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return make_docs(tmp_path_factory.mktemp("docs") / "docs")


@pytest.fixture(scope="module")
def mem(docs, tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("mem") / "ix", model="lexical", engine="memory")
    assert c.index(docs, progress=False).ok
    return c


@pytest.fixture(scope="module")
def col(docs, tmp_path_factory):
    c = Collection.create(tmp_path_factory.mktemp("luc") / "ix", model="lexical", engine="lucene")
    report = c.index(docs, progress=False)
    assert report.ok and report.summary.indexed == PAGES, report.summary
    yield c
    c.close()


@pytest.fixture(scope="module")
def impacts(mem):
    """The exact scorer over round(w * 10000), what the Lucene index holds; scores / 10000^2."""
    batch = memory_batch(mem)
    ints = stored_like(batch, lambda w: np.floor(w * SCALE + 0.5))
    return ints, ExactScorer(ints)


def quantized_query(col, text):
    return {t: float(np.floor(w * SCALE + 0.5)) for t, w in col.query_encoder.encode(text).items()}


def float_tol(col, batch):
    """|Lucene - float| <= sum_t (q_t + d_t) * 0.5 / scale (+ rounding of the products), per hit."""
    wmax = float(batch.matrix.data.max())

    def bound(text):
        q = col.query_encoder.encode(text)
        return lambda s: (sum(q.values()) + len(q) * wmax) * 0.5 / SCALE + 1e-6 * abs(s)

    return bound


def exact_tol(s: float) -> float:  # float32 products and sums in Lucene
    return 1e-6 * max(1.0, abs(s))


def test_create_index_search_equals_memory_and_exact_scorer(col, mem, impacts):
    assert col.engine.name == "lucene" and col.model == "lexical"
    assert read_config(Path(col.engine.index))["scale"] == SCALE  # the default the bounds below assume
    ints, scorer = impacts
    bound = float_tol(col, memory_batch(mem))
    seen_hits = 0
    for text in QUERIES:
        got = col.search(text, k=8)
        want_mem = [(h.id, h.score) for h in mem.search(text, k=8)]
        assert_hits(got, want_mem, bound(text), text)  # the float ranking, scores within the scale's bound
        want = brute_force(scorer, ints, quantized_query(col, text), 8, rescale=1 / SCALE**2)
        assert_hits(got, want, exact_tol, text)  # the integer impacts, exactly
        assert [(h.source, h.page, h.path, h.sha256) for h in got] == [
            (h.source, h.page, h.path, h.sha256) for h in mem.search(text, k=8)]
        seen_hits += len(got)
    assert seen_hits > 3 * len(QUERIES)  # real rankings, not empty lists


def test_filters_equal_a_brute_force_filter_over_the_exact_scorer(col, impacts):
    ints, scorer = impacts
    for n, (source, pages) in enumerate(FILTERS):
        for text in random_texts(4, seed=n):
            got = col.search(text, k=5, source=source, pages=pages)
            want = brute_force(scorer, ints, quantized_query(col, text), 5, source, pages, rescale=1 / SCALE**2)
            # strict order, ties included (one case ties exactly: pages 23 and 25 for 'list
            # package the'): Lucene breaks ties by doc id = insertion order, as memory by row
            assert_hits(got, want, exact_tol, (text, source, pages))
    # a filter that leaves fewer than k pages: exactly those, not a post-filtered top-k
    got = col.search("package", k=10, source="debian-refcard-en-a4.pdf", pages=(2, 2))
    assert [(h.source, h.page) for h in got] == [("debian-refcard-en-a4.pdf", 2)]


def test_hits_show_their_page(col, mem, docs):
    hit = col.search("apt-get install a package", k=1)[0]
    ref = mem.search("apt-get install a package", k=1)[0]
    im = hit.image(width=240)
    assert im.mode == "RGB" and im.width == 240 and np.asarray(im).std() > 10  # a rendered page, not blank
    assert np.array_equal(np.asarray(im), np.asarray(ref.image(width=240)))  # the same page as memory's hit
    other = col.search("camlidl stub code generation", k=1)[0]
    assert (other.source, other.page) != (hit.source, hit.page)
    assert not np.array_equal(np.asarray(other.image(width=240)), np.asarray(im))
    png = next(r for r in col.engine.read_catalog() if r["source"] == "scan.png")
    assert np.array_equal(np.asarray(hit_image(png)), np.asarray(Image.open(docs / "scan.png").convert("RGB")))


def test_open_in_a_new_object_gives_the_same_hits(col):
    again = Collection.open(col.engine.index, engine="lucene")
    try:
        assert again.model == "lexical" and again.engine.name == "lucene"
        for text in QUERIES:
            assert [(h.id, h.score, h.source, h.page) for h in again.search(text, k=8)] == [
                (h.id, h.score, h.source, h.page) for h in col.search(text, k=8)]
        assert again.info() == col.info()
    finally:
        again.close()
    with pytest.raises(Exception, match="already holds an index"):
        Collection.create(col.engine.index, model="lexical", engine="lucene")


def test_delete_then_info_and_hits_follow(col, mem, impacts):
    """Runs last: it removes a file from the module's collection (and from the memory one)."""
    ints, scorer = impacts
    info = col.info(sources=True)
    assert info["pages"] == PAGES == len(col) and info["encoder"]["model"] == "lexical"
    gone = "debian-refcard-en-a4.pdf"
    n_gone = sum(1 for m in ints.meta if m["source"] == gone)
    assert col.delete(sources=[gone]) == n_gone > 0
    assert mem.delete(sources=[gone]) == n_gone
    assert col.info()["pages"] == PAGES - n_gone == len(col)
    assert gone not in {r["source"] for r in col.engine.read_catalog()}
    keep = [r for r, m in enumerate(ints.meta) if m["source"] != gone]
    rest = ints.select(keep)
    rest_scorer = ExactScorer(rest)
    bound = float_tol(col, memory_batch(mem))
    for text in QUERIES:
        got = col.search(text, k=8)
        assert gone not in {h.source for h in got}
        assert_hits(got, [(h.id, h.score) for h in mem.search(text, k=8)], bound(text), text)
        assert_hits(got, brute_force(rest_scorer, rest, quantized_query(col, text), 8, rescale=1 / SCALE**2),
                    exact_tol, text)
    again = Collection.open(col.engine.index, engine="lucene")
    try:
        assert [h.id for h in again.search("apt-get install a package", k=8)] == [
            h.id for h in col.search("apt-get install a package", k=8)]
        assert again.info()["pages"] == PAGES - n_gone
    finally:
        again.close()
