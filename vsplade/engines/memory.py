"""The exact in-memory engine: an encoded dir scored with a CSC inverted index.

The reference every other engine is compared with, and ``--engine memory --index DIR``.
Score = sum over shared terms of query weight x document weight, accumulated in float64
(so integer impacts, as the Lucene tests score them, stay exact). Ties are broken by row
order (the order pages were indexed), as Lucene breaks them by doc id.

Memory (issue 24 item 6): the vectors are held once, as a float32 CSC (column = term, the
layout a query needs: its columns are its postings), 8 bytes a non-zero (~4.4 KB a page at
550 non-zeros); the page metadata as dictionary-encoded columns (a code a page per field),
not a dict a page. Search, explain, filters and page_terms all read that one copy. Before:
a float64 CSC plus the loaded float32 CSR plus a dict a page, ~10.5 KB a page. Loading an
unmerged dir (1M pages: 245 shards) reads its parts twice, one at a time (column lengths, then
the columns filled in place), so the process never holds a second copy, not even as
freed-but-kept heap: 4,514 bytes a page after opening 1M pages (ExactScorer._build).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import scipy.sparse as sp

from ..approximate import TwoPhase
from ..encoded import CONFIG_FILE, EncodedDir, EncodedDirError, EncodedDirWriter
from ..sparse import SparseBatch
from ..vocab import VOCAB_SIZE, Vocabulary, default_vocabulary
from .base import Engine, EngineError, Hit, IndexWriter, PageFilter, Searcher

try:
    # scipy's own C loops for `csc[:, cols] @ w`, called directly: the public slicing path
    # spends ~0.1 ms a query in Python checks, which is what lets the float32 copy (upcast
    # per query) score as fast as the float64 copy it replaces (benchmarks/memory_ram.py)
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec, csr_row_index as _gather_columns
except ImportError:  # a scipy that moved them: the public path, same numbers
    _csc_matvec = _gather_columns = None

# non-zeros copied into the columns per step while loading: bounds the temporaries (~30 MB,
# under glibc's trim threshold, so they go back between steps rather than stay as free heap)
_SCATTER_STEP = 1 << 20
# metadata fields a hit carries (Hit.source, .page, .path, .sha256); other keys are not kept
_HIT_FIELDS = ("source", "page", "path", "sha256")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best positive scores: score desc, then row asc."""
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > k:
        # all rows scoring at least the k-th best, so ties at the boundary are kept
        kth = -np.partition(-scores[candidates], k - 1)[k - 1]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


class _Column:
    """One metadata field, dictionary-encoded: a page costs 4 bytes (pages of one file share
    their source, path and sha256 values)."""

    def __init__(self):
        self.values: list = []
        self._code: dict = {}
        self._codes: list[np.ndarray] = []
        self.codes = np.empty(0, dtype=np.int32)

    def extend(self, values: Iterable) -> None:
        code, vals = self._code, self.values
        out = []
        for v in values:
            c = code.get(v)
            if c is None:
                c = code[v] = len(vals)
                vals.append(v)
            out.append(c)
        self._codes.append(np.asarray(out, dtype=np.int32))

    def finish(self) -> None:
        self.codes = np.concatenate(self._codes) if self._codes else np.empty(0, dtype=np.int32)
        self._codes, self._code = [], {}

    def __getitem__(self, row: int):
        return self.values[self.codes[row]]

    def repack(self) -> None:
        """Fresh copies of the string values. Python keeps a 1 MiB arena of small objects as
        long as one object in it lives: a value parsed among per-page rows that are freed
        afterwards holds on to their memory (~470 bytes a page at 100k pages)."""
        self.values = [v.encode().decode() if isinstance(v, str) else v for v in self.values]


class _Ids:
    """The page ids, packed: one string of them all and where each ends (~19 + 8 bytes a page
    here). A str object a page costs ~80 bytes, and 1M of them, parsed among the metadata rows
    that loading frees, kept those rows' small-object arenas alive (~250 bytes a page)."""

    def __init__(self, ids: list[str]):
        self._ends = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), out=self._ends[1:])
        self._all = "".join(ids)

    def __len__(self) -> int:
        return len(self._ends) - 1

    def __getitem__(self, row: int) -> str:
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        row %= len(self)
        return self._all[self._ends[row]:self._ends[row + 1]]

    def __iter__(self):
        ends = self._ends.tolist()
        return (self._all[a:b] for a, b in zip(ends, ends[1:]))

    @property
    def nbytes(self) -> int:
        return self._ends.nbytes + sys.getsizeof(self._all)


