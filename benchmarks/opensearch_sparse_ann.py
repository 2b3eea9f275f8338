"""Sparse ANN (SEISMIC sparse_vector, vsplade_opensearch.sparse_ann) vs the exact rank_feature
query, on a real OpenSearch 3.6.0 node with neural-search (testnode --plugins neural), side by
side in one run on the same pages.

Pages and queries are benchmarks/corpus.py's Workload (--preset, default quality: FLOPs 1.51),
here with ~FEATURES non-zeros a page and ~QTERMS terms a query (the Zipf exponent recalibrated
so the FLOPs stay the preset's); its FLOPs and postings per query are printed first.

1. PAGES pages go into two indices: a rank_features index (vsplade's term
   names, the exact path) and a sparse_ann index (ids folded to id % 32768, weights summed),
   each force-merged to one segment. approximate_threshold is lowered to THRESHOLD (neural-search
   default: 1,000,000 docs a segment) so that the segment is clustered and the ANN path runs.
2. QUERIES queries of the workload (idf-like weights). Ground truth: the exact dot product over the unfolded float weights (numpy), top-k.
   "fold only" = the exact dot product after folding pages and queries (what folding alone costs);
   recall is given against both, the second isolating what SEISMIC itself loses.
3. recall@10 / recall@100 and p50 / p99 latency (one query at a time, after an untimed warm-up
   pass) for the rank_feature bool query and for neural_sparse on the sparse_vector field at a
   few method_parameters (top_n, heap_factor).

    .venv/bin/python benchmarks/opensearch_sparse_ann.py [--pages 30000] [--preset quality|efficient]
        [--features 300] [--qterms 30] [--queries 200]
        [--threshold 10000] [--url URL of a running 3.6 plugin node]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from opensearch_workload import add_preset_arg, workload, workload_line  # noqa: E402

from vsplade.vocab import VOCAB_SIZE, default_vocabulary  # noqa: E402
from vsplade_opensearch import sparse_ann  # noqa: E402

EXACT, ANN = "bench-exact", "bench-ann"
BATCH = 1000


def bulk(client, index: str, docs) -> None:
    lines: list[bytes] = []
    for i, d in docs:
        lines += [orjson.dumps({"index": {"_index": index, "_id": str(i)}}), orjson.dumps(d)]
        if len(lines) >= 2 * BATCH:
            r = client.bulk(body=b"\n".join(lines) + b"\n")
            assert not r["errors"], str(r["items"][:1])[:500]
            lines = []
    if lines:
        assert not client.bulk(body=b"\n".join(lines) + b"\n")["errors"]


def build(client, m: sp.csr_matrix, threshold: int, ceiling: float) -> dict:
    vocab = default_vocabulary()
    terms = np.array([vocab.term(i) for i in range(VOCAB_SIZE)], dtype=object)
    out = {}
    for name, body, docs in (
        (EXACT, {"settings": {"number_of_shards": 1, "refresh_interval": "-1"},
                 "mappings": {"properties": {"vector": {"type": "rank_features"}}}},
         lambda: ((i, {"vector": dict(zip(terms[m.indices[m.indptr[i]:m.indptr[i + 1]]].tolist(),
                                          m.data[m.indptr[i]:m.indptr[i + 1]].tolist()))}) for i in range(m.shape[0]))),
        (ANN, sparse_ann.index_body(approximate_threshold=threshold, ceiling_ingest=ceiling),
         lambda: ((i, sparse_ann.document(m.indices[m.indptr[i]:m.indptr[i + 1]], m.data[m.indptr[i]:m.indptr[i + 1]]))
                  for i in range(m.shape[0])))):
        client.indices.delete(index=name, ignore=[404])
        if name == ANN:
            body["settings"]["index"]["refresh_interval"] = "-1"
        client.indices.create(index=name, body=body)
        t = time.perf_counter()
        bulk(client, name, docs())
        client.indices.refresh(index=name)
        t_bulk = time.perf_counter() - t
        client.indices.forcemerge(index=name, max_num_segments=1, request_timeout=3600)
        client.indices.refresh(index=name)
        t_all = time.perf_counter() - t
        size = client.cat.indices(index=name, format="json", bytes="b")[0]
        out[name] = {"bulk_s": t_bulk, "merged_s": t_all, "store_mb": int(size["pri.store.size"]) / 2**20,
                     "docs": int(size["docs.count"])}
    return out


def exact_top(m: sp.csr_matrix, q: tuple[np.ndarray, np.ndarray], k: int) -> np.ndarray:
    v = np.zeros(m.shape[1], np.float32)
    v[q[0]] = q[1]
    s = m @ v
    top = np.argpartition(-s, k)[:k]
    return top[np.argsort(-s[top])]


def folded_matrix(m: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix((m.data, m.indices % sparse_ann.FOLD, m.indptr), shape=(m.shape[0], sparse_ann.FOLD)).tocsr()


def timed(client, index: str, bodies: list[dict]) -> tuple[list[list[int]], np.ndarray]:
    for b in bodies:  # warm-up, untimed
        client.search(index=index, body=b)
    lat, hits = [], []
    for b in bodies:
        t = time.perf_counter()
        r = client.search(index=index, body=b)
        lat.append(time.perf_counter() - t)
        hits.append([int(h["_id"]) for h in r["hits"]["hits"]])
    return hits, np.asarray(lat) * 1000


def recall(got: list[list[int]], truth: list[np.ndarray], k: int) -> float:
    return float(np.mean([len(set(g[:k]) & {int(x) for x in t[:k]}) / k for g, t in zip(got, truth)]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=30_000)
    p.add_argument("--features", type=int, default=300)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--qterms", type=int, default=30, help="terms a query on average")
    add_preset_arg(p)
    p.add_argument("--threshold", type=int, default=10_000, help="approximate_threshold (docs per segment)")
    p.add_argument("--heap", default="3g")
    p.add_argument("--url", help="an already running 3.6 plugin node (default: start one)")
    p.add_argument("--reuse", action="store_true", help="with --url: search the indices an earlier run built there")
    a = p.parse_args()
    from opensearchpy import OpenSearch

    from vsplade_opensearch.testnode import TestCluster

    cluster = None
    if not a.url:
        cluster = TestCluster(nodes=1, line="3", plugins="neural", heap=a.heap).start()
    url = a.url or cluster.url
    try:
        client = OpenSearch(url, timeout=600)
        t = time.perf_counter()
        w = workload(a.preset, a.features, a.qterms)
        m = w.pages(a.pages, seed=0)
        ceiling = float(np.ceil(m.data.max()))
        queries = w.queries(a.queries, seed=1)
        print(workload_line(a.preset, m, queries), flush=True)
        print(f"corpus: {m.shape[0]} pages, {m.nnz / m.shape[0]:.0f} ids/page, max weight {m.data.max():.2f} "
              f"(ingest ceiling {ceiling}), {time.perf_counter() - t:.1f} s", flush=True)
        used = np.unique(m.indices)
        print(f"folding: {sparse_ann.colliding_ids(VOCAB_SIZE)} of {VOCAB_SIZE} vocabulary ids share a slot "
              f"(mod {sparse_ann.FOLD}); ids used by this corpus sharing a slot: "
              f"{int(np.sum(np.bincount(used % sparse_ann.FOLD)[used % sparse_ann.FOLD] > 1))} of {len(used)}", flush=True)
        built = {} if a.reuse else build(client, m, a.threshold, ceiling)
        for name, b in built.items():
            print(f"{name}: {b['docs']} docs, bulk {b['bulk_s']:.0f} s, + force merge {b['merged_s']:.0f} s, "
                  f"{b['store_mb']:.0f} MB", flush=True)
        truth = {k: [exact_top(m, q, k) for q in queries] for k in (10, 100)}
        fm = folded_matrix(m)
        fq = [(np.array([int(t) for t in f]), np.array(list(f.values()), np.float32))
              for f in (sparse_ann.fold_vector(*q) for q in queries)]
        fold_only = {k: [exact_top(fm, q, k).tolist() for q in fq] for k in (10, 100)}
        vocab = default_vocabulary()
        rows = []
        for k in (10, 100):
            rows.append(("fold only (numpy, exact on folded ids)", k, recall(fold_only[k], truth[k], k), 1.0, None))
            rf = [{"size": k, "_source": False, "query": {"bool": {"should": [
                {"rank_feature": {"field": f"vector.{vocab.term(int(i))}", "linear": {}, "boost": float(w)}}
                for i, w in zip(*q)]}}} for q in queries]
            hits, lat = timed(client, EXACT, rf)
            rows.append(("rank_feature bool (exact)", k, recall(hits, truth[k], k), recall(hits, fold_only[k], k), lat))
            for top_n, hf in ((10, 1.0), (a.qterms, 1.0), (a.qterms, 2.0)):
                bodies = [{"size": k, "_source": False, "query": sparse_ann.query(*q, k=k, top_n=top_n, heap_factor=hf)}
                          for q in queries]
                hits, lat = timed(client, ANN, bodies)
                rows.append((f"sparse ANN top_n={top_n} heap_factor={hf}", k, recall(hits, truth[k], k),
                             recall(hits, fold_only[k], k), lat))
        print(f"\nmachine: {platform.node()} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
              f"node heap {a.heap}, {len(queries)} queries of ~{a.qterms} ids, threshold {a.threshold}")
        print("| query | k | recall@k vs exact | recall@k vs fold only | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
        for name, k, r, rf, lat in rows:
            ps = ("-", "-") if lat is None else (f"{np.percentile(lat, 50):.1f}", f"{np.percentile(lat, 99):.1f}")
            print(f"| {name} | {k} | {r:.3f} | {rf:.3f} | {ps[0]} | {ps[1]} |")
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
