import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.engines import get_engine_class
from vsplade.engines.memory import ExactScorer, top_k
from vsplade.sparse import SparseBatch

V = 50368


def test_top_k_orders_by_score_then_row():
    s = np.array([0.0, 2.0, 1.0, 2.0, 0.5, 1.0])
    assert top_k(s, 3).tolist() == [1, 3, 2]
    assert top_k(s, 10).tolist() == [1, 3, 2, 5, 4]  # zero scores are not hits


def test_exact_scorer_equals_dense_dot_products(vocab):
    rng = np.random.default_rng(3)
    m = sp.random(300, V, density=0.003, format="csr", random_state=rng, dtype=np.float32)
    batch = SparseBatch(m, [f"p{i}" for i in range(300)])
    scorer = ExactScorer(batch)
    dense = m.toarray().astype(np.float64)
    for _ in range(20):
        cols = rng.choice(np.flatnonzero(dense.sum(0) > 0), size=8, replace=False)
        weights = rng.uniform(0.1, 2, size=8)
        query = {vocab.term(int(c)): float(w) for c, w in zip(cols, weights)}
        expected = dense[:, cols] @ weights
        hits = scorer.search(query, k=10)
        order = sorted(range(300), key=lambda r: (-expected[r], r))
        order = [r for r in order if expected[r] > 0][:10]
        assert [h.id for h in hits] == [f"p{r}" for r in order]
        assert [h.score for h in hits] == pytest.approx([expected[r] for r in order])


def test_explain_lists_matching_terms_with_contributions(vocab):
    a, b = vocab.id_of("dog"), vocab.id_of("Ġcat")
    batch = SparseBatch.from_dicts([{a: 2.0, b: 1.0}], ["p"], [{"id": "p", "source": "x.png", "page": 1}])
    hit = ExactScorer(batch).search({"dog": 0.5, "Ġcat": 3.0, "Ġbird": 1.0}, k=1, explain=True)[0]
    assert hit.explain == {"Ġcat": 3.0, "dog": 1.0} and hit.score == 4.0
    assert (hit.source, hit.page) == ("x.png", 1)


def test_memory_engine_round_trip(tmp_path, vocab):
    eng = get_engine_class("memory")(index=str(tmp_path / "ix"))
    with eng.writer({"name": "t"}) as w:
        w.add(SparseBatch.from_dicts([{vocab.id_of("dog"): 1.0}], ["p1"]))
    s = eng.searcher()
    assert [h.id for h in s.search({"dog": 1.0})] == ["p1"]
    assert s.index_info() == {"name": "t"}
