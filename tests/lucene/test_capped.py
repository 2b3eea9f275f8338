"""Capped postings (`--prune cap=C`, vsplade_lucene.capped; issue 24 item 3): the files against
each term's heaviest postings computed here in numpy, and searches (vsplade.lucene.CappedSearch)
against exact Lucene on the same index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vsplade.approximate import TwoPhase
from vsplade.engines.base import EngineError, PageFilter
from vsplade.sparse import SparseBatch, quantize_impacts, quantize_query_impacts
from vsplade_lucene import LuceneEngine, capped
from vsplade_lucene.direct import DirectImpactWriter
from vsplade_lucene.searcher import CAPPED_TWO_PHASE

from lucene_support import INFO, assert_full_index_scores, zipf_corpus, zipf_queries

N = 1200
CAP = 40  # most of zipf_corpus's 500 terms are in more pages than this


def _open(path, n):
    from vsplade_lucene.forward import ForwardIndex
    from vsplade_lucene.store import read_config

    fw = ForwardIndex.open(path, n, read_config(path))
    return None if fw is None else capped.CappedPostings.open(path, fw)


def _pairs(hits):
    return [(h.id, h.score) for h in hits]


def _build(path, corpus, cap, chunk=256, **kw):
    with DirectImpactWriter(path, INFO, scale=100, pruning=f"cap={cap}", chunk_docs=100, **kw) as w:
        for s in range(0, len(corpus), chunk):
            w.add(corpus.select(range(s, min(s + chunk, len(corpus)))))
    return w.summary


@pytest.fixture(scope="module")
def corpus():
    return zipf_corpus(N)


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("capped") / "idx"
    summary = _build(path, corpus, CAP)
    assert summary.extra["capped_postings"] > 0
    return path


@pytest.mark.timeout(240)
def test_files_hold_the_transpose_and_each_terms_heaviest_postings(index, corpus):
    ints, _ = quantize_impacts(corpus.matrix, 100)
    csc = ints.tocsc()
    csc.sort_indices()
    cp = _open(index, len(corpus))
    assert cp is not None and cp.cap == CAP
    assert not any((index / name).exists() for name in capped.INVERTED)  # the build's scratch is gone
    over = 0
    for t in np.flatnonzero(np.diff(csc.indptr)):
        docs, imps = csc.indices[csc.indptr[t]:csc.indptr[t + 1]], csc.data[csc.indptr[t]:csc.indptr[t + 1]]
        order = np.lexsort((docs, -imps))[:CAP]  # heaviest first, ties to the lower doc id
        want = np.sort(docs[order])
        s0, s1 = cp.cap_offsets[t], cp.cap_offsets[t + 1]
        assert np.array_equal(cp.cap_docs[s0:s1], want), t
        assert np.array_equal(cp.cap_impacts[s0:s1], ints[want, t].toarray().ravel())
        over += len(docs) > CAP
    assert over > 100  # the cap really cut most terms


@pytest.mark.timeout(240)
def test_a_cap_over_every_list_is_the_exact_search(tmp_path, corpus, vocab):
    """Phase 1 sees every posting, the window every match: the exact ranking, bit-equal scores
    (phase 2 from the inverted postings scores as Lucene does), page filters included."""
    path = tmp_path / "idx"
    _build(path, corpus, N)
    exact = tmp_path / "exact"
    with LuceneEngine(str(exact), scale=100).writer(INFO) as w:
        w.add(corpus)
    tp = TwoPhase(0.0, float(N))
    with LuceneEngine(str(path)).searcher() as s, LuceneEngine(str(exact)).searcher() as e:
        assert s._capped_postings() is not None and e._capped_postings() is None
        for q in zipf_queries(corpus, vocab, n=15, seed=3):
            for filters in ({}, {"sources": ["dir1"]}, {"page_min": 2, "page_max": 6}):
                for k in (1, 10, 50):
                    assert _pairs(s.search(q, k, two_phase=tp, **filters)) == _pairs(e.search(q, k, **filters))


@pytest.mark.timeout(240)
def test_small_cap_returns_exact_scores_best_first(index, corpus, vocab):
    """A cap cutting most lists: hits carry their exact scores, in exact order, inside the
    filter, and most of the exact top-10 is found (the fidelity itself is the benchmark's)."""
    exact_path = index.parent / "exact-for-small-cap"
    with LuceneEngine(str(exact_path), scale=100).writer(INFO) as w:
        w.add(corpus)
    found = total = 0
    with LuceneEngine(str(index)).searcher() as s, LuceneEngine(str(exact_path)).searcher() as e:
        for q in zipf_queries(corpus, vocab, n=20, seed=5):
            full = {h.id: h.score for h in e.search(q, N)}
            for filters in ({}, {"sources": ["dir2"]}):
                got = s.search(q, 10, **filters)  # the default window: CAPPED_TWO_PHASE
                assert _pairs(got) == _pairs(s.search(q, 10, two_phase=CAPPED_TWO_PHASE, **filters))
                assert got and all(h.score == full[h.id] for h in got)
                assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
                pf = PageFilter.of(**filters)
                assert all(pf is None or pf.matches(h.source, h.page) for h in got)
            want = {h.id for h in e.search(q, 10)}
            found += len(want & {h.id for h in s.search(q, 10)})
            total += len(want)
    assert found / total > 0.8


@pytest.mark.timeout(240)
def test_explain_and_batch_search(index, corpus, vocab):
    q = zipf_queries(corpus, vocab, n=1, seed=9)[0]
    with LuceneEngine(str(index)).searcher() as s:
        hits = s.search(q, 3, explain=True)
        for h in hits:
            assert h.explain and sum(h.explain.values()) == pytest.approx(h.score, rel=1e-5)
        qs = zipf_queries(corpus, vocab, n=6, seed=10)
        assert [_pairs(r) for r in s.batch_search(qs, 10)] == [_pairs(s.search(x, 10)) for x in qs]


@pytest.mark.timeout(240)
def test_added_pages_rebuild_them_and_deletes_drop_them(tmp_path, corpus, vocab):
    path = tmp_path / "idx"
    first = corpus.select(range(0, 800))
    _build(path, first, CAP)
    with LuceneEngine(str(path)).searcher() as s:
        assert s._capped_postings().num_docs == 800
    with pytest.raises(Exception, match="static pruning"):  # one setting per index
        DirectImpactWriter(path, INFO, scale=100, pruning="cap=41")
    built = (path / capped.CAPPED[1]).stat().st_mtime_ns
    _build(path, corpus.select(range(0)), CAP)  # a writer that adds nothing keeps the files
    assert (path / capped.CAPPED[1]).stat().st_mtime_ns == built
    _build(path, corpus.select(range(800, N)), CAP)  # a second run appends pages: rebuilt at close
    assert json.loads((path / capped.HEADER).read_text())["num_docs"] == N
    with LuceneEngine(str(path)).searcher() as s:
        assert s._capped_postings().num_docs == N
        # a term where the last page is among the CAP heaviest: phase 1 finds it there
        ints, _ = quantize_impacts(corpus.matrix, 100)
        col = ints.tocsc()
        row = ints[N - 1]
        t = next(int(t) for t, w in zip(row.indices, row.data) if (col[:, t].data > w).sum() < CAP // 2)
        hits = s.search({vocab.term(t): 1.0}, 10 * CAP)
        assert corpus.ids[N - 1] in {h.id for h in hits}
    with DirectImpactWriter(path, INFO, scale=100, pruning=f"cap={CAP}") as w:
        w.delete(corpus.ids[:50])
    assert not any((path / name).exists() for name in capped.FILES)
    with LuceneEngine(str(path)).searcher() as s, LuceneEngine(str(path)).searcher() as e:
        assert s._capped_postings() is None  # doc ids renumbered: exact Lucene search again
        q = zipf_queries(corpus, vocab, n=1, seed=4)[0]
        got = s.search(q, 10)
        assert got and not {h.id for h in got} & set(corpus.ids[:50])


@pytest.mark.timeout(240)
def test_stale_or_cut_files_are_ignored(tmp_path, corpus, vocab):
    path = tmp_path / "idx"
    _build(path, corpus.select(range(300)), CAP)
    assert _open(path, 300) is not None
    (path / capped.CAPPED[1]).write_bytes((path / capped.CAPPED[1]).read_bytes()[:-4])  # cut short
    assert _open(path, 300) is None


@pytest.mark.timeout(240)
def test_cli_cap_and_info(tmp_path, pdf_dir):
    from vsplade.cli import app

    full, capd = tmp_path / "full", tmp_path / "capped"
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(full)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(capd),
                                 "--prune", "cap=5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["capped_postings"] > 0
    r = CliRunner().invoke(app, ["info", "--index", str(capd)])
    assert r.exit_code == 0 and '"cap": 5' in r.output, r.output
    assert_full_index_scores(full, capd)
    # --two-phase off: the exact search on the capped index (Lucene keeps every posting)
    outs = [CliRunner().invoke(app, ["search", "debian package management", "--index", str(ix), "-k", "20",
                                     "--format", "json", *extra])
            for ix, extra in ((full, []), (capd, ["--two-phase", "off"]))]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    assert json.loads(outs[0].stdout) == json.loads(outs[1].stdout)
    r = CliRunner().invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(tmp_path / "bad"),
                                 "--prune", "cap=0"])
    assert r.exit_code == 2 and "cap" in r.output and len(r.output.strip().splitlines()) == 1


