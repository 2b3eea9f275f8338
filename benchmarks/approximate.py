"""Two-phase search (vsplade.approximate.TwoPhase, issue 24 item 3): a Pareto table of latency
vs fidelity, memory engine and Lucene side by side, exact and several (prune_ratio, expansion).

    python benchmarks/approximate.py [--pages 100000] [--queries 300] [--preset quality efficient]
                                     [--settings 0.2:5,0.3:5,0.4:5,0.4:10,0.5:10,0.6:20]

For each preset (benchmarks/corpus.py: FLOPs 1.51 Quality, 0.98 Efficient): one corpus, one
Lucene index (direct path, scale 10000, merged as the writer leaves it) and the memory engine's
ExactScorer over the same pages. Every (engine, setting) is timed query by query in turn (the
order rotating, after one untimed pass of each), so load from other processes falls on all
alike. Fidelity: recall@10 and nDCG@10 (gain = exact score) against the exact float ranking
(the memory engine's exact search), for both engines: Lucene's exact row shows what its integer
impacts alone cost. Phase-1 postings: the postings of the kept terms, the work phase 1 does.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vsplade.approximate import TwoPhase
from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch
from vsplade.vocab import default_vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import PRESETS, Workload, describe, measure  # noqa: E402
from interleave import pct, time_interleaved  # noqa: E402

K = 10


def fidelity(got_ids: list[str], exact_ids: list[str], gain: dict[str, float]) -> tuple[float, float]:
    """(recall@k, nDCG@k) of a ranking against the exact one; gain = a page's exact score."""
    if not exact_ids:
        return 1.0, 1.0
    recall = len(set(got_ids) & set(exact_ids)) / len(exact_ids)
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    dcg = sum(gain.get(d, 0.0) * disc[i] for i, d in enumerate(got_ids[:K]))
    ideal = sum(gain[d] * disc[i] for i, d in enumerate(exact_ids[:K]))
    return recall, (dcg / ideal if ideal > 0 else 1.0)


def parse_settings(text: str) -> list[TwoPhase]:
    return [TwoPhase.of(s.strip()) for s in text.split(",") if s.strip()]


