"""The forward index: each page's own (term id, impact) pairs, doc-id aligned, beside the Lucene
index, for two-phase search's phase 2 (vsplade.approximate.TwoPhase).

Why: phase 2 on Lucene was a second Lucene search of the whole query with the window as a
doc-set filter: per-term, per-segment setup for every query term (the light, frequent terms
included, with their long postings lists to advance through), a filter bitset of maxDoc bits,
JNI round trips. Reading the window's ~100 pages here is a few hundred array reads in numpy.

Files (written by the direct writer, vsplade_lucene.direct, while it hands chunks to Java):
  vsplade-forward.json     header: format version, term id dtype, the index's scale, and
                           "sorted_terms" (each page's term ids ascend; since 2026-12-02)
  vsplade-forward.counts   int32 LE: non-zeros of each doc, one per Lucene doc id
  vsplade-forward.terms    term ids (uint16 LE when the vocabulary fits, else int32 LE)
  vsplade-forward.impacts  int32 LE: the quantized impacts Lucene holds as term frequencies
(3 files appended in step, not one, so a resume cuts each back to the committed pages with a
truncate, as the docs file is cut.) A page costs 4 + 6 x nnz bytes (~3.3 KB at 550 non-zeros).

Scores: bit-equal to Lucene's. ImpactSimilarity scores a clause as float32(boost x freq)
(query impact x page impact, both exact in float32), and Lucene sums a doc's clause scores in a
double and returns it as a float32. Here: float32 products, summed in float64 (exact: integers
and float32 values whose sum stays far below 2^53), cast to float32. Ties order by doc id, as
Lucene's top-k collector does.

Valid only while doc ids are the docs' insertion order: no deletes (the writer drops the files
on the first delete) and LogByteSizeMergePolicy (adjacent merges; forceMerge keeps the order).
An index without the files (built before they existed, or by the JsonVectorCollection route)
keeps the Lucene phase 2; re-index it (`vsplade index --recreate`) to add them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from vsplade.engines.base import EngineError

HEADER = "vsplade-forward.json"
COUNTS = "vsplade-forward.counts"
TERMS = "vsplade-forward.terms"
IMPACTS = "vsplade-forward.impacts"
FILES = (HEADER, COUNTS, TERMS, IMPACTS)
VERSION = 1


def remove(path: Path) -> None:
    """Drop the forward index (deletes renumber doc ids; an old index cannot gain one)."""
    for name in FILES:
        (Path(path) / name).unlink(missing_ok=True)


class ForwardWriter:
    """Appends chunks of pages in doc-id order; cut back to the committed docs at open."""

    def __init__(self, path: Path, vocab, scale: float, committed: int, enabled: bool = True,
                 unpruned: bool = False):
        """committed: the docs the Lucene commit holds. A forward index that does not cover
        them (none yet, or a shorter one) cannot be completed: removed, and this writer is
        disabled (self.enabled False), so the searcher falls back to Lucene's phase 2."""
        self.path = Path(path)
        vocab_size = vocab.size
        self.term_dtype = np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<i4")
        self.enabled = enabled
        header = self.path / HEADER
        # every page's term ids ascend (appended so; a header says "sorted_terms"): the capped
        # search finds a query's terms in a page by binary search (CappedSearch.java)
        if not enabled:
            remove(self.path)
            return
        if committed == 0:
            remove(self.path)
            tmp = header.with_name(HEADER + ".tmp")
            tmp.write_text(json.dumps({"version": VERSION, "terms": self.term_dtype.str, "scale": scale,
                                       "vocab_size": int(vocab_size), "vocab_sha256": vocab_digest(vocab),
                                       "unpruned": bool(unpruned), "sorted_terms": True}))
            os.replace(tmp, header)
            for name in (COUNTS, TERMS, IMPACTS):
                (self.path / name).touch()
            return
        counts = _read_counts(self.path)
        if counts is None or len(counts) < committed or _header(self.path) is None:
            remove(self.path)
            self.enabled = False
            return
        nnz = int(counts[:committed].sum(dtype=np.int64))
        for name, size in ((COUNTS, 4 * committed), (TERMS, self.term_dtype.itemsize * nnz), (IMPACTS, 4 * nnz)):
            with open(self.path / name, "r+b") as f:
                if os.fstat(f.fileno()).st_size < size:  # cut short by a kill: unusable
                    f.close()
                    remove(self.path)
                    self.enabled = False
                    return
                f.truncate(size)

    def append(self, counts: np.ndarray, term_ids: np.ndarray, impacts: np.ndarray) -> None:
        """One chunk; fsynced before Java may commit its pages (as the docs file)."""
        if not self.enabled:
            return
        term_ids, impacts = sort_pages(counts, term_ids, impacts)
        # counts last: a kill between the files leaves counts that the others cover
        for name, arr in ((TERMS, term_ids.astype(self.term_dtype, copy=False)),
                          (IMPACTS, impacts.astype("<i4", copy=False)),
                          (COUNTS, counts.astype("<i4", copy=False))):
            try:
                with open(self.path / name, "ab") as f:
                    f.write(arr.tobytes())
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise EngineError(f"{self.path / name}: cannot write the forward index ({e.strerror or e})") from None

    def disable(self) -> None:
        self.enabled = False
        remove(self.path)


