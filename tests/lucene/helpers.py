"""Reference scoring for the Lucene tests: the exact scorer on the SAME integer impacts."""

from __future__ import annotations

import numpy as np

from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch, quantize_impacts, quantize_query_impacts


class QuantizedReference:
    """Exact scores of integer query impacts x integer document impacts, divided by scale^2."""

    def __init__(self, batch: SparseBatch, scale: float = 100.0):
        ints, _ = quantize_impacts(batch.matrix, scale)
        self.scale = scale
        self.scorer = ExactScorer(SparseBatch(ints.astype(np.float32), batch.ids, batch.meta))

    def search(self, query: dict, k: int):
        q = {t: float(v) for t, v in quantize_query_impacts(query, self.scale).items()}
        hits = self.scorer.search(q, k)
        for h in hits:
            h.score /= self.scale * self.scale
        return hits


def random_queries(batch: SparseBatch, vocab, n: int = 25, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        r = int(rng.integers(len(batch)))
        idx, _ = batch.row(r)
        if len(idx) == 0:
            continue
        take = rng.choice(idx, min(len(idx), int(rng.integers(1, 12))), replace=False)
        extra = rng.integers(0, vocab.size, 3)
        out.append({vocab.terms[int(i)]: float(rng.uniform(0.01, 3.0)) for i in [*take, *extra]})
    return out


def assert_same_hits(got, want, rel=1e-6):
    assert [h.id for h in got] == [h.id for h in want], (got, want)
    for g, w in zip(got, want):
        assert abs(g.score - w.score) <= rel * max(1.0, abs(w.score)), (g, w)
