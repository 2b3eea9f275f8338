"""Hybrid search inside OpenSearch: the vector query and the BM25 `match` on the page text as the
two sub-queries of neural-search's `hybrid` query, fused by a search pipeline.

- RRF (`hybrid="rrf"`): a `score-ranker-processor` (neural-search 2.19+) with
  `combination: {technique: rrf, rank_constant: 60}`.
- min-max interpolation (`hybrid="minmax:W"`, W on the vector side): a `normalization-processor`
  with `normalization: min_max` and `combination: arithmetic_mean, weights [W, 1 - W]`.

Pipelines are created once, idempotently, under a name that says what they do
(`vsplade-hybrid-rrf-60`, `vsplade-hybrid-minmax-0.6`), and named per request
(`search_pipeline=`), so no index setting changes and another client's searches are untouched.
Where the cluster has no neural-search 2.19+ (or the user may not create pipelines), the two
queries run separately and are fused in the client by vsplade.fusion (the Searcher default).

Where OpenSearch's fusion differs from pyserini.fusion (what vsplade.fusion follows):
- depth: each sub-query collects its top `pagination_depth` (= depth) pages PER SHARD; the
  normalisation then sees the union of those per-shard lists. With one shard that is exactly
  pyserini's "top `depth` of each run"; with several it is a wider window (up to shards x
  depth pages per sub-query): RRF ranks are taken over the merged list (neural-search 2.19+
  sorts the sub-query's hits of all shards by score first), so pages past place `depth` still
  add 1/(60 + rank), and min-max uses the min of that wider window. So hybrid_fusion="auto"
  uses the pipeline on single-shard indexes only ("pipeline" uses it on any, with these scores).
- min-max floor: neural-search maps a sub-query's lowest score to 0.001 (MIN_SCORE), not 0, so
  a page found by one side only gets w x 0.001 more than pyserini gives it at the bottom of that
  side (fused scores differ by at most 0.001; rankings only where two fused scores are that
  close). A sub-query whose hits all score the same normalises them to 1.0, as pyserini does.
- a page missing from one side counts 0 there and the weights still divide (arithmetic_mean
  with weights W, 1 - W summing to 1): W x vector + (1 - W) x text, pyserini's interpolation of
  the normalised runs.
- RRF: 1 / (60 + rank), rank from 1, summed: pyserini's formula; neural-search computes it in
  BigDecimal rounded to 10 places then float32 (scores equal to ~1e-8).
- ties: pyserini orders equal fused scores by docid; OpenSearch by its internal doc order. RRF
  ties are common (a page first on one side only ties with the page first on the other side
  only): the searcher asks for k + 10 fused pages (all, when a tie runs past them) and orders
  equal scores by page id.
- scores are float32 in OpenSearch, float64 in pyserini.
So the searcher (searcher._order_is_exact) keeps the pipeline's answer only when no two of its
top k + 1 pages are closer than what these differences can move (0.001 for min-max, 1e-8 for
RRF): then it is pyserini's order exactly; else it fuses that query in the client. Scores stay
the pipeline's (RRF to ~1e-8; min-max up to 0.001 above pyserini's), and a pipeline hit's
`hybrid` holds each side's own score of the page (named queries), not its rank (None).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Mapping

from vsplade.fusion import Fusion

PIPELINE_PREFIX = "vsplade-hybrid"
MIN_VERSION = (2, 19)  # score-ranker-processor (RRF) and the hybrid query's pagination_depth
PLUGIN = "opensearch-neural-search"


def pipeline_name(fusion: Fusion) -> str:
    if fusion.method == "rrf":
        return f"{PIPELINE_PREFIX}-rrf-{fusion.rrf_k}"
    return f"{PIPELINE_PREFIX}-minmax-{fusion.weight:g}"


def pipeline_body(fusion: Fusion) -> dict:
    """The search pipeline that fuses the hybrid query's two sub-queries (vector first) as
    `fusion` says (vsplade.fusion.Fusion: "rrf" or "minmax:W")."""
    if fusion.method == "rrf":
        proc = {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": fusion.rrf_k}}}
        what = f"RRF, rank_constant {fusion.rrf_k}"
    else:
        w = float(fusion.weight)
        # weights must sum to 1 for neural-search: 1 - w rounded so that 0.7 gives 0.3, not 0.30000000000000004
        proc = {"normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [w, round(1.0 - w, 12)]}},
        }}
        what = f"min-max normalised, weight {w:g} on the vector sub-query"
    return {"description": f"vsplade hybrid: vector + BM25 text sub-queries, {what}",
            "phase_results_processors": [proc]}


def pipeline_supports(fusion: Fusion, version: tuple[int, ...] | None) -> bool:
    """Whether neural-search `version` runs this fusion with the hybrid query's pagination_depth
    (2.19+ for both; RRF's rank_constant must be 1..10000 there)."""
    if version is None or version[:2] < MIN_VERSION:
        return False
    return fusion.method != "rrf" or 1 <= fusion.rrf_k <= 10_000


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:3])


def neural_search_version(client) -> tuple[int, ...] | None:
    """The neural-search plugin's version on every node, the lowest (a mixed cluster runs what its
    oldest node can); None when a node lacks it or the plugins cannot be listed."""
    try:
        plugins = client.cat.plugins(format="json")
    except Exception:  # noqa: BLE001 - a user without cluster:monitor: fuse in the client
        return None
    nodes = {p.get("name") for p in plugins} or set()
    found = {p.get("name"): _version(p.get("version", "")) for p in plugins if p.get("component") == PLUGIN}
    if not found or set(found) != nodes:
        return None
    return min(found.values())


def named(query: Mapping[str, Any], name: str) -> dict:
    """The query under a name: each hit then says what this side scored it
    (include_named_queries_score), which Hit.hybrid reports. A one-clause bool scores as its clause."""
    return {"bool": {"must": [dict(query)], "_name": name}}


def hybrid_body(vector_query: Mapping[str, Any], text_query: Mapping[str, Any], size: int, depth: int,
                fetch: Mapping[str, Any] | None = None) -> dict:
    """The `hybrid` query of the two sub-queries (vector first: the pipeline's weights follow
    this order), each already holding its filters; `depth` pages per sub-query per shard;
    `fetch`: what each hit brings back (query.fetch_clause)."""
    body: dict[str, Any] = {
        "size": int(size),
        "query": {"hybrid": {"queries": [named(vector_query, "vector"), named(text_query, "text")],
                             "pagination_depth": int(depth)}},
        "track_total_hits": False,
    }
    body.update(fetch or {})
    return body


class PipelineCache:
    """The pipelines known to exist, per cluster URL: each is read (and created when missing or
    different) once per process; a search that finds it gone (a restarted cluster) clears it."""

    def __init__(self) -> None:
        self._known: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def ensure(self, conn, client, fusion: Fusion) -> str:
        name = pipeline_name(fusion)
        key = (conn.url, name)
        with self._lock:
            if key in self._known:
                return name
        want = pipeline_body(fusion)
        path = f"/_search/pipeline/{name}"
        from opensearchpy.exceptions import NotFoundError

        try:
            have = client.transport.perform_request("GET", path).get(name)
        except NotFoundError:
            have = None
        if have != want:  # missing, or changed by someone: PUT is create-or-replace
            client.transport.perform_request("PUT", path, body=want)
        with self._lock:
            self._known.add(key)
        return name

    def forget(self, conn, fusion: Fusion) -> None:
        with self._lock:
            self._known.discard((conn.url, pipeline_name(fusion)))


PIPELINES = PipelineCache()
