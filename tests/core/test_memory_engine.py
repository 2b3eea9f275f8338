import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.engines import get_engine_class
from vsplade.engines.base import EngineError
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


def _pages(n, start=0, seed=0, density=0.004):
    rng = np.random.default_rng(seed)
    m = sp.random(n, V, density=density, format="csr", random_state=rng, dtype=np.float32)
    ids = [f"p{start + i}" for i in range(n)]
    meta = [{"id": i, "source": f"dir/f{(start + r) // 7}.pdf", "page": (start + r) % 7 + 1, "sha256": "ab" * 32}
            for r, i in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def _dense_reference(batch, query, vocab):
    """float64 dot products of the float32 weights: the reference every score is held to."""
    cols = [vocab.id_of(t) for t in query]
    return batch.matrix.toarray().astype(np.float64)[:, cols] @ np.array(list(query.values()), dtype=np.float64)


def test_one_float32_copy_scores_and_explains_like_the_dense_reference(vocab):
    """Issue 24 item 6: the scorer holds the vectors once, float32, 8 bytes a non-zero (before:
    a float64 CSC plus the float32 CSR: 20 bytes a non-zero); scores are unchanged."""
    batch = _pages(400, seed=5)
    scorer = ExactScorer(batch)
    assert scorer.data.dtype == np.float32 and scorer.data.shape == (batch.matrix.nnz,)
    packed_ids = sum(map(len, batch.ids)) + 8 * (len(batch) + 1) + 100  # one string of them all + ends
    assert scorer.nbytes <= 8 * batch.matrix.nnz + 4 * (V + 1) + 4 * 4 * len(batch) + packed_ids
    assert not any(isinstance(v, (SparseBatch, sp.spmatrix)) for v in vars(scorer).values())  # no second copy
    rng = np.random.default_rng(9)
    live = np.flatnonzero(np.diff(batch.matrix.tocsc().indptr) > 0)
    for _ in range(15):
        query = {vocab.term(int(c)): float(w) for c, w in zip(rng.choice(live, 10, replace=False), rng.uniform(0.05, 3, 10))}
        expected = _dense_reference(batch, query, vocab)
        np.testing.assert_allclose(scorer.scores(query), expected, rtol=1e-12, atol=0)
        for h in scorer.search(query, k=5, explain=True):
            r = batch.ids.index(h.id)
            assert sum(h.explain.values()) == pytest.approx(expected[r], rel=1e-9)
            row = dict(zip(*batch.row(r)))
            assert h.explain == {t: pytest.approx(w * float(row[vocab.id_of(t)]))
                                 for t, w in query.items() if vocab.id_of(t) in row}
            assert (h.source, h.page, h.sha256) == (batch.meta[r]["source"], batch.meta[r]["page"], "ab" * 32)


def test_parts_merge_into_the_same_index_as_one_batch(vocab):
    """An unmerged encoded dir's parts (rows ascending per column across parts) give the scorer
    built from the whole batch: same arrays, same hits, same filtered hits, same page rows."""
    parts = [_pages(37, start=0, seed=1), _pages(1, start=37, seed=2), _pages(0, start=38), _pages(90, start=38, seed=3)]
    whole = SparseBatch(sp.vstack([p.matrix for p in parts], format="csr"),
                        [i for p in parts for i in p.ids], [m for p in parts for m in p.meta])
    a, b = ExactScorer(whole), ExactScorer.from_batches(iter(parts))
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    for c in range(V):
        seg = b.indices[b.indptr[c]:b.indptr[c + 1]]
        if len(seg) > 1:
            assert (np.diff(seg) > 0).all()
    rng = np.random.default_rng(4)
    for r in (0, 36, 37, 38, 127):
        cols, weights = b.row(r)
        want_c, want_w = whole.row(r)
        order = np.argsort(want_c)
        assert cols.tolist() == want_c[order].tolist() and weights.tolist() == want_w[order].tolist()
    live = np.flatnonzero(np.diff(whole.matrix.tocsc().indptr) > 0)
    for _ in range(10):
        query = {vocab.term(int(c)): 1.0 for c in rng.choice(live, 12, replace=False)}
        expected = _dense_reference(whole, query, vocab)
        assert [(h.id, h.score) for h in b.search(query, 20)] == [(h.id, h.score) for h in a.search(query, 20)]
        got = b.search(query, 10, sources=["dir/f3.pdf", "dir/f9.pdf"], page_min=2, page_max=5)
        keep = [r for r, m in enumerate(whole.meta)
                if m["source"] in ("dir/f3.pdf", "dir/f9.pdf") and 2 <= m["page"] <= 5 and expected[r] > 0]
        want = sorted(keep, key=lambda r: (-expected[r], r))[:10]
        assert [h.id for h in got] == [whole.ids[r] for r in want]
        assert [h.score for h in got] == pytest.approx([expected[r] for r in want], rel=1e-12)


def _striped_part(k, rows=250, per_row=200):
    """A part whose rows hold per_row distinct terms (one in each 251-wide stripe of ids),
    generated on demand like a part read from disk, with no large temporaries."""
    rng = np.random.default_rng(k)
    cols = (np.arange(per_row) * 251 + rng.integers(0, 251, (rows, per_row))).ravel()
    m = sp.csr_matrix((rng.uniform(0.01, 2, cols.size).astype(np.float32), cols,
                       np.arange(0, cols.size + 1, per_row)), shape=(rows, V))
    ids = [f"p{k * rows + r}" for r in range(rows)]
    return SparseBatch(m, ids, [{"id": i, "source": f"f{k}.pdf", "page": r + 1} for r, i in enumerate(ids)])


@pytest.mark.timeout(120)
def test_parts_load_into_one_copy_without_holding_a_second(vocab):
    """Issue 24 item 6: an encoded dir's parts are read one at a time straight into the final
    columns, so memory at its highest while loading stays near the one copy kept. Merging
    per-part copies at the end held the vectors twice (and at 1M pages left the second copy in
    the process's heap)."""
    import tracemalloc

    n_parts = 40
    reads = []

    def parts():
        reads.append(0)
        for k in range(n_parts):
            reads[-1] += 1
            yield _striped_part(k)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        s = ExactScorer.from_batches(parts, vocab_size=V)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    vectors = s.indices.nbytes + s.data.nbytes
    assert reads == [n_parts, n_parts]  # read twice: the columns' lengths, then the columns
    assert peak < 1.4 * vectors, (peak, vectors)
    whole = SparseBatch(sp.vstack([_striped_part(k).matrix for k in range(n_parts)], format="csr"), s.ids)
    ref = ExactScorer(whole)
    assert np.array_equal(s.indptr, ref.indptr) and np.array_equal(s.indices, ref.indices)
    assert np.array_equal(s.data, ref.data)
    query = {vocab.term(c): 1.0 + c % 3 for c in (5, 251 * 7 + 3, 251 * 150 + 100, 40000)}
    assert [(h.id, h.score) for h in s.search(query, 50)] == [(h.id, h.score) for h in ref.search(query, 50)]


def test_parts_that_change_between_the_two_reads_are_refused(vocab):
    """The columns are sized from the first read: a part that differs on the second is an error,
    not a corrupt index."""
    calls = []

    def parts():
        calls.append(1)
        yield _striped_part(0)
        if len(calls) == 1:
            yield _striped_part(1)

    with pytest.raises(EngineError, match="changed while they were being loaded"):
        ExactScorer.from_batches(parts, vocab_size=V)


def test_page_ids_are_held_packed_and_read_back_exactly(vocab):
    """The ids are one string and offsets (no str object a page): any id, of any length and
    script, comes back as it went in, in hits and by row."""
    ids = ["a", "é-2", "docs/Ünïcode 文書.pdf#3", "x" * 300, "𝔘-5", "p5"]
    m = sp.csr_matrix((np.ones(6, dtype=np.float32), np.arange(6) + 1000, np.arange(7)), shape=(6, V))
    s = ExactScorer.from_batches([SparseBatch(m[:3], ids[:3]), SparseBatch(m[3:], ids[3:])], vocab_size=V)
    assert list(s.ids) == ids and [s.ids[r] for r in range(6)] == ids and s.ids[-1] == "p5" and len(s.ids) == 6
    with pytest.raises(IndexError):
        s.ids[6]
    query = {vocab.term(1000 + r): float(r + 1) for r in range(6)}
    assert [h.id for h in s.search(query, 6)] == ids[::-1]


def test_memory_engine_writes_with_the_encoded_dir_writer_itself(tmp_path, vocab):
    """Issue 23 item 5: no forwarding class; the engine's writer is the encoded dir's writer."""
    from vsplade.encoded import EncodedDirWriter
    from vsplade.engines.base import IndexWriter

    eng = get_engine_class("memory")(index=str(tmp_path / "ix"))
    w = eng.writer({"name": "t"})
    try:
        assert type(w) is EncodedDirWriter and isinstance(w, IndexWriter)
    finally:
        w.abort()


def test_memory_searcher_reads_an_unmerged_dir_with_deletions(tmp_path, vocab):
    """Shards and tombstones (what a crash or a merge-size cap leaves) load into the one CSC."""
    from vsplade.encoded import EncodedDirWriter

    parts = [_pages(30, start=0, seed=1), _pages(30, start=30, seed=2), _pages(30, start=60, seed=3)]
    with EncodedDirWriter(tmp_path / "enc", {"name": "t"}, shard_docs=30, merge_max_nnz=0) as w:
        for p in parts:
            w.add(p)
        w.delete(["p3", "p40", "p89"])
    s = get_engine_class("memory")(index=str(tmp_path / "enc")).searcher()
    keep = [r for r in range(90) if f"p{r}" not in ("p3", "p40", "p89")]
    whole = SparseBatch(sp.vstack([p.matrix for p in parts], format="csr")[keep],
                        [f"p{r}" for r in keep], [m for p in parts for m in p.meta if m["id"] in {f"p{r}" for r in keep}])
    ref = ExactScorer(whole)
    assert list(s.scorer.ids) == whole.ids and np.array_equal(s.scorer.data, ref.data)
    query = {vocab.term(int(c)): 1.0 for c in np.flatnonzero(np.diff(whole.matrix.tocsc().indptr) > 0)[:40]}
    assert [(h.id, h.score) for h in s.search(query, 30)] == [(h.id, h.score) for h in ref.search(query, 30)]
    top = s.page_terms("p41", 5)
    cols, weights = whole.row(whole.ids.index("p41"))
    order = np.argsort(-weights, kind="stable")[:5]
    assert [w for _, w in top] == pytest.approx(weights[order].tolist())
    assert s.page_terms("p40", 5) is None  # deleted


def test_another_encoder_is_refused_naming_what_differs(tmp_path, pdf_dir):
    """One "same encoder?" check for every writer (engines.base.check_same_encoder): the error
    names the keys that differ, not two whole dicts."""
    from vsplade import Collection
    from vsplade.engines.base import IndexMismatchError

    col = Collection.create(tmp_path / "ix", model="lexical", engine="memory")
    assert col.index(pdf_dir / "debian-refcard-en-a4.pdf", progress=False).ok
    other = Collection.open(tmp_path / "ix", engine="memory", model="lexical-noidf")
    with pytest.raises(IndexMismatchError) as e:
        other.index(pdf_dir / "camlidl-1.04.doc.pdf", progress=False)
    msg = str(e.value)
    assert "holds vectors from another encoder" in msg and "'lexical' in the index, 'lexical-noidf' now" in msg
    assert "--recreate" in msg and "\n" not in msg
