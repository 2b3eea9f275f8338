"""--sparse-ann: a SEISMIC `sparse_vector` field (neural-search 3.3+, `index.sparse: true`)
keyed by token ids folded to id % 32768 (the folding, ceilings and thresholds:
vsplade_opensearch/sparse_ann.py). `_meta.vsplade.sparse_ann` records the parameters, so
searches and later runs follow the index without the flag.

Searches encode the query locally and send a neural_sparse query (k = hits) with the page
filters inside it; scores are APPROXIMATE (byte-quantized weights over folded ids, from the
clusters SEISMIC visits), so --explain and plain-text search are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from vsplade.engines.base import EngineError
from vsplade.sparse import SparseBatch
from vsplade.vocab import Vocabulary, default_vocabulary

from ..documents import BuiltDocs, DocumentHeader, _refuse_invalid
from ..query import SearchOptions, clean_query, fetch_clause, filter_clauses
from .base import IndexKind, register

SPARSE_ANN_KEY = "sparse_ann"
_MATCH_NONE = {"bool": {"must_not": [{"match_all": {}}]}}


@register
class SparseAnnKind(IndexKind):
    name = "sparse_ann"
    flag = "--sparse-ann"
    meta_key = SPARSE_ANN_KEY
    layout = "a sparse_vector field"
    vector_type = "sparse_vector"
    vector_in_source = True  # kept: SEISMIC without the vector in _source is not measured here yet

    def __init__(self, params: Mapping[str, Any]):
        self.params = dict(params)
        self._vocab: Vocabulary | None = None  # term name -> token id, loaded by the first search

    @classmethod
    def for_new_index(cls, settings, info, conn) -> "SparseAnnKind":
        from ..sparse_ann import ann_params

        return cls(ann_params(settings.ann_threshold, settings.ann_ceiling))  # validated in settings

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "SparseAnnKind":
        return cls(meta.get(SPARSE_ANN_KEY) or {})

    def joined(self, meta: Mapping[str, Any]) -> "SparseAnnKind":
        return type(self)(meta.get(SPARSE_ANN_KEY) or self.params)

    def meta(self) -> dict:
        return {SPARSE_ANN_KEY: dict(self.params)}

    def index_settings(self) -> dict:
        return {"sparse": True}

    def field_mapping(self) -> dict:
        from ..sparse_ann import field_mapping

        return field_mapping(self.params)

    def document_builder(self, index, info, *, vocab=None, field, snippet_chars=500):
        return SparseAnnDocumentBuilder(index, info, vocab=vocab, field=field, snippet_chars=snippet_chars,
                                        params=self.params)

    # ---- searching -------------------------------------------------------------------------
    def open_searcher(self, searcher, server_side: bool, model_id: str | None) -> None:
        if server_side:
            raise EngineError(f"index {searcher.index!r} was built with --sparse-ann: search it without --server-side-query")
        from ..sparse_ann import FOLD

        fold = int(self.params.get("fold", FOLD))
        if fold != FOLD:
            raise EngineError(f"index {searcher.index!r}: sparse ANN fold {fold}, this vsplade folds by {FOLD}")

    def term_body(self, searcher, query: Mapping[str, float], k: int, opts: SearchOptions, explain: bool) -> dict:
        """The query's term names -> token ids, folded as the pages were, `neural_sparse` with
        k = hits; filters as its `filter` (they select only)."""
        from ..sparse_ann import query as ann_query

        if explain:
            raise EngineError(f"index {searcher.index!r} was built with --sparse-ann: --explain is not available "
                              "(its scores are quantized dot products over folded token ids)")
        terms = clean_query(query, searcher.max_clauses)
        q: dict = _MATCH_NONE  # nothing to score with: an empty result, as the exact scorer gives
        if terms:
            if self._vocab is None:
                self._vocab = default_vocabulary()
            ids = [self._vocab.id_of(t) for t in terms]
            filters = self.filters(searcher, opts)
            if filters is not None:  # None: no page of the index is under the --source keys
                q = ann_query(ids, list(terms.values()), searcher.field, k=int(k))
                if filters:
                    # inside the neural_sparse query (neural-search's efficient filtering: exact search
                    # over the filtered pages when they are few, else ANN with the filter applied in
                    # it); a bool filter around it would only drop pages from the k ANN candidates
                    q["neural_sparse"][searcher.field]["method_parameters"]["filter"] = {"bool": {"filter": filters}}
        return {"size": int(k), "query": q, "track_total_hits": False, **fetch_clause(opts.source_fields)}

    def filters(self, searcher, opts: SearchOptions) -> list[dict] | None:
        """PageFilter clauses that neural-search's sparse ANN filter can run. Its filter query is
        not rewritten (neural-search 3.6.0, measured: `terms` and `prefix` on `source` fail with
        "does not implement createWeight"; `term` and `range` work), so the --source keys are
        first resolved to the source names they cover (file keys and every file under a folder
        key) with an ordinary aggregation, then sent as `term` clauses. None: nothing matches."""
        out: list[dict] = []
        if opts.sources:
            keys = _source_names(searcher, tuple(sorted([opts.sources] if isinstance(opts.sources, str) else opts.sources)))
            if not keys:
                return None
            out.append({"bool": {"should": [{"term": {"source": k}} for k in keys], "minimum_should_match": 1}})
        out += filter_clauses(SearchOptions(page_min=opts.page_min, page_max=opts.page_max))
        out += [dict(f) for f in opts.filters]  # raw clauses: passed as given
        return out


def _source_names(searcher, sources: tuple) -> list[str]:
    # asked per search (not cached): a long-lived searcher sees files indexed after it opened
    size = max(1, searcher.max_clauses)
    body = {"size": 0, "query": {"bool": {"filter": filter_clauses(SearchOptions(sources=list(sources)))}},
            "aggs": {"s": {"terms": {"field": "source", "size": size}}}}
    agg = searcher._call(searcher.client.search, index=searcher.index, body=body)["aggregations"]["s"]
    if agg.get("sum_other_doc_count"):
        raise EngineError(f"index {searcher.index!r} (--sparse-ann): the --source filter covers more than {size} "
                          "files; give fewer or narrower --source keys")
    return [b["key"] for b in agg["buckets"]]


@dataclass
class AnnBuiltDocs(BuiltDocs):
    clipped: int = 0  # folded weights above the ingest ceiling (the server clips them to it)


class SparseAnnDocumentBuilder:
    """Bulk lines for a sparse ANN index: the same metadata fields as DocumentBuilder (its
    `header`), the vector as {str(id % fold): summed weight} for the SEISMIC sparse_vector
    field. Same validation: a page with NaN, infinite or negative weights is reported, not sent."""

    def __init__(self, index: str | None = None, info: Mapping[str, Any] | None = None,
                 vocab: Vocabulary | None = None, field: str = "vector", snippet_chars: int = 500,
                 params: Mapping[str, Any] | None = None):
        from ..sparse_ann import DEFAULT_CEILING_INGEST, FOLD

        self.vocab = vocab or default_vocabulary()
        self.field = field
        self.head = DocumentHeader(index, info, snippet_chars)
        params = dict(params or {})
        self.fold = int(params.get("fold", FOLD))
        self.ceiling = float(params.get("ceiling_ingest", DEFAULT_CEILING_INGEST))

    def build(self, batch: SparseBatch) -> AnnBuiltDocs:
        from ..sparse_ann import fold_vector

        out = AnnBuiltDocs()
        m = batch.matrix
        if m.shape[1] != self.vocab.size:
            raise ValueError(f"vectors have {m.shape[1]} columns, the vocabulary {self.vocab.size}")
        _refuse_invalid(batch)
        for r in range(m.shape[0]):
            s, e = m.indptr[r], m.indptr[r + 1]
            vec = fold_vector(m.indices[s:e], m.data[s:e], self.fold)
            out.dropped += int((m.data[s:e] <= 0).sum())
            out.clipped += sum(1 for w in vec.values() if w > self.ceiling)
            out.empty += int(not vec)
            doc_id = batch.ids[r]
            doc = {**self.head.fields(doc_id, batch.meta[r]), self.field: vec}
            out.ids.append(doc_id)
            out.lines.append(b"".join((self.head.action(doc_id), orjson.dumps(doc), b"\n")))
        return out
