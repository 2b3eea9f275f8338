"""`vsplade serve` under concurrent load (issue 22, item 5): N client threads for S seconds,
each looping over a mix of search, search with explain (k=100, some with a source filter),
batch search with explain, and page images, against one real service. Prints a markdown
table of p50 / p99 latency and request counts per kind, and the errors (any status but 200,
any exception). tests/serve/test_serve_load.py runs `run_load` and asserts zero errors.

    python benchmarks/serve_load.py [--engine lucene] [--clients 32] [--seconds 30]

The index: tests/data/pdfs (34 pages) with `--model lexical`, built by the CLI; the service
is the real CLI (`python -m vsplade serve`, uvicorn) on 127.0.0.1 (started with
tests/serve/serve_support.run_server); clients are Python threads with one keep-alive
connection each, in this process, on the same machine (so they take CPU from the service).
Images: each page at widths 160..1280, so the first requests render (pdfium, serialized by
the service) and later ones come from its disk cache.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("search", "search_explain", "batch", "image")
TEXTS = ["debian package management", "financial report revenue", "camlidl interface definition", "install",
         "apt-get install a package", "interface definition language", "the type of a pointer",
         "remove a file from the system"]
WIDTHS = (160, 320, 640, 1280)


class Client:
    """One keep-alive HTTP connection (reopened after an error)."""

    def __init__(self, host: str, port: int, token: str | None):
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        h = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            return r.status, r.read()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def discover(host: str, port: int, token: str | None) -> tuple[list[str], list[str]]:
    """Page ids and sources the index holds, from its own search results."""
    c = Client(host, port, token)
    ids, sources = [], []
    for t in TEXTS:
        status, body = c.request("GET", "/search?" + urllib.parse.urlencode({"q": t, "k": 100}))
        if status == 200:
            for h in json.loads(body)["hits"]:
                if h["id"] not in ids:
                    ids.append(h["id"])
                if h.get("source") and h["source"] not in sources:
                    sources.append(h["source"])
    c.close()
    return ids, sources


def run_load(host: str, port: int, token: str | None = None, clients: int = 32, seconds: float = 30.0,
             seed: int = 0) -> dict:
    """{"latency": {kind: [seconds...]}, "errors": [str...], "requests": n, "seconds": wall}."""
    ids, sources = discover(host, port, token)
    if not ids:
        raise RuntimeError("the service returned no hits to load-test with")
    lat: dict[str, list[float]] = {k: [] for k in KINDS}
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    stop_at = [0.0]

    def one(c: Client, kind: str, rng: random.Random) -> tuple[int, bytes]:
        if kind == "search":
            q = {"q": rng.choice(TEXTS), "k": 10}
            return c.request("GET", "/search?" + urllib.parse.urlencode(q))
        if kind == "search_explain":
            q = {"q": rng.choice(TEXTS), "k": 100, "explain": "true"}
            if rng.random() < 0.5:
                q["source"] = rng.choice(sources)
                q["page_min"] = 1
            return c.request("GET", "/search?" + urllib.parse.urlencode(q, doseq=True))
        if kind == "batch":
            return c.request("POST", "/search", {"queries": rng.sample(TEXTS, 4), "k": 20, "explain": True})
        return c.request("GET", f"/pages/{urllib.parse.quote(rng.choice(ids))}/image?width={rng.choice(WIDTHS)}")

    def work(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        c = Client(host, port, token)
        mine: dict[str, list[float]] = {k: [] for k in KINDS}
        errs: list[str] = []
        try:
            barrier.wait(timeout=60)
            n = i
            while time.monotonic() < stop_at[0]:  # bounded by the deadline
                kind = KINDS[n % len(KINDS)]
                n += 1
                t0 = time.perf_counter()
                try:
                    status, body = one(c, kind, rng)
                except Exception as e:
                    errs.append(f"{kind}: {type(e).__name__}: {e}")
                    continue
                dt = time.perf_counter() - t0
                if status != 200:
                    errs.append(f"{kind}: HTTP {status}: {body[:200]!r}")
                else:
                    mine[kind].append(dt)
        finally:
            c.close()
            with lock:
                for k in KINDS:
                    lat[k].extend(mine[k])
                errors.extend(errs)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    stop_at[0] = time.monotonic() + seconds + 60  # replaced once all have started
    for w in workers:
        w.start()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    for w in workers:
        w.join(timeout=seconds + 300)
    wall = time.monotonic() - t0
    stuck = sum(w.is_alive() for w in workers)
    if stuck:
        errors.append(f"{stuck} client threads still waiting {seconds + 300:.0f} s after the start")
    return {"latency": lat, "errors": errors, "requests": sum(len(v) for v in lat.values()) + len(errors),
            "seconds": wall, "clients": clients}


def table(stats: dict) -> str:
    rows = ["| request | n | req/s | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for kind in KINDS:
        xs = np.asarray(stats["latency"][kind]) * 1000
        if len(xs) == 0:
            rows.append(f"| {kind} | 0 | | | | |")
            continue
        rows.append(f"| {kind} | {len(xs)} | {len(xs) / stats['seconds']:.1f} | {np.percentile(xs, 50):.1f} | "
                    f"{np.percentile(xs, 99):.1f} | {xs.max():.1f} |")
    rows.append(f"\n{stats['clients']} clients, {stats['seconds']:.1f} s, {stats['requests']} requests, "
                f"{len(stats['errors'])} errors")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="lucene", choices=["lucene", "memory"])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from serve_support import run_server, vsplade

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ix = tmp / "ix"
        vsplade("index", str(ROOT / "tests" / "data" / "pdfs"), "--model", "lexical", "--engine", args.engine,
                "--index", str(ix))
        with run_server(args.engine, ix, tmp) as server:
            stats = run_load("127.0.0.1", server.port, None, args.clients, args.seconds)
            alive = server.proc.poll() is None
        print(f"engine {args.engine}; service alive at the end: {alive}")
        print(table(stats))
        for e in stats["errors"][:10]:
            print("error:", e)
    return 0 if alive and not stats["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
