"""Searching a Lucene impact index with {term: weight} queries, without a neural model.

One query = one Lucene query string parsed and run in the JVM:
``term1^q1 term2^q2 ...`` where ``q = round(w * scale)`` (the documents' quantization), each
term escaped for the classic QueryParser. With Anserini's ImpactSimilarity a clause scores
``boost * freq`` = query impact x document impact, so a hit's Lucene score is the exact integer
dot product; we report it divided by scale^2 to be comparable with float scores.

Unlike Pyserini's LuceneImpactSearcher there is no per-query Python idf work and no term
dropping (it drops terms with idf <= min_idf, e.g. a term present in every doc), query
weights are rounded (not truncated), and long queries do not hit the 1024-clause limit
(raised in jvm.start). Hit metadata (id, source, page) comes from vsplade-docs.jsonl, aligned
with Lucene doc ids, so a hit costs no extra JVM call; an index without that file (built by
Pyserini) falls back to the stored ``id`` field.

Threads: one searcher serves any number of Python threads. The IndexSearcher's search and
explain run in parallel through method objects of this searcher's own (`jvm.private`); every
other Java call (parsing, filter queries, reading an explanation, stored fields, open/close)
holds `jvm.LOCK`, because pyjnius shares a method object between all instances of a class
(jvm.py, Threads). An explanation is read as one ``toString()`` under the lock, not walked
node by node, so explain costs the lock one call per hit.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vsplade.approximate import TwoPhase, wants_exact
from vsplade.engines.base import EngineError, Hit, PageFilter, Searcher
from vsplade.pruning import StaticPruning
from vsplade.sparse import quantize_query_impacts

from . import jvm
from .store import CONTENTS_FIELD, ID_FIELD, TEXT_FIELD, DocsFile, is_lucene_dir, page_rows, read_config

log = logging.getLogger(__name__)
# every search of a pruned index is two-phase with all query terms: see search()
PRUNED_INDEX_TWO_PHASE = TwoPhase(0.0, 10.0)
# ... and of an index with capped postings (--prune cap=C, capped.py): phase 1 reads each query
# term's cap heaviest postings for a window of k x 20 (RESULTS.md: cap 3000 at 1M pages, recall@10
# 0.97; a window of 10 lost 0.05 of it)
CAPPED_TWO_PHASE = TwoPhase(0.0, 20.0)

# classic QueryParser syntax characters (QueryParser.escape) plus whitespace
_SPECIAL = set('\\+-!():^[]"{}~*?|&/ ')
_OPERATORS = {"AND", "OR", "NOT", "TO"}
_EXPLAIN_TERM = re.compile(r"weight\(" + CONTENTS_FIELD + r":(.*) in \d+\)")
# one line of Explanation.toString(): indentation, "<value> = <description>"
_EXPLAIN_LINE = re.compile(r"^\s*(\S+) = (.*)$")
# the two IndexSearcher methods called without the lock, with explicit signatures: pyjnius'
# overload choice picked the protected explain(Weight, int) for a BooleanQuery (filters)
_SEARCHER_METHODS = {
    "search": "(Lorg/apache/lucene/search/Query;I)Lorg/apache/lucene/search/TopDocs;",
    "explain": "(Lorg/apache/lucene/search/Query;I)Lorg/apache/lucene/search/Explanation;",
}
# TextPages.top (BM25 on the text field, hybrid search), called lock-free like search()
_TEXT_METHODS = {"top": "(Lorg/apache/lucene/search/Query;I)[B"}
# classes pyjnius converts results to; loaded (autoclass) under the lock before any search
_RESULT_CLASSES = ("org.apache.lucene.search.TopDocs", "org.apache.lucene.search.ScoreDoc",
                   "org.apache.lucene.search.Explanation", "org.apache.lucene.search.TotalHits")


def escape_term(term: str) -> str:
    """A term as a literal for Lucene's classic QueryParser."""
    out = "".join("\\" + c if c in _SPECIAL else c for c in term)
    if term in _OPERATORS:
        out = "\\" + out  # a bare AND/OR/NOT would be parsed as an operator
    return out


