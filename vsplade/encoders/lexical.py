"""The lexical encoder: a page's text layer -> BM25-saturated term weights over the same
tokenizer as V-SPLADE, so lexical and neural vectors live in one vocabulary.

    w(t, d) = idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))            (Lucene's BM25 idf, always > 0)

With ``idf="corpus"`` the encoder is fitted on the corpus first (df, N, avgdl); with
``idf="none"`` idf is 1 and avgdl is a fixed constant, so pages can be encoded one at a time.
Queries are the plain sum of query-token counts (li_lsr with a table of ones), so BM25 lives
entirely on the document side and the query stays a lookup. Text is lowercased and given a
leading space on both sides, so word-initial and capitalised words match.

Never presented as V-SPLADE: it is the inference-free baseline that runs on any machine.
Pages without a text layer (scans, image files) get an empty vector and a warning.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ..pages import Page
from ..query import QueryEncoder
from ..sparse import SparseBatch
from ..vocab import Vocabulary, default_vocabulary
from .base import DocumentEncoder

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")


class LexicalEncoder(DocumentEncoder):
    name = "lexical"
    needs_image = False
    needs_text = True
    batch_size = 64

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        idf: str = "corpus",
        avgdl: float = 400.0,
        vocab: Vocabulary | None = None,
    ):
        if idf not in ("corpus", "none"):
            raise ValueError(f"idf must be 'corpus' or 'none', got {idf!r}")
        if k1 <= 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b, self.idf_mode = k1, b, idf
        self.vocab = vocab or default_vocabulary()
        self.avgdl = float(avgdl)
        self.num_docs = 0
        self.idf: np.ndarray | None = None
        self.needs_fit = idf == "corpus"
        self._query = QueryEncoder(vocab=self.vocab, mode="li_lsr", lowercase=True, prefix_space=True)
        self.warnings: list[str] = []

    def _normalise(self, text: str) -> str:
        text = _WS.sub(" ", text).strip().lower()
        return " " + text if text else ""

    def _token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        encs = self._query.tokenizer.encode_batch([self._normalise(t) for t in texts], add_special_tokens=False)
        keep = self.vocab.keep_mask
        out = []
        for e in encs:
            ids = np.asarray(e.ids, dtype=np.int64)
            ids = ids[ids < self.vocab.size]
            out.append(ids[keep[ids]])
        return out

    def fit(self, pages: Iterable[Page]) -> None:
        if self.idf_mode == "none":
            return
        df = np.zeros(self.vocab.size, dtype=np.int64)
        total_len = 0
        n = 0
        chunk: list[str] = []

        def flush():
            nonlocal total_len
            for ids in self._token_ids(chunk):
                total_len += len(ids)
                df[np.unique(ids)] += 1
            chunk.clear()

        for page in pages:
            chunk.append(page.text or "")
            n += 1
            if len(chunk) >= 256:
                flush()
        flush()
        self.num_docs = n
        self.avgdl = total_len / n if n and total_len else self.avgdl
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float64)

    def info(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "k1": self.k1, "b": self.b, "idf": self.idf_mode}
        if self.idf_mode == "corpus":
            d.update(num_docs=self.num_docs, avgdl=round(self.avgdl, 6))
        else:
            d.update(avgdl=self.avgdl)
        return d

    def encode(self, pages: Sequence[Page]) -> SparseBatch:
        if self.idf_mode == "corpus" and self.idf is None:
            raise RuntimeError("lexical encoder with idf='corpus' must be fit() on the corpus first")
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for page, ids in zip(pages, self._token_ids([p.text or "" for p in pages])):
            if len(ids) == 0:
                msg = f"{page.source} page {page.page_no}: no text layer, empty lexical vector"
                log.warning(msg)
                self.warnings.append(msg)
                indptr.append(indptr[-1])
                continue
            uniq, tf = np.unique(ids, return_counts=True)
            norm = self.k1 * (1 - self.b + self.b * len(ids) / self.avgdl)
            w = tf * (self.k1 + 1) / (tf + norm)
            if self.idf is not None:
                w = w * self.idf[uniq]
            indices.append(uniq.astype(np.int32))
            data.append(w.astype(np.float32))
            indptr.append(indptr[-1] + len(uniq))
        matrix = sp.csr_matrix(
            (
                np.concatenate(data) if data else np.empty(0, np.float32),
                np.concatenate(indices) if indices else np.empty(0, np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(pages), self.vocab.size),
        )
        return SparseBatch(matrix, [p.id for p in pages], [p.meta() for p in pages])

    def query_encoder(self) -> QueryEncoder:
        return self._query


def idf_formula(n: int, df: int) -> float:
    """Reference form of the idf above, for tests and docs."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))
