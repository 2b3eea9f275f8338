"""`vsplade serve` benchmark: warm /search over HTTP on loopback next to the searcher's own
in-process latency, and page thumbnails rendered cold vs served from the disk cache.
Prints markdown tables.

    python benchmarks/serve.py [--docs 100000] [--requests 2000] [--threads 4]

Search: a synthetic Lucene index with V-SPLADE statistics (benchmarks/lucene.py's generator:
~550 non-zeros per page over the 50,368 terms), recorded as built by the `lexical` model, so
the service encodes text queries with the torch-free lexical query encoder. Queries: 10-15
random whole-word vocabulary tokens as text. The service is the real CLI (`python -m vsplade
serve`, one uvicorn process) on 127.0.0.1; the load generator is a Python client with one
keep-alive connection per thread and a bounded request count, on the same 2 cores (so it
takes CPU from the service). In-process: the same encode + search calls the service makes,
in this process, one thread.

Thumbnails: a memory index of tests/data/pdfs (34 real PDF pages), each page requested at
width 320 (cold: rendered by pdfium and written to the cache) and again (cached), then 1280.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _lucene_bench():
    spec = importlib.util.spec_from_file_location("bench_lucene", ROOT / "benchmarks" / "lucene.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(engine: str, index: Path, cache: Path):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("VSPLADE_SERVE_TOKEN", None)
    log = open(cache.parent / f"serve-{engine}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "vsplade", "serve", "--engine", engine, "--index", str(index),
                             "--port", str(port), "--cache-dir", str(cache)], stdout=log, stderr=subprocess.STDOUT, env=env)
    t = time.perf_counter()
    for _ in range(1200):  # at most ~5 minutes
        if proc.poll() is not None:
            raise SystemExit(f"vsplade serve exited {proc.returncode}; see {log.name}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        raise SystemExit("vsplade serve did not start")
    return proc, port, time.perf_counter() - t


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def text_queries(n: int, seed: int, vocab) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [vocab.display(i).strip() for i, t in enumerate(vocab.terms)
             if t.startswith("Ġ") and vocab.display(i).strip().isalpha() and len(vocab.display(i).strip()) > 3]
    return [" ".join(rng.choice(words, int(rng.integers(10, 16)), replace=False)) for _ in range(n)]


def load(port: int, paths: list[str], threads: int, took: list | None = None) -> tuple[list[float], float, int]:
    """Every path once, spread over `threads` keep-alive connections: (latencies, wall, errors);
    `took` collects the service's own took_ms (encode + search) of each answer."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    it = iter(paths)

    def work():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while True:
            with lock:
                p = next(it, None)
            if p is None:
                break
            t = time.perf_counter()
            conn.request("GET", p)
            r = conn.getresponse()
            data = r.read()
            mine.append(time.perf_counter() - t)
            if took is not None and r.status == 200:
                took.append(json.loads(data)["took_ms"] / 1000)
            if r.status != 200:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            lat.extend(mine)

    ws = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    return lat, time.perf_counter() - t, errors[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--nnz", type=int, default=550)
    ap.add_argument("--queries", type=int, default=500, help="distinct query texts")
    ap.add_argument("--requests", type=int, default=2000, help="requests per load run")
    ap.add_argument("--threads", type=int, default=4, help="client threads (connections) for the throughput run")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-thumbnails", action="store_true")
    ap.add_argument("--reuse-index", action="store_true", help="keep WORKDIR's synthetic index from an earlier run")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vsplade.encoders import load_query_encoder
    from vsplade.sparse import SparseBatch
    from vsplade.vocab import default_vocabulary

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vsplade-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# vsplade serve benchmark (workdir {work}; load average at start {os.getloadavg()[0]:.1f})", flush=True)

    if not args.skip_search:
        from vsplade_lucene import LuceneEngine

        vocab = default_vocabulary()
        index = work / "lucene-synthetic"
        eng = LuceneEngine(str(index), threads=2)
        reuse = args.reuse_index and (index / "vsplade-lucene.json").is_file()
        t = time.perf_counter()
        if reuse:
            print(f"reusing {index}", file=sys.stderr, flush=True)
        else:
            m = _lucene_bench().synthetic(args.docs, args.nnz, 0, vocab.size)
            ids = [f"p{i}" for i in range(args.docs)]
            meta = [{"id": d, "source": f"doc{i // 20}.pdf", "page": i % 20 + 1} for i, d in enumerate(ids)]
            corpus = SparseBatch(m, ids, meta)
            gen = time.perf_counter() - t
            t = time.perf_counter()
            with eng.writer({"name": "lexical", "model": "lexical"}, recreate=True) as w:
                for s in range(0, args.docs, 1024):
                    w.add(corpus.select(range(s, min(s + 1024, args.docs))))
            built = time.perf_counter() - t
            del corpus, m
            print(f"corpus {args.docs} pages generated in {gen:.0f}s, Lucene index built in {built:.0f}s",
                  file=sys.stderr, flush=True)

        texts = text_queries(args.queries, 1, vocab)
        qenc = load_query_encoder("lexical")
        searcher = eng.searcher()
        nterms = [len(qenc.encode(q)) for q in texts]
        rows = []
        for k in (10, 100):
            for q in texts:  # untimed warm-up pass
                searcher.search(qenc.encode(q), k)
            ts = []
            for q in texts:
                t = time.perf_counter()
                searcher.search(qenc.encode(q), k)
                ts.append(time.perf_counter() - t)
            rows.append((f"in-process: encode + LuceneImpactIndexSearcher.search, k={k}, 1 thread", pct(ts, 50), pct(ts, 99), len(ts) / sum(ts)))
        searcher.close()

        proc, port, startup = start("lucene", index, work / "cache-lucene")
        try:
            health = ["/health"] * args.requests
            load(port, health[:200], 1)
            lat, wall, err = load(port, health, 1)
            rows.append(("GET /health, 1 connection (the HTTP floor: uvicorn + FastAPI, no search)", pct(lat, 50), pct(lat, 99), len(lat) / wall, err))
            for k in (10, 100):
                paths = [f"/search?{urllib.parse.urlencode({'q': q, 'k': k})}" for q in texts]
                load(port, paths, 1)  # warm-up: every query once
                reqs = (paths * (args.requests // len(paths) + 1))[: args.requests]
                took: list[float] = []
                lat, wall, err = load(port, reqs, 1, took)
                rows.append((f"GET /search k={k}, 1 connection", pct(lat, 50), pct(lat, 99), len(lat) / wall, err))
                rows.append((f"  of which inside the service (took_ms: encode + search), k={k}", pct(took, 50), pct(took, 99), None))
                lat, wall, err = load(port, reqs, args.threads)
                rows.append((f"GET /search k={k}, {args.threads} connections", pct(lat, 50), pct(lat, 99), len(lat) / wall, err))
            paths = [f"/search?{urllib.parse.urlencode({'q': q, 'k': 10, 'explain': 'true'})}" for q in texts]
            reqs = (paths * (args.requests // len(paths) + 1))[: max(args.requests // 4, len(paths))]
            load(port, paths[:50], 1)
            lat, wall, err = load(port, reqs, 1)
            rows.append(("GET /search k=10 explain=true, 1 connection", pct(lat, 50), pct(lat, 99), len(lat) / wall, err))
            body = json.dumps({"queries": texts[:32], "k": 10})
            ts = []
            for _ in range(20):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                t = time.perf_counter()
                c.request("POST", "/search", body, {"Content-Type": "application/json"})
                c.getresponse().read()
                ts.append(time.perf_counter() - t)
                c.close()
            rows.append(("POST /search, batch of 32 queries, k=10 (per request)", pct(ts, 50), pct(ts, 99), 32 * len(ts) / sum(ts)))
        finally:
            stop(proc)
        print(f"\n## Search ({args.docs:,} pages, Lucene, {len(texts)} distinct text queries of "
              f"{np.mean(nterms):.1f} terms on average; service startup {startup:.1f}s)\n")
        print("| what | p50 ms | p99 ms | queries/s | errors |\n|---|---:|---:|---:|---:|")
        for r in rows:
            qps = f"{r[3]:,.0f}" if r[3] is not None else ""
            print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {qps} | {r[4] if len(r) > 4 else ''} |")

    if not args.skip_thumbnails:
        pdfs = ROOT / "tests" / "data" / "pdfs"
        mem = work / "memory-pdfs"
        shutil.rmtree(mem, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "vsplade", "index", str(pdfs), "--model", "lexical", "--engine", "memory",
                        "--index", str(mem)], check=True, capture_output=True)
        cache = work / "cache-memory"
        shutil.rmtree(cache, ignore_errors=True)
        proc, port, _ = start("memory", mem, cache)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("GET", "/info")
            json.loads(c.getresponse().read())
            from vsplade.engines.memory import MemoryEngine

            ids = [r["id"] for r in MemoryEngine(str(mem)).read_catalog()]
            out = []
            for width in (320, 1280):
                for label in ("cold (render + cache write)", "cached"):
                    ts, sizes = [], []
                    for pid in ids:
                        t = time.perf_counter()
                        c.request("GET", f"/pages/{pid}/image?width={width}")
                        r = c.getresponse()
                        data = r.read()
                        ts.append(time.perf_counter() - t)
                        sizes.append(len(data))
                        want = "miss" if label.startswith("cold") else "hit"
                        assert r.status == 200 and r.getheader("X-Vsplade-Cache") == want, (r.status, r.getheader("X-Vsplade-Cache"))
                    out.append((width, label, pct(ts, 50), pct(ts, 99), max(ts) * 1000, np.mean(sizes) / 1024))
            etag_ts = []
            for pid in ids:
                c.request("GET", f"/pages/{pid}/image?width=320")
                r = c.getresponse()
                r.read()
                etag = r.getheader("ETag")
                t = time.perf_counter()
                c.request("GET", f"/pages/{pid}/image?width=320", headers={"If-None-Match": etag})
                r = c.getresponse()
                r.read()
                etag_ts.append(time.perf_counter() - t)
                assert r.status == 304
        finally:
            stop(proc)
        print(f"\n## Page images ({len(ids)} PDF pages of tests/data/pdfs, one request at a time)\n")
        print("| width | request | p50 ms | p99 ms | max ms | mean KiB |\n|---:|---|---:|---:|---:|---:|")
        for w, label, p50, p99, mx, kib in out:
            print(f"| {w} | {label} | {p50:.1f} | {p99:.1f} | {mx:.1f} | {kib:.0f} |")
        print(f"| 320 | revalidated (If-None-Match -> 304) | {pct(etag_ts, 50):.1f} | {pct(etag_ts, 99):.1f} | "
              f"{max(etag_ts) * 1000:.1f} | 0 |")


if __name__ == "__main__":
    main()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