def sort_pages(counts: np.ndarray, term_ids: np.ndarray, impacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each page's (term, impact) pairs by ascending term id; a chunk already so (the encoders'
    and scipy's canonical CSR rows) is returned as it is, after one vectorised check."""
    term_ids = np.asarray(term_ids)
    if len(term_ids) < 2:
        return term_ids, impacts
    rises = np.diff(term_ids.astype(np.int64)) > 0
    # a page's first term need not exceed the previous page's last
    starts = np.cumsum(np.asarray(counts, dtype=np.int64))[:-1]
    starts = starts[(starts > 0) & (starts < len(term_ids))]
    rises[starts - 1] = True
    if rises.all():
        return term_ids, impacts
    row = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((term_ids, row))
    return term_ids[order], np.asarray(impacts)[order]


def vocab_digest(vocab) -> str:
    """Which vocabulary the term ids are of (a searcher maps query terms through the same)."""
    return hashlib.sha256("\n".join(vocab.terms).encode("utf-8")).hexdigest()


def _header(path: Path) -> dict | None:
    try:
        h = json.loads((path / HEADER).read_text())
    except (OSError, ValueError):
        return None
    return h if isinstance(h, dict) and h.get("version") == VERSION else None


def _read_counts(path: Path) -> np.ndarray | None:
    try:
        return np.fromfile(path / COUNTS, dtype="<i4")
    except OSError:
        return None


class ForwardIndex:
    """Memory-mapped forward index of one Lucene reader (maxDoc docs)."""

    def __init__(self, path: Path, header: dict, counts: np.ndarray):
        self.path = Path(path)
        self.vocab_size = int(header["vocab_size"])
        self.indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        nnz = int(self.indptr[-1])
        # plain ndarray views of the maps (np.memmap's own indexing adds overhead per call)
        self.terms = np.asarray(_map(path / TERMS, np.dtype(header["terms"]), nnz))
        self.impacts = np.asarray(_map(path / IMPACTS, np.dtype("<i4"), nnz))
        self.num_docs = len(counts)
        self.term_id = None  # term -> id, bound by open_for_search
        # the pages before static pruning (vsplade.pruning) while the Lucene index holds the
        # pruned ones: phase 1 on the small postings, phase 2 with the full pages' scores
        self.unpruned = bool(header.get("unpruned"))
        # each page's term ids ascend (every forward index written since the flag came)
        self.sorted_terms = bool(header.get("sorted_terms"))

    def query_arrays(self, impacts) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, integer impacts) of a {term: impact} query; a term outside the
        vocabulary is in no page of this index (the writer takes vocabulary ids only)."""
        pairs = [(i, q) for i, q in ((self.term_id(t), q) for t, q in impacts.items()) if i is not None]
        ids = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
        return ids, np.fromiter((q for _, q in pairs), dtype=np.float64, count=len(pairs))

    @classmethod
    def open(cls, path: Path, num_docs: int, config: dict) -> "ForwardIndex | None":
        """The forward index of an index holding num_docs docs, or None when there is none that
        matches them (missing, another scale, deletes, a different doc count)."""
        path = Path(path)
        if config.get("deletes") or config.get("build") != "direct":
            return None
        header = _header(path)
        if (header is None or "vocab_size" not in header
                or float(header.get("scale", -1)) != float(config.get("scale", -2))):
            return None
        counts = _read_counts(path)
        if counts is None or len(counts) != num_docs or num_docs == 0:
            return None
        nnz = int(counts.sum(dtype=np.int64))
        itemsize = np.dtype(header["terms"]).itemsize
        for name, size in ((TERMS, itemsize * nnz), (IMPACTS, 4 * nnz)):
            if not (path / name).is_file() or (path / name).stat().st_size != size:
                return None
        return cls(path, header, counts)

    def scores(self, docs: np.ndarray, query_ids: np.ndarray, query_impacts: np.ndarray) -> np.ndarray:
        """Lucene's float32 score of each doc for the query (term ids, integer impacts)."""
        docs = np.asarray(docs, dtype=np.int64)
        starts = self.indptr[docs]
        lengths = self.indptr[docs + 1] - starts
        ends = np.cumsum(lengths)
        pos = ranges(starts, lengths)  # each of the docs' non-zeros' position in the files
        # a dense query vector (vocab_size float32s) beats a search per non-zero; only the
        # few non-zeros the query shares are multiplied (and only their impacts read)
        qdense = np.zeros(self.vocab_size, dtype=np.float32)
        qdense[query_ids] = query_impacts
        q = qdense[self.terms[pos]]
        shared = np.flatnonzero(q)
        prod = q[shared] * self.impacts[pos[shared]].astype(np.float32)  # float32 x float32, as Java's boost * freq
        row = np.searchsorted(ends, shared, side="right")
        return np.bincount(row, weights=prod.astype(np.float64), minlength=len(docs)).astype(np.float32)

    def top_k(self, docs: np.ndarray, query_ids: np.ndarray, query_impacts: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
        """(docs, float32 scores) of the k best, score descending then doc id ascending."""
        s = self.scores(docs, query_ids, query_impacts)
        keep = s > 0  # a page sharing no query term is no hit (Lucene would not match it)
        docs, s = docs[keep], s[keep]
        order = np.lexsort((docs, -s))[:k]
        return docs[order], s[order]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions start..start+length-1 of every range, concatenated (one gather for many
    slices of a file, no Python loop)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + np.repeat(
        np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)


def _map(path: Path, dtype: np.dtype, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def open_for_search(path: Path, num_docs: int, config: dict) -> "ForwardIndex | None":
    """The forward index with the default vocabulary bound (query terms -> ids), or None when
    there is none or it was written with another vocabulary (then Lucene's phase 2 serves)."""
    fw = ForwardIndex.open(path, num_docs, config)
    if fw is None:
        return None
    from vsplade.vocab import default_vocabulary

    vocab = default_vocabulary()
    if _header(Path(path)).get("vocab_sha256") != vocab_digest(vocab) or vocab.size != fw.vocab_size:
        return None
    fw.term_id = vocab._term_to_id.get
    return fw
