"""Two-phase search on the Lucene searcher (vsplade.approximate.TwoPhase, issue 24 item 3):
phase 1 a Lucene query of the heavy terms, phase 2 the whole query over the window's doc set.
The reference is the same searcher's exact search (every matching page, k = all)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from vsplade.approximate import TwoPhase
from vsplade.engines.base import PageFilter
from vsplade.sparse import SparseBatch, quantize_query_impacts
from vsplade_lucene import LuceneEngine
from vsplade_lucene.searcher import PRUNED_INDEX_TWO_PHASE

from lucene_support import INFO, VOCAB_SIZE, assert_full_index_scores, zipf_corpus, zipf_queries

N = 1200


@pytest.fixture(scope="module")
def corpus():
    return zipf_corpus()


@pytest.fixture(scope="module")
def searcher(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("two-phase") / "idx"
    eng = LuceneEngine(str(path), scale=100)  # integer dot products exact in Lucene's float32
    with eng.writer(INFO) as w:
        for s in range(0, len(corpus), 256):
            w.add(corpus.select(range(s, min(s + 256, len(corpus)))))
    with eng.searcher() as s:
        yield s


def _reference(s, batch: SparseBatch, vocab, query, k, tp: TwoPhase, **filters):
    """The exact Lucene ranking of the pages holding a kept term (what a window holding every
    candidate returns: a page matching only pruned terms is never a candidate)."""
    kept, _ = tp.split(query)
    kept = quantize_query_impacts(kept, s.scale)
    cols = [vocab.id_of(t) for t in kept]
    holds = np.asarray((batch.matrix[:, cols] != 0).sum(axis=1)).ravel() > 0
    row = {d: i for i, d in enumerate(batch.ids)}
    return [(h.id, h.score) for h in s.search(query, len(batch), **filters) if holds[row[h.id]]][:k]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("k", [1, 10, 40])
def test_window_covering_every_candidate_is_the_exact_ranking(searcher, corpus, vocab, k):
    tp = TwoPhase(prune_ratio=0.5, expansion=float(N))
    for q in zipf_queries(corpus, vocab):
        assert 0 < len(tp.split(q)[0]) < len(q)  # the test prunes something
        got = [(h.id, h.score) for h in searcher.search(q, k, two_phase=tp)]
        assert got == _reference(searcher, corpus, vocab, q, k, tp)


@pytest.mark.timeout(240)
def test_equals_the_exact_top_k_when_it_holds_kept_terms_and_scores_are_exact(searcher, corpus, vocab):
    tp_wide = TwoPhase(prune_ratio=0.5, expansion=float(N))
    met = 0
    for q in zipf_queries(corpus, vocab, seed=4):
        full = {h.id: h.score for h in searcher.search(q, N)}
        exact = [(h.id, h.score) for h in searcher.search(q, 10)]
        if _reference(searcher, corpus, vocab, q, 10, tp_wide) == exact:
            met += 1
            assert [(h.id, h.score) for h in searcher.search(q, 10, two_phase=tp_wide)] == exact
        for tp in (TwoPhase(), TwoPhase(0.8, 1.0)):
            got = searcher.search(q, 10, two_phase=tp)
            assert got and all(h.score == full[h.id] for h in got)  # each page's exact score
            assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
    assert met


@pytest.mark.timeout(240)
def test_prune_ratio_zero_is_exact(searcher, corpus, vocab):
    for q in zipf_queries(corpus, vocab, seed=7):
        for k in (10, 100):
            got = searcher.search(q, k, two_phase=TwoPhase(prune_ratio=0.0, expansion=1.0))
            assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in searcher.search(q, k)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("filters", [
    {"sources": ["dir1"]},
    {"page_min": 3, "page_max": 4},
    {"sources": "dir2/doc7.pdf"},
])
def test_filters_apply_inside_both_phases(searcher, corpus, vocab, filters):
    pf = PageFilter.of(**filters)
    tp_wide = TwoPhase(0.5, float(N))
    for q in zipf_queries(corpus, vocab, n=10, seed=3):
        got = [(h.id, h.score) for h in searcher.search(q, 10, two_phase=tp_wide, **filters)]
        assert got == _reference(searcher, corpus, vocab, q, 10, tp_wide, **filters)
        small = searcher.search(q, 10, two_phase=TwoPhase(0.5, 1.0), **filters)
        assert all(pf.matches(h.source, h.page) for h in small)
        # the window is filled from allowed pages (a filter applied after phase 1 would
        # leave it short)
        assert len(small) == len(_reference(searcher, corpus, vocab, q, 10, tp_wide, **filters))


def test_explain_explains_the_exact_score(searcher, corpus, vocab):
    pruned_explained = 0
    for q in zipf_queries(corpus, vocab, n=5, seed=9):
        _, pruned = TwoPhase().split(q)
        for h in searcher.search(q, 5, explain=True, two_phase=TwoPhase()):
            assert set(h.explain) <= set(q)
            assert sum(h.explain.values()) == pytest.approx(h.score, rel=1e-9)
            pruned_explained += bool(set(h.explain) & set(pruned))
    assert pruned_explained  # phase 2's terms are explained, not only phase 1's


def test_bad_two_phase_values_are_value_errors(searcher):
    for value in ("abc", 3, {"prune_ratio": 2.0}, {"ratio": 1}):
        with pytest.raises(ValueError):
            searcher.search({"dog": 1.0}, 10, two_phase=value)
    with pytest.raises(ValueError):
        TwoPhase(expansion=0.9)


def test_batch_search_takes_it(searcher, corpus, vocab):
    queries = zipf_queries(corpus, vocab, n=8, seed=12)
    tp = TwoPhase(0.5, 2.0)
    want = [[(h.id, h.score) for h in searcher.search(q, 10, two_phase=tp, page_max=7)] for q in queries]
    got = searcher.batch_search(queries, 10, threads=2, two_phase=tp, page_max=7)
    assert [[(h.id, h.score) for h in hs] for hs in got] == want


@pytest.mark.timeout(300)
def test_real_pdf_pages(tmp_path, pdf_dir):
    """The lexical encoder on the test PDFs: two-phase with a window holding every candidate
    == the exact ranking of the pages holding a kept term; scores exact."""
    from vsplade.cli import app
    from vsplade.encoded import EncodedDir
    from vsplade.encoders import load_query_encoder
    from vsplade.vocab import default_vocabulary

    enc = tmp_path / "enc"
    r = CliRunner().invoke(app, ["encode", str(pdf_dir), "--model", "lexical", "--out", str(enc)])
    assert r.exit_code in (0, 1), r.output
    batch = EncodedDir(enc).load()
    eng = LuceneEngine(str(tmp_path / "idx"), scale=100)
    with eng.writer(INFO) as w:
        w.add(batch)
    qenc = load_query_encoder("lexical")
    vocab = default_vocabulary()
    texts = ["install a package with apt", "stub code generation for COM interfaces", "reference card",
             "interface definition language for the camlidl stub generator"]
    df = np.bincount(batch.matrix.indices, minlength=batch.vocab_size)
    pruned_some = 0
    with eng.searcher() as s:
        for t in texts:
            # the lexical encoder weighs its terms alike (nothing to prune): idf-weighted over
            # these pages, as an inference-free query side weighs them
            q = {term: w * float(np.log(1 + len(batch) / max(1, df[vocab.id_of(term)]))) for term, w in qenc.encode(t).items()}
            tp = TwoPhase(0.5, float(len(batch)))
            pruned_some += bool(tp.split(q)[1])
            got = [(h.id, h.score) for h in s.search(q, 5, two_phase=tp)]
            assert got, t
            assert got == _reference(s, batch, vocab, q, 5, tp)
    assert pruned_some


# -- phase 2 from the forward index (vsplade_lucene.forward) --------------------------------

@pytest.fixture(scope="module")
def heavy(tmp_path_factory, corpus):
    """The same pages at the default scale 10000 with weights x 40: query x page impacts of
    up to ~10^10 (past float32's 2^24 integers), where a float32 product rounds; the forward
    index must round exactly as Lucene does."""
    path = tmp_path_factory.mktemp("two-phase-heavy") / "idx"
    big = SparseBatch(corpus.matrix * 40, corpus.ids, corpus.meta)
    with LuceneEngine(str(path), forward_index=True).writer(INFO) as w:
        w.add(big)
    return path


def _pairs(hits):
    return [(h.id, h.score) for h in hits]


@pytest.mark.timeout(240)
def test_forward_phase_2_equals_lucene_phase_2_bit_for_bit(heavy, corpus, vocab):
    eng = LuceneEngine(str(heavy))
    with eng.searcher() as fwd, eng.searcher() as luc:
        assert fwd._forward_index() is not None
        luc.use_forward = False
        queries = [{t: w * 25 for t, w in q.items()} for q in zipf_queries(corpus, vocab, seed=21)]
        for q in queries:
            full = {h.id: h.score for h in fwd.search(q, N)}
            for tp in (TwoPhase(0.5, 1.0), TwoPhase(0.3, 5.0), TwoPhase(0.5, float(N))):
                for filters in ({}, {"sources": ["dir1"]}, {"page_min": 2, "page_max": 6}):
                    got = fwd.search(q, 10, two_phase=tp, **filters)
                    assert _pairs(got) == _pairs(luc.search(q, 10, two_phase=tp, **filters))
                    assert all(h.score == full[h.id] for h in got)  # Lucene's exact score, bit-equal
                    pf = PageFilter.of(**filters)
                    assert all(pf is None or pf.matches(h.source, h.page) for h in got)
            # a window holding every candidate: the exact top-k of the pages holding a kept term
            tp = TwoPhase(0.5, float(N))
            assert _pairs(fwd.search(q, 10, two_phase=tp)) == _reference(fwd, SparseBatch(
                corpus.matrix * 40, corpus.ids, corpus.meta), vocab, q, 10, tp)


@pytest.mark.timeout(240)
def test_forward_ties_order_like_lucene(tmp_path, vocab):
    """Pages with equal scores: by doc id (insertion order), as Lucene's collector."""
    n = 60
    rows = np.repeat(np.arange(n), 2)
    cols = np.tile([3000, 3001], n)
    data = np.where(np.arange(2 * n) % 2 == 0, 1.0, (np.arange(2 * n) // 2 % 3 + 1) * 0.5).astype(np.float32)
    batch = SparseBatch(sp.csr_matrix((data, (rows, cols)), shape=(n, VOCAB_SIZE)), [f"t{i:03d}" for i in range(n)])
    with LuceneEngine(str(tmp_path / "idx"), forward_index=True).writer(INFO) as w:
        w.add(batch)
    q = {vocab.term(3000): 1.0, vocab.term(3001): 0.2}
    with LuceneEngine(str(tmp_path / "idx")).searcher() as s:
        assert s._forward_index() is not None
        got = _pairs(s.search(q, 25, two_phase=TwoPhase(0.5, 3.0)))
        assert got == _pairs(s.search(q, 25))
        assert len({sc for _, sc in got}) < len(got)  # ties were there to order


@pytest.mark.timeout(240)
def test_index_without_forward_files_falls_back(tmp_path, corpus, vocab):
    from vsplade_lucene import forward

    path = tmp_path / "idx"
    with LuceneEngine(str(path), scale=100, forward_index=True).writer(INFO) as w:
        w.add(corpus)
    queries = zipf_queries(corpus, vocab, n=8, seed=5)
    tp = TwoPhase(0.5, 3.0)
    with LuceneEngine(str(path)).searcher() as s:
        assert s._forward_index() is not None
        want = [_pairs(s.search(q, 10, two_phase=tp)) for q in queries]
    forward.remove(path)  # an index built before the forward index existed
    with LuceneEngine(str(path)).searcher() as s:
        assert s._forward_index() is None
        assert [_pairs(s.search(q, 10, two_phase=tp)) for q in queries] == want
    # a writer resuming such an index does not start a forward index that misses pages
    with LuceneEngine(str(path)).writer(INFO) as w:
        w.add(SparseBatch(corpus.matrix[:5], [f"extra{i}" for i in range(5)]))
    assert not (path / forward.COUNTS).exists()


@pytest.mark.timeout(240)
def test_deletes_drop_the_forward_index(tmp_path, corpus, vocab):
    path = tmp_path / "idx"
    with LuceneEngine(str(path), scale=100, forward_index=True).writer(INFO) as w:
        w.add(corpus)
        w.delete(corpus.ids[:100:3])
    tp = TwoPhase(0.5, float(N))
    with LuceneEngine(str(path)).searcher() as s:
        assert s._forward_index() is None  # doc ids renumbered: Lucene's phase 2 serves
        for q in zipf_queries(corpus, vocab, n=5, seed=8):
            got = _pairs(s.search(q, 10, two_phase=tp))
            full = {h.id: h.score for h in s.search(q, N)}
            assert got and all(full[i] == sc for i, sc in got)
            assert not set(i for i, _ in got) & set(corpus.ids[:100:3])


@pytest.mark.timeout(240)
def test_pruned_index_with_unpruned_forward_returns_full_scores(tmp_path, corpus, vocab):
    """Static pruning (vsplade.pruning) + a forward index of the unpruned pages: phase 1 on
    the pruned postings, hits scored exactly as the unpruned index scores them."""
    from vsplade.engines.base import EngineError
    from vsplade.pruning import StaticPruning
    from vsplade_lucene.direct import DirectImpactWriter

    full_path, pruned_path = tmp_path / "full", tmp_path / "pruned"
    pr = StaticPruning(top_n=8)
    pruned, dropped = pr.apply(corpus)
    assert dropped > 0
    with LuceneEngine(str(full_path), scale=100).writer(INFO) as w:
        w.add(corpus)
    # the writer prunes (Lucene) and keeps the whole pages (forward index), in small chunks
    with DirectImpactWriter(pruned_path, INFO, scale=100, pruning="top=8", chunk_docs=100) as w:
        for s in range(0, len(corpus), 256):
            w.add(corpus.select(range(s, min(s + 256, len(corpus)))))
    assert w.summary.extra["pruned_weights"] == dropped
    with pytest.raises(EngineError, match="static pruning"):  # one setting per index
        DirectImpactWriter(pruned_path, INFO, scale=100, pruning="top=9")
    tp = TwoPhase(0.0, float(N))  # every query term kept; the window holds every match
    with LuceneEngine(str(full_path)).searcher() as full, LuceneEngine(str(pruned_path)).searcher() as ps:
        for q in zipf_queries(corpus, vocab, n=10, seed=13):
            cols = [vocab.id_of(t) for t in quantize_query_impacts(q, 100)]
            matches = np.asarray((pruned.matrix[:, cols] != 0).sum(axis=1)).ravel() > 0
            row = {d: i for i, d in enumerate(corpus.ids)}
            want = [(h.id, h.score) for h in full.search(q, N) if matches[row[h.id]]][:10]
            assert _pairs(ps.search(q, 10, two_phase=tp)) == want
            # without two_phase a pruned index still answers with the unpruned scores, through
            # its default window (searcher.PRUNED_INDEX_TWO_PHASE)
            plain = ps.search(q, 10)
            assert _pairs(plain) == _pairs(ps.search(q, 10, two_phase=PRUNED_INDEX_TWO_PHASE))
            full_scores = {h.id: h.score for h in full.search(q, N)}
            assert plain and all(h.score == full_scores[h.id] for h in plain)


_BUILD = """
import sys
import numpy as np, scipy.sparse as sp
from vsplade.sparse import SparseBatch
from vsplade_lucene import LuceneEngine
m = sp.load_npz(sys.argv[2]).tocsr()
ids = [f"p{i:05d}" for i in range(m.shape[0])]
eng = LuceneEngine(sys.argv[1], scale=100, chunk_docs=200, threads=2, commit_every=400, forward_index=True)
with eng.writer({"name": "test-random", "seed": 7}) as w:
    for s in range(0, m.shape[0], 100):
        w.add(SparseBatch(m[s:s + 100], ids[s:s + 100]))
"""


@pytest.mark.slow  # two subprocess builds, one SIGKILLed, per step
@pytest.mark.timeout(240)
@pytest.mark.parametrize("step", ["lucene.docs-appended:3", "lucene.submitted:4"])
def test_forward_index_survives_a_kill_and_resume(tmp_path, corpus, vocab, step):
    """A build SIGKILLed mid-way and re-run: the forward index is cut back to the commit with
    the docs file and completed by the re-run, aligned with Lucene's doc ids."""
    import os
    import subprocess
    import sys

    npz = tmp_path / "m.npz"
    sp.save_npz(npz, corpus.matrix)
    path = tmp_path / "idx"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, "-c", _BUILD, str(path), str(npz)], env={**env, "VSPLADE_CRASH_AT": step},
                            capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", _BUILD, str(path), str(npz)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    eng = LuceneEngine(str(path))
    with eng.searcher() as fwd, eng.searcher() as luc:
        assert fwd.num_docs == len(corpus)
        assert fwd._forward_index() is not None
        luc.use_forward = False
        for q in zipf_queries(corpus, vocab, n=10, seed=17):
            for tp in (TwoPhase(0.5, 2.0), TwoPhase(0.5, float(N))):
                assert _pairs(fwd.search(q, 10, two_phase=tp)) == _pairs(luc.search(q, 10, two_phase=tp))


@pytest.mark.timeout(240)
def test_cli_prune_and_optimize_build_one_segment_with_exact_scores(tmp_path, pdf_dir):
    """`vsplade index --prune top=N --optimize`: the setting in the index, one segment, every
    search two-phase so returned pages carry the unpruned index's scores; a plain index has no
    forward index (no extra disk); the memory engine refuses --prune in one line."""
    from vsplade.cli import app
    from vsplade_lucene import forward
    from vsplade_lucene.optimize import segment_count
    from vsplade_lucene.store import read_config

    full, pruned = tmp_path / "full", tmp_path / "pruned"
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(full)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(pruned),
                                 "--prune", "top=60", "--optimize", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["pruned_weights"] > 0  # the pages lost terms in Lucene
    assert read_config(pruned)["static_pruning"] and read_config(pruned)["forward_index"] is True
    assert not (full / forward.COUNTS).exists() and (pruned / forward.COUNTS).exists()
    assert segment_count(pruned) == 1
    r = CliRunner().invoke(app, ["info", "--index", str(pruned)])
    assert r.exit_code == 0 and 'static_pruning: {"floor": 0.0, "top_n": 60}' in r.output, r.output
    assert_full_index_scores(full, pruned)
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--engine", "memory",
                                 "--index", str(tmp_path / "mem"), "--prune", "top=12"])
    assert r.exit_code == 2 and "--prune: not an option of the memory engine" in r.output
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(tmp_path / "bad"),
                                 "--prune", "top=zero"])
    assert r.exit_code == 2 and "--prune" in r.output and len(r.output.strip().splitlines()) == 1
