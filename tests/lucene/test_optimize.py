"""`--optimize` (vsplade_lucene.optimize): a Lucene index force-merged to one segment ranks
exactly as before, keeps its forward index aligned, and a kill in the middle of the merge
leaves an index that opens with every page (Lucene's commit semantics)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.approximate import TwoPhase
from vsplade.engines.base import EngineError
from vsplade.sparse import SparseBatch
from vsplade_lucene import LuceneEngine
from vsplade_lucene.optimize import optimize, segment_count

from lucene_support import INFO, stored_ids

V = 50368


def _pages(n: int, nnz: int, seed: int = 0) -> SparseBatch:
    rng = np.random.default_rng(seed)
    cols = 1000 + (rng.zipf(1.3, (n, nnz)) % 20000)
    rows = np.repeat(np.arange(n), nnz)
    m = sp.csr_matrix((rng.uniform(0.05, 2.0, n * nnz).astype(np.float32), (rows, cols.ravel())), shape=(n, V))
    m.sum_duplicates()
    ids = [f"p{i:06d}" for i in range(n)]
    return SparseBatch(m, ids, [{"id": d, "source": f"d{i // 10}.pdf", "page": i % 10 + 1} for i, d in enumerate(ids)])


def _build(path, batch: SparseBatch, scale: float = 100) -> None:
    # small chunks: many segments to merge
    eng = LuceneEngine(str(path), scale=scale, chunk_docs=400, threads=2, commit_every=2000, forward_index=True)
    with eng.writer(INFO) as w:
        for s in range(0, len(batch), 1000):
            w.add(batch.select(range(s, min(s + 1000, len(batch)))))


def _queries(batch: SparseBatch, vocab, n=15, seed=1):
    rng = np.random.default_rng(seed)
    df = np.bincount(batch.matrix.indices, minlength=V)
    cand = np.flatnonzero(df)
    return [{vocab.term(int(t)): float(np.log(len(batch) / df[t]) + 0.1)
             for t in rng.choice(cand, 10, replace=False, p=df[cand] / df[cand].sum())} for _ in range(n)]


@pytest.mark.timeout(240)
def test_one_segment_same_top_k(tmp_path, vocab):
    batch = _pages(6000, 60)
    path = tmp_path / "idx"
    _build(path, batch)
    queries = _queries(batch, vocab)
    eng = LuceneEngine(str(path))
    tp = TwoPhase(0.4, 10)
    with eng.searcher() as s:
        assert s._forward_index() is not None
        before = [[(h.id, h.score) for h in s.search(q, 20)] for q in queries]
        before_tp = [[(h.id, h.score) for h in s.search(q, 10, two_phase=tp)] for q in queries]
    n_before = segment_count(path)
    assert n_before > 1  # something to merge
    out = optimize(path)
    assert out["segments_before"] == n_before and out["segments_after"] == 1
    assert segment_count(path) == 1
    assert stored_ids(path) == batch.ids  # doc ids still the insertion order
    with eng.searcher() as s:
        assert s._forward_index() is not None  # still aligned with the doc ids
        assert [[(h.id, h.score) for h in s.search(q, 20)] for q in queries] == before
        assert [[(h.id, h.score) for h in s.search(q, 10, two_phase=tp)] for q in queries] == before_tp
        s.use_forward = False  # Lucene's phase 2 agrees on the merged index
        assert [[(h.id, h.score) for h in s.search(q, 10, two_phase=tp)] for q in queries] == before_tp


def test_not_an_index_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no vsplade Lucene index"):
        optimize(tmp_path / "empty")


_OPTIMIZE = "import sys; from vsplade_lucene.optimize import optimize; optimize(sys.argv[1])"


@pytest.mark.slow  # a 20k-page build killed mid-merge and re-run: ~30 s
@pytest.mark.timeout(300)
def test_kill_during_merge_loses_nothing(tmp_path, vocab):
    batch = _pages(60000, 120, seed=3)
    path = tmp_path / "idx"
    _build(path, batch)
    n_before = segment_count(path)
    assert n_before > 1
    files_before = {p.name for p in path.iterdir()}
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _OPTIMIZE, str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the merge has started once a segment file that was not there appears (the JVM
        # starts first); killed then, before the merged commit
        deadline = time.monotonic() + 120
        new = set()
        while time.monotonic() < deadline and proc.poll() is None:
            new = {p.name for p in path.iterdir()} - files_before - {"write.lock"}
            if any(not n.startswith("segments") for n in new):
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"optimize ended before the kill (rc {proc.returncode}): merge too quick to test"
        assert new, "no merge file appeared within 120 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert not any(n.startswith("segments_") for n in {p.name for p in path.iterdir()} - files_before)  # not committed
    # the last commit: every page, the same segments, searchable
    assert segment_count(path) == n_before
    assert stored_ids(path) == batch.ids
    q = _queries(batch, vocab, n=3)
    eng = LuceneEngine(str(path))
    with eng.searcher() as s:
        assert s.num_docs == len(batch)
        want = [[(h.id, h.score) for h in s.search(x, 10)] for x in q]
    # a re-run completes the merge (and the killed run's files are cleaned up by Lucene)
    assert optimize(path)["segments_after"] == 1
    with eng.searcher() as s:
        assert s.num_docs == len(batch)
        assert [[(h.id, h.score) for h in s.search(x, 10)] for x in q] == want
