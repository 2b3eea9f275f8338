"""Compatibility: JsonVectorCollection export/route, Pyserini's LuceneImpactSearcher on our index,
and every real term name surviving the direct path's tokenizer + delimiter filter."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from vsplade.sparse import SparseBatch
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
