import json

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from vsplade.encoded import EncodedDir, EncodedDirError, EncodedDirWriter, is_encoded_dir
from vsplade.engines import IndexMismatchError
from vsplade.sparse import SparseBatch

V = 50368
INFO = {"name": "test", "model": "unit"}


def random_batch(n, start=0, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(n, V, density=0.002, format="csr", random_state=rng, dtype=np.float32)
    ids = [f"doc-{start + i}" for i in range(n)]
    return SparseBatch(m, ids, [{"id": i, "source": "s.pdf", "page": start + k + 1} for k, i in enumerate(ids)])


def test_round_trip_in_the_official_format(tmp_path):
    b = random_batch(50)
    with EncodedDirWriter(tmp_path / "enc", INFO) as w:
        w.add(b)
    d = tmp_path / "enc"
    # exactly what encode_sparse_documents.py reads/writes: scipy CSR float32 + a JSON id list
    m = sp.load_npz(d / "sparse_docs.npz")
    assert m.format == "csr" and m.dtype == np.float32 and m.shape == (50, V)
    assert (m != b.matrix).nnz == 0
    assert json.loads((d / "doc_ids.json").read_text()) == b.ids
    back = EncodedDir(d).load()
    assert back.ids == b.ids and back.meta == b.meta and (back.matrix != b.matrix).nnz == 0
    assert EncodedDir(d).encoder_info == INFO


def test_official_output_without_our_files_loads(tmp_path):
    b = random_batch(5)
    d = tmp_path / "official"
    d.mkdir()
    sp.save_npz(d / "sparse_docs.npz", b.matrix)
    (d / "doc_ids.json").write_text(json.dumps(b.ids))
    assert is_encoded_dir(d)
    back = EncodedDir(d).load()
    assert back.ids == b.ids and back.meta == [{"id": i} for i in b.ids]


def test_large_corpora_stay_sharded_and_stream(tmp_path):
    with EncodedDirWriter(tmp_path / "enc", INFO, shard_docs=10, merge_max_nnz=0) as w:
        for k in range(3):
            w.add(random_batch(10, start=10 * k, seed=k))
    d = EncodedDir(tmp_path / "enc")
    parts = list(d.iter_batches())
    assert [len(p) for p in parts] == [10, 10, 10]
    assert d.ids() == [f"doc-{i}" for i in range(30)] and len(d) == 30
    assert not (tmp_path / "enc" / "sparse_docs.npz").exists()


def test_resume_skips_done_shards_and_rejects_another_encoder(tmp_path):
    w = EncodedDirWriter(tmp_path / "enc", INFO, shard_docs=10)
    w.add(random_batch(10))
    w.add(random_batch(5, start=10))  # buffered: abort (an exception in the run) commits it
    w.abort()
    partial = EncodedDir(tmp_path / "enc")  # readable, and says it is unfinished
    assert not partial.complete and len(partial) == 15
    w2 = EncodedDirWriter(tmp_path / "enc", INFO, shard_docs=10)
    assert w2.done_ids() == {f"doc-{i}" for i in range(15)}
    w2.add(random_batch(5, start=10))  # already there: skipped, not duplicated
    assert w2.summary.skipped == 5
    w2.close()
    assert EncodedDir(tmp_path / "enc").ids() == [f"doc-{i}" for i in range(15)]
    with pytest.raises(IndexMismatchError, match="encoder"):
        EncodedDirWriter(tmp_path / "enc", {"name": "other"})
    # a finished dir can be extended later
    w3 = EncodedDirWriter(tmp_path / "enc", INFO)
    assert len(w3.done_ids()) == 15
    w3.add(random_batch(1, start=15))
    w3.close()
    assert len(EncodedDir(tmp_path / "enc")) == 16


def test_invalid_weights_are_refused_per_page_naming_it(tmp_path):
    b = SparseBatch.from_dicts([{1: 1.0}, {2: float("nan")}, {3: -1.0}, {4: 2.0}], ["fine", "nan-page", "neg-page", "ok"])
    with EncodedDirWriter(tmp_path / "enc", INFO) as w:
        w.add(b)
    assert [(i, r) for i, r in w.summary.failures] == [
        ("nan-page", "page nan-page: weight is NaN"), ("neg-page", "page neg-page: negative weight -1.0")]
    assert EncodedDir(tmp_path / "enc").ids() == ["fine", "ok"]


def test_a_failed_append_keeps_the_last_good_state_searchable(tmp_path):
    """Before: one NaN row in an append left a finished dir in state 'writing', unreadable."""
    from vsplade.engines.memory import MemoryEngine

    with EncodedDirWriter(tmp_path / "enc", INFO) as w:
        w.add(random_batch(20))
    with pytest.raises(RuntimeError):
        with EncodedDirWriter(tmp_path / "enc", INFO, shard_docs=5) as w:
            w.add(random_batch(5, start=20))  # a committed shard
            w.add(SparseBatch.from_dicts([{1: float("nan")}], ["bad"]))
            raise RuntimeError("the encoder died")
    hits = MemoryEngine(index=str(tmp_path / "enc")).searcher().search({"Ġthe": 1.0}, k=100)
    assert len(EncodedDir(tmp_path / "enc")) == 25 and "bad" not in EncodedDir(tmp_path / "enc").ids()
    assert all(h.id.startswith("doc-") for h in hits)


@pytest.mark.parametrize("ids, named", [
    (["a", "b", "a"], "appear more than once: 'a'"),
    (["a", None, "c"], "null, empty or not a string: None"),
    (["a", "", "c"], "null, empty or not a string: ''"),
    (["a", 7, "c"], "null, empty or not a string: 7"),
])
def test_bad_page_ids_in_an_official_dir_are_refused_naming_them(tmp_path, ids, named):
    """Before: null became the string 'None', duplicates were kept twice by memory."""
    d = tmp_path / "official"
    d.mkdir()
    sp.save_npz(d / "sparse_docs.npz", random_batch(3).matrix)
    (d / "doc_ids.json").write_text(json.dumps(ids))
    with pytest.raises(EncodedDirError, match=f"{d}: 1 page id.*{named}".replace("(", r"\(").replace(")", r"\)")):
        EncodedDir(d)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "sparse_docs.npz").write_bytes((d / "sparse_docs.npz").read_bytes()[:100]), "sparse_docs.npz: cannot read"),
    (lambda d: (d / "doc_ids.json").write_text("[\"doc-0\", "), "doc_ids.json: invalid JSON"),
    (lambda d: (d / "doc_ids.json").write_text("{}"), "doc_ids.json: expected a JSON list"),
    (lambda d: (d / "vsplade.json").write_text("{"), "vsplade.json: invalid JSON"),
])
def test_damaged_files_are_one_clear_error(tmp_path, damage, message):
    d = tmp_path / "enc"
    with EncodedDirWriter(d, INFO) as w:
        w.add(random_batch(3))
    damage(d)
    with pytest.raises(EncodedDirError, match=message):
        EncodedDir(d).load()


def test_not_an_encoded_dir(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file.txt").write_text("hi")
    with pytest.raises(EncodedDirError, match="not an encoded dir"):
        EncodedDir(tmp_path / "x")
    with pytest.raises(EncodedDirError, match="not an encoded dir"):
        EncodedDirWriter(tmp_path / "x", INFO)
