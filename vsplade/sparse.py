"""SparseBatch: page vectors as scipy CSR float32 [n, V] with their ids and page metadata.

Also owns what every engine needs to agree on: validation, pruning, the two quantizations
(integer impacts for Lucene, FeatureField 9-bit precision for OpenSearch), statistics and the
FLOPs measure of the spec (section 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from .vocab import VOCAB_SIZE, Vocabulary


class InvalidVectorError(ValueError):
    """A page vector holds a NaN, an infinity or a negative weight."""

    def __init__(self, doc_id: str, reason: str):
        super().__init__(f"page {doc_id}: {reason}")
        self.doc_id = doc_id
        self.reason = reason


class InvalidIdsError(ValueError):
    """Page ids that no engine can store faithfully: null, empty, not a string, or repeated."""


def check_ids(ids: Sequence) -> None:
    """Raise InvalidIdsError naming the offending ids. Every entry point runs this (batches,
    encoded dirs), so every engine refuses the same ids the same way: a repeated id would be
    kept once by Lucene, twice by the exact scorer and last-wins by OpenSearch."""
    bad = [i for i in ids if not isinstance(i, str) or not i.strip()]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise InvalidIdsError(f"{len(bad)} page id(s) null, empty or not a string: {shown}")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dups: dict[str, None] = {}
        for i in ids:
            if i in seen:
                dups[i] = None
            seen.add(i)
        shown = ", ".join(repr(d) for d in list(dups)[:5]) + (f" (and {len(dups) - 5} more)" if len(dups) > 5 else "")
        raise InvalidIdsError(f"{len(dups)} page id(s) appear more than once: {shown}")


@dataclass
class SparseBatch:
    """Rows of `matrix` are pages; `ids[i]` names row i; `meta[i]` is its page metadata
    (dict with at least ``id``; usually ``source``, ``page``, ``sha256``, maybe ``text``)."""

    matrix: sp.csr_matrix
    ids: list[str]
    meta: list[dict] = field(default_factory=list)

    def __post_init__(self):
        m = self.matrix
        if not sp.isspmatrix_csr(m) and not isinstance(m, sp.csr_array):
            m = sp.csr_matrix(m)
        if m.dtype != np.float32:
            m = m.astype(np.float32)
        self.matrix = sp.csr_matrix(m)
        if self.matrix.shape[0] != len(self.ids):
            raise ValueError(f"{self.matrix.shape[0]} rows but {len(self.ids)} ids")
        self.ids = list(self.ids)
        check_ids(self.ids)
        if not self.meta:
            self.meta = [{"id": i} for i in self.ids]
        elif len(self.meta) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.meta)} metadata rows")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def vocab_size(self) -> int:
        return self.matrix.shape[1]

    @classmethod
    def empty(cls, vocab_size: int = VOCAB_SIZE) -> "SparseBatch":
        return cls(sp.csr_matrix((0, vocab_size), dtype=np.float32), [], [])

    @classmethod
    def from_dicts(
        cls,
        rows: Sequence[Mapping[int, float]],
        ids: Sequence[str],
        meta: Sequence[dict] | None = None,
        vocab_size: int = VOCAB_SIZE,
    ) -> "SparseBatch":
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        for row in rows:
            for k in sorted(row):
                indices.append(int(k))
                data.append(float(row[k]))
            indptr.append(len(indices))
        m = sp.csr_matrix(
            (np.asarray(data, np.float32), np.asarray(indices, np.int32), np.asarray(indptr, np.int64)),
            shape=(len(rows), vocab_size),
        )
        return cls(m, list(ids), list(meta) if meta else [])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, weights) of row i."""
        start, end = self.matrix.indptr[i], self.matrix.indptr[i + 1]
        return self.matrix.indices[start:end], self.matrix.data[start:end]

    def row_terms(self, i: int, vocab: Vocabulary) -> dict[str, float]:
        idx, val = self.row(i)
        terms = vocab.terms
        return {terms[j]: float(w) for j, w in zip(idx, val)}

    def select(self, rows: Sequence[int] | np.ndarray) -> "SparseBatch":
        rows = list(rows)
        return SparseBatch(self.matrix[rows], [self.ids[r] for r in rows], [self.meta[r] for r in rows])

    def validate(self) -> "SparseBatch":
        """Raise InvalidVectorError naming the first bad page."""
        bad = bad_rows(self.matrix)
        if len(bad):
            r = int(bad[0])
            _, val = self.row(r)
            if np.isnan(val).any():
                reason = "weight is NaN"
            elif np.isinf(val).any():
                reason = "weight is infinite"
            else:
                reason = f"negative weight {float(val.min())}"
            raise InvalidVectorError(self.ids[r], reason)
        return self

    def split_valid(self) -> tuple["SparseBatch", list[tuple[str, str]]]:
        """(the rows every engine can store, [(id, reason)] for the others): one bad page
        never sinks its batch."""
        bad = bad_rows(self.matrix)
        if not len(bad):
            return self, []
        failures = []
        for r in bad.tolist():
            try:
                self.select([r]).validate()
            except InvalidVectorError as e:
                failures.append((e.doc_id, str(e)))
        keep = np.setdiff1d(np.arange(len(self)), bad)
        return self.select(keep), failures

    def pruned(self, top_k: int | None = None, threshold: float | None = None) -> "SparseBatch":
        m = self.matrix
        if threshold is not None:
            m = threshold_prune(m, threshold)
        if top_k is not None:
            m = top_k_prune(m, top_k)
        return SparseBatch(m, self.ids, self.meta)


