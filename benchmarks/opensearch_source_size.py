"""Bytes per page of a vsplade OpenSearch index with the page vector kept in `_source` (the
layout before the index kinds, `vector_source=True`) and left out (the default), on the same
pages (benchmarks/corpus.py's Workload, --preset, default quality; its FLOPs and postings per
query printed first), one real single node (testnode, the 3.x line unless --line 2).

Leaving a field out of `_source` does not shrink the index at once: OpenSearch keeps the whole
original document as `_recovery_source` until no retention lease needs the operation (peer
recovery), and drops it only when a merge rewrites the segment. So the pages are written in
several writer runs (each one flush: several segments), the sizes read as written, then after
the retention leases have synced (`--settle` s) and a force merge to one segment: the size the
index keeps.

    .venv/bin/python benchmarks/opensearch_source_size.py [--pages 20000] [--preset quality|efficient] [--runs 4]
        [--settle 65]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from opensearch_workload import add_preset_arg, batches, workload, workload_line  # noqa: E402

INFO = {"name": "bench", "model": "bench"}
BATCH = 1000


def store(client, index: str) -> dict:
    client.indices.refresh(index=index)
    st = client.indices.stats(index=index, metric="store,segments")["_all"]["primaries"]
    return {"bytes": st["store"]["size_in_bytes"], "segments": st["segments"]["count"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=20_000)
    ap.add_argument("--features", type=int, default=550)
    ap.add_argument("--runs", type=int, default=4, help="writer runs the pages are split over (segments)")
    ap.add_argument("--settle", type=float, default=65.0, help="seconds for the retention leases to sync")
    add_preset_arg(ap)
    ap.add_argument("--line", default="3")
    ap.add_argument("--heap", default="2g")
    a = ap.parse_args()
    from opensearchpy import OpenSearch

    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.testnode import TestCluster

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    n = a.pages // BATCH
    w = workload(a.preset, a.features)
    m = w.pages(n * BATCH, seed=0)
    print(workload_line(a.preset, m, w.queries(300, seed=1)), flush=True)
    with TestCluster(nodes=1, line=a.line, heap=a.heap) as node:
        print(f"real OpenSearch {node.version} single node, heap {a.heap}")
        client = OpenSearch(node.url, timeout=600)
        out: dict = {"opensearch": node.version, "pages": n * BATCH, "features": a.features, "preset": a.preset}
        for name, keep in (("vector_in_source", True), ("vector_left_out", False)):
            # replicas 0: one node can never assign a replica (and its lease would keep the recovery source)
            eng = OpenSearchEngine(index=f"bench-size-{name.replace('_', '-')}", url=node.url, progress=False,
                                   timeout=300, vector_source=keep, replicas=0)
            per_run = -(-n // a.runs) * BATCH
            for start in range(0, n * BATCH, per_run):
                with eng.writer(INFO) as wr:
                    for b in batches(m[start:start + per_run], BATCH, offset=start):
                        wr.add(b)
                    wr.close()
                client.indices.flush(index=eng.index)
            out[name] = {"index": eng.index, "written": store(client, eng.index)}
        time.sleep(a.settle)
        for name in ("vector_in_source", "vector_left_out"):
            index = out[name]["index"]
            client.indices.flush(index=index, params={"force": "true"})
            client.indices.forcemerge(index=index, params={"max_num_segments": 1})
            time.sleep(11)  # the node caches its store size for index.store.stats_refresh_interval (10 s)
            out[name]["merged"] = store(client, index)
            for k in ("written", "merged"):
                out[name][k]["bytes_per_page"] = round(out[name][k]["bytes"] / out["pages"])
            print(name, json.dumps(out[name]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