class ExactScorer:
    """Query vectors against a corpus, exactly. Used by `memory`, tests and evaluation.

    ``ExactScorer(batch)`` or ``ExactScorer.from_batches(parts)`` (an encoded dir's parts,
    merged into the one CSC without ever holding a second whole copy of the corpus)."""

    text_index = None  # vsplade.bm25.TextIndex when the pages brought their text (hybrid)

    def __init__(self, batch: SparseBatch, vocab: Vocabulary | None = None):
        self._build([batch], vocab, batch.vocab_size)

    @classmethod
    def from_batches(cls, batches: Iterable[SparseBatch] | Callable[[], Iterable[SparseBatch]],
                     vocab: Vocabulary | None = None, vocab_size: int = VOCAB_SIZE) -> "ExactScorer":
        """The parts (a list, or a callable giving a fresh iterator over them: an encoded dir's
        iter_batches) read twice, one part at a time: once for each column's length, once to
        copy the part into its place in the columns (a single part is read once and converted
        whole). A one-shot iterator is listed first."""
        self = cls.__new__(cls)
        if not callable(batches):
            batches = list(batches)
        self._build(batches, vocab, vocab_size)
        return self

    def _build(self, batches, vocab: Vocabulary | None, vocab_size: int) -> None:
        """The CSC arrays allocated once at their final size, then filled part by part. Why not
        each part's CSC kept and merged at the end (before 2026-12-02): the parts are a second
        whole copy while loading, and tens of MB each, so they live in the heap (glibc's mmap
        threshold rises to the largest block freed) where, freed among small live blocks, that
        copy stayed in the process: RSS after opening 1M pages was ~2x the vectors. A single part
        (a merged dir, one batch) is converted whole instead: its CSR and CSC side by side is
        the same peak, without reading it twice."""
        self.vocab = vocab or default_vocabulary()
        ids: list[str] = []
        self.fields = {f: _Column() for f in _HIT_FIELDS}
        parts = batches if callable(batches) else (lambda: batches)
        counts = np.zeros(vocab_size, dtype=np.int64)
        part_rows: list[tuple[int, int]] = []  # (pages, non-zeros) a part: pass 2 must read the same
        texts = None  # vsplade.bm25.TextIndex, once a page brings its text (--text-field)
        first = None  # the first part's matrix, until a second part comes
        for b in parts():  # pass 1: metadata, and how many non-zeros each column holds
            rows = sum(n for n, _ in part_rows)
            if texts is None and any("text" in m for m in b.meta):
                from ..bm25 import TextIndex

                texts = TextIndex()
                texts.extend([None] * rows)  # pages before it had no text
            if texts is not None:
                texts.extend([m.get("text") for m in b.meta])
            mat = b.matrix
            counts += np.bincount(mat.indices[:mat.nnz], minlength=vocab_size)[:vocab_size]
            part_rows.append((len(b), mat.nnz))
            first = mat if len(part_rows) == 1 else None
            ids.extend(b.ids)
            for f, col in self.fields.items():
                col.extend(m.get(f) for m in b.meta)
            del b, mat  # one part at a time
        for col in self.fields.values():
            col.finish()
        self.ids = _Ids(ids)
        del ids
        self.text_index = texts.finish() if texts is not None else None
        self.num_rows = rows = sum(n for n, _ in part_rows)
        nnz = int(counts.sum())
        idx = np.int32 if max(nnz, rows) < 2**31 else np.int64
        if first is not None:
            c = sp.csc_matrix(first)
            del first
            c.sort_indices()  # explain and page_terms binary-search a column's rows
            self.indptr, self.indices = c.indptr.astype(idx, copy=False), c.indices.astype(idx, copy=False)
            self.data = c.data
            return
        self.indptr = np.zeros(vocab_size + 1, dtype=idx)
        np.cumsum(counts, out=self.indptr[1:])
        self.indices = np.empty(nnz, dtype=idx)
        self.data = np.empty(nnz, dtype=np.float32)
        nxt = self.indptr[:-1].astype(np.int64)  # where each column's next non-zero goes
        row0, seen = 0, 0
        for b in parts():  # pass 2: each part into its place; rows stay ascending in every column
            if seen == len(part_rows) or (len(b), b.matrix.nnz) != part_rows[seen]:
                raise EngineError("the pages changed while they were being loaded; open the index again")
            self._fill(b.matrix, row0, nxt)
            row0 += len(b)
            seen += 1
            del b
        if seen != len(part_rows) or not np.array_equal(nxt, self.indptr[1:]):
            raise EngineError("the pages changed while they were being loaded; open the index again")

    def _fill(self, m: sp.csr_matrix, row0: int, nxt: np.ndarray) -> None:
        """A CSR part's rows into the columns, a slice of rows at a time (bounds the
        temporaries: a merged dir with shards appended after it has one part of up to 200M
        non-zeros)."""
        ptr = m.indptr
        r, n = 0, m.shape[0]
        while r < n:
            r1 = int(np.searchsorted(ptr, ptr[r] + _SCATTER_STEP, side="right")) - 1
            r1 = min(n, max(r + 1, r1))
            lo, hi = int(ptr[r]), int(ptr[r1])
            # the slice as views of the part's arrays (m[r:r1] would copy them); scipy's
            # CSR -> CSC visits the rows in order, so each column's rows come out ascending
            c = sp.csr_matrix((m.data[lo:hi], m.indices[lo:hi], ptr[r:r1 + 1] - lo),
                              shape=(r1 - r, m.shape[1]), copy=False).tocsc()
            lens = np.diff(c.indptr)
            # the k-th non-zero of column j in this slice goes to nxt[j] + k
            dest = np.repeat(nxt - c.indptr[:-1], lens)
            dest += np.arange(c.nnz, dtype=np.int64)
            self.indices[dest] = c.indices + (row0 + r)
            self.data[dest] = c.data
            nxt += lens
            del c, dest
            r = r1

    def repack(self) -> None:
        """After the loaded pages' metadata rows are freed: let their memory go (_Column.repack)."""
        for col in self.fields.values():
            col.repack()

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors, metadata codes and page ids held (not the per-file values)."""
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes + self.ids.nbytes
                   + sum(c.codes.nbytes for c in self.fields.values()))

    def query_vector(self, query: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((self.vocab.id_of(t) for t in query), dtype=self.indptr.dtype, count=len(query))
        return ids, np.fromiter(query.values(), dtype=np.float64, count=len(query))

    def scores(self, query: Mapping[str, float]) -> np.ndarray:
        cols, weights = self.query_vector(query)
        out = np.zeros(self.num_rows)
        if len(cols) == 0:
            return out
        if _csc_matvec is None:
            m = sp.csc_matrix((self.data, self.indices, self.indptr), shape=(self.num_rows, len(self.indptr) - 1))
            return np.asarray(m[:, cols].astype(np.float64) @ weights).ravel()
        # the query's postings gathered (a column of the CSC is a row of its transpose), then
        # upcast once so the products and the sum are float64
        lens = self.indptr[cols + 1] - self.indptr[cols]
        sub_ptr = np.zeros(len(cols) + 1, dtype=self.indptr.dtype)
        np.cumsum(lens, out=sub_ptr[1:])
        rows = np.empty(int(sub_ptr[-1]), dtype=self.indices.dtype)
        vals = np.empty(len(rows), dtype=np.float32)
        _gather_columns(len(cols), cols, self.indptr, self.indices, self.data, rows, vals)
        _csc_matvec(self.num_rows, len(cols), sub_ptr, rows, vals.astype(np.float64), weights, out)
        return out

    def hit(self, row: int, score: float) -> Hit:
        f = self.fields
        return Hit(self.ids[row], float(score), f["source"][row], f["page"][row], path=f["path"][row],
                   sha256=f["sha256"][row])

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False,
               sources=None, page_min: int | None = None, page_max: int | None = None,
               two_phase: TwoPhase | None = None) -> list[Hit]:
        """The exact top-k, or with two_phase (vsplade.approximate.TwoPhase) the top-k of a
        window of candidates found by the query's high-weight terms, scored exactly."""
        two_phase = TwoPhase.of(two_phase)
        page_filter = PageFilter.of(sources, page_min, page_max)
        if two_phase is not None and not two_phase.is_exact_for(query):
            rows, row_scores = self._two_phase(query, k, two_phase, page_filter)
        else:
            scores = self.scores(query)
            if page_filter is not None:
                scores = np.where(self.mask(page_filter), scores, 0.0)  # inside the ranking, not after a top-k
            rows = top_k(scores, k)
            row_scores = scores[rows]
        hits = []
        for r, score in zip(rows.tolist(), row_scores.tolist()):
            hit = self.hit(r, score)
            if explain:
                hit.explain = self.explain(int(r), query)
            hits.append(hit)
        return hits

    def _two_phase(self, query: Mapping[str, float], k: int, two_phase: TwoPhase,
                   page_filter: PageFilter | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, exact scores) of the two-phase top-k: phase 1 scores every page on the kept
        terms' postings only (the pruned terms' long lists are never gathered), phase 2 reads
        the window's weights for every term from the columns (a binary search of each
        candidate in each column)."""
        kept, _ = two_phase.split(query)
        partial = self.scores(kept)
        if page_filter is not None:
            partial = np.where(self.mask(page_filter), partial, 0.0)
        cand = np.sort(top_k(partial, two_phase.window(k)))  # ascending rows: ties break by row below
        if len(cand) == 0:
            return cand, np.zeros(0)
        # the columns' dtype: searchsorted would otherwise cast each whole column to int64
        keys = cand.astype(self.indices.dtype)
        cols, weights = self.query_vector(query)
        # summed term by term in the query's order, float32 weights upcast, as scores() sums:
        # a returned score is bit for bit the exact one
        exact = np.zeros(len(cand))
        for col, w in zip(cols.tolist(), weights.tolist()):
            lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
            if lo == hi:
                continue
            column = self.indices[lo:hi]
            pos = np.minimum(np.searchsorted(column, keys), hi - lo - 1)
            found = column[pos] == keys
            exact += np.where(found, self.data[lo + pos].astype(np.float64), 0.0) * w
        best = top_k(exact, k)
        return cand[best], exact[best]

    def search_text(self, text: str, k: int = 10, page_filter: PageFilter | None = None) -> list[Hit]:
        """BM25 over the pages' text (vsplade.bm25, Lucene's scoring), top-k as search() ranks;
        nothing for an index whose pages brought no text."""
        if self.text_index is None or k <= 0:
            return []
        scores = self.text_index.scores(text)
        if page_filter is not None:
            scores = np.where(self.mask(page_filter), scores, 0.0)
        rows = top_k(scores, k)
        return [self.hit(r, s) for r, s in zip(rows.tolist(), scores[rows].tolist())]

    def search_grouped(self, query: Mapping[str, float], k: int = 10, per_group: int = 3, explain: bool = False,
                       sources=None, page_min: int | None = None, page_max: int | None = None) -> list:
        """The k best files, each with its per_group best pages, from the exact scores
        (vsplade.grouping.top_groups over the source column's codes)."""
        from ..grouping import FileHit, top_groups

        scores = self.scores(query)
        page_filter = PageFilter.of(sources, page_min, page_max)
        if page_filter is not None:
            scores = np.where(self.mask(page_filter), scores, 0.0)
        out = []
        for rows in top_groups(scores, self.fields["source"].codes, k, per_group):
            hits = [self.hit(r, scores[r]) for r in rows]
            if explain:
                for h, r in zip(hits, rows):
                    h.explain = self.explain(r, query)
            out.append(FileHit(hits[0].source, hits[0].score, hits))
        return out

    def mask(self, page_filter: PageFilter) -> np.ndarray:
        """Rows the filter keeps, decided once per distinct (source, page) pair."""
        src, page = self.fields["source"], self.fields["page"]
        if self.num_rows == 0:
            return np.zeros(0, dtype=bool)
        pair = src.codes.astype(np.int64) * max(1, len(page.values)) + page.codes
        uniq, inverse = np.unique(pair, return_inverse=True)
        n = max(1, len(page.values))
        keep = np.fromiter((page_filter.matches(src.values[u // n], page.values[u % n]) for u in uniq.tolist()),
                           dtype=bool, count=len(uniq))
        return keep[inverse]

    def _cell(self, row: int, col: int) -> float:
        lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
        pos = lo + int(np.searchsorted(self.indices[lo:hi], row))
        return float(self.data[pos]) if pos < hi and self.indices[pos] == row else 0.0

    def explain(self, row: int, query: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for term, w in query.items():
            d = self._cell(row, self.vocab.id_of(term))
            if d:
                out[term] = float(w) * d
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def row(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """A page's (term ids, weights), read from the columns (one pass over the postings:
        for a page's terms on demand, not for scoring)."""
        pos = np.flatnonzero(self.indices == row)
        cols = np.searchsorted(self.indptr, pos, side="right") - 1
        return cols.astype(np.int64), self.data[pos]


class MemorySearcher(Searcher):
    _rows: dict[str, int] | None = None  # page id -> row, built on the first page_terms()
    can_give_page_terms = True

    def __init__(self, path: Path):
        self.scorer, self._encoder_info = self._load(path)
        # the EncodedDir (every page's metadata row as a dict) is gone now; the few values the
        # scorer kept were parsed among those rows and would keep their memory arenas alive
        self.scorer.repack()

    @staticmethod
    def _load(path: Path) -> tuple[ExactScorer, dict]:
        # only what is asked later is kept: the EncodedDir holds every page's ids and
        # metadata rows as Python objects, which the scorer has in its own columns
        encoded = EncodedDir(path)
        try:
            return ExactScorer.from_batches(encoded.iter_batches, vocab_size=encoded.vocab_size), encoded.encoder_info
        except EngineError as e:
            raise EngineError(f"{path}: {e}") from None
        finally:
            encoded.close()

    takes_two_phase = True  # search(..., two_phase=TwoPhase(...)): ExactScorer.search

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **filters) -> list[Hit]:
        return self.scorer.search(query, k, explain=explain, **filters)

    def search_grouped(self, query: Mapping[str, float], k: int = 10, per_group: int = 3, explain: bool = False,
                       **filters) -> list:
        return self.scorer.search_grouped(query, k, per_group, explain=explain, **filters)

    def search_text(self, text: str, k: int = 10, filter: PageFilter | None = None) -> list[Hit]:
        return self.scorer.search_text(text, k, filter)

    def index_info(self) -> dict:
        return self._encoder_info

    def page_terms(self, page_id: str, n: int) -> list[tuple[str, float]] | None:
        if self._rows is None:
            self._rows = {i: r for r, i in enumerate(self.scorer.ids)}
        row = self._rows.get(page_id)
        if row is None:
            return None
        ids, weights = self.scorer.row(row)
        order = np.argsort(-weights, kind="stable")[:n]
        return [(self.scorer.vocab.term(int(ids[j])), float(weights[j])) for j in order]


class MemoryEngine(Engine):
    """``--index DIR``: an encoded dir, loaded whole into memory at search time. Its writer
    is the encoded dir's own (vsplade.encoded.EncodedDirWriter, an IndexWriter)."""

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
        return EncodedDirWriter(self.path, info, recreate=recreate)

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
        # a page's text (--text-field) is for the BM25 field, not for page listings
        return [] if d is None else [{k: v for k, v in r.items() if k != "text"} for r in d.catalog()]

    def version(self):
        # the manifest is replaced (a new inode) at every commit and every property change
        try:
            st = (self.path / CONFIG_FILE).stat()
        except OSError:
            return "absent"
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def location_info(self) -> dict:
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.is_dir() else 0
        d = self._existing()
        return {"engine": self.name, "index": str(self.path.resolve()), "size_bytes": size,
                "encoder": d.encoder_info if d else None, "complete": d.complete if d else None}
