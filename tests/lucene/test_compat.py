"""Compatibility: JsonVectorCollection export/route, Pyserini's LuceneImpactSearcher on our index,
and every real term name surviving the direct path's tokenizer + delimiter filter."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from vsplade.sparse import SparseBatch, quantize_query_impacts
from vsplade_lucene import LuceneEngine, jvm
from vsplade_lucene.store import CONTENTS_FIELD

from lucene_support import INFO, QuantizedReference, random_queries


def _all_hits(searcher, q, n):
    return {h.id: h.score for h in searcher.search(q, n)}


def test_export_jsonvector(tmp_path, corpus, vocab):
    out = tmp_path / "jv"
    res = LuceneEngine.export([corpus.select(range(0, 100)), corpus.select(range(100, len(corpus)))], out,
                              scale=100, shards=3)
    assert res["docs"] == len(corpus) and len(res["files"]) == 3
    lines = [orjson.loads(l) for f in res["files"] for l in open(f, "rb")]
    by_id = {d["id"]: d for d in lines}
    assert set(by_id) == set(corpus.ids)
    for r in (0, 3, 42):
        want = {vocab.terms[i]: int(np.floor(w * 100 + 0.5)) for i, w in zip(*corpus.row(r))}
        want = {t: v for t, v in want.items() if v > 0}
        assert by_id[corpus.ids[r]]["vector"] == want
        # source and page kept in each document (before: only id, contents, vector)
        assert (by_id[corpus.ids[r]]["source"], by_id[corpus.ids[r]]["page"]) == (
            corpus.meta[r]["source"], corpus.meta[r]["page"])
    nonzero = int((corpus.matrix.data > 0).sum())
    assert res["dropped_weights"] == nonzero - sum(len(d["vector"]) for d in lines)
    assert res["dropped_weights"] > 0  # weights from 0.001: some round to 0 and are counted


def test_jsonvector_route_equals_direct(tmp_path, direct_index, corpus, vocab):
    path = tmp_path / "jv-index"
    eng = LuceneEngine(str(path), build="jsonvector", threads=2)
    with eng.writer(INFO) as w:
        w.add(corpus)
    summary = w.close()
    # Anserini skips the empty page; the summary says so instead of hiding it
    assert summary.indexed == len(corpus) - 1
    assert [d for d, _ in summary.failures] == ["page-0007"]
    queries = random_queries(corpus, vocab, n=15, seed=11)
    with eng.searcher() as sj, LuceneEngine(str(direct_index)).searcher() as sd:
        for q in queries:
            assert _all_hits(sj, q, len(corpus)) == _all_hits(sd, q, len(corpus))
        h = sj.search(queries[0], 1)[0]
        row = corpus.ids.index(h.id)
        assert (h.source, h.page) == (corpus.meta[row]["source"], corpus.meta[row]["page"])


class _PassThrough:
    """A Pyserini query encoder that hands over an already-encoded {term: int} query."""

    def encode(self, q):
        return q


@pytest.mark.slow  # Pyserini's own searcher end to end: make test only
def test_pyserini_impact_searcher_reads_our_index(direct_index, corpus, vocab):
    lucene = jvm.import_pyserini("pyserini.search.lucene")
    ps = lucene.LuceneImpactSearcher(str(direct_index), _PassThrough(), min_idf=-1)
    ref = QuantizedReference(corpus)
    from vsplade.sparse import quantize_query_impacts

    for q in random_queries(corpus, vocab, n=10, seed=21):
        qi = quantize_query_impacts(q, 100)
        got = {h.docid: h.score / 100**2 for h in ps.search(qi, len(corpus))}
        want = {h.id: h.score for h in ref.search(q, len(corpus))}
        assert got.keys() == want.keys()
        for d in want:
            assert abs(got[d] - want[d]) < 1e-6 * max(1, want[d])
    # the stored raw field carries the page metadata for Pyserini users
    raw = json.loads(ps.doc("page-0010").raw())
    assert raw == {"id": "page-0010", "source": "doc0.pdf", "page": 11}


def test_every_vocabulary_term_survives_the_analyzer(tmp_path, vocab):
    """One page holding all 50,368 term names: the index must list each exact name with its impact."""
    impacts = {i: (1 + i % 97) / 100 for i in range(vocab.size)}
    batch = SparseBatch.from_dicts([impacts], ["all-terms"])
    eng = LuceneEngine(str(tmp_path / "all"), scale=100)
    with eng.writer(INFO) as w:
        w.add(batch)
    J = jvm.classes()
    reader = J.DirectoryReader.open(J.FSDirectory.open(J.Paths.get(str((tmp_path / "all").resolve()))))
    try:
        leaf = reader.leaves().get(0).reader()
        te = leaf.terms(CONTENTS_FIELD).iterator()
        found = {}
        while True:
            br = te.next()
            if br is None:
                break
            found[br.utf8ToString()] = int(te.totalTermFreq())
    finally:
        reader.close()
    want = {vocab.terms[i]: 1 + i % 97 for i in range(vocab.size)}
    assert found == want


def _benchmark_workload():
    """benchmarks/corpus.py: pages and queries whose term statistics match V-SPLADE's (the
    realistic workload every benchmark uses), loaded by path (benchmarks/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "corpus.py"
    spec = importlib.util.spec_from_file_location("vsplade_bench_corpus", path)
    mod = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(mod)  # registered first: its dataclasses look their module up
    return mod.Workload("quality")


@pytest.fixture(scope="module")
def default_scale_index(tmp_path_factory, vocab):
    """Realistic pages in an index at the engine's default scale (10000), and realistic queries."""
    from vsplade.sparse import quantize_impacts

    work = _benchmark_workload()
    m = work.pages(1500, seed=3)
    ids = [f"page-{i:05d}" for i in range(m.shape[0])]
    batch = SparseBatch(m, ids, [{"id": d, "source": f"d{i // 10}.pdf", "page": i % 10 + 1} for i, d in enumerate(ids)])
    path = tmp_path_factory.mktemp("lucene-default-scale") / "ix"
    eng = LuceneEngine(str(path))
    with eng.writer(INFO) as w:
        w.add(batch)
    scale = eng.searcher().scale
    ints, _ = quantize_impacts(batch.matrix, scale)
    return path, scale, batch, ints, work.query_dicts(40, vocab, seed=5)


@pytest.mark.slow  # Pyserini's own searcher end to end: make test only
@pytest.mark.timeout(600)
def test_pyserini_searcher_at_the_default_scale_ranks_as_ours(default_scale_index, vocab):
    """Issue 24 item 4: the query side is quantized at its own scale (Anserini's cost grows with
    the query's impacts), the pages keep the index's. Pyserini's scores are then exactly the
    integer dot product of the page impacts with round(w * query_scale), over scale x
    query_scale; against vsplade's searcher each score moves by at most the two query
    roundings, so the two top-10s differ only between pages that close, and mostly not at all."""
    from vsplade.engines.memory import ExactScorer
    from vsplade_lucene.pyserini_compat import DEFAULT_QUERY_SCALE, pyserini_searcher

    path, scale, batch, ints, queries = default_scale_index
    assert scale == 10000.0
    ps = pyserini_searcher(path, query_encoder=object())  # queries go in as {term: weight} dicts
    qscale = ps.query_scale
    assert qscale == DEFAULT_QUERY_SCALE < scale and ps.score_factor == scale * qscale
    exact = ExactScorer(SparseBatch(ints.astype(np.float32), batch.ids, batch.meta), vocab)
    row_of = {d: r for r, d in enumerate(batch.ids)}
    same_set = 0
    with LuceneEngine(str(path)).searcher() as ours:
        for q in queries:
            qs = {t: float(v) for t, v in quantize_query_impacts(q, qscale).items()}
            want = exact.scores(qs) / (scale * qscale)
            mine = exact.scores({t: float(v) for t, v in quantize_query_impacts(q, scale).items()}) / scale**2
            # per page: sum of its weights on the query's terms x the two roundings (0.5/qscale, 0.5/scale)
            cols = [vocab.id_of(t) for t in q]
            bound = np.asarray(ints[:, cols].sum(axis=1)).ravel() / scale * 0.5 * (1 / qscale + 1 / scale) + 1e-9
            got = ps.search(q, 10)
            assert len(got) == 10
            for h in got:  # exact: the integer dot product (Lucene sums in float32)
                assert h.score == pytest.approx(want[row_of[h.docid]], rel=2e-6)
                assert abs(h.score - mine[row_of[h.docid]]) <= bound[row_of[h.docid]]
            theirs = [row_of[h.docid] for h in got]
            top = [row_of[h.id] for h in ours.search(q, 10)]
            same_set += set(theirs) == set(top)
            for a in set(theirs) - set(top):  # a swap at the boundary: scores within the roundings
                for b in set(top) - set(theirs):
                    assert mine[b] - mine[a] <= bound[a] + bound[b]
    assert same_set >= 0.9 * len(queries), f"same top-10 set on {same_set} of {len(queries)} queries"
    # query_scale = the index's scale, Lucene's plain top-k (ties in index order, as ours): the
    # ranking of vsplade's searcher, hit for hit, at the old cost
    full = pyserini_searcher(path, query_encoder=object(), query_scale=scale)
    assert full.plain_top_k and ps.plain_top_k
    sorted_path = pyserini_searcher(path, query_encoder=object(), query_scale=scale, plain_top_k=False)
    assert not sorted_path.plain_top_k
    with LuceneEngine(str(path)).searcher() as ours:
        for q in queries:
            want = ours.search(q, 10)
            for s in (full, sorted_path):
                got = s.search(q, 10)
                assert {h.docid for h in got} == {h.id for h in want} or s is sorted_path  # sorted: ties by id
                assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=2e-6)
            assert [h.docid for h in full.search(q, 10)] == [h.id for h in want]


