"""{term: weight} -> OpenSearch search bodies.

Default: the standard `rank_feature` query, no plugin needed::

    bool.should[rank_feature{field: "<field>.<term>", linear: {}, boost: w}]

Lucene scores each clause as boost x stored value (FeatureField keeps 9 significant bits of
the float32) and sums them, so the score is the dot product of the query and the stored page
vector. `mode="neural_sparse"` sends `neural_sparse{<field>: {query_tokens}}` instead, for
clusters with the neural-search plugin (same scores, one clause).

Filters (source, page range, extra query clauses) go into `bool.filter`: they select, never
score. Weights that are not positive and finite are left out; beyond `max_clauses` terms the
lightest are left out (OpenSearch refuses more than indices.query.bool.max_clause_count).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

DEFAULT_SOURCE = ("id", "source", "page", "path", "sha256")
MODES = ("rank_feature", "neural_sparse")
# Metadata a hit can read from doc values (keyword and integer fields keep them by default;
# mapping.METADATA_FIELDS). Asking for these only, a search loads no stored field at all: not
# `_source`, and not `_id`, whose stored-field block also holds each page's `_recovery_source`
# (its whole original JSON with ~550 weights, kept until a merge after the retention leases):
# 20,000 pages, k=100, the server's `took` 15.7 ms through `_source` against 1.0 ms through doc
# values (benchmarks/opensearch_request_cost.py, RESULTS.md).
DOCVALUE_FIELDS = frozenset(DEFAULT_SOURCE)


@dataclass
class SearchOptions:
    sources: Sequence[str] | None = None  # keep pages of these source files only
    page_min: int | None = None
    page_max: int | None = None
    filters: Sequence[Mapping[str, Any]] = field(default_factory=list)  # raw OpenSearch clauses
    source_fields: Sequence[str] | None = DEFAULT_SOURCE  # None: whole _source; []: none


def clean_query(query: Mapping[str, float], max_clauses: int = 1024) -> dict[str, float]:
    terms = {t: float(w) for t, w in query.items() if w is not None and math.isfinite(w) and w > 0}
    bad = [t for t in terms if not t or "." in t]
    if bad:  # cannot come out of the core vocabulary; a rank_feature on "a.b" would match nothing
        raise ValueError(f"query terms must not contain '.': {bad[:3]}")
    if len(terms) > max_clauses:
        terms = dict(sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:max_clauses])
    return terms


def filter_clauses(opts: SearchOptions) -> list[dict]:
    out: list[dict] = []
    if opts.sources:
        # a key matches itself, and as a folder key every file under it (PageFilter)
        srcs = [opts.sources] if isinstance(opts.sources, str) else list(opts.sources)
        keys = [str(s).rstrip("/") for s in srcs]
        out.append({"bool": {"should": [{"terms": {"source": keys}}]
                             + [{"prefix": {"source": k + "/"}} for k in keys], "minimum_should_match": 1}})
    if opts.page_min is not None or opts.page_max is not None:
        rng = {}
        if opts.page_min is not None:
            rng["gte"] = int(opts.page_min)
        if opts.page_max is not None:
            rng["lte"] = int(opts.page_max)
        out.append({"range": {"page": rng}})
    out.extend(dict(f) for f in opts.filters)
    return out


def fetch_clause(source_fields: Sequence[str] | None) -> dict:
    """What a search body asks back per hit, to merge into it. Fields that all have doc values
    (DOCVALUE_FIELDS): `docvalue_fields` (always with `id`, the hit's id) and no stored field
    (`stored_fields: _none_`, so no `_id` either); others: `_source` filtered to them; None: the
    whole `_source`. `hit_fields` reads either answer back."""
    if source_fields is None:
        return {}
    fields = [source_fields] if isinstance(source_fields, str) else list(source_fields)
    if set(fields) <= DOCVALUE_FIELDS:
        return {"_source": False, "stored_fields": "_none_",
                "docvalue_fields": ["id"] + [f for f in dict.fromkeys(fields) if f != "id"]}
    return {"_source": {"includes": fields}}


def hit_fields(hit: Mapping[str, Any]) -> dict:
    """A hit's metadata as one dict: its `_source`, and its doc values (one value each: the
    metadata fields are single-valued) where the body asked for them (fetch_clause)."""
    src = hit.get("_source")
    dv = hit.get("fields")
    if not dv:
        return src or {}
    out = {k: v[0] for k, v in dv.items() if v}  # doc values come as lists
    if src:
        out.update(src)
    return out


def scoring_clause(terms: Mapping[str, float], field: str, mode: str = "rank_feature") -> dict:
    if mode == "neural_sparse":
        return {"neural_sparse": {field: {"query_tokens": dict(terms)}}}
    if mode != "rank_feature":
        raise ValueError(f"query mode must be one of {MODES}, not {mode!r}")
    should = []
    for term, w in terms.items():
        should.append({"rank_feature": {"field": f"{field}.{term}", "linear": {}, "boost": w}})
    return {"bool": {"should": should}}


def search_body(
    query: Mapping[str, float],
    k: int,
    field: str = "vector",
    opts: SearchOptions | None = None,
    mode: str = "rank_feature",
    explain: bool = False,
    max_clauses: int = 1024,
    filters: list[dict] | None = None,
) -> dict:
    """`filters`: the clauses an index kind computed (kinds.IndexKind.filters); None: filter_clauses(opts)."""
    opts = opts or SearchOptions()
    terms = clean_query(query, max_clauses)
    scoring = scoring_clause(terms, field, mode)
    filters = filter_clauses(opts) if filters is None else filters
    # the scoring clause sits in `must` so filters only select; with no filter it stands alone
    q: dict = {"bool": {"must": [scoring], "filter": filters}} if filters else scoring
    if not terms:  # nothing to score with: an empty result, as the exact scorer gives
        q = {"bool": {"must_not": [{"match_all": {}}]}}
    body: dict[str, Any] = {"size": int(k), "query": q, "track_total_hits": False}
    fields = None if opts.source_fields is None else list(opts.source_fields)
    if explain:
        # each term's contribution: from the page's stored weights where its vector is in
        # _source (older indexes, vector_source=True), else from Lucene's explanation of each
        # rank_feature clause (w x stored value, as scored; new indexes leave the vector out)
        extra = [f"{field}.{t}" for t in terms]
        body["_source"] = {"includes": (fields if fields is not None else ["*"]) + extra}
        if mode == "rank_feature":
            body["explain"] = True
        return body
    body.update(fetch_clause(opts.source_fields))
    return body


def text_search_body(text: str, model_id: str, k: int, field: str = "vector", opts: SearchOptions | None = None,
                     filters: list[dict] | None = None) -> dict:
    """Server-side query: the plain text and the ml-commons model that turns it into weighted
    feature names (neural-search's neural_sparse), filters as in search_body."""
    opts = opts or SearchOptions()
    scoring = {"neural_sparse": {field: {"query_text": text, "model_id": model_id}}}
    filters = filter_clauses(opts) if filters is None else filters
    q: dict = {"bool": {"must": [scoring], "filter": filters}} if filters else scoring
    body: dict[str, Any] = {"size": int(k), "query": q, "track_total_hits": False, **fetch_clause(opts.source_fields)}
    return body


_LINEAR = re.compile(r"^Linear function on the (\S+) field for the (.+) feature, computed as w \* S from:$")


def explained_weights(explanation: Mapping[str, Any] | None, field: str) -> dict[str, float]:
    """{term: contribution} out of a hit's Lucene `_explanation`: every FeatureField linear
    function on `field` in the tree (its value is w x S, exactly what the clause added)."""
    out: dict[str, float] = {}
    todo = [explanation] if explanation else []
    while todo:
        node = todo.pop()
        m = _LINEAR.match(node.get("description", ""))
        if m and m.group(1) == field:
            out[m.group(2)] = out.get(m.group(2), 0.0) + float(node.get("value", 0.0))
        todo.extend(node.get("details") or [])
    return out


def stored_weights(source: Mapping[str, Any] | None, field: str) -> dict[str, float]:
    vec = (source or {}).get(field) or {}
    if isinstance(vec, Mapping):
        return {str(t): float(w) for t, w in vec.items()}
    return {}


def iter_terms(body: Mapping[str, Any]) -> Iterable[str]:
    """Terms a body scores with (for tests and debugging)."""
    q = body["query"]
    if "bool" in q and "must" in q["bool"]:
        q = q["bool"]["must"][0]
    if "neural_sparse" in q:
        (spec,) = q["neural_sparse"].values()
        yield from spec["query_tokens"]
        return
    for clause in q.get("bool", {}).get("should", []):
        yield clause["rank_feature"]["field"].split(".", 1)[1]
