"""The exact in-memory engine: an encoded dir scored with a CSC inverted index.

The reference every other engine is compared with, and ``--engine memory --index DIR``.
Score = sum over shared terms of query weight x document weight, in float64. Ties are
broken by row order (the order pages were indexed), as Lucene breaks them by doc id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from ..encoded import EncodedDir, EncodedDirError, EncodedDirWriter
from ..sparse import SparseBatch
from ..vocab import Vocabulary, default_vocabulary
from .base import Engine, EngineError, Hit, IndexWriter, PageFilter, Searcher


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best positive scores: score desc, then row asc."""
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > k:
        # all rows scoring at least the k-th best, so ties at the boundary are kept
        kth = -np.partition(-scores[candidates], k - 1)[k - 1]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


class ExactScorer:
    """Query vectors against a CSR corpus, exactly. Used by `memory`, tests and evaluation."""

    def __init__(self, batch: SparseBatch, vocab: Vocabulary | None = None):
        self.batch = batch
        self.vocab = vocab or default_vocabulary()
        self.csc = batch.matrix.astype(np.float64).tocsc()

    def query_vector(self, query: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((self.vocab.id_of(t) for t in query), dtype=np.int64, count=len(query))
        return ids, np.fromiter(query.values(), dtype=np.float64, count=len(query))

    def scores(self, query: Mapping[str, float]) -> np.ndarray:
        cols, weights = self.query_vector(query)
        if len(cols) == 0:
            return np.zeros(self.csc.shape[0])
        return np.asarray(self.csc[:, cols] @ weights).ravel()

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False,
               sources=None, page_min: int | None = None, page_max: int | None = None) -> list[Hit]:
        scores = self.scores(query)
        page_filter = PageFilter.of(sources, page_min, page_max)
        if page_filter is not None:
            scores = np.where(self.mask(page_filter), scores, 0.0)  # inside the ranking, not after a top-k
        hits = []
        for r in top_k(scores, k):
            meta = self.batch.meta[r]
            hit = Hit(self.batch.ids[r], float(scores[r]), meta.get("source"), meta.get("page"), path=meta.get("path"),
                      sha256=meta.get("sha256"))
            if explain:
                hit.explain = self.explain(r, query)
            hits.append(hit)
        return hits

    def mask(self, page_filter: PageFilter) -> np.ndarray:
        return np.fromiter((page_filter.matches(m.get("source"), m.get("page")) for m in self.batch.meta),
                           dtype=bool, count=len(self.batch.meta))

    def explain(self, row: int, query: Mapping[str, float]) -> dict[str, float]:
        doc = dict(zip(*self.batch.row(row)))
        out = {}
        for term, w in query.items():
            d = doc.get(self.vocab.id_of(term))
            if d:
                out[term] = float(w) * float(d)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


class MemorySearcher(Searcher):
    def __init__(self, path: Path):
        self.encoded = EncodedDir(path)
        try:
            self.scorer = ExactScorer(self.encoded.load())
        finally:
            self.encoded.close()

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **filters) -> list[Hit]:
        return self.scorer.search(query, k, explain=explain, **filters)

    def index_info(self) -> dict:
        return self.encoded.encoder_info


class MemoryWriter(IndexWriter):
    def __init__(self, writer: EncodedDirWriter):
        self._w = writer

    supports_lifecycle = True

    def done_ids(self) -> set[str]:
        return self._w.done_ids()

    def add(self, batch: SparseBatch) -> None:
        self._w.add(batch)

    def catalog(self) -> list[dict]:
        return self._w.catalog()

    def commit(self) -> None:
        self._w.commit()

    def delete(self, ids) -> int:
        return self._w.delete(ids)

    def set_properties(self, properties) -> None:
        self._w.set_properties(properties)

    def close(self):
        return self._w.close()

    def abort(self) -> None:
        self._w.abort()


class MemoryEngine(Engine):
    """``--index DIR``: an encoded dir, loaded whole into memory at search time."""

    name = "memory"
    cli_options = frozenset()  # a local dir of float vectors: nothing to tune

    def __init__(self, index: str | None = None, **options: Any):
        if options.get("scale"):
            raise EngineError("--scale applies to the lucene engine; the memory engine keeps the float weights")
        super().__init__(index, **options)
        if not index:
            raise EngineError("the memory engine needs --index DIR (an encoded dir)")
        self.path = Path(index)

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> IndexWriter:
        return MemoryWriter(EncodedDirWriter(self.path, info, recreate=recreate))

    def searcher(self) -> MemorySearcher:
        try:
            return MemorySearcher(self.path)
        except EncodedDirError as e:
            raise EngineError(str(e)) from None

    def _existing(self) -> EncodedDir | None:
        if not self.path.exists():
            return None
        try:
            return EncodedDir(self.path)
        except EncodedDirError as e:
            if self.path.is_dir() and not any(c for c in self.path.iterdir() if not c.name.startswith(".")):
                return None  # an empty dir (or only a lock file): no index yet
            raise EngineError(str(e)) from None

    def read_properties(self) -> dict | None:
        d = self._existing()
        return None if d is None else d.properties

    def read_encoder_info(self) -> dict:
        d = self._existing()
        return d.encoder_info if d else {}

    def read_catalog(self) -> list[dict]:
        d = self._existing()
        return [] if d is None else d.catalog()

    def location_info(self) -> dict:
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.is_dir() else 0
        d = self._existing()
        return {"engine": self.name, "index": str(self.path.resolve()), "size_bytes": size,
                "encoder": d.encoder_info if d else None, "complete": d.complete if d else None}