def _ranked(hits):
    return [(h.docid, h.score) for h in hits]


def _analyzer(searcher) -> str:
    """The simple class name of the analyzer Anserini's searcher analyzes the query text with."""
    return searcher.object.get_analyzer().getClass().getName().rsplit(".", 1)[-1]


@pytest.mark.slow  # Pyserini's own searcher end to end: make test only
@pytest.mark.timeout(600)
def test_pyserini_searcher_query_text_and_map_change_no_hit(default_scale_index):
    """Issue 24 item 4, the per-query cuts (pyserini_compat, Query text / Query map / Ranked
    directly): the one-token analyzer, the map boxed without JInt and the query ranked through
    Anserini's _search give exactly the hits and scores of Anserini's own analyzer, its
    search(Map, k) and Pyserini's own search (batch_search alike); RM3,
    whose reranker reads the query's tokens, gets the whole analyzer back while it is on."""
    from jnius import autoclass

    from vsplade_lucene.pyserini_compat import pyserini_searcher

    path, _, _, _, queries = default_scale_index
    whitespace = autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")
    ps = pyserini_searcher(path, query_encoder=object())
    assert not ps.full_query_text and ps.direct_search  # ranked through Anserini's _search
    assert _analyzer(ps) == "LimitTokenCountAnalyzer"
    ref = pyserini_searcher(path, query_encoder=object())
    ref.set_analyzer(whitespace())  # a caller's analyzer is kept as given
    assert ref.full_query_text and _analyzer(ref) == "WhitespaceAnalyzer"
    assert not ref.direct_search  # search(Map, k): the text its analyzer reads
    by_map = pyserini_searcher(path, query_encoder=object())
    by_map._direct = False  # the one-token analyzer, through search(Map, k)
    base = type(ps).__mro__[1]  # Pyserini's LuceneImpactSearcher: its own map building (JInt)
    qids = [str(i) for i in range(len(queries))]
    batch = ps.batch_search(queries, qids, 10, threads=2)  # PyseriniQuery.batchSearch: _search
    batch_by_map = by_map.batch_search(queries, qids, 10, threads=2)  # Anserini's batch_search
    own_batch = base.batch_search(ps, queries, qids, 10, threads=2)  # Pyserini's, raw scores
    assert sorted(batch) == sorted(batch_by_map) == sorted(qids)
    with pytest.raises(ValueError, match="2 queries but 1 query ids"):
        ps.batch_search(queries[:2], qids[:1], 10)
    for i, q in enumerate(queries):
        got = _ranked(ps.search(q, 10))
        assert len(got) == 10
        assert got == _ranked(ref.search(q, 10))
        assert got == _ranked(by_map.search(q, 10))
        # Pyserini's own search, rescaled as ours does (into the Java float field: float32)
        assert got == [(h.docid, float(np.float32(h.score / ps.score_factor))) for h in base.search(ps, q, 10)]
        assert got == _ranked(batch[str(i)]) == _ranked(batch_by_map[str(i)])
        assert got == [(h.docid, float(np.float32(h.score / ps.score_factor))) for h in own_batch[str(i)]]

    # RM3 reads the query's tokens: with the one-token analyzer it would expand another query
    q = queries[0]
    ps.set_rm3()
    ref.set_rm3()
    assert ps.full_query_text and _analyzer(ps) == "WhitespaceAnalyzer" and not ps.direct_search
    rm3 = _ranked(ps.search(q, 10))
    assert rm3 == _ranked(ref.search(q, 10))
    one_token = pyserini_searcher(path, query_encoder=object())
    base.set_rm3(one_token)  # Pyserini's own set_rm3, the one-token analyzer left in place
    assert _ranked(one_token.search(q, 10)) != rm3
    ps.unset_rm3()
    assert not ps.full_query_text and ps.direct_search
    assert _analyzer(ps) == "LimitTokenCountAnalyzer"
    ref.unset_rm3()
    assert _ranked(ps.search(q, 10)) == _ranked(ref.search(q, 10)) != rm3
    ps.set_rocchio()
    assert ps.full_query_text
    ps.unset_rocchio()
    assert not ps.full_query_text
    for s in (ps, ref, one_token, by_map):
        s.close()  # hands its private method class back (jvm.release_private)
    assert ps._anserini is None


def test_pyserini_query_scale_must_be_positive(direct_index):
    from vsplade.engines.base import EngineError
    from vsplade_lucene.pyserini_compat import pyserini_searcher

    with pytest.raises(EngineError, match=f"{direct_index}: query_scale must be positive"):
        pyserini_searcher(direct_index, query_encoder=object(), query_scale=0)