def concat(batches: Iterable[SparseBatch], vocab_size: int = VOCAB_SIZE) -> SparseBatch:
    batches = [b for b in batches if len(b)]
    if not batches:
        return SparseBatch.empty(vocab_size)
    return SparseBatch(
        sp.vstack([b.matrix for b in batches], format="csr"),
        [i for b in batches for i in b.ids],
        [m for b in batches for m in b.meta],
    )


def bad_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """Row indices holding a non-finite or negative value."""
    bad = ~np.isfinite(matrix.data) | (matrix.data < 0)
    if not bad.any():
        return np.empty(0, dtype=np.int64)
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return np.unique(row_of[bad])


def threshold_prune(matrix: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    m = matrix.copy()
    m.data[m.data < threshold] = 0
    m.eliminate_zeros()
    return m


def top_k_prune(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest weights of each row (ties: lower token id first)."""
    m = matrix.copy()
    m.sort_indices()
    for r in range(m.shape[0]):
        s, e = m.indptr[r], m.indptr[r + 1]
        if e - s > k:
            vals = m.data[s:e]
            # stable sort on -value keeps the lower token id among equal weights
            drop = np.argsort(-vals, kind="stable")[k:]
            vals[drop] = 0
    m.eliminate_zeros()
    return m


def quantize_impacts(matrix: sp.csr_matrix, scale: float = 100.0) -> tuple[sp.csr_matrix, int]:
    """Integer impacts for Lucene: round(w * scale) (half away from zero, not truncation).
    Returns the int32 CSR and how many non-zero weights rounded to 0 and were dropped."""
    m = matrix.copy().astype(np.float64)
    m.data = np.floor(m.data * scale + 0.5)
    dropped = int(np.count_nonzero(m.data == 0) - np.count_nonzero(matrix.data == 0))
    m = m.astype(np.int32)
    m.eliminate_zeros()
    return sp.csr_matrix(m), max(dropped, 0)


def quantize_query_impacts(query: Mapping[str, float], scale: float = 100.0) -> dict[str, int]:
    """The same rounding as documents, for {term: weight} queries; zeros dropped."""
    out = {}
    for term, w in query.items():
        q = int(np.floor(w * scale + 0.5))
        if q > 0:
            out[term] = q
    return out


def feature_field_buckets(values: np.ndarray | float) -> np.ndarray:
    """Lucene FeatureField indexes a float32 by its top 17 bits (bits >>> 15): 9 significant
    bits; a positive value falls in one of 2**16 buckets."""
    return np.asarray(values, dtype=np.float32).view(np.uint32) >> np.uint32(15)


def feature_field_round(values: np.ndarray | float) -> np.ndarray:
    """The float32 FeatureField stores for each value: bits >> 15 << 15."""
    return (feature_field_buckets(values) << np.uint32(15)).view(np.float32)


@dataclass
class VectorStats:
    num_docs: int
    empty_docs: int
    avg_nnz: float
    max_nnz: int
    max_weight: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def stats(matrix: sp.csr_matrix) -> VectorStats:
    nnz = np.diff(matrix.indptr)
    n = matrix.shape[0]
    return VectorStats(
        num_docs=n,
        empty_docs=int((nnz == 0).sum()),
        avg_nnz=float(nnz.mean()) if n else 0.0,
        max_nnz=int(nnz.max()) if n else 0,
        max_weight=float(matrix.data.max()) if matrix.nnz else 0.0,
    )


def flops(queries: sp.csr_matrix, docs: sp.csr_matrix) -> float:
    """Spec section 4: sum_v P(q_v > 0) * P(d_v > 0), each P a mean of binary activations."""
    if queries.shape[0] == 0 or docs.shape[0] == 0:
        return 0.0
    pq = np.bincount(queries.indices[queries.data > 0], minlength=queries.shape[1]) / queries.shape[0]
    pd = np.bincount(docs.indices[docs.data > 0], minlength=docs.shape[1]) / docs.shape[0]
    return float(np.dot(pq, pd))
