"""Scale curves (issue 24 item 2): how build rate, disk, RAM and latency grow with the pages, per
engine, on benchmarks/corpus.py's workload (both presets).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000]
        [--presets quality,efficient]
        [--engines memory,lucene,lucene-optimize,lucene-capped,pyserini,opensearch,opensearch-sparse-ann]
        [--queries 300] [--stop-at 17:30] [--workdir DIR] [--report-only]

Per (size, preset, engine) it measures: build time (pages/s), bytes/page on disk, RSS of a
fresh process after opening the index, p50/p99 at k=10 and k=100 (one thread, query by query),
QPS at 2 threads (k=10). Engines:
- memory: an encoded dir (EncodedDirWriter), searched by MemorySearcher (exact, float32);
- lucene: vsplade's direct build (scale 10000, 2 threads, segments as the writer leaves them),
  searched by vsplade's LuceneImpactIndexSearcher;
- pyserini: Pyserini's own LuceneImpactSearcher on the SAME Lucene index
  (vsplade_lucene.pyserini_searcher), timed interleaved with vsplade's searcher query by query
  (benchmarks/interleave.py) in the same process; its build and disk are the Lucene index's;
- opensearch: a real single node (testnode, line 3, heap 2g, 1 shard, replicas 0) bulk-loaded by
  vsplade's writer (benchmarks/opensearch_vs_lucene.writer_run), searched as the node leaves the
  index after the bulk (like Lucene: no merge first); bytes/page after the retention leases
  settle and a force merge to one segment (the size an index reaches once its segments merge),
  the written size beside it. RSS: the node's JVM.

Two approximate engines, each with recall@10 (and @100) against the exact ranking of the same
pages and queries:
- lucene-capped: the direct build with per-term posting caps (--prune cap=C, vsplade_lucene.capped)
  at C = max(1, round(0.003 x pages)) (3000 at 1M, RESULTS.md's recommended setting), searched by
  the searcher's default (capped two-phase, CAPPED_TWO_PHASE); disk counts the capped files and
  the forward index. The exact reference is the SAME index searched without them (a second
  searcher with use_forward off: exact Lucene over the whole postings, which --prune cap leaves
  intact), timed interleaved with the capped one query by query ("exact, same index" columns).
- opensearch-sparse-ann: a real OpenSearch 3.6.0 node with neural-search (testnode --plugins
  neural, heap 3g), vsplade's writer with --sparse-ann (a SEISMIC sparse_vector field, ids folded
  to id % 32768: vsplade_opensearch.sparse_ann), approximate_threshold = 90% of the pages
  (neural-search's default is 1,000,000 docs a segment: below it a segment is searched exactly),
  so that the bulk's smaller segments are not clustered (clustering is the slow part: 24 min for
  10,000 Quality pages on this machine, one seismic thread) and the one segment of the force merge is; it is searched only
  after that merge (before it the ANN path does not run). Build pages/s = pages / (bulk +
  force merge with clustering); the bulk alone beside it. Truth: the exact float dot product over
  the unfolded pages (numpy, benchmarks/opensearch_sparse_ann.py); "fold only" = the exact dot
  product over the folded ids (what folding costs before SEISMIC). Searched with vsplade's
  searcher at neural-search's query defaults (top_n 10, heap_factor 1.0).

Each build and each search runs in its own child process: RSS is a fresh process's, and a 1M
step holds one engine's memory at a time. Machine care (the machine is shared): sizes run in the
order given (small first); a step of 1M pages or more waits while another 1M benchmark
(benchmarks/approximate.py) runs, and nothing starts after --stop-at (UTC); what did not run is
recorded as skipped, with why. Results are merged into benchmarks/results/scale.json (a re-run
of one piece replaces that piece), printed as tables (with the load average) and plotted to
benchmarks/results/scale.png (p50 k=10 vs pages and bytes/page vs pages, log-log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import PRESETS, measure  # noqa: E402
from interleave import time_interleaved  # noqa: E402
from lucene import du  # noqa: E402
from memory_ram import status_kb  # noqa: E402
from opensearch_vs_lucene import (STORE_STATS_S, LoadSampler, lucene_segments, opensearch_store,  # noqa: E402
                                  writer_run)
from opensearch_workload import batches, query_dicts, workload  # noqa: E402

RESULTS = HERE / "results"
ENGINES = ("memory", "lucene", "lucene-optimize", "lucene-capped", "pyserini", "opensearch", "opensearch-sparse-ann")
APPROXIMATE = ("lucene-capped", "opensearch-sparse-ann")
CAP_PER_PAGE = 0.003  # lucene-capped: cap = 0.003 x pages (3000 at 1M: RESULTS.md's recommended setting)
ANN_HEAP = "3g"  # the sparse ANN node (benchmarks/opensearch_sparse_ann.py's; SEISMIC clusters on the heap)
BIG = 1_000_000  # steps this large wait for the other 1M benchmark and run one engine at a time
OTHER_BIG_BENCHMARK = "benchmarks/approximate.py"
THREADS = 2
SETTLE_S = 65.0  # OpenSearch retention leases sync before a merge can drop _recovery_source
INFO = {"name": "bench-scale", "model": "bench"}


def cap_for(size: int) -> int:
    return max(1, round(CAP_PER_PAGE * size))


def recall_at(got: list[list], truth: list[list], k: int) -> float:
    """Mean |got[:k] & truth[:k]| / k over the queries."""
    return sum(len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)) / max(1, len(truth))
PAPER_PAGES = 18_700_000  # V-SPLADE's own deployment


def progress(msg: str) -> None:
    """A child's progress on stderr (run_child keeps it; seen when a child is run by hand)."""
    print(f"    {dt.datetime.now(dt.timezone.utc):%H:%M:%S} {msg} ({load_line()})", file=sys.stderr, flush=True)


