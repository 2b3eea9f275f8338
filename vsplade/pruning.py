"""Static index pruning (issue 24 item 3): drop each page's lightest weights before any writer
sees the page, so every engine indexes (and every query reads) fewer postings.

Two rules on the pages, either or both:
- top_n: keep each page's top_n heaviest terms (ties: the lower term id stays, so a build is
  reproducible);
- floor: drop weights below floor (a weight equal to it stays).
And one on the postings (term-centric, Lucene only: vsplade_lucene.capped):
- cap: besides the index, each term's cap heaviest postings are kept apart ("capped
  postings"), where phase 1 of every search looks for candidates; the index itself keeps
  every posting the two rules above leave (exact search, explain, Pyserini read it whole).

What it gives up: a page's score loses the pruned terms' contributions, so its rank can drop
(a page that matched a query only through pruned terms no longer matches it). The fidelity
against the unpruned index is measured in benchmarks/approximate.py (RESULTS.md, "Two-phase
search"). Engine-agnostic: it works on SparseBatch, and the setting goes into the index's
properties (``properties()``) so a later writer of the same collection prunes alike and a
reader can tell an index is pruned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from vsplade.sparse import SparseBatch

PROPERTY = "static_pruning"  # the key in the collection / index properties


@dataclass(frozen=True)
class StaticPruning:
    """top_n >= 1 or None (no cap); floor >= 0 (0: no floor); cap >= 1 or None (no capped
    postings)."""

    top_n: int | None = None
    floor: float = 0.0
    cap: int | None = None

    def __post_init__(self) -> None:
        if self.top_n is not None and (isinstance(self.top_n, bool) or not isinstance(self.top_n, int)
                                       or self.top_n < 1):
            raise ValueError(f"static pruning top_n must be a whole number >= 1, not {self.top_n!r}")
        if self.cap is not None and (isinstance(self.cap, bool) or not isinstance(self.cap, int) or self.cap < 1):
            raise ValueError(f"static pruning cap must be a whole number >= 1, not {self.cap!r}")
        f = self.floor
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f < 0:
            raise ValueError(f"static pruning floor must be a finite number >= 0, not {f!r}")

    def __str__(self) -> str:
        """The command-line form (--prune), e.g. "top=128,floor=0.1" or "cap=5000"."""
        parts = ([f"top={self.top_n}"] if self.top_n is not None else []) + \
            ([f"floor={self.floor:g}"] if self.floor else []) + ([f"cap={self.cap}"] if self.cap is not None else [])
        return ",".join(parts) or "none"

    @property
    def is_noop(self) -> bool:
        return not self.prunes_pages and self.cap is None

    @property
    def prunes_pages(self) -> bool:
        """True when pages lose weights (top_n or floor); cap alone keeps them whole."""
        return self.top_n is not None or self.floor != 0

    @classmethod
    def of(cls, value: Any) -> "StaticPruning | None":
        """None/False/"" : no pruning. A StaticPruning, a mapping {"top_n", "floor"}, an int
        (top_n), or a command-line string: "200" (top_n), "top=200", "floor=0.05",
        "top=200,floor=0.05", "cap=5000". Anything else: ValueError."""
        if value is None or value is False or value == "":
            return None
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            raise ValueError("static pruning: expected top=N and/or floor=W, not True")
        if isinstance(value, int):
            return cls(top_n=value)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"top_n", "floor", "cap"})
            if unknown:
                raise ValueError(f"static pruning takes top_n, floor and cap, not {', '.join(map(str, unknown))}")
            top, cap = value.get("top_n"), value.get("cap")
            return cls(top_n=None if top is None else _whole(top), floor=float(value.get("floor", 0.0)),
                       cap=None if cap is None else _whole(cap))
        if isinstance(value, str):
            fields: dict[str, Any] = {}
            for part in value.replace(";", ",").split(","):
                part = part.strip()
                if not part:
                    continue
                key, _, v = part.partition("=")
                if not _:
                    key, v = "top", key
                key = key.strip().lower()
                try:
                    if key in ("top", "top_n"):
                        fields["top_n"] = _whole(v.strip())
                    elif key == "floor":
                        fields["floor"] = float(v)
                    elif key == "cap":
                        fields["cap"] = _whole(v.strip())
                    else:
                        raise ValueError
                except ValueError:
                    raise ValueError(f"static pruning {value!r}: expected top=N, floor=W and/or cap=C, "
                                     "e.g. top=200,floor=0.05 or cap=5000") from None
            return cls(**fields)
        raise ValueError(f"static pruning must be a StaticPruning, not {type(value).__name__}")

    def properties(self) -> dict:
        """The setting as the index properties record it ({PROPERTY: {...}}); cap only when set,
        so indexes recorded before it existed compare equal."""
        out: dict[str, Any] = {"top_n": self.top_n, "floor": self.floor}
        if self.cap is not None:
            out["cap"] = self.cap
        return {PROPERTY: out}

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any] | None) -> "StaticPruning | None":
        """The setting an index was built with (None: unpruned)."""
        return cls.of((properties or {}).get(PROPERTY))

    def apply(self, batch: SparseBatch) -> tuple[SparseBatch, int]:
        """The batch with each page pruned (same pages, ids and metadata) and how many
        non-zero weights were dropped."""
        m = batch.matrix
        if not self.prunes_pages or m.nnz == 0:
            return batch, 0
        pruned = prune_matrix(m, self.top_n, self.floor)
        out = SparseBatch(pruned, batch.ids, batch.meta)
        return out, int(m.nnz - pruned.nnz)


def prune_matrix(m: sp.csr_matrix, top_n: int | None = None, floor: float = 0.0) -> sp.csr_matrix:
    """CSR rows cut to their top_n heaviest entries and entries >= floor (vectorized: one sort
    of all non-zeros by (row, weight descending, term id))."""
    m = sp.csr_matrix(m)
    m.sum_duplicates()  # one entry per (page, term): top_n counts terms
    keep = np.ones(m.nnz, dtype=bool)
    if floor > 0:
        keep &= m.data >= floor
    if top_n is not None:
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        order = np.lexsort((m.indices, -m.data.astype(np.float64), rows))
        rank = np.empty(m.nnz, dtype=np.int64)
        rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], np.diff(m.indptr))
        keep &= rank < top_n
    counts = np.bincount(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[keep], minlength=m.shape[0])
    indptr = np.zeros(m.shape[0] + 1, dtype=m.indptr.dtype)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def _whole(v: Any) -> int:
    f = float(v)
    if not f.is_integer():
        raise ValueError(v)
    return int(f)
