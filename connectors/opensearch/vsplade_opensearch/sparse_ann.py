"""Sparse ANN (neural-search 3.3+: a `sparse_vector` field in an `index.sparse: true` index,
SEISMIC clustering) for V-SPLADE pages: the index body, the documents and the query.

Token ids, and why we fold them ourselves. A sparse_vector stores each token id as a Java
`short`, folded by `id % MODULUS_FOR_SHORT`. neural-search 3.3-3.6 use 65536: an id in
[32768, 65535] is then cast to a NEGATIVE short (40000 -> -25536), which breaks the dense
query vector (NegativeArraySizeException) and mis-scores; 3.7+ use 32768 (neural-search
PR #1926), where those ids collide with id - 32768 and the server keeps the MAX of the two
weights, on both sides. The V-SPLADE text vocabulary has 50,368 ids, so 17,600 ids
(32768..50367) share a slot with another id under any working fold (COLLIDING_IDS pairs). We
fold every id to id % 32768 here, before the server sees it, and SUM the weights of the ids that
share a slot (the usual hashing trick: a page's mass is kept; the score gains cross terms
q[a]*d[b] for a, b sharing a slot). With every key already below 32768, 3.6 and 3.7+ index and
score the same bytes. What that costs in recall against the exact, unfolded scorer is measured
in benchmarks/opensearch_sparse_ann.py (benchmarks/RESULTS.md).

Weights: the server quantizes to one byte in [0, quantization_ceiling_ingest] (default 3.0;
larger weights are CLIPPED) for documents and [0, quantization_ceiling_search] (16) for
queries, so choose `ceiling_ingest` >= the largest page weight. Scores are therefore
approximate dot products of quantized weights, not FeatureField scores.

SEISMIC only clusters segments with at least `approximate_threshold` documents (default
1,000,000); smaller segments are searched exactly (the rank_features-like fallback). For tests
and benchmarks on small corpora, set `approximate_threshold` lower so the ANN path runs.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

FOLD = 32768  # neural-search 3.7+'s MODULUS_FOR_SHORT; see the module docstring
DEFAULT_FIELD = "vector_ann"
DEFAULT_CEILING_INGEST = 3.0  # neural-search's own defaults
DEFAULT_CEILING_SEARCH = 16.0


def colliding_ids(vocab_size: int, fold: int = FOLD) -> int:
    """How many ids share their folded slot with at least one other id (0..vocab_size-1)."""
    full, rest = divmod(vocab_size, fold)
    per_slot = np.full(fold, full, dtype=np.int64)
    per_slot[:rest] += 1
    return int(per_slot[per_slot > 1].sum())


def fold_vector(ids: Iterable[int], weights: Iterable[float], fold: int = FOLD) -> dict[str, float]:
    """{str(id % fold): summed weight}: the keys a sparse_vector document or query carries."""
    ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
    weights = np.asarray(list(weights) if not isinstance(weights, np.ndarray) else weights, dtype=np.float64)
    if ids.size and ids.min() < 0:
        raise ValueError("sparse ANN: token ids must be non-negative")
    slots, inv = np.unique(ids % fold, return_inverse=True)
    summed = np.zeros(len(slots))
    np.add.at(summed, inv, weights)
    return {str(int(s)): float(w) for s, w in zip(slots, summed) if w > 0}


def index_body(field: str = DEFAULT_FIELD, *, approximate_threshold: int | None = None,
               n_postings: int | None = None, cluster_ratio: float | None = None,
               summary_prune_ratio: float | None = None, ceiling_ingest: float = DEFAULT_CEILING_INGEST,
               ceiling_search: float = DEFAULT_CEILING_SEARCH, shards: int = 1,
               extra_properties: Mapping[str, dict] | None = None) -> dict:
    """The create-index body: `index.sparse: true` and one SEISMIC sparse_vector field (unset
    parameters keep neural-search's defaults)."""
    params: dict = {"quantization_ceiling_ingest": ceiling_ingest, "quantization_ceiling_search": ceiling_search}
    for k, v in (("approximate_threshold", approximate_threshold), ("n_postings", n_postings),
                 ("cluster_ratio", cluster_ratio), ("summary_prune_ratio", summary_prune_ratio)):
        if v is not None:
            params[k] = v
    props = {field: {"type": "sparse_vector", "method": {"name": "seismic", "parameters": params}}}
    props.update(extra_properties or {})
    return {"settings": {"index": {"sparse": True, "number_of_shards": shards}}, "mappings": {"properties": props}}


def ann_params(approximate_threshold: int | None = None, ceiling_ingest: float | None = None) -> dict:
    """The sparse ANN parameters the OpenSearch engine records in an index's _meta
    (`_meta.vsplade.sparse_ann`): searches and later writes follow them without any flag."""
    ceiling = DEFAULT_CEILING_INGEST if ceiling_ingest is None else float(ceiling_ingest)
    if not ceiling > 0:
        raise ValueError(f"sparse ANN: the ingest ceiling must be positive, got {ceiling_ingest!r}")
    if approximate_threshold is not None and int(approximate_threshold) < 1:
        raise ValueError(f"sparse ANN: approximate_threshold must be at least 1, got {approximate_threshold!r}")
    out: dict = {"fold": FOLD, "ceiling_ingest": ceiling, "ceiling_search": DEFAULT_CEILING_SEARCH}
    if approximate_threshold is not None:
        out["approximate_threshold"] = int(approximate_threshold)
    return out


def field_mapping(params: Mapping) -> dict:
    """The sparse_vector field mapping for ann_params() (what index_body writes for one field)."""
    mp: dict = {"quantization_ceiling_ingest": float(params.get("ceiling_ingest", DEFAULT_CEILING_INGEST)),
                "quantization_ceiling_search": float(params.get("ceiling_search", DEFAULT_CEILING_SEARCH))}
    if params.get("approximate_threshold") is not None:
        mp["approximate_threshold"] = int(params["approximate_threshold"])
    return {"type": "sparse_vector", "method": {"name": "seismic", "parameters": mp}}


def document(ids: Iterable[int], weights: Iterable[float], field: str = DEFAULT_FIELD, **extra) -> dict:
    return {field: fold_vector(ids, weights), **extra}


def query(ids: Iterable[int], weights: Iterable[float], field: str = DEFAULT_FIELD, *, k: int = 10,
          top_n: int | None = None, heap_factor: float | None = None) -> dict:
    """The `neural_sparse` query on the sparse_vector field: `k` candidates per shard, the query's
    `top_n` largest tokens drive the posting-list walk (neural-search default 10), `heap_factor`
    > 1 visits more clusters (recall for latency)."""
    mp: dict = {"k": k}
    if top_n is not None:
        mp["top_n"] = top_n
    if heap_factor is not None:
        mp["heap_factor"] = heap_factor
    return {"neural_sparse": {field: {"query_tokens": fold_vector(ids, weights), "method_parameters": mp}}}


# ---- a small client-side API over SparseBatch (the OpenSearch engine's own path is the
# `sparse_ann` option: --sparse-ann on `vsplade index`; this is for scripts and benchmarks)

META_KEYS = ("source", "page", "path", "sha256")


def create_index(client, index: str, field: str = DEFAULT_FIELD, **params) -> dict:
    """Create `index` with the SEISMIC field and keyword/integer fields for the page metadata."""
    extra = {"id": {"type": "keyword"}, "source": {"type": "keyword"}, "page": {"type": "integer"},
             "path": {"type": "keyword"}, "sha256": {"type": "keyword"}}
    return client.indices.create(index=index, body=index_body(field, extra_properties=extra, **params))


def bulk_actions(batch, index: str, field: str = DEFAULT_FIELD):
    """opensearch-py bulk action pairs for a vsplade SparseBatch: _id = page id, the folded vector
    and the page metadata (source, page, path, sha256 when present)."""
    m = batch.matrix
    for i, pid in enumerate(batch.ids):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        meta = {k: batch.meta[i][k] for k in META_KEYS if k in batch.meta[i]}
        yield {"index": {"_index": index, "_id": pid}}
        yield document(m.indices[lo:hi], m.data[lo:hi], field, id=pid, **meta)


def search(client, index: str, query_weights: Mapping[int, float], k: int = 10, field: str = DEFAULT_FIELD,
           **method_parameters) -> list[tuple[str, float]]:
    """[(page id, score)] best first for a query given as {token id: weight}."""
    ids = np.fromiter(query_weights.keys(), dtype=np.int64, count=len(query_weights))
    w = np.fromiter(query_weights.values(), dtype=np.float64, count=len(query_weights))
    body = {"size": k, "_source": False, "query": query(ids, w, field, k=k, **method_parameters)}
    return [(h["_id"], h["_score"]) for h in client.search(index=index, body=body)["hits"]["hits"]]
