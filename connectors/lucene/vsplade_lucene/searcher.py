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
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Mapping, Sequence

from vsplade.engines.base import EngineError, Hit, Searcher
from vsplade.sparse import quantize_query_impacts

from . import jvm
from .store import CONTENTS_FIELD, ID_FIELD, DocsFile, is_lucene_dir, read_config

log = logging.getLogger(__name__)

# classic QueryParser syntax characters (QueryParser.escape) plus whitespace
_SPECIAL = set('\\+-!():^[]"{}~*?|&/ ')
_OPERATORS = {"AND", "OR", "NOT", "TO"}
_EXPLAIN_TERM = re.compile(r"weight\(" + CONTENTS_FIELD + r":(.*) in \d+\)")


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
        self._directory = J.FSDirectory.open(J.Paths.get(str(self.path.resolve())))
        self._reader = J.DirectoryReader.open(self._directory)
        self._searcher = J.IndexSearcher(self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._searcher.setSimilarity(J.ImpactSimilarity())
        self.num_docs = int(self._reader.maxDoc())
        rows = DocsFile(self.path).read(limit=self.num_docs) if self.config else []
        if rows and len(rows) < self.num_docs:
            raise EngineError(
                f"{self.path}: vsplade-docs.jsonl lists {len(rows)} pages, the index holds {self.num_docs}; "
                "rebuild with --recreate"
            )
        self._ids = [r["id"] for r in rows] if rows else None
        self._sources = [r.get("source") for r in rows] if rows else None
        self._pages = [r.get("page") for r in rows] if rows else None
        self._stored = None
        self._escaped: dict[str, str] = {}
        self._parser = J.QueryParser(CONTENTS_FIELD, J.WhitespaceAnalyzer())
        self._parse_lock = threading.Lock()
        self._closed = False

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
        # QueryParser is not thread-safe, and one parser per thread is not safe either under
        # pyjnius: a Java method's Python object is shared by every instance of the class and
        # rebound to `self` on each attribute access (kivy/pyjnius#287, #563), so two threads
        # calling parse() on two parsers can run one parser twice. One parser, one lock; the
        # search itself (one shared IndexSearcher) runs in parallel.
        with self._parse_lock:
            return self._parser.parse(qs)

    def lucene_query(self, query: Mapping[str, float]):
        qs = self.query_string(query)
        return self._parse(qs) if qs else None

    # -- search -----------------------------------------------------------------------------

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False) -> list[Hit]:
        if self._closed:
            raise EngineError("searcher is closed")
        if k <= 0:
            return []
        impacts = quantize_query_impacts(query, self.scale)
        qs = self.query_string(query, impacts)
        if not qs:
            return []
        lq = self._parse(qs)
        top = self._searcher.search(lq, int(k))
        hits = [self._hit(sd.doc, sd.score) for sd in top.scoreDocs]
        if explain:
            for h, sd in zip(hits, top.scoreDocs):
                h.explain = self.explain(lq, sd.doc, impacts)
        return hits

    def _hit(self, doc: int, score: float) -> Hit:
        score = score * self._norm
        if self._ids is not None:
            return Hit(self._ids[doc], score, self._sources[doc], self._pages[doc])
        if self._stored is None:
            self._stored = self._reader.storedFields()
        return Hit(self._stored.document(doc).get(ID_FIELD), score)

    def explain(self, lucene_query, doc: int, impacts: Mapping[str, int]) -> dict[str, float]:
        """term -> contribution (query impact x doc impact / scale^2), from Lucene's explain.

        ImpactSimilarity's explanation of a clause carries the document impact (the term
        frequency) without the query boost, so the boost is applied here."""
        out: dict[str, float] = {}
        stack = [self._searcher.explain(lucene_query, doc)]
        while stack:
            e = stack.pop()
            m = _EXPLAIN_TERM.search(e.getDescription())
            if m and m.group(1) in impacts:
                out[m.group(1)] = float(e.getValue().floatValue()) * impacts[m.group(1)] * self._norm
                continue
            stack.extend(e.getDetails())
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def batch_search(
        self, queries: Sequence[Mapping[str, float]], k: int = 10, threads: int | None = None
    ) -> list[list[Hit]]:
        """Queries split over `threads` Python threads; the JVM releases the GIL while it searches."""
        threads = max(1, threads or self.threads)
        if threads == 1 or len(queries) < 2:
            return [self.search(q, k) for q in queries]
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
                    out[i] = self.search(queries[i], k)
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
            self._reader.close()