def load_line() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_kb() -> int:
    return status_kb("VmRSS")


def pid_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def qps(run_all, queries) -> float:
    """Queries per second of run_all(queries) (2 threads inside), after one untimed run."""
    run_all(queries)
    t = time.perf_counter()
    run_all(queries)
    return len(queries) / (time.perf_counter() - t)


def pooled(fn):
    """run_all over THREADS Python threads for searchers without their own batch call."""
    def run_all(queries):
        with ThreadPoolExecutor(THREADS) as ex:
            list(ex.map(fn, queries))
    return run_all


def latencies(fns: dict, queries) -> dict:
    """{name: {k: {p50_ms, p99_ms}}}: the searchers interleaved query by query."""
    out = {n: {} for n in fns}
    for k in (10, 100):
        r = time_interleaved({n: (lambda f: lambda q: f(q, k))(f) for n, f in fns.items()}, queries)
        for n, (p50, p99) in r.items():
            out[n][str(k)] = {"p50_ms": p50, "p99_ms": p99}
    return out


# -- children: one build or one search, in a fresh process ---------------------------------------

def child_build(engine: str, size: int, preset: str, index: Path, nq: int) -> dict:
    w = workload(preset)
    t = time.perf_counter()
    m = w.pages(size, seed=0)
    gen_s = time.perf_counter() - t
    figures = measure(m, w.queries(nq, seed=1))
    t = time.perf_counter()
    if engine == "memory":
        from vsplade.engines.memory import MemoryEngine

        with MemoryEngine(str(index)).writer(INFO, recreate=True) as wr:
            for b in batches(m, 4096):
                wr.add(b)
        extra = {}
    else:
        from vsplade_lucene import LuceneEngine

        # lucene-optimize: the same build with --optimize (one segment when the build closes);
        # lucene-capped: with --prune cap=C (the capped postings are built when the writer closes)
        prune = f"cap={cap_for(size)}" if engine == "lucene-capped" else None
        eng = LuceneEngine(str(index), threads=THREADS, optimize=engine == "lucene-optimize", prune=prune)
        with eng.writer(INFO, recreate=True) as wr:
            for b in batches(m, 1024):
                wr.add(b)
        from vsplade_lucene.forward import FILES

        # the forward index (the pages' own vectors, for two-phase and explain) beside the postings
        fwd = sum((index / n).stat().st_size for n in FILES if (index / n).exists())
        extra = {"scale": eng.scale, "segments": lucene_segments(index), "forward_bytes_per_page": fwd / size}
        if prune:
            from vsplade_lucene.capped import FILES as CAPPED_FILES

            capped = sum((index / n).stat().st_size for n in CAPPED_FILES if (index / n).exists())
            extra.update(cap=cap_for(size), capped_bytes_per_page=capped / size)
    secs = time.perf_counter() - t
    return {"build_s": secs, "pages_per_s": size / secs, "disk_bytes": du(index), "bytes_per_page": du(index) / size,
            "generate_s": gen_s, "workload": figures, "peak_rss_mb": status_kb("VmHWM") / 1024, **extra}


