"""OpenSearch against Lucene on the SAME pages and queries (issue 24 item 5's ratios), one run.

1. Workload: PAGES pages and QUERIES queries of benchmarks/corpus.py (--preset, default quality).
2. Bulk rate against the server's own ceiling, on the first RATE_PAGES pages: one untimed
   writer run first (--warmup: the node's JVM compiles its indexing path in its first bulk),
   then ROUNDS pairs of runs, writer and ceiling back to back, the order alternating (writer
   first, then ceiling first, ...), each into a fresh index, deleted after: a drift of the load
   falls on both alike, and each pair's ratio compares two runs under about the same load:
   - writer: vsplade's OpenSearchWriter (2 threads, 500 pages a request, refresh off during the
     bulk), from creating the index to close() (restore refresh, refresh, count);
   - ceiling: the same bulk lines built beforehand (DocumentBuilder, untimed) into 500-page
     bodies, sent over 2 raw keep-alive HTTP connections (http.client, no client library),
     from creating the index (refresh off) to the refresh after the last body.
   The ratio: the median of the pairs' writer / ceiling (the ratio of the means beside it).
3. Index: the PAGES pages into a single local OpenSearch 3.x node (testnode, the default layout:
   vector left out of `_source`, 1 shard, replicas 0) through the writer, and into Lucene through
   vsplade's direct build (default scale). Both force-merged to one segment; OpenSearch after
   its retention leases synced (--settle s, so the merge drops `_recovery_source`, as
   benchmarks/opensearch_source_size.py does). Bytes/page: the node's primary store size vs the
   Lucene directory.
4. Search: each query through OpenSearchSearcher.search and LuceneImpactIndexSearcher.search,
   one untimed pass of every query at both k on both engines, then interleaved query by query
   (benchmarks/interleave.time_interleaved: order rotating, one more untimed pass each first),
   at k=10 and k=100: p50 / p99. OpenSearch reads each hit's metadata from doc values (the
   searcher's default, query.fetch_clause).
5. A table of the ratios (OpenSearch / Lucene) and the targets: bytes/page <= 2x, k=100 p50
   <= 2x, bulk >= 85% of the ceiling. The 1-minute load average is sampled every 5 s.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/opensearch_vs_lucene.py [--pages 100000] [--queries 300]
        [--preset quality|efficient] [--rate-pages 10000] [--rate-rounds 3] [--no-warmup] [--heap 2g]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lucene import du, time_interleaved  # noqa: E402
from opensearch_workload import add_preset_arg, batches, query_dicts, workload, workload_line  # noqa: E402

INFO = {"name": "bench", "model": "bench"}
CHUNK = 500  # pages a bulk request, the writer's default chunk_docs
THREADS = 2
# the node caches its store size for index.store.stats_refresh_interval (10 s): read after it
STORE_STATS_S = 11.0


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` s: other agents share the machine."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._stop = every, [], threading.Event()

    def run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def stop(self) -> str:
        self._stop.set()
        s = np.asarray(self.samples or [os.getloadavg()[0]])
        return f"load average (1 min, every {self.every:g} s) min {s.min():.1f} / mean {s.mean():.1f} / max {s.max():.1f}"


def writer_run(url: str, index: str, m, batch: int = 1000) -> dict:
    from vsplade_opensearch import OpenSearchEngine

    eng = OpenSearchEngine(index=index, url=url, threads=THREADS, chunk_docs=CHUNK, progress=False, timeout=600,
                           replicas=0)
    t = time.perf_counter()
    with eng.writer(INFO, recreate=True) as w:
        for b in batches(m, batch):
            w.add(b)
        s = w.close()
    wall = time.perf_counter() - t
    if s.failures or s.extra["docs_in_index"] != m.shape[0]:
        raise SystemExit(f"{index}: {len(s.failures)} failures, {s.extra['docs_in_index']} of {m.shape[0]} pages")
    return {"pages": m.shape[0], "wall_s": wall, "pages_per_s": m.shape[0] / wall, "requests": s.extra["bulk_requests"]}


def prebuilt_bodies(m) -> list[bytes]:
    """The writer's own bulk lines (no `_index`: the URL names it), CHUNK pages a body."""
    from vsplade_opensearch.documents import DocumentBuilder

    builder = DocumentBuilder(None, INFO)
    out = []
    for b in batches(m, CHUNK):
        out.append(b"".join(builder.build(b).lines))
    return out


