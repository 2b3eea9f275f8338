"""Rank a dataset's pages for its queries through a deployable engine (memory, lucene,
opensearch, any `vsplade.engines` entry point) and turn the hits into a full run.

The official evaluation ranks EVERY page for every query (a dense Q x N score matrix, zero
scores included). Engines return only pages that share a term with the query, so:
- each query asks for `depth` hits, by default the whole corpus, so every matching page comes
  back with its engine score;
- every page the engine did not return gets score 0.0;
- ties are broken by trec_eval itself (score desc, then page id desc; see `metrics.trec_order`),
  never by the engine's internal order, so two engines that compute the same scores give the
  same run and the same metrics.
With a `depth` smaller than the number of matching pages, pages beyond it count as 0 and the
engine's own tie order decides which pages at the boundary made it; metrics at k <= depth are
still exact when no tie straddles the boundary.

`quantize` (memory engine): the document and query weights are rounded to integer impacts
with the core's `quantize_impacts` / `quantize_query_impacts` (what the Lucene connector
indexes), so the exact scorer shows what quantization alone costs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vsplade.encoded import EncodedDir
from vsplade.engines import Engine, EngineError, get_engine_class
from vsplade.pipeline import index_encoded
from vsplade.sparse import SparseBatch, quantize_impacts, quantize_query_impacts


@dataclass
class EngineRun:
    run: dict[str, dict[str, float]]  # query id -> {page id: score}, every page present
    index_seconds: float
    open_seconds: float  # searcher start (JVM, index load, connection)
    search_seconds: float  # all queries, one at a time
    latencies_ms: list[float]
    returned_hits: int  # pages the engine returned, summed over queries
    extra: dict[str, Any] = field(default_factory=dict)

    def latency_summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        if not lat:
            return {}
        return {
            "mean_ms": round(statistics.fmean(lat), 4),
            "p50_ms": round(float(np.percentile(lat, 50)), 4),
            "p95_ms": round(float(np.percentile(lat, 95)), 4),
            "max_ms": round(lat[-1], 4),
        }


def quantized_copy(batch: SparseBatch, scale: float) -> SparseBatch:
    m, _ = quantize_impacts(batch.matrix, scale)
    return SparseBatch(m.astype(np.float32), batch.ids, batch.meta)


def build_index(
    engine_name: str,
    dataset: str,
    encoded_dir: Path,
    index_root: Path,
    options: Mapping[str, Any],
    reindex: bool = False,
    quantize: float | None = None,
    progress: bool | None = None,
) -> tuple[Engine, float]:
    """Create (or resume) the dataset's index from its encoded dir; returns (engine, seconds)."""
    cls = get_engine_class(engine_name)
    t0 = time.perf_counter()
    if engine_name == "memory":
        if quantize is None:
            # the encoded dir IS the memory engine's index: nothing to write
            return cls(index=str(encoded_dir), **options), 0.0
        target = index_root / f"memory-q{quantize:g}" / dataset
        engine = cls(index=str(target), **options)
        src = EncodedDir(encoded_dir)
        info = {**src.encoder_info, "quantized_scale": quantize}
        with engine.writer(info, recreate=True) as w:
            for b in src.iter_batches():
                w.add(quantized_copy(b, quantize))
        return engine, time.perf_counter() - t0
    if quantize is not None:
        raise EngineError("--quantize applies to the memory engine only (other engines quantize themselves)")
    opts = dict(options)
    if engine_name == "opensearch":
        index = f"{opts.pop('index_prefix', 'vsplade-eval-')}{dataset}".lower()
    else:
        index = str(index_root / engine_name / dataset)
    engine = cls(index=index, **opts)
    report = index_encoded(encoded_dir, lambda info: engine.writer(info, recreate=reindex), progress=progress)
    if report.summary.failures:
        first = report.summary.failures[0]
        raise EngineError(f"{engine_name}: {len(report.summary.failures)} page(s) failed to index, e.g. {first[0]}: {first[1]}")
    return engine, time.perf_counter() - t0


def rank(
    engine: Engine,
    query_ids: Sequence[str],
    queries: Sequence[Mapping[str, float]],
    corpus_ids: Sequence[str],
    depth: int | None = None,
    quantize: float | None = None,
) -> EngineRun:
    """Search every query (one at a time, timed) and fill the unreturned pages with 0.0."""
    depth = depth or len(corpus_ids)
    known = set(corpus_ids)
    t0 = time.perf_counter()
    searcher = engine.searcher()
    open_s = time.perf_counter() - t0
    run: dict[str, dict[str, float]] = {}
    latencies = []
    returned = 0
    t_search = time.perf_counter()
    try:
        for qid, q in zip(query_ids, queries):
            if quantize is not None:
                q = {t: float(w) for t, w in quantize_query_impacts(q, quantize).items()}
            ts = time.perf_counter()
            hits = searcher.search(q, depth) if q else []
            latencies.append((time.perf_counter() - ts) * 1000)
            scores = dict.fromkeys(corpus_ids, 0.0)
            for h in hits:
                if h.id not in known:
                    raise EngineError(f"engine returned page {h.id!r} for query {qid!r}; it is not in the corpus "
                                      "(stale index? re-run with --reindex)")
                scores[h.id] = float(h.score)
            returned += len(hits)
            run[qid] = scores
    finally:
        searcher.close()
    search_s = time.perf_counter() - t_search
    return EngineRun(run, 0.0, open_s, search_s, latencies, returned)
