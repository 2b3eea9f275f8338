"""Shared by the Lucene tests (imported by name, never from conftest or a test module): the
index info they write, random corpora over the real vocabulary with terms that trip parsers,
and reference scoring: the exact scorer on the SAME integer impacts."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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


def write_encoded_dir(path, batch: SparseBatch):
    """An encoded dir in the official layout (sparse_docs.npz + doc_ids.json + pages.jsonl),
    written directly so these tests do not depend on the encoded-dir writer."""
    import json
    from pathlib import Path

    import orjson
    import scipy.sparse as sp

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path / "sparse_docs.npz", sp.csr_matrix(batch.matrix, dtype=np.float32), compressed=False)
    (path / "doc_ids.json").write_text(json.dumps(list(batch.ids)))
    (path / "pages.jsonl").write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in batch.meta))
    return path


def stored_ids(path) -> list[str]:
    """The `id` of every doc of the last commit, in Lucene doc-id order (raw Lucene reader)."""
    from pathlib import Path

    from vsplade_lucene import jvm

    J = jvm.classes()
    directory = J.FSDirectory.open(J.Paths.get(str(Path(path).resolve())))
    try:
        reader = J.DirectoryReader.open(directory)
        try:
            fields = reader.storedFields()
            return [fields.document(i).get("id") for i in range(reader.maxDoc())]
        finally:
            reader.close()
    finally:
        directory.close()


def dir_snapshot(path) -> dict:
    """name -> sha256 of every file under path (to show that nothing was touched). Lock files
    only by name: whoever takes our lock writes its pid there, and Lucene's write.lock must
    never be opened here (closing any descriptor of a file drops every POSIX lock this process
    holds on it, so reading it would release the lock of an IndexWriter in this JVM)."""
    import hashlib
    from pathlib import Path

    from vsplade.locking import LOCK_FILE

    return {str(p.relative_to(path)): "" if p.name in (LOCK_FILE, "write.lock") else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob("*")) if p.is_file()}


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


VOCAB_SIZE = 50368  # the default vocabulary's size


def zipf_corpus(n: int = 1200, seed: int = 0) -> SparseBatch:
    """Zipf-like pages over 500 term ids (frequent terms in many pages, rare ones in few)."""
    rng = np.random.default_rng(seed)
    pool = 2000 + rng.permutation(500)
    p = 1.0 / (np.arange(500) + 3.0)
    p = np.minimum(1.0, 35 * p / p.sum())
    rows, k = np.nonzero(rng.random((n, 500)) < p)
    data = np.exp(rng.normal(-1.0, 0.7, len(rows))).astype(np.float32)
    m = sp.csr_matrix((data, (rows, pool[k])), shape=(n, VOCAB_SIZE))
    ids = [f"p{i:05d}" for i in range(n)]
    meta = [{"id": d, "source": f"dir{i % 3}/doc{i // 10}.pdf", "page": i % 10 + 1} for i, d in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def zipf_queries(batch: SparseBatch, vocab, n: int = 25, seed: int = 1) -> list[dict]:
    """12 terms drawn like the pages', idf-like weights (frequent terms weigh little)."""
    rng = np.random.default_rng(seed)
    df = np.bincount(batch.matrix.indices, minlength=VOCAB_SIZE)
    cand = np.flatnonzero(df)
    out = []
    for _ in range(n):
        terms = rng.choice(cand, 12, replace=False, p=df[cand] / df[cand].sum())
        out.append({vocab.term(int(t)): float(np.log(len(batch) / df[t]) + rng.uniform(0, 0.3)) for t in terms})
    return out


def assert_full_index_scores(full, other) -> None:
    """`other` (a pruned or capped index of the same PDFs as `full`, built by the CLI) answers
    the test PDFs' queries with pages carrying `full`'s exact scores, and finds the best page of
    a query whose heavy terms its phase 1 keeps."""
    from vsplade import Collection

    with Collection.open(full) as a, Collection.open(other) as b:
        for q in ("debian package management", "camlidl interface definition", "annual report revenue"):
            want = {h.id: h.score for h in a.search(q, k=34)}
            got = b.search(q, k=5)
            assert got and all(h.score == want[h.id] for h in got), q
        assert b.search("debian package management", k=1)[0].id == a.search("debian package management", k=1)[0].id