def child_search(engine: str, size: int, preset: str, index: Path, nq: int) -> dict:
    from vsplade.vocab import default_vocabulary

    vocab = default_vocabulary()
    queries = query_dicts(workload(preset).queries(nq, seed=1), vocab)
    gc.collect()
    base = rss_kb()
    t = time.perf_counter()
    if engine == "memory":
        from vsplade.engines.memory import MemoryEngine

        s = MemoryEngine(str(index)).searcher()
        open_s, rss_open = time.perf_counter() - t, rss_kb()
        lat = latencies({"memory": s.search}, queries)
        q = {"memory": qps(pooled(lambda x: s.search(x, 10)), queries)}
        out = {"memory": {"open_s": open_s, "rss_open_mb": rss_open / 1024, "rss_added_mb": (rss_open - base) / 1024}}
    elif engine == "lucene-capped":
        return child_search_capped(size, index, queries, base)
    else:
        from vsplade_lucene import LuceneEngine, pyserini_searcher

        s = LuceneEngine(str(index), threads=THREADS).searcher()
        open_s, rss_open = time.perf_counter() - t, rss_kb()
        name = "lucene-optimize" if engine == "lucene-optimize" else "lucene"
        out = {name: {"open_s": open_s, "rss_open_mb": rss_open / 1024, "rss_added_mb": (rss_open - base) / 1024}}
        fns = {name: s.search}
        ps = None
        if engine == "pyserini":
            t = time.perf_counter()
            ps = pyserini_searcher(index, query_encoder=object())  # queries are {term: weight} dicts
            rss_ps = rss_kb()
            # its RSS is the JVM's plus the Python idf table it builds over every term
            out["pyserini"] = {"open_s": time.perf_counter() - t, "rss_open_mb": rss_ps / 1024,
                               "rss_added_mb": (rss_ps - base) / 1024, "rss_added_over_lucene_mb": (rss_ps - rss_open) / 1024}
            fns["pyserini"] = ps.search
        lat = latencies(fns, queries)
        q = {name: qps(lambda qs: s.batch_search(qs, 10, threads=THREADS), queries)}
        if ps is not None:
            qids = [str(i) for i in range(len(queries))]
            q["pyserini"] = qps(lambda qs: ps.batch_search(qs, qids[:len(qs)], 10, THREADS), queries)
            same = sum([h.id for h in s.search(x, 10)] == [h.docid for h in ps.search(x, 10)] for x in queries)
            out["pyserini"]["same_top10"] = same / len(queries)
    rss_end = rss_kb()
    for n in out:
        out[n].update(latency=lat[n], qps_2threads=q[n], rss_after_search_mb=rss_end / 1024)
    return out


def child_search_capped(size: int, index: Path, queries: list[dict], base_kb: int) -> dict:
    """The capped index by the searcher's default (capped two-phase) and the same index exact (a
    second searcher that does not use the forward index: no capped postings, no two-phase, every
    posting of the whole Lucene index), interleaved query by query; recall against the latter."""
    from vsplade_lucene import LuceneEngine

    t = time.perf_counter()
    s = LuceneEngine(str(index), threads=THREADS).searcher()
    if s._capped_postings() is None:  # opened here, so that open_s and the RSS include them
        raise SystemExit(f"{index}: no capped postings (expected --prune cap={cap_for(size)})")
    open_s, rss_open = time.perf_counter() - t, rss_kb()
    exact = LuceneEngine(str(index), threads=THREADS).searcher()
    exact.use_forward = False  # before its first search: _capped_postings() stays None
    if exact._capped_postings() is not None:
        raise SystemExit(f"{index}: the exact searcher would read the capped postings")
    lat = latencies({"lucene-capped": s.search, "exact": exact.search}, queries)
    q = qps(lambda qs: s.batch_search(qs, 10, threads=THREADS), queries)
    q_exact = qps(lambda qs: exact.batch_search(qs, 10, threads=THREADS), queries)
    fid = {}
    for k in (10, 100):
        got = [[h.id for h in s.search(x, k)] for x in queries]
        want = [[h.id for h in exact.search(x, k)] for x in queries]
        fid[f"recall@{k}"] = recall_at(got, want, k)
        if k == 10:
            fid["worst_query_recall@10"] = min(recall_at([g], [w], k) for g, w in zip(got, want))
    return {"lucene-capped": {
        "open_s": open_s, "rss_open_mb": rss_open / 1024, "rss_added_mb": (rss_open - base_kb) / 1024,
        "latency": lat["lucene-capped"], "qps_2threads": q, "rss_after_search_mb": rss_kb() / 1024,
        "recall_vs": "exact Lucene on the same index (whole postings, no two-phase)", **fid,
        "exact": {"latency": lat["exact"], "qps_2threads": q_exact}}}


def child_opensearch(size: int, preset: str, nq: int) -> dict:
    from opensearchpy import OpenSearch

    from vsplade.vocab import default_vocabulary
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.testnode import TestCluster

    w = workload(preset)
    m = w.pages(size, seed=0)
    queries = query_dicts(w.queries(nq, seed=1), default_vocabulary())
    index = "bench-scale"
    with TestCluster(nodes=1, line="3", heap="2g") as node:
        client = OpenSearch(node.url, timeout=600)
        build = writer_run(node.url, index, m)
        bulk_done = time.monotonic()
        del m
        gc.collect()
        written = opensearch_store(client, index)
        s = OpenSearchEngine(index=index, url=node.url, timeout=300).searcher()
        lat = latencies({"opensearch": s.search}, queries)["opensearch"]
        q = qps(pooled(lambda x: s.search(x, 10)), queries)
        node_rss = pid_rss_kb(node.members[0].pid)
        time.sleep(max(0.0, SETTLE_S - (time.monotonic() - bulk_done)))
        t = time.perf_counter()
        client.indices.flush(index=index, params={"force": "true"})
        client.indices.forcemerge(index=index, params={"max_num_segments": 1}, request_timeout=3600)
        client.indices.flush(index=index)
        time.sleep(STORE_STATS_S)
        merged = opensearch_store(client, index)
        version = node.version
    return {"build_s": build["wall_s"], "pages_per_s": build["pages_per_s"], "disk_bytes": merged["bytes"],
            "bytes_per_page": merged["bytes"] / size, "written_bytes_per_page": written["bytes"] / size,
            "segments_searched": written["segments"], "merge_s": time.perf_counter() - t, "version": version,
            "rss_open_mb": node_rss / 1024, "rss_note": "the node's JVM (heap 2g) after the searches",
            "latency": lat, "qps_2threads": q}


