"""vsplade-opensearch against a real OpenSearch single node on this machine (testnode, the 3.x
line unless --line 2), side by side in one run with what a user would write by hand.

The pages and queries are benchmarks/corpus.py's Workload (--preset, default quality: FLOPs
1.51, ~FEATURES non-zeros a page, queries of ~QTERMS terms); its FLOPs and postings per query
are printed first.

1. bulk: PAGES pages of the workload through OpenSearchWriter
   (threads, chunked, refresh off during the bulk), then the same pages through opensearch-py
   `helpers.bulk` with plain `json` bodies ({term: weight} dicts, default chunk_size 500, the
   index created with the same mapping; refresh left at its default) into a second index.
   Pages/s (wall) and client CPU seconds (this process) for each.
2. search: QUERIES rank_feature queries of the workload against the vsplade index, one at
   a time after an untimed warm-up pass: p50 / p99 at k=10 and k=100.
3. size: `_cat/indices` store size (primaries) per page, as written and after a force merge to
   one segment.

The vsplade index leaves the page vector out of `_source` (the default since the OpenSearch
index kinds); `--vector-source` keeps it there, the layout before, for a side-by-side run on
the same pages and queries.

    .venv/bin/python benchmarks/opensearch_real.py [--pages 100000] [--preset quality|efficient] [--features 550]
        [--queries 1000] [--qterms 12] [--vector-source]

benchmarks/opensearch_vs_lucene.py sets the same node beside Lucene on the same pages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from opensearch_workload import add_preset_arg, batches, query_dicts, workload, workload_line  # noqa: E402

from vsplade.vocab import default_vocabulary  # noqa: E402

INFO = {"name": "bench", "model": "bench"}
BATCH = 1000


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def bench_vsplade(url: str, m, threads: int, vector_source: bool = False) -> dict:
    from vsplade_opensearch import OpenSearchEngine

    eng = OpenSearchEngine(index="bench-vsplade", url=url, threads=threads, progress=False, timeout=300,
                           vector_source=vector_source)
    c0, w0 = cpu_s(), time.perf_counter()
    with eng.writer(INFO, recreate=True) as w:
        for b in batches(m, BATCH):
            w.add(b)
        s = w.close()
    wall, cpu = time.perf_counter() - w0, cpu_s() - c0
    return {"pages": s.indexed, "wall_s": wall, "pages_per_s": s.indexed / wall, "client_cpu_s": cpu,
            "failures": len(s.failures), "docs_in_index": s.extra["docs_in_index"], "requests": s.extra["bulk_requests"]}


def bench_by_hand(url: str, m) -> dict:
    """What a user writes with opensearch-py alone: dict documents, helpers.bulk, plain json."""
    from opensearchpy import OpenSearch, helpers

    from vsplade_opensearch.mapping import index_body

    vocab = default_vocabulary()
    client = OpenSearch(hosts=[url], timeout=300)
    client.indices.delete(index="bench-by-hand", ignore=[404])
    client.indices.create(index="bench-by-hand", body=index_body(INFO))

    def actions():
        for b in batches(m, BATCH):
            bm = b.matrix
            for r in range(len(b)):
                cols, vals = bm.indices[bm.indptr[r]:bm.indptr[r + 1]], bm.data[bm.indptr[r]:bm.indptr[r + 1]]
                meta = b.meta[r]
                yield {"_index": "bench-by-hand", "_id": b.ids[r],
                       "_source": {"id": b.ids[r], "source": meta["source"], "page": meta["page"],
                                   "vector": {vocab.term(int(c)): float(v) for c, v in zip(cols, vals)}}}

    c0, w0 = cpu_s(), time.perf_counter()
    ok, errors = helpers.bulk(client, actions(), chunk_size=500, max_retries=3, raise_on_error=False)
    client.indices.refresh(index="bench-by-hand")
    wall, cpu = time.perf_counter() - w0, cpu_s() - c0
    n = client.count(index="bench-by-hand")["count"]
    return {"pages": ok, "wall_s": wall, "pages_per_s": ok / wall, "client_cpu_s": cpu, "failures": len(errors),
            "docs_in_index": n}


def bench_search(url: str, qs: list[dict]) -> dict:
    from vsplade_opensearch import OpenSearchEngine

    s = OpenSearchEngine(index="bench-vsplade", url=url, timeout=300).searcher()
    out = {}
    for k in (10, 100):
        for q in qs:  # warm-up, untimed
            s.search(q, k)
        lat = []
        for q in qs:
            t = time.perf_counter()
            s.search(q, k)
            lat.append(time.perf_counter() - t)
        lat = np.asarray(lat) * 1000
        out[k] = {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                  "mean_ms": float(lat.mean())}
    return out


def store_size(url: str, index: str) -> dict:
    from opensearchpy import OpenSearch

    c = OpenSearch(hosts=[url], timeout=600)
    c.indices.refresh(index=index)
    before = int(c.cat.indices(index=index, params={"bytes": "b", "format": "json"})[0]["pri.store.size"])
    c.indices.forcemerge(index=index, params={"max_num_segments": 1})
    c.indices.flush(index=index)
    c.indices.refresh(index=index)
    time.sleep(11)  # the node caches its store size for index.store.stats_refresh_interval (10 s)
    after = int(c.cat.indices(index=index, params={"bytes": "b", "format": "json"})[0]["pri.store.size"])
    return {"store_bytes": before, "merged_bytes": after}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=550)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--qterms", type=int, default=12, help="terms a query on average")
    add_preset_arg(ap)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--line", default="3")
    ap.add_argument("--heap", default="2g")
    ap.add_argument("--skip-by-hand", action="store_true")
    ap.add_argument("--vector-source", action="store_true", help="keep the page vectors in _source (the old layout)")
    a = ap.parse_args()
    from vsplade_opensearch.testnode import TestCluster

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    w = workload(a.preset, a.features, a.qterms)
    m = w.pages(a.pages, seed=0)
    raw_q = w.queries(a.queries, seed=1)
    line = workload_line(a.preset, m, raw_q)
    print(f"{a.pages:,} pages, {a.queries} queries; {line}", flush=True)
    with TestCluster(nodes=1, line=a.line, heap=a.heap) as node:
        print(f"real OpenSearch {node.version} single node, heap {a.heap}, java {node.java}")
        results: dict = {"opensearch": node.version, "pages": a.pages, "features": a.features,
                         "preset": a.preset, "workload": line, "vector_in_source": a.vector_source}
        results["vsplade"] = bench_vsplade(node.url, m, a.threads, a.vector_source)
        print("vsplade writer:", json.dumps(results["vsplade"]), flush=True)
        if not a.skip_by_hand:
            results["by_hand"] = bench_by_hand(node.url, m)
            print("helpers.bulk + json:", json.dumps(results["by_hand"]), flush=True)
        results["search"] = bench_search(node.url, query_dicts(raw_q, default_vocabulary()))
        print("search:", json.dumps(results["search"]), flush=True)
        size = store_size(node.url, "bench-vsplade")
        size["bytes_per_page"] = size["store_bytes"] / a.pages
        size["merged_bytes_per_page"] = size["merged_bytes"] / a.pages
        results["size"] = size
        print("size:", json.dumps(size), flush=True)
    print(line)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
