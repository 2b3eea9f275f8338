"""The collection lifecycle on the direct Lucene writer: catalog, delete, properties, filters
inside the search, hits with their files, compared with the exact scorer over the SAME
integer impacts (tests/lucene/test_contract_lucene.py runs the user-level scenarios of the engine
contract on Lucene)."""

from __future__ import annotations

import numpy as np
import pytest

from vsplade.engines.base import PageFilter
from vsplade.sparse import SparseBatch, quantize_query_impacts
from vsplade_lucene import LuceneEngine
from vsplade_lucene.store import read_config

from lucene_support import INFO, QuantizedReference, random_corpus, random_queries, stored_ids

SOURCES = ["a/x.pdf", "a/b/y.pdf", "a/b/z.pdf", "ab.pdf", "c.pdf", "a"]


def nested_corpus(vocab, n=240) -> SparseBatch:
    base = random_corpus(vocab, n=n, seed=5)
    meta = []
    for r, d in enumerate(base.ids):
        src = SOURCES[r % len(SOURCES)]
        meta.append({"id": d, "source": src, "page": r // len(SOURCES) + 1, "path": f"/data/{src}",
                     "sha256": f"{r % len(SOURCES):064x}"})
    return SparseBatch(base.matrix, base.ids, meta)


@pytest.fixture(scope="module")
def deleted_index(tmp_path_factory, vocab):
    """Pages added in small segments, a third of them deleted, more pages added (merges
    renumber doc ids), properties set: the state every test below reads."""
    batch = nested_corpus(vocab)
    path = tmp_path_factory.mktemp("lucene-life") / "ix"
    eng = LuceneEngine(str(path), scale=100, chunk_docs=20, threads=2, commit_every=40)
    first = 180
    with eng.writer(INFO) as w:
        w.set_properties({"root": "/data", "created": "then"})
        w.add(batch.select(range(first)))
        w.commit()
        gone = [batch.ids[r] for r in range(0, first, 3)]
        assert w.delete(gone + ["no-such-page", gone[0]]) == len(gone)
        assert w.delete(gone) == 0  # already gone
        w.add(batch.select(range(first, len(batch))))
    with eng.writer(INFO) as w:  # a second session: more pages, one more delete
        assert w.delete([batch.ids[1]]) == 1
        gone.append(batch.ids[1])
    keep = [r for r in range(len(batch)) if batch.ids[r] not in set(gone)]
    return path, batch, keep, gone


def test_deleted_pages_are_gone_everywhere(deleted_index):
    path, batch, keep, gone = deleted_index
    eng = LuceneEngine(str(path))
    want = [batch.meta[r] for r in keep]
    assert eng.read_catalog() == want  # every field kept, doc order = insertion order
    assert set(stored_ids(path)) >= {batch.ids[r] for r in keep}  # deleted docs may wait for a merge
    with eng.writer(INFO) as w:
        assert w.catalog() == want and w.done_ids() == {batch.ids[r] for r in keep}
    assert read_config(path)["num_docs"] == len(keep)


def test_searches_match_the_exact_scorer_after_deletes(deleted_index, vocab):
    path, batch, keep, gone = deleted_index
    rest = batch.select(keep)
    ref = QuantizedReference(rest, scale=100)
    with LuceneEngine(str(path)).searcher() as s:
        for q in random_queries(batch, vocab, n=20, seed=4):
            got = s.search(q, 15)
            want = ref.search(q, 15)
            assert [(h.id, h.source, h.page, h.path, h.sha256) for h in got] == [
                (h.id, h.source, h.page, h.path, h.sha256) for h in want]
            assert all(abs(g.score - w.score) <= 1e-6 * max(1.0, w.score) for g, w in zip(got, want))
            assert not {h.id for h in s.search(q, len(batch))} & set(gone)