def _unsorted(batch: SparseBatch) -> SparseBatch:
    """The same pages with each row's (term, weight) pairs in descending term order."""
    m = batch.matrix.copy()
    for r in range(m.shape[0]):
        s, e = m.indptr[r], m.indptr[r + 1]
        m.indices[s:e], m.data[s:e] = m.indices[s:e][::-1].copy(), m.data[s:e][::-1].copy()
    m.has_sorted_indices = False
    return SparseBatch(m, batch.ids, batch.meta)


@pytest.mark.timeout(240)
def test_pages_are_stored_with_ascending_terms_and_both_phase_2_paths_agree(tmp_path, corpus, vocab):
    """Pages handed over in any term order are stored ascending (forward.py "sorted_terms"), which
    CappedSearch's phase 2 binary-searches; its scan of every term (a forward index without the
    flag, written before it) returns the same hits, both equal to exact Lucene when the cap
    covers every list."""
    from vsplade_lucene.forward import ForwardIndex, sort_pages
    from vsplade_lucene.store import read_config

    part = corpus.select(range(400))
    path = tmp_path / "idx"
    _build(path, _unsorted(part), 400)
    fw = ForwardIndex.open(path, 400, read_config(path))
    assert fw.sorted_terms
    for d in range(400):
        t = fw.terms[fw.indptr[d]:fw.indptr[d + 1]].astype(np.int64)
        assert len(t) and (np.diff(t) > 0).all(), d
    exact = tmp_path / "exact"
    with LuceneEngine(str(exact), scale=100).writer(INFO) as w:
        w.add(part)
    binary, scan = _open(path, 400), _open(path, 400)
    scan.forward.sorted_terms = False  # before its Java side opens: the term-by-term scan
    tp = TwoPhase(0.0, 400.0)
    with LuceneEngine(str(exact)).searcher() as e, LuceneEngine(str(path)).searcher() as s:
        mask = s.filter_mask(PageFilter.of(sources=["dir1"]))
        for q in zipf_queries(part, vocab, n=12, seed=6):
            ids, imps = s._forward_index().query_arrays(quantize_query_impacts(q, 100))
            for m in (None, mask):
                got = [cp.top_k(ids, imps, ids, imps, 400, 10, m) for cp in (binary, scan)]
                assert np.array_equal(got[0][0], got[1][0]) and np.array_equal(got[0][1], got[1][1])
            assert _pairs(s.search(q, 10, two_phase=tp)) == _pairs(e.search(q, 10))
    for cp in (binary, scan):
        cp.close()
    # sort_pages: rows sorted one by one, an empty page kept, a sorted chunk returned as it is
    counts = np.array([3, 0, 2], dtype=np.int32)
    t, w = sort_pages(counts, np.array([9, 2, 5, 7, 1]), np.array([1, 2, 3, 4, 5]))
    assert t.tolist() == [2, 5, 9, 1, 7] and w.tolist() == [2, 3, 1, 5, 4]
    done = np.array([1, 4, 9, 0, 3])
    assert sort_pages(np.array([3, 2]), done, done)[0] is done


