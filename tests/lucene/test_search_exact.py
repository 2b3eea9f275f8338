"""Direct-path index searched through Lucene == the exact scorer on the same integer impacts."""

from __future__ import annotations

import numpy as np

from vsplade_lucene import LuceneEngine

from lucene_support import INFO, QuantizedReference, assert_same_hits, random_queries, tricky_ids


def test_top10_and_top100_equal_exact(direct_index, corpus, vocab):
    ref = QuantizedReference(corpus)
    queries = random_queries(corpus, vocab)
    with LuceneEngine(str(direct_index)).searcher() as s:
        assert s.num_docs == len(corpus)
        assert s.index_info() == INFO
        for q in queries:
            for k in (10, 100):
                assert_same_hits(s.search(q, k), ref.search(q, k))


def test_tricky_term_names_match(direct_index, corpus, vocab):
    ref = QuantizedReference(corpus)
    with LuceneEngine(str(direct_index)).searcher() as s:
        for i in tricky_ids(vocab):
            q = {vocab.terms[i]: 1.0}
            hits = s.search(q, 10)
            want = ref.search(q, 10)
            assert want, vocab.terms[i]
            assert_same_hits(hits, want)
            assert "page-0003" in {h.id for h in s.search(q, len(corpus))}


def test_hits_carry_page_metadata(direct_index, corpus, vocab):
    q = corpus.row_terms(10, vocab)
    with LuceneEngine(str(direct_index)).searcher() as s:
        top = s.search(q, 1)[0]
    assert top.id == "page-0010"
    assert (top.source, top.page) == ("doc0.pdf", 11)


def test_term_in_every_page_is_not_dropped(tmp_path, vocab):
    # Pyserini drops terms with idf <= min_idf (0 by default): a term in every page vanished.
    from vsplade.sparse import SparseBatch

    t_all, t_some = 1000, 2000
    rows = [{t_all: 0.5 + r / 10} | ({t_some: 1.0} if r % 2 else {}) for r in range(6)]
    batch = SparseBatch.from_dicts(rows, [f"d{r}" for r in range(6)])
    eng = LuceneEngine(str(tmp_path / "idx"))
    with eng.writer(INFO) as w:
        w.add(batch)
    with eng.searcher() as s:
        hits = s.search({vocab.terms[t_all]: 1.0}, 10)
    assert [h.id for h in hits] == ["d5", "d4", "d3", "d2", "d1", "d0"]
    assert abs(hits[0].score - 1.0 * 1.0) < 1e-9  # 100 * 100 / 100^2


def test_long_query_over_1024_clauses(direct_index, corpus, vocab):
    rng = np.random.default_rng(3)
    q = {vocab.terms[int(i)]: float(rng.uniform(0.1, 1.0)) for i in rng.choice(vocab.size, 3000, replace=False)}
    q.update(corpus.row_terms(20, vocab))
    ref = QuantizedReference(corpus)
    with LuceneEngine(str(direct_index)).searcher() as s:
        assert_same_hits(s.search(q, 10), ref.search(q, 10))


def test_query_weights_are_rounded_like_documents(tmp_path, vocab):
    from vsplade.sparse import SparseBatch

    batch = SparseBatch.from_dicts([{5000: 1.0}], ["only"])
    eng = LuceneEngine(str(tmp_path / "idx"), scale=100)
    with eng.writer(INFO) as w:
        w.add(batch)
    with eng.searcher() as s:
        # 0.019 * 100 = 1.9 -> 2 (rounded; Pyserini's JInt truncation would give 1)
        assert abs(s.search({vocab.terms[5000]: 0.019}, 1)[0].score - 2 * 100 / 100**2) < 1e-12
        # 0.004 * 100 rounds to 0: the term is gone and nothing matches
        assert s.search({vocab.terms[5000]: 0.004}, 1) == []


def test_batch_search_threads_equal_single(direct_index, corpus, vocab):
    queries = random_queries(corpus, vocab, n=40, seed=5)
    with LuceneEngine(str(direct_index)).searcher() as s:
        single = [s.search(q, 10) for q in queries]
        batch = s.batch_search(queries, 10, threads=3)
    assert [[(h.id, h.score) for h in hs] for hs in batch] == [[(h.id, h.score) for h in hs] for hs in single]


def test_explain_sums_to_score(direct_index, corpus, vocab):
    q = dict(list(corpus.row_terms(12, vocab).items())[:8])
    with LuceneEngine(str(direct_index)).searcher() as s:
        for h in s.search(q, 3, explain=True):
            assert h.explain and abs(sum(h.explain.values()) - h.score) < 1e-9
