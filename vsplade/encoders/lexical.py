"""The lexical encoder: a page's text layer -> BM25-saturated term weights over the same
tokenizer as V-SPLADE, so lexical and neural vectors live in one vocabulary.

    w(t, d) = idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))            (Lucene's BM25 idf, always > 0)

With ``idf="corpus"`` the encoder is fitted on the corpus first (df, N, avgdl); with
``idf="none"`` idf is 1 and avgdl is a fixed constant, so pages can be encoded one at a time.

Appending: the statistics are frozen when an index is created. `state()` (df of every token
seen, N, avgdl; df stored as zlib-compressed int32 pairs) is kept in the index's collection
properties, and a later run that adds files loads it instead of fitting again, so old and
new pages carry weights from the same statistics and the index accepts them. The cost: the
idf no longer follows the corpus as it grows (benchmarks/RESULTS.md measures it against
re-fitting everything); `--recreate` re-fits.
Queries are the plain sum of query-token counts (li_lsr with a table of ones), so BM25 lives
entirely on the document side and the query stays a lookup. Text is lowercased and given a
leading space on both sides, so word-initial and capitalised words match.

Never presented as V-SPLADE: it is the inference-free baseline that runs on any machine.
Pages without a text layer (scans, image files) get an empty vector and a warning.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import zlib
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ..pages import Page
from ..query import QueryEncoder
from ..sparse import SparseBatch
from ..vocab import Vocabulary, default_vocabulary
from .base import DocumentEncoder, no_text_layer_warning

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")


class LexicalEncoder(DocumentEncoder):
    name = "lexical"
    needs_image = False
    uses_pixels = False
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
        self.empty_pages: list[str] = []  # "source page N" of pages without a text layer

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
        self._set_stats(df, n, total_len / n if n and total_len else self.avgdl)

    @property
    def warnings(self) -> list[str]:
        return no_text_layer_warning(
            self.empty_pages, "lexical vector",
            "they are indexed but no query can find them: scans and images need the V-SPLADE encoder "
            "(--model CHECKPOINT), or OCR before indexing")

    def state(self) -> dict | None:
        if self.idf_mode != "corpus" or self.idf is None:
            return None
        df = self._df
        nz = np.flatnonzero(df).astype(np.int32)
        pairs = np.stack([nz, df[nz].astype(np.int32)], axis=1).astype("<i4")
        return {"encoder": self.name, "num_docs": self.num_docs, "avgdl": self.avgdl,
                "df_zlib_b64": base64.b64encode(zlib.compress(pairs.tobytes(), 9)).decode()}

    def load_state(self, state: dict) -> None:
        if self.idf_mode != "corpus":
            return
        try:
            pairs = np.frombuffer(zlib.decompress(base64.b64decode(state["df_zlib_b64"])), dtype="<i4").reshape(-1, 2)
            n, avgdl = int(state["num_docs"]), float(state["avgdl"])
        except (KeyError, ValueError, TypeError, zlib.error) as e:
            raise ValueError(f"the index's lexical statistics are damaged ({type(e).__name__}: {e}); rebuild with --recreate") from None
        df = np.zeros(self.vocab.size, dtype=np.int64)
        df[pairs[:, 0]] = pairs[:, 1]
        self._set_stats(df, n, avgdl)

    def _set_stats(self, df: np.ndarray, n: int, avgdl: float) -> None:
        self._df = df
        self.num_docs = n
        self.avgdl = avgdl
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
                where = f"{page.source} page {page.page_no}"
                log.warning("%s: no text layer, empty lexical vector", where)
                self.empty_pages.append(where)
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
