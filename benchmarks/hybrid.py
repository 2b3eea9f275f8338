"""Hybrid search's latency cost (issue 26 item 4): vector-only vs BM25-only vs hybrid (both runs
fused in the client, vsplade.fusion) on the memory engine and on Lucene, at 100k pages.

    python benchmarks/hybrid.py [--pages 100000] [--queries 200] [--preset quality] [--words 300]

Pages: benchmarks/corpus.py's workload (V-SPLADE-like vectors, FLOPs calibrated to the preset)
plus a synthetic text layer: `--words` words a page drawn from a Zipf-like distribution over a
50,000-word vocabulary (words "w<rank>"), queries 3-8 words drawn from the same distribution
(so frequent words have long postings, as real text does). Both engines get the same pages;
Lucene is built by the direct writer with its text field (StandardAnalyzer, BM25 0.9/0.4).
Every row is timed query by query in turn (benchmarks/interleave.py), so load from other
processes falls on all alike. Hybrid takes depth hits from each side (default 100) and returns 10.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch
from vsplade.vocab import default_vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import Workload  # noqa: E402
from interleave import time_interleaved  # noqa: E402

K = 10
BATCH = 16384
TEXT_VOCAB = 50_000


def word_sampler(seed: int, alpha: float = 1.07):
    """Draws word ranks with p ~ 1/(rank + 2.7)^alpha (a Zipf-Mandelbrot law, as in text)."""
    ranks = np.arange(TEXT_VOCAB)
    p = 1.0 / (ranks + 2.7) ** alpha
    cdf = np.cumsum(p / p.sum())
    rng = np.random.default_rng(seed)
    names = np.array([f"w{r}" for r in ranks], dtype=object)
    return lambda n: names[np.minimum(np.searchsorted(cdf, rng.random(n)), TEXT_VOCAB - 1)], rng


def texts(n: int, words: int, seed: int) -> list[str]:
    draw, rng = word_sampler(seed)
    lengths = rng.integers(words // 2, words * 3 // 2 + 1, size=n)
    flat = draw(int(lengths.sum()))
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(" ".join(flat[pos:pos + length]))
        pos += length
    return out


def corpus(args) -> SparseBatch:
    w = Workload(args.preset)
    m = w.pages(args.pages, seed=3)
    page_texts = texts(args.pages, args.words, seed=5)
    ids = [f"p{i}" for i in range(args.pages)]
    meta = [{"id": i, "source": f"doc{n // 50}.pdf", "page": n % 50 + 1, "text": t}
            for n, (i, t) in enumerate(zip(ids, page_texts))]
    return SparseBatch(m.tocsr().astype(np.float32), ids, meta)


def add_workload_args(ap: argparse.ArgumentParser) -> None:
    """The flags `workload` reads (shared with benchmarks/opensearch_hybrid.py)."""
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--preset", default="quality")
    ap.add_argument("--words", type=int, default=300, help="average words of text a page")
    ap.add_argument("--depth", type=int, default=100)


def workload(args) -> tuple[SparseBatch, list[dict], list[str]]:
    """The pages (vectors + text), the vector queries and the query texts; prints what it made."""
    t = time.perf_counter()
    batch = corpus(args)
    queries = Workload(args.preset).query_dicts(args.queries, default_vocabulary(), seed=7)
    draw, rng = word_sampler(seed=9)
    qtexts = [" ".join(draw(int(rng.integers(3, 9)))) for _ in range(args.queries)]
    print(f"{args.pages} pages ({args.preset}), {batch.matrix.nnz / args.pages:.0f} non-zeros and "
          f"~{args.words} words of text a page; {args.queries} queries; generated in {time.perf_counter() - t:.0f} s",
          flush=True)
    return batch, queries, qtexts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(ap)
    ap.add_argument("--threads", type=int, default=2, help="Lucene indexing threads")
    ap.add_argument("--engines", default="memory,lucene")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    batch, queries, qtexts = workload(args)
    work = list(zip(queries, qtexts))
    rows = []
    for engine in engines:
        t = time.perf_counter()
        if engine == "memory":
            from vsplade.engines.memory import MemorySearcher

            searcher = MemorySearcher.__new__(MemorySearcher)
            searcher.scorer = ExactScorer.from_batches(
                (batch.select(range(s, min(s + BATCH, len(batch)))) for s in range(0, len(batch), BATCH)))
            searcher._encoder_info = {}
            closer = None
        else:
            from vsplade_lucene import LuceneEngine

            tmp = tempfile.mkdtemp(prefix="bench-hybrid-")
            eng = LuceneEngine(str(Path(tmp) / "ix"), threads=args.threads)
            with eng.writer({"name": "bench-hybrid"}, recreate=True) as w:
                for s in range(0, len(batch), BATCH):
                    w.add(batch.select(range(s, min(s + BATCH, len(batch)))))
            searcher = eng.searcher()
            closer = searcher.close
        built = time.perf_counter() - t
        fns = {
            "vector": lambda qt, s=searcher: s.search(qt[0], K),
            "text (BM25)": lambda qt, s=searcher: s.search_text(qt[1], K),
            f"hybrid rrf, depth {args.depth}": lambda qt, s=searcher: s.search_hybrid(qt[0], qt[1], K, "rrf", args.depth),
            f"hybrid minmax:0.6, depth {args.depth}":
                lambda qt, s=searcher: s.search_hybrid(qt[0], qt[1], K, "minmax:0.6", args.depth),
            f"vector alone at depth {args.depth}": lambda qt, s=searcher: s.search(qt[0], args.depth),
        }
        timed = time_interleaved(fns, work)
        base = timed["vector"][0]
        for name, (p50, p99) in timed.items():
            rows.append((engine, name, p50, p99, p50 / base))
        print(f"{engine}: built in {built:.0f} s")
        if closer:
            closer()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| engine | search | p50 ms | p99 ms | p50 vs vector |")
    print("|---|---|---:|---:|---:|")
    for engine, name, p50, p99, ratio in rows:
        print(f"| {engine} | {name} | {p50:.2f} | {p99:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