@pytest.mark.timeout(240)
def test_two_phase_off_is_the_exact_search(tmp_path, corpus, vocab):
    """two_phase=False / "off" on a capped index: exact Lucene, hit for hit, where its default
    search is approximate; an index whose Lucene pages are pruned (top=N) has no exact search
    and says so in one line."""
    part = corpus.select(range(400))
    capped_path, exact_path = tmp_path / "cap2", tmp_path / "exact"
    _build(capped_path, part, 2)  # two postings a term: the default search misses pages
    with LuceneEngine(str(exact_path), scale=100).writer(INFO) as w:
        w.add(part)
    differs = 0
    with LuceneEngine(str(capped_path)).searcher() as s, LuceneEngine(str(exact_path)).searcher() as e:
        for q in zipf_queries(part, vocab, n=12, seed=8):
            want = _pairs(e.search(q, 10, sources=["dir1"]))
            for off in (False, "off", "exact"):
                assert _pairs(s.search(q, 10, two_phase=off, sources=["dir1"])) == want
            differs += _pairs(s.search(q, 10, sources=["dir1"])) != want
    assert differs  # the default (capped) search is not the exact one here
    pruned = tmp_path / "top"
    with DirectImpactWriter(pruned, INFO, scale=100, pruning="top=5") as w:
        w.add(corpus.select(range(100)))
    with LuceneEngine(str(pruned)).searcher() as s:
        q = zipf_queries(corpus, vocab, n=1, seed=2)[0]
        assert s.search(q, 5)  # its default: the pruned postings, rescored from the forward index
        with pytest.raises(EngineError, match=r"--prune top=5.*no exact search") as err:
            s.search(q, 5, two_phase=False)
        assert "\n" not in str(err.value)


