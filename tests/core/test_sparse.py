import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.sparse import (
    InvalidVectorError,
    SparseBatch,
    concat,
    feature_field_round,
    flops,
    quantize_impacts,
    quantize_query_impacts,
    stats,
)

V = 50368


def batch(rows, ids=None):
    return SparseBatch.from_dicts(rows, ids or [f"d{i}" for i in range(len(rows))])


@pytest.mark.parametrize("bad,reason", [(float("nan"), "NaN"), (float("inf"), "infinite"), (-0.5, "negative")])
def test_validate_names_the_bad_page(bad, reason):
    b = batch([{1: 1.0}, {2: 0.5, 3: bad}, {4: 1.0}], ["ok1", "broken-page", "ok2"])
    with pytest.raises(InvalidVectorError, match=f"broken-page.*{reason}") as e:
        b.validate()
    assert e.value.doc_id == "broken-page"


def test_prune_top_k_and_threshold():
    b = batch([{1: 0.1, 2: 0.9, 3: 0.5, 4: 0.5}, {5: 0.05}])
    top2 = b.pruned(top_k=2)
    assert dict(zip(*top2.row(0))) == {2: pytest.approx(0.9), 3: pytest.approx(0.5)}  # tie: lower id kept
    th = b.pruned(threshold=0.2)
    assert sorted(th.row(0)[0].tolist()) == [2, 3, 4] and len(th.row(1)[0]) == 0


def test_quantize_rounds_half_up_and_counts_dropped():
    # binary-exact weights, scale 4: 0.125 -> 0.5 rounds up to 1 (truncation would give 0)
    b = batch([{1: 0.0625, 2: 0.125, 3: 0.3125, 4: 1.375, 5: 2.0}])
    q, dropped = quantize_impacts(b.matrix, scale=4)
    assert dict(zip(q.indices.tolist(), q.data.tolist())) == {2: 1, 3: 1, 4: 6, 5: 8}
    assert dropped == 1
    q100, _ = quantize_impacts(batch([{1: 1.2351}]).matrix, scale=100)
    assert q100.data.tolist() == [124]
    assert q.dtype == np.int32
    assert quantize_query_impacts({"a": 0.004, "b": 0.456}, 100) == {"b": 46}


def test_feature_field_keeps_nine_significant_bits():
    x = np.array([1.0, 1.2345, 3.14159, 1e-3], np.float32)
    r = feature_field_round(x)
    # by hand: 1 + 8 explicit mantissa bits -> step 2^-8 relative to the leading power of two
    expected = [np.floor(v / 2.0 ** np.floor(np.log2(v)) * 256) / 256 * 2.0 ** np.floor(np.log2(v)) for v in x.astype(np.float64)]
    np.testing.assert_allclose(r, expected, rtol=0, atol=0)
    assert (r <= x).all() and ((x - r) / x < 2 ** -8).all()


def test_stats_and_flops_by_hand():
    docs = batch([{1: 1.0, 2: 2.0}, {}, {2: 0.5}])
    s = stats(docs.matrix)
    assert (s.num_docs, s.empty_docs, s.max_nnz, s.max_weight) == (3, 1, 2, 2.0)
    assert s.avg_nnz == pytest.approx(1.0)
    queries = batch([{2: 1.0}, {1: 1.0, 3: 1.0}])
    # P(q>0): id1 1/2, id2 1/2, id3 1/2 ; P(d>0): id1 1/3, id2 2/3
    assert flops(queries.matrix, docs.matrix) == pytest.approx(0.5 * 1 / 3 + 0.5 * 2 / 3)


def test_concat_and_select_keep_ids_and_meta_aligned():
    a = SparseBatch.from_dicts([{1: 1.0}], ["a"], [{"id": "a", "source": "x.pdf", "page": 1}])
    b = SparseBatch.from_dicts([{2: 1.0}, {3: 1.0}], ["b", "c"])
    c = concat([a, b])
    assert c.ids == ["a", "b", "c"] and c.meta[0]["source"] == "x.pdf" and c.matrix.shape == (3, V)
    s = c.select([2, 0])
    assert s.ids == ["c", "a"] and s.row(0)[0].tolist() == [3]


def test_mismatched_rows_and_ids_is_an_error():
    with pytest.raises(ValueError, match="2 rows but 1 ids"):
        SparseBatch(sp.csr_matrix((2, V), dtype=np.float32), ["only-one"])
