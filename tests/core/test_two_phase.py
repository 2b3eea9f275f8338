"""Two-phase search on the memory engine (vsplade.approximate.TwoPhase, issue 24 item 3):
phase 1 on the query's heavy terms, phase 2 exact on the window. Small synthetic corpora."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.approximate import TwoPhase, wants_exact
from vsplade.encoded import EncodedDirWriter
from vsplade.engines.base import EngineError, PageFilter, Searcher
from vsplade.engines.memory import ExactScorer, MemorySearcher, top_k
from vsplade.sparse import SparseBatch

V = 50368
N = 1500


def _corpus(n: int = N, seed: int = 0) -> SparseBatch:
    """Zipf-like pages over 600 term ids: frequent terms in many pages, rare ones in few."""
    rng = np.random.default_rng(seed)
    ids_pool = 1000 + rng.permutation(600)
    p = 1.0 / (np.arange(600) + 3.0)
    p = np.minimum(1.0, 40 * p / p.sum())  # ~40 terms a page
    hit = rng.random((n, 600)) < p
    rows, k = np.nonzero(hit)
    data = np.exp(rng.normal(-1.0, 0.7, len(rows))).astype(np.float32)
    m = sp.csr_matrix((data, (rows, ids_pool[k])), shape=(n, V))
    ids = [f"p{i:05d}" for i in range(n)]
    meta = [{"id": d, "source": f"dir{i % 3}/doc{i // 10}.pdf", "page": i % 10 + 1} for i, d in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def _queries(batch: SparseBatch, vocab, n: int = 40, seed: int = 1) -> list[dict]:
    """12 terms drawn like the pages' (frequent terms often), idf-like weights: frequent terms
    weigh little, as an inference-free query side gives them."""
    rng = np.random.default_rng(seed)
    df = np.bincount(batch.matrix.indices, minlength=V)
    cand = np.flatnonzero(df)
    p = df[cand] / df[cand].sum()
    out = []
    for _ in range(n):
        terms = rng.choice(cand, 12, replace=False, p=p)
        out.append({vocab.term(int(t)): float(np.log(len(batch) / df[t]) + rng.uniform(0, 0.3)) for t in terms})
    return out


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


@pytest.fixture(scope="module")
def scorer(corpus, vocab):
    return ExactScorer(corpus, vocab)


def _holding(batch: SparseBatch, vocab, terms) -> np.ndarray:
    """Rows holding at least one of the terms."""
    cols = [vocab.id_of(t) for t in terms]
    return np.asarray((batch.matrix[:, cols] != 0).sum(axis=1)).ravel() > 0


def _reference(scorer, batch, vocab, query, k, tp: TwoPhase, page_filter=None):
    """What two-phase returns when its window holds every candidate: the exact top-k of the
    pages holding a kept term (a page matching only pruned terms is never a candidate)."""
    kept, _ = tp.split(query)
    scores = scorer.scores(query)
    keep = _holding(batch, vocab, kept)
    if page_filter is not None:
        keep &= scorer.mask(page_filter)
    scores = np.where(keep, scores, 0.0)
    rows = top_k(scores, k)
    return [batch.ids[r] for r in rows], scores[rows].tolist()


@pytest.mark.parametrize("k", [1, 10, 50])
def test_window_covering_every_candidate_is_the_exact_top_k(scorer, corpus, vocab, k):
    tp = TwoPhase(prune_ratio=0.5, expansion=float(N))
    same_as_exact = 0
    for q in _queries(corpus, vocab):
        assert 0 < len(tp.split(q)[0]) < len(q)  # the test prunes something
        got = scorer.search(q, k, two_phase=tp)
        ids, scores = _reference(scorer, corpus, vocab, q, k, tp)
        assert [h.id for h in got] == ids
        assert [h.score for h in got] == scores  # bit for bit
        exact = scorer.search(q, k)
        if all(_holding(corpus, vocab, tp.split(q)[0])[corpus.ids.index(h.id)] for h in exact):
            # every exact top-k page holds a kept term: nothing to miss, the exact answer
            assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in exact]
            same_as_exact += 1
    assert same_as_exact  # that case was met


def test_page_matching_only_pruned_terms_is_missed_and_found_exactly(vocab):
    heavy, light = vocab.id_of("dog"), vocab.id_of("Ġcat")
    rows = [{heavy: 0.1}, {light: 1.8}, {heavy: 0.05, light: 0.1}]
    batch = SparseBatch.from_dicts(rows, ["h", "l", "both"])
    s = ExactScorer(batch, vocab)
    q = {"dog": 2.0, "Ġcat": 0.5}
    assert [h.id for h in s.search(q, 3)] == ["l", "h", "both"]
    got = s.search(q, 3, two_phase=TwoPhase(prune_ratio=0.5, expansion=10))
    assert [h.id for h in got] == ["h", "both"]  # "l" holds only the pruned term
    assert [h.score for h in got] == [h.score for h in s.search(q, 3) if h.id != "l"]


def test_returned_scores_are_the_exact_scores(scorer, corpus, vocab):
    for tp in (TwoPhase(), TwoPhase(0.8, 1.0), TwoPhase(0.3, 2.0)):
        for q in _queries(corpus, vocab, seed=5):
            exact = scorer.scores(q)
            got = scorer.search(q, 10, two_phase=tp)
            assert got
            rows = [corpus.ids.index(h.id) for h in got]
            assert [h.score for h in got] == [float(exact[r]) for r in rows]
            # ranked by score, then row (as the exact search breaks ties)
            assert [(-h.score, r) for h, r in zip(got, rows)] == sorted((-h.score, r) for h, r in zip(got, rows))


def test_prune_ratio_zero_is_exact(scorer, corpus, vocab):
    for q in _queries(corpus, vocab, seed=7):
        for k in (10, 100):
            got = scorer.search(q, k, two_phase=TwoPhase(prune_ratio=0.0, expansion=1.0))
            assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in scorer.search(q, k)]


def test_recall_grows_with_the_window(scorer, corpus, vocab):
    queries = _queries(corpus, vocab, seed=11)

    def recall(tp):
        r = []
        for q in queries:
            want = {h.id for h in scorer.search(q, 10)}
            r.append(len(want & {h.id for h in scorer.search(q, 10, two_phase=tp)}) / len(want))
        return float(np.mean(r))

    narrow, wide = recall(TwoPhase(0.6, 1.0)), recall(TwoPhase(0.6, 20.0))
    assert narrow < wide  # a window of k misses pages phase 2 would rank in


@pytest.mark.parametrize("filters", [
    {"sources": ["dir1"]},
    {"page_min": 3, "page_max": 4},
    {"sources": "dir2/doc7.pdf"},
    {"sources": ["dir0", "dir2"], "page_max": 2},
])
def test_filters_apply_inside_both_phases(scorer, corpus, vocab, filters):
    pf = PageFilter.of(**filters)
    allowed = scorer.mask(pf)
    tp_wide = TwoPhase(0.5, float(N))
    for q in _queries(corpus, vocab, n=20, seed=3):
        got = scorer.search(q, 10, two_phase=tp_wide, **filters)
        ids, scores = _reference(scorer, corpus, vocab, q, 10, tp_wide, pf)
        assert [h.id for h in got] == ids and [h.score for h in got] == scores
        # a small window is filled from the allowed pages only (filtering after phase 1
        # would leave it short)
        small = scorer.search(q, 10, two_phase=TwoPhase(0.5, 1.0), **filters)
        assert all(allowed[corpus.ids.index(h.id)] for h in small)
        kept_and_allowed = int((_holding(corpus, vocab, TwoPhase(0.5).split(q)[0]) & allowed).sum())
        assert len(small) == min(10, kept_and_allowed)


def test_explain_explains_the_exact_score(scorer, corpus, vocab):
    pruned_explained = 0
    for q in _queries(corpus, vocab, n=5, seed=9):
        _, pruned = TwoPhase().split(q)
        for h in scorer.search(q, 5, explain=True, two_phase=TwoPhase()):
            assert set(h.explain) <= set(q)
            assert sum(h.explain.values()) == pytest.approx(h.score, rel=1e-12)
            pruned_explained += bool(set(h.explain) & set(pruned))
    assert pruned_explained  # phase 2's terms are in the explanation, not only phase 1's


@pytest.mark.parametrize("kw", [
    {"prune_ratio": -0.1}, {"prune_ratio": 1.5}, {"prune_ratio": float("nan")}, {"prune_ratio": True},
    {"prune_ratio": "0.4"}, {"expansion": 0.5}, {"expansion": float("inf")}, {"expansion": None},
])
def test_bad_parameters_are_value_errors(kw):
    with pytest.raises(ValueError, match="two-phase"):
        TwoPhase(**kw)


@pytest.mark.parametrize("value", ["abc", "0.4,5,6", 3, {"ratio": 0.4}, "2,5", [0.4, 5]])
def test_bad_two_phase_values_are_value_errors(scorer, value):
    with pytest.raises(ValueError):
        scorer.search({"dog": 1.0}, 10, two_phase=value)


def test_two_phase_of_reads_the_forms_a_caller_gives():
    assert TwoPhase.of(None) is None and TwoPhase.of(False) is None
    # "off"/"exact": no two-phase, and the exact search asked for (vs None: the index's default)
    assert TwoPhase.of("off") is None and TwoPhase.of(" Exact ") is None
    assert wants_exact(False) and wants_exact("off") and not wants_exact(None) and not wants_exact("0.4,10")
    assert TwoPhase.of(True) == TwoPhase(0.4, 10.0)
    assert TwoPhase.of("0.3,8") == TwoPhase(0.3, 8.0) == TwoPhase.of({"prune_ratio": 0.3, "expansion": 8})
    assert TwoPhase.of("0.5") == TwoPhase(0.5, 10.0)  # the default expansion
    assert TwoPhase(expansion=2.5).window(10) == 25 and TwoPhase(expansion=1.0).window(7) == 7
    assert TwoPhase(expansion=1.05).window(10) == 11


def test_split_keeps_the_heaviest_term():
    tp = TwoPhase(prune_ratio=1.0)
    assert tp.split({"a": 0.5, "b": 2.0, "c": 1.9}) == ({"b": 2.0}, {"a": 0.5, "c": 1.9})
    assert TwoPhase(0.0).split({"a": 0.5, "b": 2.0}) == ({"a": 0.5, "b": 2.0}, {})
    assert tp.split({}) == ({}, {})


def test_memory_searcher_and_batch_search_take_it(tmp_path, corpus, vocab, scorer):
    d = tmp_path / "enc"
    with EncodedDirWriter(d, {"name": "test"}) as w:
        w.add(corpus)
    s = MemorySearcher(d)
    queries = _queries(corpus, vocab, n=6, seed=13)
    tp = TwoPhase(0.5, 3.0)
    want = [[(h.id, h.score) for h in scorer.search(q, 10, two_phase=tp, page_max=8)] for q in queries]
    for threads in (1, 2):
        got = s.batch_search(queries, 10, threads=threads, two_phase=tp, page_max=8)
        assert [[(h.id, h.score) for h in hs] for hs in got] == want


def test_a_searcher_without_two_phase_refuses_it_naming_the_engine():
    pytest.importorskip("vsplade_opensearch")
    from vsplade_opensearch.searcher import OpenSearchSearcher

    s = OpenSearchSearcher.__new__(OpenSearchSearcher)  # refused before any server is asked
    for call in (lambda: s.search({"dog": 1.0}, 10, two_phase=TwoPhase()),
                 lambda: s.batch_search([{"dog": 1.0}], 10, two_phase=TwoPhase())):
        with pytest.raises(EngineError, match="opensearch engine has no two-phase"):
            call()


def test_two_phase_none_passes_through_a_searcher_without_it():
    class Plain(Searcher):  # an engine written before the keyword existed
        def search(self, query, k=10, explain=False):
            return [("searched", k, explain)]

    assert Plain().search({"a": 1.0}, 3, two_phase=None) == [("searched", 3, False)]
    assert Plain().batch_search([{"a": 1.0}], 2, two_phase=None) == [[("searched", 2, False)]]
    with pytest.raises(EngineError, match="Plain"):
        Plain().search({"a": 1.0}, 3, two_phase=TwoPhase())