_APPEND = """
import sys
sys.path.insert(0, sys.argv[2])
from lucene_support import INFO, zipf_corpus
from vsplade_lucene.direct import DirectImpactWriter
c = zipf_corpus(int(sys.argv[3]))
with DirectImpactWriter(sys.argv[1], INFO, scale=100, pruning="cap=" + sys.argv[4], chunk_docs=100) as w:
    w.add(c.select(range(800, len(c))))
"""


@pytest.mark.timeout(300)
def test_kill_during_the_capped_build_loses_nothing(tmp_path, corpus, vocab):
    """A writer that appends pages rebuilds the capped postings when it closes, after Lucene's
    commit. Killed (SIGKILL) at each step of that rebuild: every committed page is searchable
    with its exact score (no capped postings, or a complete set), and the next writer, even one
    adding nothing, leaves a complete set behind."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    base = tmp_path / "base"
    _build(base, corpus.select(range(800)), CAP)
    exact = tmp_path / "exact"
    with LuceneEngine(str(exact), scale=100).writer(INFO) as w:
        w.add(corpus)
    support = str(Path(__file__).resolve().parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    env["HF_HUB_OFFLINE"] = "1"

    def append(path, **extra):
        return subprocess.run([sys.executable, "-c", _APPEND, str(path), support, str(N), str(CAP)],
                              env={**env, **extra}, capture_output=True, text=True, timeout=240)

    # the steps an append's close goes through (discovered, not hard-coded)
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    log = tmp_path / "steps"
    r = append(probe, VSPLADE_CRASH_LOG=str(log))
    assert r.returncode == 0, r.stderr[-2000:]
    steps = [n for n in log.read_text().split() if n.startswith("lucene.capped.")]
    assert len(set(steps)) >= 5, steps
    queries = zipf_queries(corpus, vocab, n=8, seed=12)
    with LuceneEngine(str(exact)).searcher() as e:
        full = [{h.id: h.score for h in e.search(q, N)} for q in queries]
    for name in dict.fromkeys(steps):
        for nth in sorted({1, steps.count(name)}):
            path = tmp_path / f"kill-{name}-{nth}"
            shutil.copytree(base, path)
            r = append(path, VSPLADE_CRASH_AT=f"{name}:{nth}")
            assert r.returncode == -signal.SIGKILL, (name, nth, r.returncode, r.stderr[-2000:])
            with LuceneEngine(str(path)).searcher() as s:
                assert s.num_docs == N  # Lucene committed before the rebuild began
                cp = s._capped_postings()
                assert cp is None or cp.num_docs == N, (name, nth)
                for q, want in zip(queries, full):
                    got = s.search(q, 10)
                    assert got and all(h.score == want[h.id] for h in got), (name, nth)
            with DirectImpactWriter(path, INFO, scale=100, pruning=f"cap={CAP}"):
                pass  # adds nothing: rebuilds what the kill left incomplete
            with LuceneEngine(str(path)).searcher() as s:
                assert s._capped_postings() is not None and s._capped_postings().num_docs == N, (name, nth)
            shutil.rmtree(path)
