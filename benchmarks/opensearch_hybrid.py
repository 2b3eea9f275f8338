"""Hybrid search's latency cost on OpenSearch (issue 26 item 4): vector-only vs BM25-only vs hybrid
fused in a search pipeline (neural-search) vs hybrid fused in the client (two searches), on one
local plugin node (testnode --plugins neural: 3.6.0 or 2.19.1), one shard.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/opensearch_hybrid.py [--pages 100000] [--queries 200]
        [--line 3|2] [--depth 100] [--words 300] [--preset quality] [--url URL]

Pages and queries: benchmarks/hybrid.py's (corpus.py's V-SPLADE-like vectors plus a Zipf text
layer of ~--words words a page; queries of 3-8 words), so the numbers compare with its memory
and Lucene rows. Written with the OpenSearchWriter as a --text-field collection (the whole text
in the `text` field, BM25 0.9/0.4), force-merged to one segment. Every row is timed query by
query in turn (benchmarks/interleave.py). Hybrid takes depth hits from each side and returns
10; the pipeline row counts how many queries it answered in the pipeline and how many fell back
to the client on a near tie (searcher.py `_order_is_exact`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hybrid import add_workload_args, workload  # noqa: E402
from interleave import time_interleaved  # noqa: E402

K = 10
CHUNK = 5000


def run(url: str, args) -> list[tuple]:
    from vsplade_opensearch import OpenSearchEngine

    batch, queries, qtexts = workload(args)
    index = f"bench-hybrid-{uuid.uuid4().hex[:8]}"
    eng = OpenSearchEngine(index=index, url=url, progress=False, replicas=0, timeout=600)
    t = time.perf_counter()
    with eng.writer({"name": "bench-hybrid"}, recreate=True) as w:
        w.set_properties({"text_field": True})
        for s in range(0, len(batch), CHUNK):
            w.add(batch.select(range(s, min(s + CHUNK, len(batch)))))
    client = eng.conn.client()
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=1800)
    client.indices.refresh(index=index)
    print(f"indexed and merged in {time.perf_counter() - t:.0f} s", flush=True)
    pipe = eng.searcher()
    cli = OpenSearchEngine(index=index, url=url, hybrid_fusion="client").searcher()
    d = args.depth
    fns = {
        "vector": lambda qt: pipe.search(qt[0], K),
        "text (BM25)": lambda qt: pipe.search_text(qt[1], K),
        f"hybrid rrf, pipeline, depth {d}": lambda qt: pipe.search_hybrid(qt[0], qt[1], K, "rrf", d),
        f"hybrid rrf, client, depth {d}": lambda qt: cli.search_hybrid(qt[0], qt[1], K, "rrf", d),
        f"hybrid minmax:0.6, pipeline, depth {d}": lambda qt: pipe.search_hybrid(qt[0], qt[1], K, "minmax:0.6", d),
        f"hybrid minmax:0.6, client, depth {d}": lambda qt: cli.search_hybrid(qt[0], qt[1], K, "minmax:0.6", d),
        f"vector alone at depth {d}": lambda qt: pipe.search(qt[0], d),
        f"text alone at depth {d}": lambda qt: pipe.search_text(qt[1], d),
    }
    work = list(zip(queries, qtexts))
    # the pipeline and the client give the same pages in the same order (tests/opensearch/
    # test_hybrid_opensearch.py); checked again here on the benchmark's own queries
    for mode in ("rrf", "minmax:0.6"):
        pipe.hybrid_counts.update(pipeline=0, near_tie_fallback=0)
        same = sum([h.id for h in pipe.search_hybrid(q, t, K, mode, d)] == [h.id for h in cli.search_hybrid(q, t, K, mode, d)]
                   for q, t in work)
        print(f"{mode}: pipeline == client top-{K} on {same}/{len(work)} queries; answered in the pipeline "
              f"{pipe.hybrid_counts['pipeline']}, near-tie fallbacks to the client {pipe.hybrid_counts['near_tie_fallback']}",
              flush=True)
    timed = time_interleaved(fns, work)
    client.indices.delete(index=index, ignore=[404])
    base = timed["vector"][0]
    return [(name, p50, p99, p50 / base) for name, (p50, p99) in timed.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(ap)
    ap.add_argument("--line", default="3", help="plugin line (server/plugins/plugins.tsv): 3 = 3.6.0, 2 = 2.19.1")
    ap.add_argument("--heap", default="2g")
    ap.add_argument("--url", help="a cluster with neural-search 2.19+ instead of a testnode")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.url:
        rows, version = run(args.url, args), "given cluster"
    else:
        from vsplade_opensearch.testnode import TestCluster

        with TestCluster(nodes=1, line=args.line, plugins="neural", heap=args.heap) as node:
            version = node.version
            rows = run(node.url, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"OpenSearch {version}, 1 shard, {args.pages} pages")
    print("| search | p50 ms | p99 ms | p50 vs vector |")
    print("|---|---:|---:|---:|")
    for name, p50, p99, ratio in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
