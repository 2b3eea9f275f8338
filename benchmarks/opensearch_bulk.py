"""OpenSearch connector throughput: client-side bulk bodies, and end to end against a test server.

The pages are benchmarks/corpus.py's Workload (--preset, default quality: FLOPs 1.51, ~FEATURES
non-zeros a page); its FLOPs and postings per query are printed first.

1. client: DocumentBuilder.build (validation + term names + orjson) over PAGES pages (5 batches
   of the workload, built over and over), one thread; pages/s by CPU time and by wall time, bytes per page.
2. e2e: OpenSearchWriter into a real local OpenSearch single node (testnode, the 3.x line),
   pages/s, client peak RSS and server (JVM) peak RSS. benchmarks/opensearch_real.py has the
   full real-node benchmark (side by side with helpers.bulk, search latency, store size).

    .venv/bin/python benchmarks/opensearch_bulk.py [--pages 100000] [--preset quality|efficient] [--features 550]
        [--e2e-pages 5000]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from opensearch_workload import add_preset_arg, batch_of, batches, workload, workload_line  # noqa: E402


def bench_client(pages: int, m, batch: int = 1000) -> dict:
    from vsplade_opensearch.documents import DocumentBuilder

    builder = DocumentBuilder(None, {"name": "bench", "model": "bench"})
    pool = [batch_of(m[s:s + batch], s) for s in range(0, min(5 * batch, m.shape[0]), batch)]
    builder.build(pool[0])  # warm caches (vocabulary array, orjson)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    nbytes = docs = 0
    for i in range(pages // batch):
        built = builder.build(pool[i % len(pool)])
        docs += len(built.lines)
        nbytes += sum(map(len, built.lines))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    nnz = np.mean([np.diff(b.matrix.indptr).mean() for b in pool])
    return {"pages": docs, "features": float(nnz), "cpu_s": cpu, "wall_s": wall,
            "pages_per_cpu_s": docs / cpu, "pages_per_wall_s": docs / wall, "bytes_per_page": nbytes / docs}


def server_peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def bench_e2e(m, threads: int, chunk_docs: int) -> dict:
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.testnode import TestCluster

    batch = 500
    with TestCluster(nodes=1, line="3", heap="1g") as node:
        eng = OpenSearchEngine(index="bench", url=node.url, threads=threads, chunk_docs=chunk_docs, progress=False)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall0 = time.perf_counter()
        with eng.writer({"name": "bench", "model": "bench"}, recreate=True) as w:
            for b in batches(m, batch):
                w.add(b)
            summary = w.close()
        wall = time.perf_counter() - wall0
        return {"pages": summary.indexed, "wall_s": wall, "pages_per_s": summary.indexed / wall,
                "failures": len(summary.failures), "requests": summary.extra["bulk_requests"],
                "client_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "client_rss_before_mib": rss0 / 1024,
                "server_peak_rss_mib": server_peak_rss_kib(node.members[0].proc.pid) / 1024,
                "docs_in_index": summary.extra["docs_in_index"], "threads": threads, "chunk_docs": chunk_docs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=550)
    ap.add_argument("--e2e-pages", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-docs", type=int, default=500)
    add_preset_arg(ap)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores, python {platform.python_version()}, "
          f"load average {__import__('os').getloadavg()[0]:.1f}")
    w = workload(args.preset, args.features)
    m = w.pages(max(args.e2e_pages, min(args.pages, 5000)), seed=0)
    print(workload_line(args.preset, m, w.queries(300, seed=1)), flush=True)
    c = bench_client(args.pages, m)
    print("\n| client: build + serialise bulk lines (1 thread) | value |\n|---|---|")
    print(f"| pages | {c['pages']:,} |\n| features per page | {c['features']:.0f} |")
    print(f"| pages/s (CPU time) | {c['pages_per_cpu_s']:,.0f} |\n| pages/s (wall) | {c['pages_per_wall_s']:,.0f} |")
    print(f"| bytes per page (action + document) | {c['bytes_per_page']:,.0f} |")
    if args.e2e_pages:
        e = bench_e2e(m[:args.e2e_pages], args.threads, args.chunk_docs)
        print("\n| end to end into a real OpenSearch single node (3.x line) | value |\n|---|---|")
        for k, v in e.items():
            print(f"| {k} | {v:,.1f} |" if isinstance(v, float) else f"| {k} | {v:,} |")


if __name__ == "__main__":
    main()