def run_preset(preset: str, args, vocab, work: Path) -> None:
    from vsplade_lucene import LuceneEngine

    t = time.perf_counter()
    workload = Workload(preset)
    m = workload.pages(args.pages, seed=0)
    ids = [f"p{i}" for i in range(args.pages)]
    meta = [{"id": d, "source": f"doc{i // 20}.pdf", "page": i % 20 + 1} for i, d in enumerate(ids)]
    corpus = SparseBatch(m, ids, meta)
    raw = workload.queries(args.queries, seed=1)
    queries = [{vocab.terms[int(i)]: float(w) for i, w in zip(qi, qw)} for qi, qw in raw]
    figures = measure(m, raw)
    df = np.bincount(m.indices, minlength=m.shape[1])
    print(f"[{preset}] corpus {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    path = work / f"lucene-{preset}"
    eng = LuceneEngine(str(path), scale=args.scale, threads=args.threads)
    t = time.perf_counter()
    with eng.writer({"name": "bench-approximate"}, recreate=True) as w:
        for s in range(0, args.pages, 4096):
            w.add(corpus.select(range(s, min(s + 4096, args.pages))))
    print(f"[{preset}] lucene index {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    mem = ExactScorer(corpus, vocab) if "memory" in args.engines else None
    page_ids = corpus.ids
    del corpus, m  # the scorer's CSC is the one copy the memory side needs
    lucene = eng.searcher()

    settings: list[TwoPhase | None] = [None, *args.settings]
    label = lambda tp: "exact" if tp is None else f"{tp.prune_ratio:g} / {tp.expansion:g}"  # noqa: E731
    fns = {}
    for tp in settings:
        if mem is not None:
            fns[("memory", label(tp))] = (lambda tp_: lambda q: mem.search(q, K, two_phase=tp_))(tp)
        fns[("lucene", label(tp))] = (lambda tp_: lambda q: lucene.search(q, K, two_phase=tp_))(tp)
    t = time.perf_counter()
    lat = time_interleaved(fns, queries)
    print(f"[{preset}] timing {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    # the truth: the exact float ranking (memory), or without the memory side Lucene's exact
    # ranking on its integer impacts (gains: Lucene's scores of its top 1,000)
    truth = mem.search if mem is not None else lucene.search
    exact = [truth(q, K) for q in queries]
    exact_ids = [[h.id for h in hs] for hs in exact]
    row_of = {d: i for i, d in enumerate(page_ids)}

    def gains_of(q):
        if mem is not None:
            full = mem.scores(q)
            return lambda d: float(full[row_of[d]])
        full = {h.id: h.score for h in lucene.search(q, 1000)}
        return lambda d: full.get(d, 0.0)

    rows = []
    gain_fns = [gains_of(q) for q in queries]
    for (engine, name), fn in fns.items():
        rec, ndcg = [], []
        for q, want, gain in zip(queries, exact_ids, gain_fns):
            got = [h.id for h in fn(q)]
            g = {d: gain(d) for d in set(got) | set(want)}
            r, n = fidelity(got, want, g)
            rec.append(r)
            ndcg.append(n)
        tp = settings[[label(s) for s in settings].index(name)]
        if tp is None:
            post = figures["postings_per_query"]
        else:
            post = float(np.mean([df[[vocab.id_of(t) for t in tp.split(q)[0]]].sum() for q in queries]))
        rows.append((engine, name, *lat[(engine, name)], float(np.mean(rec)), float(np.min(rec)),
                     float(np.mean(ndcg)), post))
    base = lat[("lucene", "exact")][0]
    print(f"\n### {preset} preset: {args.pages:,} pages, {len(queries)} queries, k={K}; truth: "
          f"{'exact float ranking (memory)' if mem is not None else 'exact Lucene ranking'}\n")
    print(describe(preset, figures))
    print("\n| engine | prune_ratio / expansion | p50 ms | p99 ms | speed-up vs exact Lucene (p50) | recall@10 | "
          "worst query recall@10 | nDCG@10 | phase-1 postings/query |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for engine in ("memory", "lucene"):  # absent engines print nothing
        for e, name, p50, p99, rec, worst, ndcg, post in rows:
            if e == engine:
                print(f"| {e} | {name} | {p50:.2f} | {p99:.2f} | {base / p50:.1f}x | {rec:.4f} | {worst:.1f} | "
                      f"{ndcg:.4f} | {post:,.0f} |")
    ok = [(base / p50, e, name, rec) for e, name, p50, _, rec, _, _, _ in rows if name != "exact" and rec >= 0.97]
    if ok:
        sp_, e, name, rec = max(ok)
        print(f"\nfastest with recall@10 >= 0.97: {e} {name} ({sp_:.1f}x exact Lucene's p50, recall {rec:.4f})")
    else:
        print("\nno two-phase setting reaches recall@10 >= 0.97")
    lucene.close()
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--preset", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    ap.add_argument("--settings", type=parse_settings, default=parse_settings("0.2:5,0.3:5,0.4:5,0.4:10,0.5:10,0.6:20"),
                    help="two-phase settings, PRUNE_RATIO:EXPANSION, comma-separated")
    ap.add_argument("--scale", type=float, default=10000.0, help="the Lucene index's impact scale (the engine's default)")
    ap.add_argument("--threads", type=int, default=2, help="Lucene indexing threads")
    ap.add_argument("--engines", nargs="+", choices=["memory", "lucene"], default=["memory", "lucene"],
                    help="lucene alone halves the RAM a large run needs (the memory engine's CSC)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    vocab = default_vocabulary()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vsplade-bench-approx-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"# Two-phase search: {args.pages:,} pages, memory engine and Lucene (scale {args.scale:g}) interleaved")
    for preset in args.preset:
        run_preset(preset, args, vocab, work)
        print(f"\nload average after {preset}: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
