"""OpenSearch connector throughput: client-side bulk bodies, and end to end against a test server.

1. client: DocumentBuilder.build (validation + term names + orjson) over PAGES pages of about
   FEATURES features each, one thread; pages/s by CPU time and by wall time, bytes per page.
2. e2e: OpenSearchWriter into a real local OpenSearch single node (testnode, the 3.x line),
   pages/s, client peak RSS and server (JVM) peak RSS. benchmarks/opensearch_real.py has the
   full real-node benchmark (side by side with helpers.bulk, search latency, store size).

    .venv/bin/python benchmarks/opensearch_bulk.py [--pages 100000] [--features 550] [--e2e-pages 5000]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import scipy.sparse as sp

from vsplade.sparse import SparseBatch
from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE


def synthetic_batch(n: int, features: int, seed: int, start: int = 0) -> SparseBatch:
    """n pages with ~`features` distinct random token ids each, lognormal weights."""
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, VOCAB_SIZE, size=(n, features + features // 50)), axis=1)
    keep = np.ones(cols.shape, bool)
    keep[:, 1:] = cols[:, 1:] != cols[:, :-1]
    keep &= ~np.isin(cols, SPECIAL_IDS)
    counts = keep.sum(1)
    keep &= np.cumsum(keep, axis=1) <= features  # exactly `features` per row
    counts = keep.sum(1)
    indices = cols[keep].astype(np.int32)
    data = rng.lognormal(-1.0, 0.8, size=len(indices)).astype(np.float32)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    m = sp.csr_matrix((data, indices, indptr), shape=(n, VOCAB_SIZE))
    ids = [f"bench-{i:08d}" for i in range(start, start + n)]
    meta = [{"id": d, "source": f"/corpus/file{(start + i) // 20:05d}.pdf", "page": (start + i) % 20 + 1} for i, d in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def bench_client(pages: int, features: int, batch: int = 1000) -> dict:
    from vsplade_opensearch.documents import DocumentBuilder

    builder = DocumentBuilder(None, {"name": "bench", "model": "bench"})
    pool = [synthetic_batch(batch, features, seed) for seed in range(5)]
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


def bench_e2e(pages: int, features: int, threads: int, chunk_docs: int) -> dict:
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.testnode import TestCluster

    batch = 500
    with TestCluster(nodes=1, line="3", heap="1g") as node:
        eng = OpenSearchEngine(index="bench", url=node.url, threads=threads, chunk_docs=chunk_docs, progress=False)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall0 = time.perf_counter()
        with eng.writer({"name": "bench", "model": "bench"}, recreate=True) as w:
            for i in range(pages // batch):
                w.add(synthetic_batch(batch, features, seed=100 + i, start=i * batch))
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
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores, python {platform.python_version()}")
    c = bench_client(args.pages, args.features)
    print("\n| client: build + serialise bulk lines (1 thread) | value |\n|---|---|")
    print(f"| pages | {c['pages']:,} |\n| features per page | {c['features']:.0f} |")
    print(f"| pages/s (CPU time) | {c['pages_per_cpu_s']:,.0f} |\n| pages/s (wall) | {c['pages_per_wall_s']:,.0f} |")
    print(f"| bytes per page (action + document) | {c['bytes_per_page']:,.0f} |")
    if args.e2e_pages:
        e = bench_e2e(args.e2e_pages, args.features, args.threads, args.chunk_docs)
        print("\n| end to end into a real OpenSearch single node (3.x line) | value |\n|---|---|")
        for k, v in e.items():
            print(f"| {k} | {v:,.1f} |" if isinstance(v, float) else f"| {k} | {v:,} |")


if __name__ == "__main__":
    main()
