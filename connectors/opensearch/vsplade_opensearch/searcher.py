"""OpenSearchSearcher: {term: weight} queries against one vsplade index.

`search(query, k, explain=False, ...)` returns `Hit`s with id, score, source and page. With
`explain=True` each hit also gets {term: contribution}: the page's stored weight of each
matched term, rounded as Lucene's FeatureField stores it (9 significant bits), times the
query weight, in float32, i.e. exactly what each rank_feature clause added to the score.
`batch_search` sends many queries per `_msearch` request.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numpy as np

from vsplade.engines.base import EngineError, Hit, Searcher
from vsplade.sparse import feature_field_round

from .connection import Connection, check_reachable, describe_error
from .mapping import DEFAULT_FIELD, INDEX_FORMAT, QUERY_MODEL_KEY, SPARSE_ANN_KEY, mapping_of, stored_meta
from .query import (DEFAULT_SOURCE, SearchOptions, clean_query, filter_clauses, search_body, stored_weights,
                    text_search_body)

MSEARCH_GROUP = 64


def contributions(query: Mapping[str, float], stored: Mapping[str, float], matched=None) -> dict[str, float]:
    """Per-term score contributions as Lucene computes them (float32 boost x 9-bit value)."""
    terms = [t for t in query if t in stored and (matched is None or t in matched)]
    if not terms:
        return {}
    boosts = np.asarray([query[t] for t in terms], dtype=np.float32)
    values = feature_field_round(np.asarray([stored[t] for t in terms], dtype=np.float32))
    contrib = (boosts * values).astype(np.float32)
    out = {t: float(c) for t, c in zip(terms, contrib) if c > 0}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


class OpenSearchSearcher(Searcher):
    def __init__(
        self,
        conn: Connection,
        index: str,
        field: str | None = None,
        mode: str = "rank_feature",
        max_clauses: int = 1024,
        source_fields: Sequence[str] | None = DEFAULT_SOURCE,
        client=None,
        server_side: bool = False,
        model_id: str | None = None,
    ):
        self.conn = conn
        self.index = index
        self.mode = mode
        self.max_clauses = max_clauses
        self.source_fields = source_fields
        self.client = client or conn.client()
        self.meta = self._call(self._read_meta)
        self.field = field or self.meta.get("field") or DEFAULT_FIELD
        self.query_model = self.meta.get(QUERY_MODEL_KEY) or None
        # a sparse ANN index (sparse_ann.py): neural_sparse on the sparse_vector field, folded ids
        self.sparse_ann = self.meta.get(SPARSE_ANN_KEY) or None
        self._vocab = None
        if self.sparse_ann and server_side:
            raise EngineError(f"index {self.index!r} was built with --sparse-ann: search it without --server-side-query")
        self.server_side = server_side
        self.model_id: str | None = None
        if server_side:
            if not self.query_model:
                raise EngineError(f"index {self.index!r} was not built with --server-side-query (its features carry "
                                  "vsplade term names, which no ml-commons model emits): re-index it with "
                                  "`vsplade index ... --server-side-query`, or search without --server-side-query")
            from .ml_model import resolve_model

            self.model_id = resolve_model(self.conn, self.client, self.index, self.query_model, model_id)

    def _refuse_terms_on_server_side_index(self) -> None:
        if self.query_model:
            raise EngineError(f"index {self.index!r} was built with --server-side-query (features named for an "
                              "ml-commons model): search it with --server-side-query (plain text)")

    def _call(self, fn, *args, **kwargs):
        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        try:
            return fn(*args, **kwargs)
        except NotFoundError:
            raise EngineError(f"opensearch {self.conn.url}: no index {self.index!r}") from None
        except OpenSearchException as e:
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None

    def _read_meta(self) -> dict:
        check_reachable(self.conn, self.client)
        meta = stored_meta(mapping_of(self.client.indices.get_mapping(index=self.index)))
        if meta and meta.get("format") != INDEX_FORMAT:
            raise EngineError(f"index {self.index!r}: unknown _meta format {meta.get('format')!r}")
        return meta

    def index_info(self) -> dict:
        return dict(self.meta.get("encoder") or {})

    def body(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **options: Any) -> dict:
        opts = SearchOptions(source_fields=options.pop("source_fields", self.source_fields), **options)
        if self.sparse_ann:
            return self._ann_body(query, k, opts, explain)
        return search_body(query, k, self.field, opts, self.mode, explain, self.max_clauses)

    def _ann_body(self, query: Mapping[str, float], k: int, opts: SearchOptions, explain: bool) -> dict:
        """A sparse ANN index: the query's term names -> token ids, folded as the pages were,
        `neural_sparse` with k = hits; filters as its `filter` (they select only)."""
        from vsplade.vocab import default_vocabulary

        from .sparse_ann import FOLD, query as ann_query

        if explain:
            raise EngineError(f"index {self.index!r} was built with --sparse-ann: --explain is not available "
                              "(its scores are quantized dot products over folded token ids)")
        terms = clean_query(query, self.max_clauses)
        if not terms:  # nothing to score with: an empty result, as the exact scorer gives
            q: dict = {"bool": {"must_not": [{"match_all": {}}]}}
        else:
            if self._vocab is None:
                self._vocab = default_vocabulary()
            ids = [self._vocab.id_of(t) for t in terms]
            fold = int(self.sparse_ann.get("fold", FOLD))
            if fold != FOLD:
                raise EngineError(f"index {self.index!r}: sparse ANN fold {fold}, this vsplade folds by {FOLD}")
            q = ann_query(ids, list(terms.values()), self.field, k=int(k))
            filters = self._ann_filters(opts)
            if filters is None:  # no page of the index is under the --source keys
                q = {"bool": {"must_not": [{"match_all": {}}]}}
            elif filters:
                # inside the neural_sparse query (neural-search's efficient filtering: exact search
                # over the filtered pages when they are few, else ANN with the filter applied in
                # it); a bool filter around it would only drop pages from the k ANN candidates
                q["neural_sparse"][self.field]["method_parameters"]["filter"] = {"bool": {"filter": filters}}
        body: dict[str, Any] = {"size": int(k), "query": q, "track_total_hits": False}
        fields = None if opts.source_fields is None else list(opts.source_fields)
        if fields is not None:
            body["_source"] = {"includes": fields} if fields else False
        return body

    def _ann_filters(self, opts: SearchOptions) -> list[dict] | None:
        """PageFilter clauses that neural-search's sparse ANN filter can run. Its filter query is
        not rewritten (neural-search 3.6.0, measured: `terms` and `prefix` on `source` fail with
        "does not implement createWeight"; `term` and `range` work), so the --source keys are
        first resolved to the source names they cover (file keys and every file under a folder
        key) with an ordinary aggregation, then sent as `term` clauses. None: nothing matches."""
        out: list[dict] = []
        if opts.sources:
            keys = self._source_names(tuple(sorted([opts.sources] if isinstance(opts.sources, str) else opts.sources)))
            if not keys:
                return None
            out.append({"bool": {"should": [{"term": {"source": k}} for k in keys], "minimum_should_match": 1}})
        out += filter_clauses(SearchOptions(page_min=opts.page_min, page_max=opts.page_max))
        out += [dict(f) for f in opts.filters]  # raw clauses: passed as given
        return out

    def _source_names(self, sources: tuple) -> list[str]:
        # asked per search (not cached): a long-lived searcher sees files indexed after it opened
        size = max(1, self.max_clauses)
        body = {"size": 0, "query": {"bool": {"filter": filter_clauses(SearchOptions(sources=list(sources)))}},
                "aggs": {"s": {"terms": {"field": "source", "size": size}}}}
        agg = self._call(self.client.search, index=self.index, body=body)["aggregations"]["s"]
        if agg.get("sum_other_doc_count"):
            raise EngineError(f"index {self.index!r} (--sparse-ann): the --source filter covers more than {size} "
                              "files; give fewer or narrower --source keys")
        return [b["key"] for b in agg["buckets"]]

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **options: Any) -> list[Hit]:
        """options: sources (list of source paths), page_min, page_max, filters (raw clauses),
        source_fields (None: whole _source)."""
        self._refuse_terms_on_server_side_index()
        body = self.body(query, k, explain, **options)
        resp = self._call(self.client.search, index=self.index, body=body)
        return self._hits(resp, query, explain)

    # ---- server-side queries: plain text, the cluster's ml-commons model encodes it -------
    def text_body(self, text: str, k: int = 10, **options: Any) -> dict:
        if not self.server_side:
            raise EngineError("plain-text search needs a searcher opened with server_side=True (--server-side-query)")
        opts = SearchOptions(source_fields=options.pop("source_fields", self.source_fields), **options)
        return text_search_body(text, self.model_id, k, self.field, opts)

    def search_text(self, text: str, k: int = 10, **options: Any) -> list[Hit]:
        """Plain text -> hits, no local encoder: neural_sparse with the index's model id.
        A blank text has no terms: no hits (neural-search would refuse it)."""
        if not text or not text.strip():
            return []
        resp = self._call(self.client.search, index=self.index, body=self.text_body(text, k, **options))
        return self._hits(resp, {}, False)

    def batch_search_text(self, texts: Sequence[str], k: int = 10, **options: Any) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        for start in range(0, len(texts), MSEARCH_GROUP):
            group = list(texts[start:start + MSEARCH_GROUP])
            live = [t for t in group if t and t.strip()]
            lines: list[dict] = []
            for t in live:
                lines += [{}, self.text_body(t, k, **dict(options))]
            resp = self._call(self.client.msearch, index=self.index, body=lines) if live else {"responses": []}
            answers = iter(resp["responses"])
            for t in group:
                if not (t and t.strip()):
                    out.append([])
                    continue
                r = next(answers)
                if "error" in r:
                    raise EngineError(self.conn.redact(f"index {self.index!r}: query failed: {r['error']}"))
                out.append(self._hits(r, {}, False))
        return out

    def batch_search(
        self, queries: Sequence[Mapping[str, float]], k: int = 10, threads: int = 1, explain: bool = False, **options: Any
    ) -> list[list[Hit]]:
        self._refuse_terms_on_server_side_index()
        groups = [list(queries[i : i + MSEARCH_GROUP]) for i in range(0, len(queries), MSEARCH_GROUP)]

        def run(group):
            lines: list[dict] = []
            for q in group:
                lines += [{}, self.body(q, k, explain, **dict(options))]
            resp = self._call(self.client.msearch, index=self.index, body=lines)
            out = []
            for q, r in zip(group, resp["responses"]):
                if "error" in r:
                    raise EngineError(self.conn.redact(f"index {self.index!r}: query failed: {r['error']}"))
                out.append(self._hits(r, q, explain))
            return out

        if threads <= 1 or len(groups) <= 1:
            results = [run(g) for g in groups]
        else:
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(run, groups))
        return [hits for group in results for hits in group]

    def _hits(self, resp: Mapping[str, Any], query: Mapping[str, float], explain: bool) -> list[Hit]:
        hits = []
        terms = clean_query(query, self.max_clauses) if explain else None
        for h in resp["hits"]["hits"]:
            src = h.get("_source") or {}
            hit = Hit(str(src.get("id", h["_id"])), float(h["_score"]), src.get("source"), src.get("page"),
                      path=src.get("path"), sha256=src.get("sha256"))
            if explain:
                matched = h.get("matched_queries")
                hit.explain = contributions(terms, stored_weights(src, self.field), matched)
            hits.append(hit)
        return hits

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing idle HTTP pools cannot fail meaningfully
            pass
