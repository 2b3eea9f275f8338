"""Torch-free query encoding: tokenizer.json + a lookup table -> {term: weight}.

Spec section 3. Both modes tokenize with no special tokens and no prefix space, drop ids
>= the vocabulary size (the vision tokens) and the special ids 50280..50284.
- ``li_lsr``: weight of token v = T[v] summed over its occurrences (duplicates add up).
- ``bow``: weight 1 for every distinct present token; id 0 is dropped (the official BoW maps
  pads to 0). The official BoW clamps ids >= 50368 onto 50367 (spec section 10, bug 10); we
  drop them instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .vocab import Vocabulary, load_vocabulary

MODES = ("bow", "li_lsr")

# The ByteLevel pre-tokenizer's split (GPT-2 pattern) restricted to ASCII, where \p{L} is
# [A-Za-z] and \p{N} is [0-9]. BPE runs on each piece independently, so caching piece -> ids
# gives exactly the tokenizer's ids for ASCII text without added-token look-alikes.
_ASCII_PIECES = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
# Added tokens ([CLS], <|endoftext|>, |||IP_ADDRESS|||, runs of spaces, <image>...) and control
# characters are matched before pre-tokenization: texts holding them take the full tokenizer.
_NEEDS_FULL_TOKENIZER = re.compile(r"[|<\[\x00-\x1f\x7f]|  ")
_PIECE_CACHE_MAX = 200_000


class QueryEncoder:
    def __init__(
        self,
        tokenizer_path: str | Path | None = None,
        table: np.ndarray | None = None,
        mode: str = "li_lsr",
        vocab: Vocabulary | None = None,
        lowercase: bool = False,
        prefix_space: bool = False,
    ):
        from tokenizers import Tokenizer

        if mode not in MODES:
            raise ValueError(f"query mode must be one of {MODES}, got {mode!r}")
        self.vocab = vocab or load_vocabulary(tokenizer_path)
        self.tokenizer = Tokenizer.from_file(str(self.vocab.tokenizer_path))
        self.mode = mode
        # Off for neural models (spec: no prefix space, case-sensitive BPE); the lexical
        # encoder turns both on, on both sides, so query-initial and capitalised words match.
        self.lowercase = lowercase
        self.prefix_space = prefix_space
        size = self.vocab.size
        if table is None:
            table = np.ones(size, dtype=np.float32)
        table = np.asarray(table, dtype=np.float32)
        if table.shape != (size,):
            raise ValueError(f"query table has shape {table.shape}, expected ({size},)")
        if not np.isfinite(table).all() or (table < 0).any():
            raise ValueError("query table holds NaN, infinite or negative weights")
        self.table = table
        weights = table.astype(np.float64)
        weights[~self.vocab.keep_mask] = 0.0
        if mode == "bow":
            weights[:] = 1.0
            weights[~self.vocab.keep_mask] = 0.0
            weights[0] = 0.0
        # Python lists: indexing them per token is several times faster than numpy scalars,
        # which is what keeps a query in the microseconds.
        self._weights: list[float] = weights.tolist()
        self._terms: list[str] = self.vocab.terms
        self._size = size
        self._piece_ids: dict[str, tuple[int, ...]] = {}

    def token_ids(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        if self.prefix_space:
            text = " " + text
        if text.isascii() and not _NEEDS_FULL_TOKENIZER.search(text):
            cache = self._piece_ids
            ids: list[int] = []
            for piece in _ASCII_PIECES.findall(text):
                got = cache.get(piece)
                if got is None:
                    if len(cache) >= _PIECE_CACHE_MAX:
                        cache.clear()
                    got = cache[piece] = tuple(self.tokenizer.encode(piece, add_special_tokens=False).ids)
                ids.extend(got)
            return ids
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_ids(self, text: str) -> dict[int, float]:
        """{token id: weight}, masked ids and zero weights left out. An empty or blank query
        has no terms (not the lone space token a prefix space would give it)."""
        if not text or not text.strip():
            return {}
        w = self._weights
        size = self._size
        out: dict[int, float] = {}
        if self.mode == "bow":
            for i in self.token_ids(text):
                if i < size and w[i]:
                    out[i] = 1.0
        else:
            for i in self.token_ids(text):
                if i < size and w[i]:
                    out[i] = out.get(i, 0.0) + w[i]
        return out

    def encode(self, text: str) -> dict[str, float]:
        """{engine term: weight}, term names from the core mapping."""
        terms = self._terms
        return {terms[i]: v for i, v in self.encode_ids(text).items()}

    def encode_batch(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [self.encode(t) for t in texts]

    def encode_matrix(self, texts: Sequence[str]):
        """scipy CSR float32 [len(texts), V], for exact scoring and FLOPs."""
        from .sparse import SparseBatch

        return SparseBatch.from_dicts(
            [self.encode_ids(t) for t in texts], [str(i) for i in range(len(texts))], vocab_size=self._size
        ).matrix

    def words(self, text: str) -> list[tuple[str, list[str]]]:
        """The query's words as a person typed them (whitespace-separated), each with the engine
        terms it became, in order; a word whose pieces are all masked has none. For readable
        explanations: `Fortran` -> [Fort, ran] is one word, not two unrelated matches."""
        out = []
        terms, w = self._terms, self._weights
        for n, word in enumerate(text.split()):
            # a word tokenizes as it does inside the query: with its leading space after the first
            ids = self.token_ids(word if n == 0 or self.prefix_space else " " + word)
            out.append((word, list(dict.fromkeys(terms[i] for i in ids if i < self._size and w[i]))))
        return out

    def explain(self, text: str) -> list[tuple[str, str, float]]:
        """[(display text, term, weight)] sorted by weight, for humans."""
        rows = [(self.vocab.display(i), self._terms[i], v) for i, v in self.encode_ids(text).items()]
        return sorted(rows, key=lambda r: -r[2])