class LuceneImpactIndexSearcher(Searcher):
    def __init__(self, path: str | Path, scale: float | None = None, threads: int = 1):
        self.path = Path(path)
        if not is_lucene_dir(self.path):
            raise EngineError(f"--index {self.path}: no Lucene index there (build one with `vsplade index`)")
        self.config = read_config(self.path) or {}
        if scale is None:
            scale = self.config.get("scale", 100.0)
        self.scale = float(scale)
        self._norm = 1.0 / (self.scale * self.scale)
        self.threads = threads
        J = jvm.classes()
        with jvm.LOCK:
            from jnius import autoclass

            for name in _RESULT_CLASSES:
                autoclass(name)
            self._directory = J.FSDirectory.open(J.Paths.get(str(self.path.resolve())))
            self._reader = J.DirectoryReader.open(self._directory)
            searcher = J.IndexSearcher(self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
            searcher.setSimilarity(J.ImpactSimilarity())
            # the lock-free view: search and explain on this instance only (module docstring)
            self._searcher = jvm.private(searcher, _SEARCHER_METHODS)
            self.num_docs = int(self._reader.maxDoc())
            # re-read after the reader is open: a writer flags "deletes" before the commit that
            # drops pages, so a reader that sees deletions always finds the flag here
            self.config = read_config(self.path) or {}
            deletes = bool(self.config.get("deletes"))
            # doc ids follow Lucene's merges, not the docs file: the commit's own stored rows
            stored_rows = [r or {} for r in page_rows(self._reader)] if deletes else None
            self._parser = J.QueryParser(CONTENTS_FIELD, J.WhitespaceAnalyzer())
        if deletes:
            rows = stored_rows
        else:
            rows = DocsFile(self.path).read(limit=self.num_docs) if self.config else []
            if rows and len(rows) < self.num_docs:
                raise EngineError(
                    f"{self.path}: vsplade-docs.jsonl lists {len(rows)} pages, the index holds {self.num_docs}; "
                    "rebuild with --recreate"
                )
        self._rows = rows if rows else None
        self._page_arrays = None  # (source codes, unique sources, pages) for filters, on first use
        self._page_arrays_lock = threading.Lock()
        self._group_bytes: bytes | None = None  # group (source) code per doc id, int32 LE, for GroupPages
        self._stored = None
        self._text_searcher = None  # BM25 on the text field, opened by the first search_text
        self._escaped: dict[str, str] = {}
        self._closed = False
        # two-phase's phase 2 from the forward index (forward.py) when the index has one;
        # False forces the Lucene doc-set-filter phase 2 (benchmarks compare the two)
        self.use_forward = True
        self._forward = None
        self._forward_checked = False
        self._capped = None  # capped postings (capped.py), opened on first use
        self._capped_checked = False

    # -- queries ----------------------------------------------------------------------------

    def query_string(self, query: Mapping[str, float], impacts: Mapping[str, int] | None = None) -> str:
        """The Lucene query string for a {term: weight} query (empty when nothing is left)."""
        esc = self._escaped
        parts = []
        if impacts is None:
            impacts = quantize_query_impacts(query, self.scale)
        for term, q in impacts.items():
            e = esc.get(term)
            if e is None:
                e = esc[term] = escape_term(term)
            parts.append(f"{e}^{q}")
        return " ".join(parts)

    def _parse(self, qs: str):
        # QueryParser is not thread-safe, and one parser per thread (or per searcher) is not
        # safe either under pyjnius: parse() on two parsers from two threads can run one parser
        # twice (jvm.py, Threads). The process-wide JVM lock, since two searchers (two
        # collections) have two parsers.
        with jvm.LOCK:
            return self._parser.parse(qs)

    def lucene_query(self, query: Mapping[str, float]):
        qs = self.query_string(query)
        return self._parse(qs) if qs else None

    # -- search -----------------------------------------------------------------------------

    takes_two_phase = True  # search(..., two_phase=TwoPhase(...)) (vsplade.approximate)

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False, sources=None,
               page_min: int | None = None, page_max: int | None = None,
               two_phase: TwoPhase | None = None) -> list[Hit]:
        """Top-k pages; sources / page_min / page_max (vsplade.engines.base.PageFilter) restrict
        the pages inside the Lucene search (a FILTER clause over the matching doc ids, so the
        top-k is that of the filtered pages and scores are unchanged).

        two_phase (vsplade.approximate.TwoPhase): phase 1 is a Lucene search of the query's
        kept terms (same impacts, same page filter) for the window of candidates; phase 2
        scores exactly those pages with every term: from the forward index (forward.py: the
        window's own impacts, bit-equal to Lucene's scores) when the index has one, else the
        whole query in Lucene with the candidates as its doc-set FILTER (a returned score is
        the exact one; explain explains it)."""
        if self._closed:
            raise EngineError("searcher is closed")
        exact = wants_exact(two_phase)
        two_phase = TwoPhase.of(two_phase)
        if exact:
            self._check_exact_possible()
        capped = None if exact else self._capped_postings()
        if capped is not None:
            return self._search_capped(capped, query, k, explain, PageFilter.of(sources, page_min, page_max),
                                       two_phase or CAPPED_TWO_PHASE)
        if two_phase is None and not exact and self._rescores_pruned():
            # a statically pruned index (--prune) answers with its unpruned pages' scores: the
            # pruned postings find a window, the forward index scores it (RESULTS.md: top 128
            # + TwoPhase(0, 10) at 1M pages, recall@10 0.985 against exact)
            two_phase = PRUNED_INDEX_TWO_PHASE
        if k <= 0:
            return []
        impacts = quantize_query_impacts(query, self.scale)
        qs = self.query_string(query, impacts)
        if not qs:
            return []
        page_filter = PageFilter.of(sources, page_min, page_max)
        mask, admits_none = self._mask_of(page_filter)
        if admits_none:
            return []
        window = 0
        if two_phase is not None:
            kept, _ = two_phase.split(query)
            # pruned on the float weights; the kept terms keep their impacts (a kept term
            # rounded to 0 is gone from both phases, as from the exact search)
            kept_impacts = {t: impacts[t] for t in kept if t in impacts}
            # a statically pruned index whose forward index holds the unpruned pages
            # (forward.py, "unpruned"): phase 2 restores the full scores even when the query
            # keeps every term
            if kept_impacts and (len(kept_impacts) < len(impacts) or self._rescores_pruned()):
                window = two_phase.window(k)
        if window:
            with jvm.LOCK:
                lq1 = self._parser.parse(self.query_string(kept, kept_impacts))
                if mask is not None:
                    lq1 = self._filtered(lq1, self._mask_query_unlocked(mask))
            first = self._searcher.search(lq1, int(window))
            cand = np.fromiter((sd.doc for sd in first.scoreDocs), dtype=np.int64)
            if len(cand) == 0:
                return []
            fw = self._forward_index() if self.use_forward else None
            if fw is not None:
                # phase 2 in numpy: the window's own pages, Lucene's exact scores and tie order
                docs, scores = fw.top_k(cand, *fw.query_arrays(impacts), k)
                hits = [self._hit(int(d), float(sc)) for d, sc in zip(docs, scores)]
                if explain:
                    lq = self._parse(qs)
                    for h, d in zip(hits, docs):
                        h.explain = self.explain(lq, int(d), impacts)
                return hits
            # the candidates' bits packed directly (not a num_docs bool mask per query); inside
            # the page filter already, as phase 1 was filtered
            packed = np.zeros((self.num_docs + 7) // 8, dtype=np.uint8)
            np.bitwise_or.at(packed, cand >> 3, (1 << (cand & 7)).astype(np.uint8))
        with jvm.LOCK:  # per-query objects (module docstring)
            lq = self._parser.parse(qs)
            if window:
                lq = self._filtered(lq, jvm.classes().IndexPages.filter(packed.tobytes(), int(self.num_docs)))
            elif mask is not None:
                lq = self._filtered(lq, self._mask_query_unlocked(mask))
        # the search itself runs without the lock (this searcher's own method object);
        # scoreDocs / doc / score are field reads, which pyjnius does not bind
        top = self._searcher.search(lq, int(k))
        docs = [(sd.doc, sd.score) for sd in top.scoreDocs]
        hits = [self._hit(doc, score) for doc, score in docs]
        if explain:
            for h, (doc, _) in zip(hits, docs):
                h.explain = self.explain(lq, doc, impacts)
        return hits

    def _search_capped(self, capped, query: Mapping[str, float], k: int, explain: bool,
                       page_filter: PageFilter | None, two_phase: TwoPhase) -> list[Hit]:
        """Two-phase search without a Lucene query, one Java call (capped.py): phase 1 the kept
        terms' capped postings for the window, phase 2 the window's pages from the forward index
        (bit-equal to Lucene's scores; term ids through the forward index's vocabulary binding);
        the page filter restricts phase 1's candidates, so hits are the filtered pages' best."""
        if k <= 0:
            return []
        impacts = quantize_query_impacts(query, self.scale)
        if not impacts:
            return []
        mask, admits_none = self._mask_of(page_filter)
        if admits_none:
            return []
        kept, _ = two_phase.split(query)
        fw = self._forward
        ids, imps = fw.query_arrays(impacts)
        kept_ids, kept_imps = ids, imps  # the recommended setting keeps every term (CAPPED_TWO_PHASE)
        if len(kept) < len(query):
            kept_ids, kept_imps = fw.query_arrays({t: impacts[t] for t in kept if t in impacts})
        docs, scores = capped.top_k(kept_ids, kept_imps, ids, imps, two_phase.window(k), k, mask)
        hits = [self._hit(int(d), float(sc)) for d, sc in zip(docs, scores)]
        if explain:
            lq = self._parse(self.query_string(query, impacts))
            for h, d in zip(hits, docs):
                h.explain = self.explain(lq, int(d), impacts)
        return hits

    def _capped_postings(self):
        """The index's capped postings (capped.py) with its forward index, or None: both must
        match the open reader's doc count (a later writer rebuilds them at close)."""
        if not self._capped_checked:
            setting = (self.config.get("static_pruning") or {}).get("cap")
            fw = self._forward_index() if setting is not None and self.use_forward else None
            with self._page_arrays_lock:  # (not re-entrant: the forward index is opened above)
                if not self._capped_checked:
                    if fw is not None:
                        from .capped import CappedPostings

                        self._capped = CappedPostings.open(self.path, fw)
                    self._capped_checked = True
        return self._capped

    def search_text(self, text: str, k: int = 10, filter: PageFilter | None = None) -> list[Hit]:
        """BM25 (k1=0.9, b=0.4) over the pages' ``text`` field (vsplade.lucene.TextPages: a
        bag-of-words query through the StandardAnalyzer, a repeated word boosted by its count),
        on a second IndexSearcher of the same reader with BM25Similarity; the page filter is
        a FILTER clause as in search(). An index built without --text-field has no such field:
        every search finds nothing (Collection refuses such an index first)."""
        if self._closed:
            raise EngineError("searcher is closed")
        if k <= 0 or not text.strip():
            return []
        mask, admits_none = self._mask_of(filter)
        if admits_none:
            return []
        J = jvm.classes()
        with jvm.LOCK:  # per-query objects (module docstring)
            if self._text_searcher is None:
                # its own IndexSearcher (BM25) on this reader; top() called lock-free, as search()
                self._text_searcher = jvm.private(J.TextPages(self._reader), _TEXT_METHODS)
            lq = J.TextPages.bagOfWords(TEXT_FIELD, text)
            if lq is not None and mask is not None:
                lq = self._filtered(lq, self._mask_query_unlocked(mask))
        if lq is None:
            return []
        blob = self._text_searcher.top(lq, int(k))
        blob = blob.tostring() if hasattr(blob, "tostring") else bytes(blob)
        packed = np.frombuffer(blob, dtype=[("doc", "<i4"), ("score", "<f4")])
        # BM25 scores as they are: no impact scale to divide out
        return [self._hit(int(d), float(sc), bm25=True) for d, sc in zip(packed["doc"], packed["score"])]

    def _check_exact_possible(self) -> None:
        """An exact search (two_phase=False) needs every posting: an index built with --prune
        top=N / floor=W holds only each page's heaviest weights (cap=C keeps them all)."""
        pruning = StaticPruning.from_properties(self.config)
        if pruning is not None and pruning.prunes_pages:
            raise EngineError(f"{self.path}: built with --prune {pruning}: Lucene holds each page's heaviest "
                              "weights only, so it has no exact search (re-index without --prune, or with "
                              "--prune cap=C, which keeps every posting)")

    def _rescores_pruned(self) -> bool:
        fw = self._forward_index() if self.use_forward else None
        return fw is not None and fw.unpruned

    def _forward_index(self):
        """The index's forward index (forward.py), opened on first use; None without one."""
        if not self._forward_checked:
            with self._page_arrays_lock:
                if not self._forward_checked:
                    from .forward import open_for_search

                    self._forward = open_for_search(self.path, self.num_docs, self.config)
                    self._forward_checked = True
        return self._forward

    @staticmethod
    def _filtered(lq, filter_query):
        """lq restricted to filter_query's pages, scores unchanged (a FILTER clause); under
        jvm.LOCK."""
        J = jvm.classes()
        b = J.BooleanQueryBuilder()
        b.add(lq, J.Occur.MUST)
        b.add(filter_query, J.Occur.FILTER)
        return b.build()

    def search_grouped(self, query: Mapping[str, float], k: int = 10, per_group: int = 3, explain: bool = False,
                       sources=None, page_min: int | None = None, page_max: int | None = None) -> list:
        """The k best files, each with its per_group best pages, grouped inside Lucene: one
        collector (GroupPages in the helper jar) visits every matching page and keeps each file's
        best pages, so no file is missed the way grouping a page top-k would miss it."""
        from vsplade.grouping import FileHit

        if self._closed:
            raise EngineError("searcher is closed")
        impacts = quantize_query_impacts(query, self.scale)
        qs = self.query_string(query, impacts)
        if not qs or k <= 0:
            return []
        codes, uniq, _, live = self._arrays()
        page_filter = PageFilter.of(sources, page_min, page_max)
        J = jvm.classes()
        with jvm.LOCK:  # per-query objects and the static call (module docstring)
            lq = self._parser.parse(qs)
            if page_filter is not None:
                mask = self.filter_mask(page_filter)
                if not mask.any():
                    return []
                b = J.BooleanQueryBuilder()
                b.add(lq, J.Occur.MUST)
                b.add(self._mask_query_unlocked(mask), J.Occur.FILTER)
                lq = b.build()
            if self._group_bytes is None:
                self._group_bytes = np.where(live, codes, -1).astype("<i4").tobytes()
            flat = np.asarray(J.GroupPages.search(self._searcher, lq, self._group_bytes, int(len(uniq)), int(k),
                                                  int(per_group)), dtype=np.int32)
        out, p = [], 0
        while p < len(flat):
            group, n = int(flat[p]), int(flat[p + 1])
            pairs = flat[p + 2 : p + 2 + 2 * n].reshape(n, 2)
            hits = [self._hit(int(doc), float(bits.view(np.float32))) for doc, bits in pairs]
            if explain:
                for h, doc in zip(hits, pairs[:, 0]):
                    h.explain = self.explain(lq, int(doc), impacts)
            out.append(FileHit(uniq[group] or None, hits[0].score, hits))
            p += 2 + 2 * n
        return out

    def _arrays(self):
        if self._rows is None:
            raise EngineError(
                f"{self.path} holds no vsplade page metadata (built outside vsplade?); grouping and filters "
                "need an index built by vsplade: re-index it with `vsplade index`"
            )
        if self._page_arrays is None:
            with self._page_arrays_lock:  # built once, by the first thread that filters
                if self._page_arrays is None:
                    srcs = [r.get("source") for r in self._rows]
                    uniq, codes = np.unique(np.array([s or "" for s in srcs], dtype=object), return_inverse=True)
                    pages = np.array([r.get("page") if r.get("page") is not None else -(2**62)
                                      for r in self._rows], dtype=np.int64)
                    live = np.array([bool(r.get("id")) for r in self._rows], dtype=bool)
                    self._page_arrays = (codes, uniq, pages, live)
        return self._page_arrays

    def _mask_of(self, page_filter: PageFilter | None) -> tuple[np.ndarray | None, bool]:
        """(the filter's doc-id mask, or None without a filter; True when it admits no page,
        so the search has no hits), the preamble of every filtered search here."""
        if page_filter is None:
            return None, False
        mask = self.filter_mask(page_filter)
        return mask, not mask.any()

    def filter_mask(self, page_filter: PageFilter) -> np.ndarray:
        """Which doc ids of this reader the filter admits (deleted docs: none), vectorized over
        the distinct sources."""
        codes, uniq, pages, live = self._arrays()
        mask = live.copy()
        if page_filter.sources is not None:
            ok = np.fromiter((PageFilter(page_filter.sources).matches(u, None) for u in uniq), dtype=bool,
                             count=len(uniq))
            mask &= ok[codes]
        if page_filter.page_min is not None:
            mask &= pages >= page_filter.page_min
        if page_filter.page_max is not None:
            mask &= (pages <= page_filter.page_max) & (pages > -(2**62))
        return mask

    def filter_query(self, page_filter: PageFilter):
        """The filter as a Lucene query over doc ids (vsplade.lucene.IndexPages.filter); None
        when no page matches."""
        mask = self.filter_mask(page_filter)
        if not mask.any():
            return None
        return self._mask_query(mask)

    def _mask_query(self, mask: np.ndarray):
        with jvm.LOCK:
            return self._mask_query_unlocked(mask)

    def _mask_query_unlocked(self, mask: np.ndarray):
        packed = np.packbits(mask, bitorder="little").tobytes()
        return jvm.classes().IndexPages.filter(packed, int(self.num_docs))

    def _hit(self, doc: int, score: float, bm25: bool = False) -> Hit:
        # impact scores are integers x scale^2; BM25 scores are reported as Lucene gives them
        score = float(score) if bm25 else score * self._norm
        if self._rows is not None:
            r = self._rows[doc]
            return Hit(r["id"], score, r.get("source"), r.get("page"), path=r.get("path"), sha256=r.get("sha256"))
        with jvm.LOCK:  # one StoredFields (not thread-safe in Lucene), per-hit Documents
            if self._stored is None:
                self._stored = self._reader.storedFields()
            return Hit(self._stored.document(doc).get(ID_FIELD), score)

    def explain(self, lucene_query, doc: int, impacts: Mapping[str, int]) -> dict[str, float]:
        """term -> contribution (query impact x doc impact / scale^2), from Lucene's explain.

        ImpactSimilarity's explanation of a clause carries the document impact (the term
        frequency) without the query boost, so the boost is applied here. The explanation is
        computed without the lock and read as text under it (one call, module docstring):
        each line is "<value> = <description>", children indented below their parent; term
        names hold no whitespace (vsplade.vocab), so a line is one node."""
        e = self._searcher.explain(lucene_query, int(doc))
        with jvm.LOCK:
            text = e.toString()
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = _EXPLAIN_LINE.match(line)
            if not m:
                continue
            t = _EXPLAIN_TERM.search(m.group(2))
            if t and t.group(1) in impacts:
                # Float.toString round-trips the float32 value; np.float32 restores it exactly
                out[t.group(1)] = float(np.float32(m.group(1))) * impacts[t.group(1)] * self._norm
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def batch_search(
        self, queries: Sequence[Mapping[str, float]], k: int = 10, threads: int | None = None, **options: Any
    ) -> list[list[Hit]]:
        """Queries split over `threads` Python threads; the JVM releases the GIL while it searches.
        options: as search() takes them (explain, filters)."""
        threads = max(1, threads or self.threads)
        if threads == 1 or len(queries) < 2:
            return [self.search(q, k, **options) for q in queries]
        out: list[list[Hit] | None] = [None] * len(queries)
        errors: list[BaseException] = []
        next_i = iter(range(len(queries)))
        lock = threading.Lock()

        def work():
            try:
                while True:
                    with lock:
                        i = next(next_i, None)
                    if i is None:
                        return
                    out[i] = self.search(queries[i], k, **options)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
            finally:
                jvm.detach_thread()

        workers = [threading.Thread(target=work, daemon=True) for _ in range(min(threads, len(queries)))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        return out  # type: ignore[return-value]

    def index_info(self) -> dict:
        return dict(self.config.get("encoder", {}))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._capped is not None:
                self._capped.close()
            with jvm.LOCK:
                self._reader.close()
                jvm.release_private(self._searcher)
                if self._text_searcher is not None:
                    jvm.release_private(self._text_searcher)