def child_sparse_ann(size: int, preset: str, nq: int) -> dict:
    """vsplade's --sparse-ann index on a neural-search node (module docstring): bulk, force merge
    to one segment (SEISMIC clusters it), then the searches and the recall against numpy."""
    import numpy as np
    from opensearchpy import OpenSearch
    from opensearch_sparse_ann import exact_top, folded_matrix
    from opensearch_vs_lucene import CHUNK

    from vsplade.vocab import default_vocabulary
    from vsplade_opensearch import OpenSearchEngine, sparse_ann
    from vsplade_opensearch.testnode import TestCluster

    w = workload(preset)
    m = w.pages(size, seed=0)
    raw = w.queries(nq, seed=1)
    queries = query_dicts(raw, default_vocabulary())
    ceiling = float(np.ceil(m.data.max()))  # no page weight clipped by the byte quantization
    threshold = max(1, size * 9 // 10)  # the merged segment only (module docstring)
    index = "bench-scale-ann"
    with TestCluster(nodes=1, line="3", plugins="neural", heap=ANN_HEAP) as node:
        client = OpenSearch(node.url, timeout=600)
        eng = OpenSearchEngine(index=index, url=node.url, threads=THREADS, chunk_docs=CHUNK, progress=False,
                               timeout=600, replicas=0, sparse_ann=True, ann_threshold=threshold, ann_ceiling=ceiling)
        t = time.perf_counter()
        with eng.writer(INFO, recreate=True) as wr:
            for b in batches(m, 1000):
                wr.add(b)
            st = wr.close()
        bulk_s = time.perf_counter() - t
        bulk_done = time.monotonic()
        progress(f"bulk done: {bulk_s:.0f} s")
        if st.failures or st.extra["docs_in_index"] != size:
            raise SystemExit(f"{index}: {len(st.failures)} failures, {st.extra['docs_in_index']} of {size} pages")
        written = opensearch_store(client, index)
        progress(f"written: {written}")
        # retention leases first (as for opensearch: the merge then drops _recovery_source), so the
        # one merge that clusters is also the one the size is measured after
        time.sleep(max(0.0, SETTLE_S - (time.monotonic() - bulk_done)))
        t = time.perf_counter()
        client.indices.flush(index=index, params={"force": "true"})
        client.indices.forcemerge(index=index, params={"max_num_segments": 1}, request_timeout=7200)
        client.indices.flush(index=index)
        client.indices.refresh(index=index)
        merge_s = time.perf_counter() - t
        time.sleep(STORE_STATS_S)
        merged = opensearch_store(client, index)
        progress(f"force merge: {merge_s:.0f} s, {merged}")
        s = OpenSearchEngine(index=index, url=node.url, timeout=300).searcher()
        lat = latencies({"opensearch-sparse-ann": s.search}, queries)["opensearch-sparse-ann"]
        q = qps(pooled(lambda x: s.search(x, 10)), queries)
        node_rss = pid_rss_kb(node.members[0].pid)
        got = {k: [[int(h.id.split("-")[-1]) for h in s.search(x, k)] for x in queries] for k in (10, 100)}
        progress("searches done")
        version = node.version
    fm = folded_matrix(m)
    folded_q = [sparse_ann.fold_vector(*x) for x in raw]
    fq = [(np.array([int(k) for k in f]), np.array(list(f.values()), np.float32)) for f in folded_q]
    fid = {}
    for k in (10, 100):
        truth = [exact_top(m, x, k).tolist() for x in raw]
        fold = [exact_top(fm, x, k).tolist() for x in fq]
        fid[f"recall@{k}"] = recall_at(got[k], truth, k)
        fid[f"fold_only_recall@{k}"] = recall_at(fold, truth, k)
        fid[f"recall_vs_fold_only@{k}"] = recall_at(got[k], fold, k)
    return {"opensearch-sparse-ann": {
        "build_s": bulk_s + merge_s, "pages_per_s": size / (bulk_s + merge_s), "bulk_s": bulk_s,
        "bulk_pages_per_s": size / bulk_s, "merge_s": merge_s, "disk_bytes": merged["bytes"],
        "bytes_per_page": merged["bytes"] / size, "written_bytes_per_page": written["bytes"] / size,
        "segments_searched": merged["segments"], "version": version, "approximate_threshold": threshold,
        "ceiling_ingest": ceiling, "query_parameters": "neural-search defaults (top_n 10, heap_factor 1.0), k = hits",
        "rss_open_mb": node_rss / 1024, "rss_note": f"the node's JVM (heap {ANN_HEAP}) after the searches",
        "latency": lat, "qps_2threads": q, "workload": measure(m, raw),
        "recall_vs": "exact float dot product over the unfolded pages (numpy)", **fid}}


# -- parent: the schedule, the JSON, the tables, the plot ------------------------------------------

def run_child(args, *extra) -> dict:
    cmd = [sys.executable, __file__, "--queries", str(args.queries), "--workdir", str(args.workdir), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{' '.join(extra)}: exit {out.returncode}: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def past(stop_at: str) -> bool:
    h, m = map(int, stop_at.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return (now.hour, now.minute) >= (h, m)


def other_big_running() -> bool:
    return subprocess.run(["pgrep", "-f", OTHER_BIG_BENCHMARK], capture_output=True).returncode == 0


def wait_for_machine(size: int, stop_at: str) -> str | None:
    """None when the step may start, else why it is skipped."""
    if past(stop_at):
        return f"not started: past --stop-at {stop_at} UTC"
    while size >= BIG and other_big_running():
        if past(stop_at):
            return f"not started: {OTHER_BIG_BENCHMARK} still running at --stop-at {stop_at} UTC"
        time.sleep(20)
    return None


class Store:
    """benchmarks/results/scale.json: one record per (preset, size, engine)."""

    def __init__(self, path: Path):
        self.path = path
        self.records = json.loads(path.read_text())["records"] if path.is_file() else []

    def put(self, rec: dict) -> None:
        """Replace rec's piece in the file as it is now (re-read under a lock: two runs of
        different engines at the same time keep each other's records)."""
        import fcntl

        key = (rec["preset"], rec["size"], rec["engine"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.parent, os.O_RDONLY)  # the folder's lock: no lock file left behind
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.is_file():
                self.records = json.loads(self.path.read_text())["records"]
            self.records = [r for r in self.records if (r["preset"], r["size"], r["engine"]) != key] + [rec]
            self._write()
        finally:
            os.close(lock)

    def _write(self) -> None:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"machine": machine, "records": sorted(
            self.records, key=lambda r: (r["preset"], r["size"], ENGINES.index(r["engine"])))}, indent=1))
        tmp.replace(self.path)


def measure_step(args, store: Store, size: int, preset: str, engines: list[str]) -> None:
    stamp = lambda: {"when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),  # noqa: E731
                     "load": os.getloadavg()}
    base = {"preset": preset, "size": size, "queries": args.queries}
    lucene_side = [e for e in engines if e in ("lucene", "pyserini")]
    groups = (["memory"] if "memory" in engines else []) + (["lucene"] if lucene_side else []) \
        + [g for g in ("lucene-optimize", "lucene-capped", "opensearch", "opensearch-sparse-ann") if g in engines]
    for g in groups:
        names = lucene_side if g == "lucene" else [g]
        why = wait_for_machine(size, args.stop_at)
        if why is None and g == "opensearch" and size > args.opensearch_max:
            why = f"not run: the bulk of {size:,} pages (~{size / 500 / 60:.0f} min at ~500 pages/s on this machine) " \
                  f"does not fit the time (--opensearch-max {args.opensearch_max:,})"
        if why is None and g == "opensearch-sparse-ann" and size > args.ann_max:
            why = f"not run: SEISMIC's clustering of {size:,} pages (~{size / 7 / 60:.0f} min at ~7 pages/s on this " \
                  f"machine) does not fit the time (--ann-max {args.ann_max:,})"
        if why:
            for n in names:
                store.put({**base, "engine": n, "skipped": why, **stamp()})
            print(f"  {preset} {size:,} {'+'.join(names)}: {why}", flush=True)
            continue
        print(f"  {preset} {size:,} {'+'.join(names)}: start ({load_line()})", flush=True)
        lo = LoadSampler()
        lo.start()
        try:
            if g == "opensearch":
                rec = run_child(args, "--child", "opensearch", "--size", str(size), "--presets", preset)
                store.put({**base, "engine": "opensearch", **rec, "load_during": lo.stop(), **stamp()})
                print(f"  {preset} {size:,} {g}: done ({load_line()})", flush=True)
                continue
            if g == "opensearch-sparse-ann":
                rec = run_child(args, "--child", "sparse-ann", "--size", str(size), "--presets", preset)[g]
                store.put({**base, "engine": g, **rec, "load_during": lo.stop(), **stamp()})
                print(f"  {preset} {size:,} {g}: done ({load_line()})", flush=True)
                continue
            index = args.workdir / f"{g}-{preset}-{size}"
            build = run_child(args, "--child", "build", "--group", g, "--size", str(size), "--presets", preset,
                              "--index", str(index))
            search = run_child(args, "--child", "search", "--group", "pyserini" if "pyserini" in names else g,
                               "--size", str(size), "--presets", preset, "--index", str(index))
            load = lo.stop()
            for n in names:
                store.put({**base, "engine": n, **build, **search[n], "load_during": load, **stamp(),
                           **({"build_note": "the Lucene index's (same index)"} if n == "pyserini" else {})})
            if not args.keep:
                subprocess.run(["rm", "-rf", str(index)], check=False)
        except RuntimeError as e:
            lo.stop()
            for n in names:
                store.put({**base, "engine": n, "skipped": f"failed: {e}", **stamp()})
            print(f"  {preset} {size:,} {'+'.join(names)}: FAILED {e}", flush=True)
            continue
        print(f"  {preset} {size:,} {'+'.join(names)}: done ({load_line()})", flush=True)


def tables(store: Store) -> str:
    lines = []
    for preset in PRESETS:
        recs = [r for r in store.records if r["preset"] == preset]
        if not recs:
            continue
        figs = {r["size"]: r["workload"] for r in sorted(recs, key=lambda r: r["size"]) if "workload" in r}
        lines.append(f"\n#### {preset} preset\n")
        if figs:
            wl = figs[max(figs)]
            lines.append(f"workload {preset}: FLOPs {wl['flops']:.2f}, {wl['nnz_per_page']:.0f} nnz/page, "
                         f"{wl['terms_per_query']:.1f} terms/query; postings/query: "
                         + ", ".join(f"{n:,} pages {f['postings_per_query']:,.0f}" for n, f in figs.items()) + "\n")
        lines.append("| engine | pages | build pages/s | disk bytes/page | RSS after open MiB (bytes/page) | "
                     "k=10 p50 / p99 ms | k=100 p50 / p99 ms | QPS 2 threads (k=10) | recall@10 vs exact | "
                     "load (1 min) during |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in sorted(recs, key=lambda r: (ENGINES.index(r["engine"]), r["size"])):
            if "skipped" in r:
                lines.append(f"| {r['engine']} | {r['size']:,} | {r['skipped']} | | | | | | | |")
                continue
            added = r.get("rss_added_mb", r["rss_open_mb"])
            l10, l100 = r["latency"]["10"], r["latency"]["100"]
            build = "(Lucene's)" if r["engine"] == "pyserini" else f"{r['pages_per_s']:,.0f}"
            disk = f"{r['bytes_per_page']:,.0f}"
            if "written_bytes_per_page" in r:
                disk += f" (written {r['written_bytes_per_page']:,.0f})"
            if r.get("forward_bytes_per_page"):  # (0: no forward index, the exact builds)
                disk += f" (forward index {r['forward_bytes_per_page']:,.0f}"
                disk += f", capped postings {r['capped_bytes_per_page']:,.0f} of it)" if "capped_bytes_per_page" in r \
                    else " of it)"
            if r["engine"] == "opensearch-sparse-ann":
                build += f" (bulk alone {r['bulk_pages_per_s']:,.0f})"
            rec = f"{r['recall@10']:.4f}" if "recall@10" in r else "-"
            lines.append(f"| {r['engine']} | {r['size']:,} | {build} | {disk} | {r['rss_open_mb']:,.0f} "
                         f"(+{added * 2**20 / r['size']:,.0f}/page) | {l10['p50_ms']:.2f} / {l10['p99_ms']:.2f} | "
                         f"{l100['p50_ms']:.2f} / {l100['p99_ms']:.2f} | {r['qps_2threads']:,.0f} | {rec} | "
                         f"{r.get('load_during', '').replace('load average (1 min, every 5 s) ', '')} |")
        lines += approximate_table(recs)
    return "\n".join(lines)


def approximate_table(recs: list[dict]) -> list[str]:
    """The approximate engines against their exact reference: lucene-capped against exact Lucene
    on the same index (timed interleaved in the same process), sparse ANN against the exact
    rank_features index of the same pages (the opensearch rows: another node and run)."""
    rows = [r for r in sorted(recs, key=lambda r: (ENGINES.index(r["engine"]), r["size"]))
            if r["engine"] in APPROXIMATE and "skipped" not in r]
    if not rows:
        return []
    out = ["", "| approximate engine | pages | setting | k=10 p50 ms | exact | exact k=10 p50 ms | speed-up (p50) | "
           "k=100 p50 ms (exact) | recall@10 | recall@100 | fold only recall@10 / @100 | SEISMIC vs fold only @10 |",
           "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p50, p100 = r["latency"]["10"]["p50_ms"], r["latency"]["100"]["p50_ms"]
        if r["engine"] == "lucene-capped":
            ex = r["exact"]["latency"]
            what, setting = "Lucene, same index, interleaved", f"cap={r['cap']:,}, window k x 20"
            fold = ann = "-"
        else:
            exact = next((x for x in recs if x["engine"] == "opensearch" and x["size"] == r["size"] and "skipped" not in x), None)
            ex = exact["latency"] if exact else None
            what = "OpenSearch rank_features, same pages (own run)" if exact else "(no opensearch run at this size)"
            setting = f"threshold {r['approximate_threshold']:,}, top_n 10, heap_factor 1"
            fold = f"{r['fold_only_recall@10']:.3f} / {r['fold_only_recall@100']:.3f}"
            ann = f"{r['recall_vs_fold_only@10']:.3f}"
        e10 = f"{ex['10']['p50_ms']:.2f}" if ex else "-"
        e100 = f" ({ex['100']['p50_ms']:.2f})" if ex else ""
        sp_ = f"{ex['10']['p50_ms'] / p50:.2f}x" if ex else "-"
        out.append(f"| {r['engine']} | {r['size']:,} | {setting} | {p50:.2f} | {what} | {e10} | {sp_} | {p100:.2f}{e100} | "
                   f"{r['recall@10']:.4f} | {r['recall@100']:.4f} | {fold} | {ann} |")
    return out


def fit(points: list[tuple[int, float]]) -> tuple[float, float, int]:
    """(value at the largest size, log-log slope, that size) from the two largest sizes: the
    curve extrapolated as value x (pages / size) ** slope."""
    (n1, v1), (n2, v2) = sorted(points)[-2:]
    return v2, math.log(v2 / v1) / math.log(n2 / n1), n2


def sizing(store: Store, pages: int = PAPER_PAGES, budgets=(20.0, 50.0)) -> str:
    """Pages -> disk, RAM, p50 at k=10 for each engine and preset, extrapolated from the two
    largest measured sizes; OpenSearch shards for a p50 budget (see the notes printed)."""
    lines = [f"\n### Sizing: {pages:,} pages, extrapolated (p50 k=10, one query at a time)\n",
             "| preset | engine | from sizes | p50 slope (log-log) | p50 ms | disk GiB | RAM GiB |", "|---|---|---|---:|---:|---:|---:|"]
    notes = []
    for preset in PRESETS:
        ok = {e: sorted((r for r in store.records if r["preset"] == preset and r["engine"] == e and "skipped" not in r),
                        key=lambda r: r["size"]) for e in ENGINES}
        lu = ok["lucene"]
        for e in ENGINES:
            rs = ok[e]
            if len(rs) < 2:
                continue
            if e == "opensearch-sparse-ann" and rs[-1]["size"] < 100_000:
                notes.append(f"{preset}: sparse ANN left out: measured only up to {rs[-1]['size']:,} pages "
                             "(too small a base to extrapolate a clustered index from)")
                continue
            v, slope, n = fit([(r["size"], r["latency"]["10"]["p50_ms"]) for r in rs])
            p50 = v * (pages / n) ** slope
            src = f"{rs[-2]['size']:,} + {n:,}"
            bpp = rs[-1]["bytes_per_page"]
            if e == "memory":  # the vectors live in the process: RSS per page
                ram = rs[-1]["rss_added_mb"] * 2**20 / n * pages
            elif e == "lucene-capped":  # phase 1 reads only the capped postings (kept in the page
                # cache), phase 2 ~200 forward-index pages a query; the whole postings stay on disk
                ram = rs[-1]["rss_open_mb"] * 2**20 + rs[-1]["capped_bytes_per_page"] * pages
            else:  # a JVM plus the postings in the page cache (mmap: searched warm); the forward
                # index (two-phase, explain) is read a page at a time and left out
                ram = rs[-1]["rss_open_mb"] * 2**20 + (bpp - rs[-1].get("forward_bytes_per_page", 0)) * pages
            if e == "opensearch" and len(lu) >= 2 and lu[-1]["size"] > n:
                # a fixed per-request cost over Lucene's curve (RESULTS: OpenSearch vs Lucene)
                lv, ls, ln = fit([(r["size"], r["latency"]["10"]["p50_ms"]) for r in lu])
                fixed = rs[-1]["latency"]["10"]["p50_ms"] - lv * (n / ln) ** ls
                p50 = fixed + lv * (pages / ln) ** ls
                src = f"{n:,} (fixed cost {fixed:.1f} ms) + Lucene's {lu[-2]['size']:,} + {ln:,}"
                slope = ls
                for b in budgets:
                    per = b - fixed
                    shard = ln * (per / lv) ** (1 / ls) if per > 0 else 0
                    if shard > 0:
                        shards = math.ceil(pages / shard)
                        notes.append(f"{preset}: OpenSearch p50 <= {b:g} ms: shards of <= {shard:,.0f} pages -> "
                                     f"{shards} shards (one per 2-core node: {shards} nodes, "
                                     f"{bpp * pages / shards / 2**30:.1f} GiB of index each)")
                    else:
                        notes.append(f"{preset}: OpenSearch p50 <= {b:g} ms: out of reach (fixed cost {fixed:.1f} ms)")
            if e == "lucene-capped":
                src += f" (cap 0.003 x pages: {cap_for(pages):,})"
            lines.append(f"| {preset} | {e} | {src} | {slope:.2f} | {p50:,.1f} | {bpp * pages / 2**30:,.1f} | {ram / 2**30:,.1f} |")
    return "\n".join(lines + [""] + [f"- {x}" for x in notes])


def plot(store: Store, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(17, 4.8))
    colors = dict(zip(ENGINES, ("tab:blue", "tab:orange", "tab:purple", "tab:olive", "tab:green", "tab:red", "tab:brown")))
    for preset, style in (("quality", "-o"), ("efficient", "--s")):
        for e in ENGINES:
            rs = sorted((r for r in store.records if r["preset"] == preset and r["engine"] == e and "skipped" not in r),
                        key=lambda r: r["size"])
            if not rs:
                continue
            xs = [r["size"] for r in rs]
            a.plot(xs, [r["latency"]["10"]["p50_ms"] for r in rs], style, color=colors[e], label=f"{e} ({preset})")
            if e != "pyserini":  # Lucene's index
                b.plot(xs, [r["bytes_per_page"] for r in rs], style, color=colors[e], label=f"{e} ({preset})")
            if e in APPROXIMATE:
                c.plot(xs, [r["recall@10"] for r in rs], style, color=colors[e], label=f"{e} ({preset})")
                if e == "opensearch-sparse-ann":
                    c.plot(xs, [r["fold_only_recall@10"] for r in rs], ":", marker="x", color=colors[e],
                           label=f"folding alone, numpy ({preset})")
    a.set(xscale="log", yscale="log", xlabel="pages", ylabel="p50 ms, k=10 (one thread)",
          title="search latency (exact; capped / sparse ANN approximate)")
    b.set(xscale="log", yscale="log", xlabel="pages", ylabel="disk bytes/page", title="index size per page")
    c.set(xscale="log", xlabel="pages", ylabel="recall@10 vs exact", title="approximate engines: recall@10", ylim=(0, 1.02))
    for ax in (a, b, c):
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("vsplade scale curves (benchmarks/scale.py; 2-core x86_64, 24 GiB, shared machine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--presets", default="quality,efficient")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--opensearch-max", type=int, default=100_000, help="largest size bulk-loaded into OpenSearch")
    ap.add_argument("--ann-max", type=int, default=10_000,
                    help="largest size built for opensearch-sparse-ann (SEISMIC clustered ~7 pages/s here at 10k)")
    ap.add_argument("--stop-at", default="23:59", help="UTC HH:MM after which no step starts")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    ap.add_argument("--keep", action="store_true", help="keep the indexes in --workdir")
    ap.add_argument("--report-only", action="store_true", help="print the tables and plot from the JSON, measure nothing")
    ap.add_argument("--child", choices=["build", "search", "opensearch", "sparse-ann"], help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        preset = args.presets
        if args.child == "build":
            out = child_build(args.group, args.size, preset, args.index, args.queries)
        elif args.child == "search":
            out = child_search(args.group, args.size, preset, args.index, args.queries)
        elif args.child == "sparse-ann":
            out = child_sparse_ann(args.size, preset, args.queries)
        else:
            out = child_opensearch(args.size, preset, args.queries)
        print(json.dumps(out))
        return

    store = Store(args.out)
    if not args.report_only:
        sizes = [int(s) for s in args.sizes.split(",")]
        presets = [p for p in args.presets.split(",") if p]
        engines = [e for e in args.engines.split(",") if e]
        bad = [p for p in presets if p not in PRESETS] + [e for e in engines if e not in ENGINES]
        if bad:
            raise SystemExit(f"scale.py: unknown preset/engine {', '.join(bad)} (presets {', '.join(PRESETS)}; "
                             f"engines {', '.join(ENGINES)})")
        tmp = args.workdir is None
        args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vsplade-scale-"))
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {load_line()} at the start", flush=True)
        for size in sorted(sizes):
            for preset in presets:
                measure_step(args, store, size, preset, engines)
        if tmp and not args.keep:
            subprocess.run(["rm", "-rf", str(args.workdir)], check=False)
    store = Store(args.out)  # as the file is now (another run may have added to it)
    print(f"\n### Scale curves ({args.out})\n\nmachine: {platform.machine()}, {os.cpu_count()} cores; {load_line()} now")
    print(tables(store))
    print(sizing(store))
    png = args.out.with_suffix(".png")
    plot(store, png)
    print(f"\nplot: {png}")


if __name__ == "__main__":
    main()
