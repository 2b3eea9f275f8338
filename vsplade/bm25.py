"""BM25 over the pages' text layer in numpy, scored as Lucene scores it (hybrid search, memory engine).

The same choices on every engine (vsplade.engines.base.Searcher.search_text): words as Lucene's
StandardAnalyzer makes them (lower-cased UAX#29 words, no stop words, no stemming), BM25 with
Pyserini's defaults k1=0.9, b=0.4, Lucene's idf log(1 + (N - df + 0.5) / (df + 0.5)), a query as
a bag of words (a repeated word weighs its count). Scores follow Lucene's BM25Similarity step by
step in float32, including its lossy document length (SmallFloat.intToByte4: a length is kept
as one byte, exact up to 39 words, then 4 significant bits), so a page scores what Lucene gives
it up to the order in which a query's term scores are added.

Where it differs from Lucene: the tokenizer is a regular expression close to UAX#29 (letters
and digits joined by '.', "'", ':' and ',' as the standard says; Han and Hiragana one character
a word), not the full word-break tables; statistics never count deleted pages (Lucene counts
them until a merge drops them).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

K1 = 0.9  # Pyserini's BM25 defaults (SimpleSearcher.set_bm25), the same on every engine
B = 0.4
MAX_TOKEN_LENGTH = 255  # StandardAnalyzer's default: longer words are cut into pieces this long

# one ideograph (Han) or Hiragana character is a word; a letter/digit run is joined across
# ".'’" (letters to letters, digits to digits), ":·" (letters only) and ",;" (digits only)
_IDEO = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_W = rf"[^\W{_IDEO}]"
_LETTER = rf"[^\W\d{_IDEO}]"
# pictographs (Extended_Pictographic, approximately: ©, ®, ™, arrows, dingbats, emoji) are
# words of their own, as Lucene's StandardTokenizer emits them (<EMOJI>)
_PICTO = ("\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf"
          "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935"
          "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff")
_TOKEN = re.compile(
    rf"[{_IDEO}]|[{_PICTO}]\ufe0f?|{_W}+(?:(?:(?<={_LETTER})[.'’:·](?={_LETTER})|(?<=\d)[.'’,;](?=\d)){_W}+)*"
)


def tokenize(text: str) -> list[str]:
    """The words of a text as the text field holds them (StandardAnalyzer's, approximately)."""
    out = []
    for m in _TOKEN.finditer(text.lower()):
        w = m.group()
        if w[0] == "_" and w.strip("_") == "":
            continue  # underscores alone join words but are none (UAX#29 ExtendNumLet)
        if len(w) <= MAX_TOKEN_LENGTH:
            out.append(w)
        else:
            out.extend(w[i:i + MAX_TOKEN_LENGTH] for i in range(0, len(w), MAX_TOKEN_LENGTH))
    return out


# -- Lucene's SmallFloat.intToByte4 / byte4ToInt: the one-byte document length -------------

def _long_to_int4(i: int) -> int:
    bits = i.bit_length()
    if bits < 4:
        return i
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)
# the length each of the 256 norm bytes stands for (BM25Similarity.LENGTH_TABLE)
LENGTH_TABLE = np.array([i if i < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _int4_to_long(i - _NUM_FREE_VALUES)
                         for i in range(256)], dtype=np.float32)


def norm_byte(length: int) -> int:
    """The byte Lucene stores for a field of `length` words."""
    return length if length < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _long_to_int4(length - _NUM_FREE_VALUES)


class TextIndex:
    """Term frequencies of every page's text as a CSC (column = word), plus norm bytes."""

    def __init__(self) -> None:
        self.words: dict[str, int] = {}
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._tfs: list[np.ndarray] = []
        self._norms: list[np.ndarray] = []
        self.num_rows = 0

    def extend(self, texts: Sequence[str | None]) -> None:
        """Adds the next pages' texts (None or "": a page without words)."""
        words = self.words
        tokens = [tokenize(t) if t else [] for t in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        flat = [w for page in tokens for w in page]
        for w in set(flat).difference(words):
            words[w] = len(words)
        # (row, word) pairs counted in numpy: a dict lookup a word is the only Python work
        ids = np.fromiter(map(words.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(self.num_rows, self.num_rows + len(tokens), dtype=np.int64), lengths)
        keys, tf = np.unique((rows << 32) | ids, return_counts=True)
        self._rows.append((keys >> 32).astype(np.int32))
        self._cols.append((keys & 0xFFFFFFFF).astype(np.int32))
        self._tfs.append(tf.astype(np.float32))
        norms = np.fromiter((norm_byte(int(n)) if n else -1 for n in lengths), dtype=np.int16, count=len(lengths))
        self._norms.append(norms)  # -1: no words, no norm (Lucene keeps none)
        self.num_rows += len(tokens)

    def finish(self) -> "TextIndex":
        rows = np.concatenate(self._rows) if self._rows else np.empty(0, np.int32)
        cols = np.concatenate(self._cols) if self._cols else np.empty(0, np.int32)
        tfs = np.concatenate(self._tfs) if self._tfs else np.empty(0, np.float32)
        norms = np.concatenate(self._norms) if self._norms else np.empty(0, np.int16)
        self._rows = self._cols = self._tfs = self._norms = []
        m = sp.csc_matrix((tfs, (rows, cols)), shape=(self.num_rows, max(1, len(self.words))), dtype=np.float32)
        m.sort_indices()
        self.indptr, self.indices, self.tf = m.indptr, m.indices, m.data
        self.norms = norms
        has_words = norms >= 0
        self.doc_count = int(has_words.sum())  # Lucene: pages with at least one word in the field
        self.sum_tf = float(tfs.sum(dtype=np.float64))
        avgdl = np.float32(self.sum_tf / self.doc_count) if self.doc_count else np.float32(1)
        # BM25Similarity's per-norm cache: 1 / (k1 * ((1 - b) + b * length / avgdl)), in float32
        k1, b = np.float32(K1), np.float32(B)
        self.cache = (np.float32(1) / (k1 * ((np.float32(1) - b) + b * LENGTH_TABLE / avgdl))).astype(np.float32)
        self.inverse_norm = np.where(has_words, self.cache[np.maximum(norms, 0)], np.float32(0)).astype(np.float32)
        return self

    def scores(self, text: str) -> np.ndarray:
        """Each page's BM25 score for the query text (float64 array; 0 where no word matches)."""
        out = np.zeros(self.num_rows)
        n = np.float64(self.doc_count)
        for w, count in Counter(tokenize(text)).items():
            c = self.words.get(w)
            if c is None:
                continue
            lo, hi = int(self.indptr[c]), int(self.indptr[c + 1])
            df = hi - lo
            if df == 0:
                continue
            idf = np.float32(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
            weight = np.float32(count) * idf
            rows = self.indices[lo:hi]
            # Lucene's BM25Scorer.score: weight - weight / (1 + freq * normInverse), float32
            term = weight - weight / (np.float32(1) + self.tf[lo:hi] * self.inverse_norm[rows])
            out[rows] += term.astype(np.float64)
        # BooleanScorer adds the clause scores in a double and reports a float
        return out.astype(np.float32).astype(np.float64)


def build(texts: Iterable[Sequence[str | None]]) -> TextIndex:
    """A TextIndex of batches of page texts, in row order."""
    index = TextIndex()
    for part in texts:
        index.extend(part)
    return index.finish()
