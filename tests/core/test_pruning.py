"""Static index pruning (vsplade.pruning): per-page top-N and a weight floor, checked against a
per-row Python reference on random pages."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.pruning import PROPERTY, StaticPruning, prune_matrix
from vsplade.sparse import SparseBatch


def _pages(n=300, v=2000, seed=0) -> SparseBatch:
    rng = np.random.default_rng(seed)
    nnz = rng.integers(0, 120, n)  # empty pages included
    rows = np.repeat(np.arange(n), nnz)
    cols = np.concatenate([rng.choice(v, k, replace=False) for k in nnz])
    # weights on a coarse grid: ties inside a page are common, so the tie rule is exercised
    data = rng.integers(1, 40, len(rows)).astype(np.float32) / 20
    m = sp.csr_matrix((data, (rows, cols)), shape=(n, v))
    ids = [f"p{i}" for i in range(n)]
    return SparseBatch(m, ids, [{"id": d, "source": "a.pdf", "page": i} for i, d in enumerate(ids)])


def _reference_row(cols, weights, top_n, floor):
    """Kept (term, weight) pairs of one page: weight >= floor, then the top_n heaviest,
    ties to the lower term id."""
    pairs = sorted(((c, w) for c, w in zip(cols, weights) if w >= floor), key=lambda p: (-p[1], p[0]))
    if top_n is not None:
        pairs = pairs[:top_n]
    return sorted(pairs)


@pytest.mark.parametrize("top_n,floor", [(10, 0.0), (1, 0.0), (None, 0.8), (25, 0.5), (500, 0.0)])
def test_keeps_what_it_says(top_n, floor):
    batch = _pages()
    out, dropped = StaticPruning(top_n=top_n, floor=floor).apply(batch)
    assert out.ids == batch.ids and out.meta == batch.meta
    m, p = batch.matrix, out.matrix
    assert dropped == m.nnz - p.nnz
    for r in range(m.shape[0]):
        a, b = m.indptr[r], m.indptr[r + 1]
        want = _reference_row(m.indices[a:b].tolist(), m.data[a:b].tolist(), top_n, floor)
        got = sorted(zip(p.indices[p.indptr[r]:p.indptr[r + 1]].tolist(), p.data[p.indptr[r]:p.indptr[r + 1]].tolist()))
        assert got == want, r
    if top_n is not None:
        assert np.diff(p.indptr).max() <= top_n
    if floor:
        assert p.data.min() >= floor


def test_ties_keep_the_lower_term_id():
    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], dtype=np.float32))
    p = prune_matrix(m, top_n=3)
    assert p.indices.tolist() == [0, 1, 2]


def test_noop_and_properties():
    batch = _pages(n=20)
    same, dropped = StaticPruning().apply(batch)
    assert same is batch and dropped == 0
    sp_ = StaticPruning(top_n=200, floor=0.05)
    props = sp_.properties()
    assert props == {PROPERTY: {"top_n": 200, "floor": 0.05}}
    assert StaticPruning.from_properties(props) == sp_
    assert StaticPruning.from_properties({}) is None
    # cap alone keeps the pages whole (Lucene's capped postings are built apart from them)
    capped = StaticPruning(cap=5000)
    same, dropped = capped.apply(batch)
    assert same is batch and dropped == 0 and not capped.prunes_pages and not capped.is_noop
    assert capped.properties() == {PROPERTY: {"top_n": None, "floor": 0.0, "cap": 5000}}
    assert StaticPruning.from_properties(capped.properties()) == capped


@pytest.mark.parametrize("text,want", [
    ("200", StaticPruning(top_n=200)),
    ("top=150,floor=0.1", StaticPruning(top_n=150, floor=0.1)),
    ("floor=0.02", StaticPruning(floor=0.02)),
    ({"top_n": 64}, StaticPruning(top_n=64)),
    ("cap=5000", StaticPruning(cap=5000)),
    ("top=128,cap=2000", StaticPruning(top_n=128, cap=2000)),
    ({"cap": 300}, StaticPruning(cap=300)),
    (32, StaticPruning(top_n=32)),
    (None, None),
    ("", None),
])
def test_of_parses(text, want):
    assert StaticPruning.of(text) == want


@pytest.mark.parametrize("bad", ["top=0", "top=1.5", "floor=-1", "floor=nan", "depth=3", "abc", True, 1.5, "cap=0", "cap=2.5",
                                 {"top": 3}])
def test_bad_values_are_value_errors(bad):
    with pytest.raises(ValueError):
        StaticPruning.of(bad)