def test_properties_and_read_side(deleted_index, tmp_path):
    path, batch, keep, _ = deleted_index
    eng = LuceneEngine(str(path))
    assert eng.read_properties() == {"root": "/data", "created": "then"}
    assert eng.read_encoder_info() == INFO
    loc = eng.location_info()
    assert loc["engine"] == "lucene" and loc["size_bytes"] > 0 and loc["scale"] == 100 and loc["encoder"] == INFO
    assert LuceneEngine(str(tmp_path / "none")).read_properties() is None
    assert LuceneEngine(str(tmp_path / "none")).read_catalog() == []
    fresh = tmp_path / "noprops"
    with LuceneEngine(str(fresh), scale=100).writer(INFO) as w:
        w.add(batch.select(range(3)))
    assert LuceneEngine(str(fresh)).read_properties() == {}


def test_filters_equal_a_brute_force_filter_over_the_exact_scorer(deleted_index, vocab):
    """Before: LuceneImpactIndexSearcher.search took no filter at all."""
    path, batch, keep, _ = deleted_index
    rest = batch.select(keep)
    ref = QuantizedReference(rest, scale=100)
    cases = [("a", (None, None)), ("a/b", (2, 30)), (["ab.pdf", "c.pdf"], (None, 10)), (None, (20, None)),
             ("a/b/y.pdf", (None, None)), ("nowhere.pdf", (None, None)), ("a/", (5, 5))]
    with LuceneEngine(str(path)).searcher() as s:
        for q in random_queries(batch, vocab, n=6, seed=9):
            qi = {t: float(v) for t, v in quantize_query_impacts(q, 100).items()}
            scores = ref.scorer.scores(qi) / 100**2
            for src, (lo, hi) in cases:
                f = PageFilter.of(src, lo, hi)
                want = []
                for r in np.lexsort((np.arange(len(scores)), -scores)):
                    m = rest.meta[r]
                    srcs = [src] if isinstance(src, str) else src
                    if scores[r] <= 0:
                        continue
                    if srcs and not any(m["source"] == x or m["source"].startswith(x.rstrip("/") + "/")
                                        for x in srcs):
                        continue
                    if (lo is not None and m["page"] < lo) or (hi is not None and m["page"] > hi):
                        continue
                    want.append((rest.ids[r], round(float(scores[r]), 9)))
                got = [(h.id, round(h.score, 9)) for h in s.search(q, 7, sources=src, page_min=lo, page_max=hi)]
                assert got == want[:7], (src, lo, hi)
                assert f is not None and all(f.matches(h.source, h.page) for h in s.search(q, 50, sources=src,
                                                                                     page_min=lo, page_max=hi))


def test_pyserini_searcher_gives_our_ranking_with_float_scores(deleted_index, vocab):
    """Pyserini's own class on our (deleted-from) index, fed text through our query encoder."""
    from vsplade_lucene import jvm, pyserini_searcher

    path, batch, keep, gone = deleted_index
    queries = {f"query {n}": q for n, q in enumerate(random_queries(batch, vocab, n=6, seed=13))}

    class TextEncoder:  # a vsplade query encoder: text -> {term: weight}
        def encode(self, text):
            return queries[text]

    ps = pyserini_searcher(path, query_encoder=TextEncoder())
    assert isinstance(ps, jvm.import_pyserini("pyserini.search.lucene").LuceneImpactSearcher)
    assert ps.score_factor == 100.0**2
    ref = QuantizedReference(batch.select(keep), scale=100)
    with LuceneEngine(str(path)).searcher() as ours:
        for text, q in queries.items():
            got = ps.search(text, 10)
            want = ours.search(q, 10)
            assert [h.docid for h in got] == [h.id for h in want]
            exact = {h.id: h.score for h in ref.search(q, 10)}
            assert all(abs(h.score - exact[h.docid]) <= 1e-6 * max(1.0, exact[h.docid]) for h in got)
            assert not {h.docid for h in ps.search(text, len(batch))} & set(gone)
    with pytest.raises(Exception, match="test-random"):
        pyserini_searcher(path)  # the test encoder names no loadable model