def ceiling_run(url: str, index: str, bodies: list[bytes], pages: int) -> dict:
    """The server's own ceiling: pre-built bodies over THREADS raw keep-alive connections."""
    from opensearchpy import OpenSearch

    from vsplade_opensearch.mapping import index_body

    client = OpenSearch(url, timeout=600)
    client.indices.delete(index=index, ignore=[404])
    u = urlparse(url)
    todo: queue.Queue = queue.Queue()
    for body in bodies:
        todo.put(body)
    errors: list[str] = []

    def send():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        try:
            while True:
                try:
                    body = todo.get_nowait()
                except queue.Empty:
                    return
                conn.request("POST", f"/{index}/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200 or b'"errors":true' in data[:200]:
                    errors.append(f"HTTP {resp.status}: {data[:300]!r}")
                    return
        finally:
            conn.close()

    t = time.perf_counter()
    client.indices.create(index=index, body=index_body(INFO, replicas=0, refresh_interval="-1"))
    workers = [threading.Thread(target=send) for _ in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    client.indices.refresh(index=index)
    wall = time.perf_counter() - t
    if errors:
        raise SystemExit(f"{index}: bulk refused: {errors[0]}")
    n = client.count(index=index)["count"]
    if n != pages:
        raise SystemExit(f"{index}: {n} of {pages} pages after the raw bulk")
    return {"pages": pages, "wall_s": wall, "pages_per_s": pages / wall}


def bulk_rate(url: str, m, rounds: int = 3, warmup: bool = True) -> dict:
    from opensearchpy import OpenSearch

    client = OpenSearch(url, timeout=600)
    t = time.perf_counter()
    bodies = prebuilt_bodies(m)
    build_s = time.perf_counter() - t
    runs = []
    if warmup:
        # both sides warmed (the node's JIT for its bulk path; the client's imports and
        # connections): a cold first run of either side paid for the node's warm-up
        r = writer_run(url, "bench-rate-warmup", m)
        client.indices.delete(index="bench-rate-warmup")
        c = ceiling_run(url, "bench-rate-warmup-c", bodies, m.shape[0])
        client.indices.delete(index="bench-rate-warmup-c")
        print(f"  warm-up runs (untimed): writer {r['pages_per_s']:,.0f}, ceiling {c['pages_per_s']:,.0f} pages/s",
              flush=True)
    order = [k for r in range(rounds) for k in (("writer", "ceiling") if r % 2 == 0 else ("ceiling", "writer"))]
    for i, kind in enumerate(order):
        index = f"bench-rate-{kind}-{i}"
        r = writer_run(url, index, m) if kind == "writer" else ceiling_run(url, index, bodies, m.shape[0])
        r["kind"] = kind
        runs.append(r)
        client.indices.delete(index=index)
        print(f"  rate run {i + 1}/{len(order)} {kind}: {r['pages_per_s']:,.0f} pages/s ({r['wall_s']:.1f} s), "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    w = float(np.mean([r["pages_per_s"] for r in runs if r["kind"] == "writer"]))
    c = float(np.mean([r["pages_per_s"] for r in runs if r["kind"] == "ceiling"]))
    pairs = []
    for a, b in zip(runs[::2], runs[1::2]):
        wr, cr = (a, b) if a["kind"] == "writer" else (b, a)
        pairs.append(wr["pages_per_s"] / cr["pages_per_s"])
    return {"runs": runs, "writer_pages_per_s": w, "ceiling_pages_per_s": c, "ratio_of_means": w / c,
            "pair_ratios": pairs, "ratio": float(np.median(pairs)),
            "bodies_build_s": build_s, "body_bytes_per_page": sum(map(len, bodies)) / m.shape[0]}


def bulk_report(b: dict, pages: int) -> str:
    """The bulk row of the table (writer vs ceiling, the >= 85% target) and the runs behind it."""
    return (f"| bulk pages/s ({pages:,} pages a run; writer / ceiling, median of {len(b['pair_ratios'])} pairs) | "
            f"{b['writer_pages_per_s']:,.0f} | ceiling {b['ceiling_pages_per_s']:,.0f} | {100 * b['ratio']:.0f}% | >= 85% | "
            f"{'yes' if b['ratio'] >= 0.85 else 'NO'} |\n\nbulk runs: "
            + ", ".join(f"{r['kind']} {r['pages_per_s']:,.0f}" for r in b["runs"])
            + "; pair ratios " + ", ".join(f"{100 * x:.0f}%" for x in b["pair_ratios"])
            + f"; ratio of the means {100 * b['ratio_of_means']:.0f}%")


def opensearch_store(client, index: str) -> dict:
    client.indices.refresh(index=index)
    st = client.indices.stats(index=index, metric="store,segments")["_all"]["primaries"]
    return {"bytes": st["store"]["size_in_bytes"], "segments": st["segments"]["count"]}


def lucene_force_merge(path: Path) -> None:
    from vsplade_lucene.direct import open_index_writer

    writer, directory = open_index_writer(path, create=False)
    try:
        writer.forceMerge(1)
        writer.commit()
    finally:
        writer.close()
        directory.close()


def lucene_segments(path: Path) -> int:
    return len({p.stem for p in path.glob("_*.si")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    add_preset_arg(ap)
    ap.add_argument("--rate-pages", type=int, default=10_000, help="pages of each bulk-rate run")
    ap.add_argument("--rate-rounds", type=int, default=3, help="writer/ceiling pairs of rate runs")
    ap.add_argument("--no-warmup", action="store_true", help="no untimed writer and ceiling runs before the rate runs")
    ap.add_argument("--bulk-only", action="store_true", help="measure the bulk rate only (no 100k build, no searches)")
    ap.add_argument("--settle", type=float, default=65.0, help="s after the bulk before the merge (retention leases)")
    ap.add_argument("--line", default="3")
    ap.add_argument("--heap", default="2g", help="the OpenSearch node's heap")
    ap.add_argument("--workdir", default=None, help="folder for the Lucene index (default: a temp dir)")
    a = ap.parse_args()
    from opensearchpy import OpenSearch

    from vsplade.vocab import default_vocabulary
    from vsplade_lucene import LuceneEngine
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.testnode import TestCluster

    load = LoadSampler()
    load.start()
    t0 = time.perf_counter()
    vocab = default_vocabulary()
    w = workload(a.preset)
    m = w.pages(a.pages, seed=0)
    raw_q = w.queries(a.queries, seed=1)
    queries = query_dicts(raw_q, vocab)
    line = workload_line(a.preset, m, raw_q)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{a.pages:,} pages, {a.queries} queries; {line}; generated in {time.perf_counter() - t0:.0f} s", flush=True)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="vsplade-os-vs-lucene-"))
    out: dict = {"pages": a.pages, "queries": a.queries, "preset": a.preset, "workload": line}
    with TestCluster(nodes=1, line=a.line, heap=a.heap) as node:
        print(f"real OpenSearch {node.version} single node, heap {a.heap}", flush=True)
        client = OpenSearch(node.url, timeout=600)
        rate_m = m[:min(a.rate_pages, a.pages)]
        out["bulk"] = bulk_rate(node.url, rate_m, a.rate_rounds, warmup=not a.no_warmup)
        print("bulk rate:", json.dumps({k: v for k, v in out["bulk"].items() if k != "runs"}), flush=True)
        if a.bulk_only:
            out["load"] = load.stop()
            print(f"\n{line}\n\n| measure | writer | ceiling | writer / ceiling | target | holds |\n|---|---:|---:|---:|---|---|")
            print(bulk_report(out["bulk"], rate_m.shape[0]))
            print(out["load"])
            return

        index = "bench-os-vs-lucene"
        out["opensearch_build"] = writer_run(node.url, index, m)
        bulk_done = time.monotonic()
        print("opensearch build:", json.dumps(out["opensearch_build"]), flush=True)
        out["opensearch_written"] = opensearch_store(client, index)

        lpath = work / "lucene"
        leng = LuceneEngine(str(lpath), threads=THREADS)
        t = time.perf_counter()
        with leng.writer({"name": "bench"}, recreate=True) as lw:
            for b in batches(m, 1024):
                lw.add(b)
        lbuild = time.perf_counter() - t
        segs_before = lucene_segments(lpath)
        t = time.perf_counter()
        lucene_force_merge(lpath)
        out["lucene_build"] = {"wall_s": lbuild, "pages_per_s": a.pages / lbuild, "scale": leng.scale,
                               "segments_before": segs_before, "merge_s": time.perf_counter() - t,
                               "segments": lucene_segments(lpath), "bytes": du(lpath)}
        print("lucene build + merge:", json.dumps(out["lucene_build"]), flush=True)

        time.sleep(max(0.0, a.settle - (time.monotonic() - bulk_done)))
        t = time.perf_counter()
        client.indices.flush(index=index, params={"force": "true"})
        client.indices.forcemerge(index=index, params={"max_num_segments": 1}, request_timeout=3600)
        client.indices.flush(index=index)
        time.sleep(STORE_STATS_S)
        out["opensearch_merged"] = opensearch_store(client, index)
        out["opensearch_merged"]["merge_s"] = time.perf_counter() - t
        print("opensearch merged:", json.dumps(out["opensearch_merged"]), flush=True)

        oss = OpenSearchEngine(index=index, url=node.url, timeout=300).searcher()
        ls = leng.searcher()
        lat = {}
        # both engines' search paths warmed at both k first: timed first, k=10 otherwise paid for
        # the node's warm-up (its p50 came out above k=100's in earlier runs)
        for q in queries:
            for k in (10, 100):
                oss.search(q, k)
                ls.search(q, k)
        for k in (10, 100):
            r = time_interleaved({"opensearch": lambda q, k=k: oss.search(q, k),
                                  "lucene": lambda q, k=k: ls.search(q, k)}, queries)
            lat[k] = {name: {"p50_ms": p50, "p99_ms": p99} for name, (p50, p99) in r.items()}
            print(f"search k={k}:", json.dumps(lat[k]), flush=True)
        out["search"] = lat
        # the same top-10 (ids) on both engines: the comparison is between equal answers
        same = sum({h.id for h in oss.search(q, 10)} == {h.id for h in ls.search(q, 10)} for q in queries)
        out["same_top10_set"] = same
        ls.close()
    out["load"] = load.stop()
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)

    os_bpp = out["opensearch_merged"]["bytes"] / a.pages
    lu_bpp = out["lucene_build"]["bytes"] / a.pages
    rows = [
        ("bytes/page (one segment each)", os_bpp, lu_bpp, "<= 2x", os_bpp / lu_bpp <= 2),
        ("k=10 p50 ms", lat[10]["opensearch"]["p50_ms"], lat[10]["lucene"]["p50_ms"], "", None),
        ("k=10 p99 ms", lat[10]["opensearch"]["p99_ms"], lat[10]["lucene"]["p99_ms"], "", None),
        ("k=100 p50 ms", lat[100]["opensearch"]["p50_ms"], lat[100]["lucene"]["p50_ms"], "<= 2x",
         lat[100]["opensearch"]["p50_ms"] / lat[100]["lucene"]["p50_ms"] <= 2),
        ("k=100 p99 ms", lat[100]["opensearch"]["p99_ms"], lat[100]["lucene"]["p99_ms"], "", None),
    ]
    print(f"\n## OpenSearch vs Lucene, {a.pages:,} pages, {a.queries} queries\n\n{line}\n")
    print("| measure | OpenSearch | Lucene | OpenSearch / Lucene | target | holds |\n|---|---:|---:|---:|---|---|")
    for name, o, lu, target, ok in rows:
        fmt = (lambda x: f"{x:,.0f}") if "bytes" in name else (lambda x: f"{x:.2f}")
        print(f"| {name} | {fmt(o)} | {fmt(lu)} | {o / lu:.2f}x | {target} | {'' if ok is None else ('yes' if ok else 'NO')} |")
    print(bulk_report(out["bulk"], rate_m.shape[0]))
    print(f"OpenSearch: written {out['opensearch_written']['bytes'] / a.pages:,.0f} bytes/page in "
          f"{out['opensearch_written']['segments']} segments; merged {out['opensearch_merged']['segments']} segment(s); "
          f"build {out['opensearch_build']['pages_per_s']:,.0f} pages/s")
    lb = out["lucene_build"]
    print(f"Lucene: scale {lb['scale']:g}, build {lb['pages_per_s']:,.0f} pages/s, {lb['segments_before']} -> "
          f"{lb['segments']} segment(s) (merge {lb['merge_s']:.1f} s)")
    print(f"same top-10 set on both engines: {same}/{len(queries)} queries")
    print(out["load"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
