"""Capped postings (issue 24 item 3, per-term posting caps): each term's ``cap`` heaviest
postings, kept beside the Lucene index, where phase 1 of two-phase search finds its candidates;
phase 2 scores them exactly from the forward index (forward.py).

Why: exact search reads every posting of the query's terms, and V-SPLADE queries share frequent
word pieces with most pages (1.5M postings a query at 1M Quality pages, RESULTS.md). A page in
the exact top-k holds at least one of the query's terms with a heavy weight, so it sits near
the top of that term's postings: the first ``cap`` postings of each query term, scored partially
(only the capped postings count), rank it inside a window of candidates, and phase 2 scores the
window exactly. What it gives up: a page whose exact score comes from many light weights, none
of them in its terms' top ``cap``, is missed (recall@10 vs cap and window:
benchmarks/approximate.py). Returned scores are exact, never partial. This is the term-centric
static pruning of the literature, and what OpenSearch's sparse ANN (SEISMIC) keeps per term as
``n_postings``; the Lucene index itself stays whole, so exact search, explain and Pyserini read
every posting.

Phase 2 reads the window's pages' term ids from the forward index (forward.py: ~200 sequential
reads of ~1.1 KB), finds the query's terms in each by binary search (term ids ascend within a
page) and reads only those impacts. Both phases run in one Java call
(vsplade.lucene.CappedSearch: one pass over the postings where numpy needed ~15 array passes and
the interpreter between them). Scores are Lucene's (float32 products of the integer impacts,
summed in double, returned as float32), as forward.py computes them. (A binary search of the
window in each query term's whole postings was tried and dropped: ~50k random reads into
gigabytes a query at 1M pages, slower than the window's pages read in order.)

Files (built from the forward index, the durable source, when a build closes,
vsplade_lucene.direct; written under temporary names and renamed, the header last, so a kill
leaves the old set or none):
  vsplade-capped.json      header: version, cap, num_docs, postings counts, impact dtype
  vsplade-capped.offsets   int64 LE, vocab_size + 1: term t's postings [offsets[t], offsets[t+1])
  vsplade-capped.docs      int32 LE doc ids, ascending within a term
  vsplade-capped.impacts   the page impacts (uint16 LE when they fit, else int32 LE)
Each term keeps its cap largest impacts (ties: the lower doc id stays, so a build is
reproducible). Valid while the forward index is (doc ids in insertion order, no deletes); a
searcher checks num_docs, and a writer that adds pages rebuilds the files when it closes.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from vsplade.crashpoints import crash_point

from .forward import ForwardIndex, ranges

HEADER = "vsplade-capped.json"
PARTS = ("offsets", "docs", "impacts")
INVERTED = tuple(f"vsplade-inverted.{p}" for p in PARTS)  # the build's scratch transpose
CAPPED = tuple(f"vsplade-capped.{p}" for p in PARTS)
FILES = (HEADER, *CAPPED)
VERSION = 1
_CHUNK_POSTINGS = 1 << 25  # forward-index postings read per step while building (~300 MB of arrays)


def remove(path: Path) -> None:
    """Drop the files (a delete renumbers doc ids; the writer rebuilds them at close)."""
    for name in (*FILES, *INVERTED):
        (Path(path) / name).unlink(missing_ok=True)
        (Path(path) / (name + ".tmp")).unlink(missing_ok=True)


def build(path: Path, forward: ForwardIndex, cap: int) -> dict:
    """Write the capped postings of a forward index; returns the header. The whole postings are
    transposed into scratch files first (term-major, the way to each term's heaviest), then
    dropped."""
    path = Path(path)
    remove(path)
    crash_point("lucene.capped.removed")
    vocab_size = forward.vocab_size
    indptr, terms, impacts = forward.indptr, forward.terms, forward.impacts
    bounds = _chunks(indptr)
    df = np.zeros(vocab_size, dtype=np.int64)
    max_impact = 0
    for lo, hi in bounds:
        a, b = indptr[lo], indptr[hi]
        df += np.bincount(terms[a:b], minlength=vocab_size)
        if b > a:
            max_impact = max(max_impact, int(impacts[a:b].max()))
    imp_dtype = np.dtype("<u2") if max_impact < 1 << 16 else np.dtype("<i4")
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    total = int(offsets[-1])
    # the transpose, chunk by chunk in doc order: a stable sort by term keeps doc ids ascending
    # within each term, and each chunk's postings of a term land right after the previous chunk's
    inv_docs = _create(path / (INVERTED[1] + ".tmp"), np.dtype("<i4"), total)
    inv_imps = _create(path / (INVERTED[2] + ".tmp"), imp_dtype, total)
    fill = offsets[:-1].copy()
    for lo, hi in bounds:
        a, b = indptr[lo], indptr[hi]
        t = np.asarray(terms[a:b])
        order = np.argsort(t, kind="stable")
        ts = t[order].astype(np.int64)
        counts = np.bincount(ts, minlength=vocab_size)
        first = np.cumsum(counts) - counts  # each term's first position in ts
        dest = fill[ts] + (np.arange(len(ts), dtype=np.int64) - first[ts])
        docs = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(indptr[lo:hi + 1]))
        inv_docs[dest] = docs[order]
        inv_imps[dest] = np.asarray(impacts[a:b])[order]
        fill += counts
    # the capped postings: per term over the cap, its cap largest impacts (ties: lower doc id,
    # i.e. the earlier position), kept in doc order
    cap_counts = np.minimum(df, cap)
    cap_offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(cap_counts, out=cap_offsets[1:])
    cap_docs = np.empty(int(cap_offsets[-1]), dtype="<i4")
    cap_imps = np.empty(int(cap_offsets[-1]), dtype=imp_dtype)
    small = df <= cap
    # terms within the cap: their whole postings, one gather
    lengths = np.where(small, df, 0)
    src = ranges(offsets[:-1], lengths)
    dst = ranges(cap_offsets[:-1], lengths)
    cap_docs[dst] = inv_docs[src]
    cap_imps[dst] = inv_imps[src]
    for t in np.flatnonzero(~small):
        s0, s1 = offsets[t], offsets[t + 1]
        key = (-np.asarray(inv_imps[s0:s1]).astype(np.int64) << 32) | np.arange(s1 - s0, dtype=np.int64)
        sel = np.sort(np.argpartition(key, cap - 1)[:cap])
        cap_docs[cap_offsets[t]:cap_offsets[t + 1]] = inv_docs[s0:s1][sel]
        cap_imps[cap_offsets[t]:cap_offsets[t + 1]] = inv_imps[s0:s1][sel]
    crash_point("lucene.capped.transposed")
    del inv_docs, inv_imps
    for name in INVERTED:
        (path / (name + ".tmp")).unlink(missing_ok=True)
    header = {"version": VERSION, "cap": int(cap), "num_docs": int(forward.num_docs), "postings": total,
              "capped_postings": int(cap_offsets[-1]), "impacts": imp_dtype.str}
    for name, data in zip(CAPPED, (cap_offsets.astype("<i8"), cap_docs, cap_imps)):
        _write(path / (name + ".tmp"), data.tobytes())
        crash_point("lucene.capped.file-written")
    for name in CAPPED:
        os.replace(path / (name + ".tmp"), path / name)
        crash_point("lucene.capped.file-renamed")
    _write(path / (HEADER + ".tmp"), json.dumps(header).encode())
    crash_point("lucene.capped.header-written")
    os.replace(path / (HEADER + ".tmp"), path / HEADER)
    return header


def current(path: Path, num_docs: int, vocab_size: int) -> tuple[dict, dict[str, int]] | None:
    """(header, file sizes) of complete capped postings built for num_docs docs, else None."""
    try:
        header = json.loads((path / HEADER).read_text())
        sizes = {name: (path / name).stat().st_size for name in CAPPED}
        imp = np.dtype(header["impacts"])
        capped = int(header["capped_postings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if header.get("version") != VERSION or header.get("num_docs") != num_docs:
        return None
    if (sizes[CAPPED[1]] != 4 * capped or sizes[CAPPED[2]] != imp.itemsize * capped
            or sizes[CAPPED[0]] != 8 * (vocab_size + 1)):
        return None
    return header, sizes


def _chunks(indptr: np.ndarray) -> list[tuple[int, int]]:
    """Doc ranges of about _CHUNK_POSTINGS postings each."""
    n = len(indptr) - 1
    out, lo = [], 0
    while lo < n:
        hi = int(np.searchsorted(indptr, indptr[lo] + _CHUNK_POSTINGS, side="right")) - 1
        hi = min(n, max(hi, lo + 1))
        out.append((lo, hi))
        lo = hi
    return out


def _create(target: Path, dtype: np.dtype, n: int) -> np.ndarray:
    if n == 0:
        target.write_bytes(b"")
        return np.zeros(0, dtype=dtype)
    return np.memmap(target, dtype=dtype, mode="w+", shape=(n,))


def _write(target: Path, data: bytes) -> None:
    with open(target, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _map(target: Path, dtype, n: int) -> np.ndarray:
    # plain ndarray views of the maps (np.memmap's own indexing adds overhead per call)
    return np.asarray(np.memmap(target, dtype=dtype, mode="r", shape=(n,))) if n else np.zeros(0, dtype)


class CappedPostings:
    """The capped postings of one Lucene reader (memory-mapped), searched with its forward index."""

    def __init__(self, path: Path, header: dict, sizes: dict[str, int], forward: ForwardIndex):
        self.cap = int(header["cap"])
        self.num_docs = int(header["num_docs"])
        imp = np.dtype(header["impacts"])
        self.cap_offsets = np.fromfile(path / CAPPED[0], dtype="<i8")
        self.cap_docs = _map(path / CAPPED[1], "<i4", sizes[CAPPED[1]] // 4)
        self.cap_impacts = _map(path / CAPPED[2], imp, sizes[CAPPED[2]] // imp.itemsize)
        self.vocab_size = len(self.cap_offsets) - 1
        self.path = Path(path)
        self.forward = forward
        self._searcher = None  # the Java side (CappedSearch), opened by the first search
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, forward: ForwardIndex) -> "CappedPostings | None":
        """The capped postings built for the forward index's docs, or None (missing, stale, cut
        short)."""
        found = current(Path(path), forward.num_docs, forward.vocab_size)
        return None if found is None else cls(Path(path), *found, forward)

    def top_k(self, kept_ids: np.ndarray, kept_impacts: np.ndarray, query_ids: np.ndarray,
              query_impacts: np.ndarray, window: int, k: int,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Both phases in one Java call (vsplade.lucene.CappedSearch): the window best pages by
        the kept terms' capped postings (within mask, a bool per doc, when given), scored with
        every query term; (docs, float32 scores) of the k best, score descending then doc id."""
        out = self._java().top(_pairs(kept_ids, kept_impacts), _pairs(query_ids, query_impacts), int(window),
                               int(k), None if mask is None else np.packbits(mask, bitorder="little").tobytes())
        rec = np.frombuffer(bytes(out), dtype=[("doc", "<i4"), ("score", "<f4")])
        return rec["doc"].astype(np.int64), rec["score"].copy()

    def _java(self):
        if self._searcher is None:
            with self._lock:
                if self._searcher is None:
                    from . import jvm

                    J = jvm.classes()
                    with jvm.LOCK:
                        obj = J.CappedSearch(str(self.path.resolve()), self.num_docs,
                                             self.cap_impacts.dtype.itemsize == 2,
                                             self.forward.terms.dtype.itemsize == 2, self.forward.sorted_terms,
                                             self.vocab_size)
                        self._searcher = jvm.private(obj, {"top": "([B[BII[B)[B", "close": "()V"})
        return self._searcher

    def close(self) -> None:
        if self._searcher is not None:
            from . import jvm

            with jvm.LOCK:
                self._searcher.close()
            jvm.release_private(self._searcher)
            self._searcher = None


def _pairs(ids: np.ndarray, impacts: np.ndarray) -> bytes:
    """(int32 term id, float32 query impact) pairs, little-endian, as CappedSearch reads them."""
    rec = np.empty(len(ids), dtype=[("t", "<i4"), ("w", "<f4")])
    rec["t"], rec["w"] = ids, impacts
    return rec.tobytes()
