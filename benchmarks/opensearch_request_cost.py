"""Where an OpenSearch search request's time goes (issue 24 item 5: the fixed per-request cost
that keeps k=100 near 2x Lucene's and k=10 at 4-8x).

One local node (testnode, the default layout: vector left out of `_source`), PAGES pages of
benchmarks/corpus.py through the writer, force-merged to one segment straight after the bulk
(so each page's `_recovery_source` is still stored, as on a freshly written index; --settle S
waits S s for the retention leases first, so the merge drops it); then the same queries,
interleaved query by query (benchmarks/interleave.time_interleaved), through:
- source: one keep-alive http.client connection, orjson both ways, the hits' metadata read
  from `_source` filtered to DEFAULT_SOURCE (the searcher's fetch before issue 24 item 5);
- id_only: `_source: false`, nothing else asked (each hit still loads its stored `_id`);
- docvalues: the metadata as `docvalue_fields` and `stored_fields: _none_` (query.fetch_clause,
  the searcher's default now: no stored field read);
- searcher: OpenSearchSearcher.search (opensearch-py, its orjson serializer, docvalues);
- lucene: vsplade's Lucene searcher on the same pages (the reference);
then the server's own `took` (whole ms, mean) for source / docvalues, and the client-side parts
(body build, body serialisation, response parse, Hits) measured alone.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/opensearch_request_cost.py [--pages 20000] [--queries 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import pct, time_interleaved  # noqa: E402
from opensearch_vs_lucene import lucene_force_merge, writer_run  # noqa: E402
from opensearch_workload import add_preset_arg, batches, query_dicts, workload, workload_line  # noqa: E402



class Raw:
    """One keep-alive connection, orjson both ways."""

    def __init__(self, url: str, index: str):
        u = urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.index = index

    def search(self, body: dict, params: str = "") -> dict:
        self.conn.request("POST", f"/{self.index}/_search{params}", body=orjson.dumps(body),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}: {data[:300]!r}")
        return orjson.loads(data)


def timed(fn, items, repeat: int = 3) -> float:
    """Median per-item µs of fn over items (best of `repeat` passes)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t) / len(items))
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    add_preset_arg(ap)
    ap.add_argument("--heap", default="2g")
    ap.add_argument("--settle", type=float, default=0.0, help="s after the bulk before the merge (0: recovery source kept)")
    a = ap.parse_args()
    from opensearchpy import OpenSearch

    from vsplade.vocab import default_vocabulary
    from vsplade_lucene import LuceneEngine
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.query import DEFAULT_SOURCE, fetch_clause
    from vsplade_opensearch.searcher import FETCH_KEYS
    from vsplade_opensearch.testnode import TestCluster

    vocab = default_vocabulary()
    w = workload(a.preset)
    m = w.pages(a.pages, seed=0)
    raw_q = w.queries(a.queries, seed=1)
    queries = query_dicts(raw_q, vocab)
    print(f"{a.pages:,} pages, {a.queries} queries; {workload_line(a.preset, m, raw_q)}; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="vsplade-os-cost-"))
    with TestCluster(nodes=1, line="3", heap=a.heap) as node:
        index = "bench-cost"
        print("build:", writer_run(node.url, index, m), flush=True)
        client = OpenSearch(node.url, timeout=600)
        time.sleep(a.settle)
        client.indices.flush(index=index, params={"force": "true"})
        client.indices.forcemerge(index=index, params={"max_num_segments": 1}, request_timeout=3600)
        client.indices.refresh(index=index)
        leng = LuceneEngine(str(work / "lucene"), threads=2)
        with leng.writer({"name": "bench"}, recreate=True) as lw:
            for b in batches(m, 1024):
                lw.add(b)
        lucene_force_merge(work / "lucene")
        ls = leng.searcher()
        oss = OpenSearchEngine(index=index, url=node.url, timeout=300).searcher()
        raw = Raw(node.url, index)

        def fetched(q, k, how):
            body = oss.body(q, k)
            for key in FETCH_KEYS:
                body.pop(key, None)
            if how == "source":
                body["_source"] = {"includes": list(DEFAULT_SOURCE)}
            elif how == "id_only":
                body["_source"] = False
            else:
                body.update(fetch_clause(DEFAULT_SOURCE))
            return body

        def raw_hits(resp):
            return oss._hits(resp, {}, False)

        for k in (10, 100):
            fns = {how: (lambda q, k=k, how=how: raw_hits(raw.search(fetched(q, k, how))))
                   for how in ("source", "id_only", "docvalues")}
            fns["searcher"] = lambda q, k=k: oss.search(q, k)
            fns["lucene"] = lambda q, k=k: ls.search(q, k)
            r = time_interleaved(fns, queries)
            took = {how: np.mean([raw.search(fetched(q, k, how))["took"] for q in queries]) for how in ("source", "docvalues")}
            print(f"k={k}: " + ", ".join(f"{n} p50 {p50:.2f} / p99 {p99:.2f} ms" for n, (p50, p99) in r.items())
                  + "; server took mean " + ", ".join(f"{n} {v:.2f} ms" for n, v in took.items()), flush=True)
            bodies = [oss.body(q, k) for q in queries]
            resps = [raw.search(b) for b in bodies]
            texts = [json.dumps(x) for x in resps]
            print(f"  client parts (µs/query): body {timed(lambda q: oss.body(q, k), queries):.0f}, "
                  f"json.dumps body {timed(json.dumps, bodies):.0f}, orjson.dumps {timed(orjson.dumps, bodies):.0f}, "
                  f"json.loads response {timed(json.loads, texts):.0f} ({np.mean([len(t) for t in texts]):.0f} B), "
                  f"orjson.loads {timed(orjson.loads, texts):.0f}, hits {timed(raw_hits, resps):.0f}", flush=True)
        print("load", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        ls.close()


if __name__ == "__main__":
    main()
