"""OpenSearchSearcher: {term: weight} queries against one vsplade index.

`search(query, k, explain=False, ...)` returns `Hit`s with id, score, source and page. With
`explain=True` each hit also gets {term: contribution}: exactly what each rank_feature clause
added to the score (the page's stored weight of the term, 9 significant bits, times the query
weight, in float32), read from Lucene's explanation of the hit, so the page vector need not be
in `_source` (new indexes leave it out; mapping.index_body).
`batch_search` sends many queries per `_msearch` request. The search bodies, filters and what
cannot be asked of an index come from its kind (kinds/), read once from its `_meta`.

Hybrid search (an index built with --text-field): `search_text` is BM25 on the `text` field (a
`match` query, the same filters as the vector search, any kind); `search_hybrid` sends both as
one `hybrid` query through a search pipeline where the cluster has neural-search 2.19+
(hybrid.py says where its fusion differs from pyserini.fusion), else runs the two and fuses
them in the client (Searcher's default, vsplade.fusion). On a searcher opened with
server_side=True, `search_text`/`batch_search_text` keep their older meaning: the plain-text
query encoded by the cluster's ml-commons model (`search_server_side`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numpy as np

from vsplade.engines.base import EngineError, Hit, PageFilter, Searcher
from vsplade.sparse import feature_field_round

from .connection import Connection, check_reachable, describe_error
from .kinds import kind_of_meta
from .mapping import DEFAULT_FIELD, INDEX_FORMAT, TEXT_FIELD, mapping_of, stored_meta, text_field_on
from .query import (DEFAULT_SOURCE, SearchOptions, clean_query, explained_weights, fetch_clause, filter_clauses,
                    hit_fields, stored_weights)

MSEARCH_GROUP = 64
FETCH_KEYS = ("_source", "stored_fields", "docvalue_fields")  # what a body asks back per hit (query.fetch_clause)
TIE_SLACK = 10  # extra fused hits asked of the pipeline, so exact ties at the k-th place can be ordered by page id


def contributions(query: Mapping[str, float], stored: Mapping[str, float], matched=None) -> dict[str, float]:
    """Per-term score contributions as Lucene computes them (float32 boost x 9-bit value)."""
    terms = [t for t in query if t in stored and (matched is None or t in matched)]
    if not terms:
        return {}
    boosts = np.asarray([query[t] for t in terms], dtype=np.float32)
    values = feature_field_round(np.asarray([stored[t] for t in terms], dtype=np.float32))
    contrib = (boosts * values).astype(np.float32)
    return _ranked({t: float(c) for t, c in zip(terms, contrib)}, query)


def _ranked(contrib: Mapping[str, float], query: Mapping[str, float]) -> dict[str, float]:
    """The positive contributions of the query's terms, largest first."""
    out = {t: c for t, c in contrib.items() if c > 0 and t in query}
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
        hybrid_fusion: str = "auto",
    ):
        self.conn = conn
        self.hybrid_fusion = hybrid_fusion  # "auto" | "pipeline" | "client" (settings.py)
        self._neural: tuple | None | bool = False  # neural-search version, looked up on the first hybrid search
        self.hybrid_counts = {"pipeline": 0, "near_tie_fallback": 0}
        self._facts: dict | None = None  # _index_facts()
        self.index = index
        self.mode = mode
        self.max_clauses = max_clauses
        self.source_fields = source_fields
        self.client = client or conn.client()
        self.meta = self._call(self._read_meta)
        self.field = field or self.meta.get("field") or DEFAULT_FIELD
        self.kind = kind_of_meta(self.meta).from_meta(self.meta)
        self.server_side = server_side  # plain-text queries, encoded by the cluster's ml-commons model
        self.model_id: str | None = None  # set by a server-side kind when server_side
        self.kind.open_searcher(self, server_side, model_id)

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

    def _options(self, options: dict) -> SearchOptions:
        return SearchOptions(source_fields=options.pop("source_fields", self.source_fields), **options)

    def body(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **options: Any) -> dict:
        return self.kind.term_body(self, query, k, self._options(options), explain)

    def search(self, query: Mapping[str, float], k: int = 10, explain: bool = False, **options: Any) -> list[Hit]:
        """options: sources (list of source paths), page_min, page_max, filters (raw clauses),
        source_fields (None: whole _source)."""
        body = self.body(query, k, explain, **options)
        resp = self._call(self.client.search, index=self.index, body=body)
        return self._hits(resp, query, explain)

    # ---- server-side queries: plain text, the cluster's ml-commons model encodes it -------
    def text_body(self, text: str, k: int = 10, **options: Any) -> dict:
        return self.kind.text_body(self, text, k, self._options(options))

    def search_server_side(self, text: str, k: int = 10, **options: Any) -> list[Hit]:
        """Plain text -> hits, no local encoder: neural_sparse with the index's model id.
        A blank text has no terms: no hits (neural-search would refuse it)."""
        if not text or not text.strip():
            return []
        resp = self._call(self.client.search, index=self.index, body=self.text_body(text, k, **options))
        return self._hits(resp, {}, False)

    def search_text(self, text: str, k: int = 10, filter: PageFilter | None = None, **options: Any) -> list[Hit]:
        """BM25 on the pages' text (hybrid contract, Searcher.search_text); on a server-side
        searcher, the plain-text query the cluster's model encodes (search_server_side)."""
        if filter is not None:
            options.update(filter.keywords())
        if self.server_side:
            return self.search_server_side(text, k, **options)
        if not text or not text.strip():
            return []
        resp = self._call(self.client.search, index=self.index, body=self.bm25_body(text, k, **options))
        return self._bm25_scaled(self._hits(resp, {}, False))

    def _bm25_scaled(self, hits: list[Hit]) -> list[Hit]:
        scale = self._text_scale()
        if scale != 1.0:
            for h in hits:
                h.score *= scale
        return hits

    def _text_scale(self) -> float:
        """What turns this index's BM25 scores into Lucene's BM25Similarity's (the contract's, as
        Pyserini, the Lucene engine and memory score): 1, or 1 / (1 + k1) for an index created
        by OpenSearch 2.x, whose "BM25" is LegacyBM25Similarity (every score x (1 + k1); 3.0 made
        Lucene's the default). Rankings are the same, and so are RRF and min-max fusions."""
        from .mapping import BM25_K1

        return 1.0 / (1.0 + BM25_K1) if self._index_facts()["created_major"] < 3 else 1.0

    def _index_facts(self) -> dict:
        """The index's creating OpenSearch major version and its shard count, read once."""
        if self._facts is None:
            settings = self._call(self.client.indices.get_settings, index=self.index,
                                  name="index.version.created,index.number_of_shards")
            (entry,) = settings.values()
            index = entry["settings"]["index"]
            created = int(index["version"]["created"])
            created = created ^ 0x08000000 if created & 0x08000000 else created  # OpenSearch's id mask
            self._facts = {"created_major": created // 1_000_000, "shards": int(index["number_of_shards"])}
        return self._facts

    def batch_search_text(self, texts: Sequence[str], k: int = 10, **options: Any) -> list[list[Hit]]:
        if self.server_side:
            return self.batch_search_server_side(texts, k, **options)
        return [self.search_text(t, k, **dict(options)) for t in texts]

    # ---- hybrid search with the text layer (--text-field) -------------------------------
    def _check_text_field(self) -> None:
        if text_field_on(self.meta):
            return
        self.meta = self._call(self._read_meta)  # properties written after this searcher opened
        if not text_field_on(self.meta):
            raise EngineError(f"index {self.index!r} was built without --text-field; rebuild it with "
                              "`vsplade index --text-field --recreate ...`")

    def bm25_body(self, text: str, k: int = 10, **options: Any) -> dict:
        """BM25 on `text` (the index's bm25_vsplade similarity: k1=0.9, b=0.4) with the same
        filters a vector search takes, as plain bool filters (a match query takes any)."""
        self._check_text_field()
        opts = self._options(options)
        match = {"match": {TEXT_FIELD: {"query": text}}}
        filters = filter_clauses(opts)
        return {"size": int(k), "query": {"bool": {"must": [match], "filter": filters}} if filters else match,
                "track_total_hits": False, **fetch_clause(opts.source_fields)}

    def search_hybrid(self, query: Mapping[str, float], text: str, k: int = 10, mode: Any = "rrf",
                      depth: int | None = None, filter: PageFilter | None = None,
                      explain: bool = False) -> list[Hit]:
        """The hybrid contract (Searcher.search_hybrid). RRF in a search pipeline (hybrid.py) when
        the cluster has neural-search 2.19+, the index one shard, and both sides something to
        search; in the client (the default) for min-max, with explain (each side's explanation),
        on a server-side searcher, on several shards, when one side is empty, or with
        hybrid_fusion="client". hybrid_fusion="pipeline" sends both modes, any shard count, to
        the pipeline. A pipeline hit's `hybrid` holds what
        each side scored the page (None where it does not match), not ranks (None)."""
        from vsplade.fusion import Fusion, depth_for

        fusion = Fusion.of(mode)
        self._check_text_field()
        terms = clean_query(query, self.max_clauses) if query else {}
        if explain or self.server_side or not terms or not text.strip() or not self._pipeline_for(fusion):
            return super().search_hybrid(query, text, k, fusion, depth, filter, explain)
        depth = depth_for(k, depth)
        return self._pipeline_hybrid(query, text, k, fusion, depth, filter)

    def _pipeline_for(self, fusion) -> bool:
        from . import hybrid

        if self.hybrid_fusion == "client":
            return False
        if self.hybrid_fusion == "auto" and fusion.method == "minmax":
            # the pipeline's 0.001 floor leaves near ties it may order unlike pyserini on 56% of
            # the queries at 100k pages (then fused again in the client: 2.3x the client's p50;
            # benchmarks/RESULTS.md, "Hybrid search on OpenSearch"): min-max fuses in the client
            return False
        if self.hybrid_fusion == "auto" and self._index_facts()["shards"] > 1:
            # each sub-query then takes depth pages per shard, and RRF ranks / min-max bounds come
            # from their union, not from the top depth: other scores than pyserini.fusion's
            return False
        if self._neural is False:
            self._neural = hybrid.neural_search_version(self.client)
        ok = hybrid.pipeline_supports(fusion, self._neural)
        if not ok and self.hybrid_fusion == "pipeline":
            found = "no neural-search plugin" if self._neural is None else f"neural-search {'.'.join(map(str, self._neural))}"
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url}: hybrid_fusion='pipeline' needs neural-search "
                                               f"2.19+ on every node ({found}); use 'auto' or 'client'"))
        return ok

    def _pipeline_hybrid(self, query, text, k, fusion, depth, filter) -> list[Hit]:
        from opensearchpy.exceptions import OpenSearchException

        from . import hybrid

        keywords = filter.keywords() if filter is not None else {}
        vector_q = self.body(query, depth, **keywords)["query"]
        text_body = self.bm25_body(text, depth, **keywords)
        fetch = {key: v for key, v in text_body.items() if key in FETCH_KEYS}
        size = min(k + TIE_SLACK, 2 * depth)
        for attempt in (0, 1):
            try:
                name = hybrid.PIPELINES.ensure(self.conn, self.client, fusion)
            except OpenSearchException as e:
                if self.hybrid_fusion == "pipeline":
                    raise EngineError(self.conn.redact(f"opensearch {self.conn.url}: cannot create search pipeline: "
                                                       f"{describe_error(e)}")) from None
                self.hybrid_fusion = "client"  # e.g. a user without cluster:admin/search/pipeline/put
                return super().search_hybrid(query, text, k, fusion, depth, filter, False)
            params = {"search_pipeline": name, "include_named_queries_score": "true"}
            try:
                while True:
                    body = hybrid.hybrid_body(vector_q, text_body["query"], size, depth, fetch)
                    resp = self.client.search(index=self.index, body=body, params=params)
                    hits = self._hybrid_hits(resp)
                    # an exact tie at the k-th place that runs to the last hit asked for: ask for
                    # the whole fused list, so the tie is ordered by page id as vsplade.fusion does
                    if len(hits) < size or size >= 2 * depth or len(hits) <= k or hits[k - 1].score != hits[-1].score:
                        break
                    size = 2 * depth
                break
            except OpenSearchException as e:
                # a pipeline this process made went away (deleted, a new cluster): 400 "Pipeline X is
                # not defined"; made again once
                if not attempt and f"pipeline {name} is not defined" in str(e).lower():
                    hybrid.PIPELINES.forget(self.conn, fusion)
                    continue
                raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None
        hits.sort(key=lambda h: (-h.score, h.id))
        if not _order_is_exact(hits, k, fusion):
            self.hybrid_counts["near_tie_fallback"] += 1
            return super().search_hybrid(query, text, k, fusion, depth, filter, False)
        self.hybrid_counts["pipeline"] += 1
        return hits[:k]

    def _hybrid_hits(self, resp: Mapping[str, Any]) -> list[Hit]:
        hits = self._hits(resp, {}, False)
        for hit, raw in zip(hits, resp["hits"]["hits"]):
            named = raw.get("matched_queries") or {}
            named = named if isinstance(named, Mapping) else {}
            text = named.get("text")
            hit.hybrid = {"vector": named.get("vector"), "vector_rank": None,
                          "text": None if text is None else text * self._text_scale(), "text_rank": None}
        return hits

    hybrid_counts: dict  # how search_hybrid answered: "pipeline", "near_tie_fallback" (set in __init__)

    def batch_search_server_side(self, texts: Sequence[str], k: int = 10, **options: Any) -> list[list[Hit]]:
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

    def search_grouped(self, query: Mapping[str, float], k: int = 10, per_group: int = 3, explain: bool = False,
                       **options: Any) -> list:
        """The k best files, each with its per_group best pages, grouped by OpenSearch itself:
        `collapse` on the source keyword (one top hit per file, files ranked by their best page)
        with `inner_hits` for the file's best pages, over the same query and filters."""
        from vsplade.grouping import FileHit

        body = self.body(query, k, explain, **options)
        inner: dict[str, Any] = {"name": "pages", "size": int(per_group)}
        for key in (*FETCH_KEYS, "explain"):
            if key in body:
                inner[key] = body[key]
        body["collapse"] = {"field": "source", "inner_hits": inner}
        resp = self._call(self.client.search, index=self.index, body=body)
        out = []
        for top in resp["hits"]["hits"]:
            hits = self._hits(top["inner_hits"]["pages"], query, explain)
            if hits:
                out.append(FileHit(hits[0].source, hits[0].score, hits))
        return out

    def _hits(self, resp: Mapping[str, Any], query: Mapping[str, float], explain: bool) -> list[Hit]:
        hits = []
        terms = clean_query(query, self.max_clauses) if explain else None
        for h in resp["hits"]["hits"]:
            src = hit_fields(h)
            pid = src.get("id", h.get("_id"))
            if pid is None:  # doc values asked (query.fetch_clause), no `_id`: a document vsplade did not write
                raise EngineError(f"index {self.index!r}: a hit without an `id` field (not a page vsplade wrote); "
                                  "search it with source_fields=None")
            hit = Hit(str(pid), float(h["_score"]), src.get("source"), src.get("page"),
                      path=src.get("path"), sha256=src.get("sha256"))
            if explain:
                stored = stored_weights(src, self.field)  # a vector kept in _source (query.search_body)
                hit.explain = (contributions(terms, stored) if stored else
                               _ranked(explained_weights(h.get("_explanation"), self.field), terms))
            hits.append(hit)
        return hits

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing idle HTTP pools cannot fail meaningfully
            pass


# How far a pipeline's fused score may sit from pyserini.fusion's: RRF, float32 sums of
# 1/(60 + rank) rounded to 10 places (distinct sums at depths up to ~150 differ by >= 1.5e-9);
# min-max, neural-search's 0.001 floor for a sub-query's lowest page (w x 0.001 + (1 - w) x 0.001
# at most) plus float32.
_RRF_SLACK = 1e-8
_MINMAX_SLACK = 0.001 + 1e-6


def _order_is_exact(hits: Sequence[Hit], k: int, fusion) -> bool:
    """Whether the pipeline's top k (sorted by score, then page id) is pyserini.fusion's top k:
    the pipeline's score is pyserini's plus at most the slack, so two pages can only trade
    places when their scores are within it. Checks the gaps between neighbours down to place
    k + 1 (a page further down, or not returned, scores no more than place k + 1). Exact RRF
    ties are real ties (the same two ranks), ordered by page id as pyserini does."""
    slack = _RRF_SLACK if fusion.method == "rrf" else _MINMAX_SLACK
    top = [h.score for h in hits[: k + 1]]
    for a, b in zip(top, top[1:]):
        gap = a - b
        if gap <= slack and not (gap == 0 and fusion.method == "rrf"):
            return False
    return True
