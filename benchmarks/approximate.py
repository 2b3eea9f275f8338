"""Approximate search on Lucene (issue 24 item 3): a Pareto table of latency vs fidelity for
exact search, two-phase search (vsplade.approximate.TwoPhase, phase 2 from the forward index
or through Lucene), static index pruning (vsplade.pruning.StaticPruning) and their combination,
plus one segment (vsplade_lucene.optimize) against the writer's segments.

    python benchmarks/approximate.py [--pages 100000] [--queries 300] [--preset quality efficient]
        [--settings 0.3:5,0.4:10] [--prune top=128,top=256] [--combine 0:10,0.3:10] [--no-optimize]
        [--cap 2000,3000,5000 --cap-combine 0:10,0:20,0:30]

For each preset (benchmarks/corpus.py: FLOPs 1.51 Quality, 0.98 Efficient): one corpus and
these Lucene indexes (direct path, scale 10000):
- the exact index as the writer leaves it (several segments) and a copy merged to one segment
  (the table's reference: "exact, 1 segment"; every other index is merged too);
- per static pruning setting, an index of the pruned pages whose forward index holds the
  UNPRUNED pages (DirectImpactWriter(pruning=...), forward.py "unpruned"), so two-phase on it
  ("combined") searches the small pruned postings in phase 1 and returns the full pages'
  exact scores.
- per --cap setting (per-term posting caps, vsplade_lucene.capped): the 1-segment exact index
  (hard links) recorded as built with --prune cap=C and its capped postings built from its
  forward index as the writer does at close; "capped" rows search it (phase 1 the capped
  postings, phase 2 the forward index, one Java call: vsplade.lucene.CappedSearch).
Rows: exact; "phase 1 only" (the kept terms' Lucene search for the window: where two-phase's
time goes); two-phase with phase 2 from the forward index and (first setting) through Lucene's
doc-set filter; static pruning alone (the pruned index's own ranking and scores); combined.
Every row is timed in turn with the others (benchmarks/interleave.py), each on a different query
at a time, so load from other processes falls on all alike and no row finds the previous row's
postings in the CPU caches. Fidelity: recall@10 and nDCG@10 against exact Lucene on the
unpruned index (gains: the exact scores).
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
from vsplade.pruning import StaticPruning
from vsplade.sparse import SparseBatch
from vsplade.vocab import default_vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import PRESETS, Workload, describe, measure  # noqa: E402
from interleave import time_interleaved  # noqa: E402

K = 10
BATCH = 16384


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


def parse_prune(text: str) -> list[StaticPruning]:
    return [StaticPruning.of(s.strip()) for s in text.split(";") if s.strip()]


def label(tp: TwoPhase) -> str:
    return f"{tp.prune_ratio:g} / {tp.expansion:g}"


def build(path: Path, corpus: SparseBatch, args, pruning: StaticPruning | None = None) -> tuple[float, int]:
    """The direct writer (what LuceneEngine.writer opens), pruning: Lucene gets the pruned
    pages, the forward index the whole ones. Every build here has a forward index (the
    engine writes one only for pruned indexes) so phase 2 from it can be compared."""
    from vsplade_lucene.direct import DirectImpactWriter

    t = time.perf_counter()
    with DirectImpactWriter(path, {"name": "bench-approximate"}, scale=args.scale, recreate=True,
                            threads=args.threads, pruning=pruning, forward_index=True) as w:
        for s in range(0, len(corpus), BATCH):
            w.add(corpus.select(range(s, min(s + BATCH, len(corpus)))))
    return time.perf_counter() - t, int(w.summary.extra.get("pruned_weights", 0))


def sizes(path: Path, pages: int) -> str:
    """Bytes/page of the Lucene files and of the forward index beside them."""
    from vsplade_lucene.forward import FILES

    fwd = sum((path / n).stat().st_size for n in FILES if (path / n).exists())
    total = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return f"Lucene {(total - fwd) / pages:,.0f} B/page + forward index {fwd / pages:,.0f} B/page"


def capped_copy(source: Path, path: Path, cap: int, pages: int) -> tuple[float, Path, dict]:
    """The exact index (hard links: same files) recorded as built with --prune cap=CAP, and its
    inverted + capped postings built from its forward index, as the writer does at close
    (DirectImpactWriter._build_capped): one corpus build serves every cap."""
    from vsplade_lucene import capped
    from vsplade_lucene.forward import ForwardIndex
    from vsplade_lucene.store import read_config, write_config

    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(source, path, copy_function=os.link)
    cfg = read_config(path)
    cfg["static_pruning"] = StaticPruning(cap=cap).properties()["static_pruning"]
    write_config(path, cfg)  # os.replace: the link is replaced, the source's config untouched
    t = time.perf_counter()
    header = capped.build(path, ForwardIndex.open(path, pages, cfg), cap)
    return time.perf_counter() - t, path, header


def capped_sizes(path: Path, pages: int) -> str:
    from vsplade_lucene.capped import CAPPED

    cap = sum((path / n).stat().st_size for n in CAPPED)
    return f"+ capped postings {cap / pages:,.0f} B/page (beside the forward index phase 2 reads)"


def run_preset(preset: str, args, vocab, work: Path) -> None:
    from vsplade_lucene import LuceneEngine
    from vsplade_lucene.optimize import optimize, segment_count

    t = time.perf_counter()
    workload = Workload(preset)
    m = workload.pages(args.pages, seed=0)
    ids = [f"p{i}" for i in range(args.pages)]
    meta = [{"id": d, "source": f"doc{i // 20}.pdf", "page": i % 20 + 1} for i, d in enumerate(ids)]
    corpus = SparseBatch(m, ids, meta)
    del m
    raw = workload.queries(args.queries, seed=1)
    queries = [{vocab.terms[int(i)]: float(w) for i, w in zip(qi, qw)} for qi, qw in raw]
    figures = measure(corpus.matrix, raw)
    df = np.bincount(corpus.matrix.indices, minlength=corpus.matrix.shape[1])
    print(f"[{preset}] corpus {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    notes = []
    base = work / f"{preset}-exact"
    secs, _ = build(base, corpus, args)
    nseg = segment_count(base)
    notes.append(f"exact index: built in {secs:.1f}s, {nseg} segments; {sizes(base, len(corpus))}")
    merged = base
    if args.optimize:
        merged = work / f"{preset}-exact-1seg"
        shutil.copytree(base, merged)
        out = optimize(merged)
        notes.append(f"optimize (force-merge to 1 segment): {out['seconds']:.1f}s ({out['segments_before']} -> 1); "
                     f"{sizes(merged, len(corpus))}")
    pruned_paths = []
    for p in args.prune:
        path = work / f"{preset}-prune-{p.top_n}-{p.floor:g}"
        secs, dropped = build(path, corpus, args, p)
        if args.optimize:
            optimize(path)
        kept = corpus.matrix.nnz - dropped
        notes.append(f"pruned index top_n={p.top_n} floor={p.floor:g}: built in {secs:.1f}s, "
                     f"{kept / len(corpus):.0f} nnz/page kept of {corpus.matrix.nnz / len(corpus):.0f}; "
                     f"{sizes(path, len(corpus))}")
        pruned_paths.append((p, path))
    capped_paths = []
    for cap in args.cap:
        secs, path, header = capped_copy(merged, work / f"{preset}-cap-{cap}", cap, len(corpus))
        notes.append(f"capped postings cap={cap} (on the exact index, its forward index as the "
                     f"source): built in {secs:.1f}s, {header['capped_postings'] / len(corpus):.0f} "
                     f"capped postings/page; {capped_sizes(path, len(corpus))}")
        capped_paths.append((cap, path))
    del corpus
    print(f"[{preset}] indexes built", file=sys.stderr, flush=True)

    s_multi = LuceneEngine(str(base)).searcher()
    s_exact = LuceneEngine(str(merged)).searcher()
    s_lucene2 = LuceneEngine(str(merged)).searcher()
    s_lucene2.use_forward = False
    assert s_exact._forward_index() is not None
    opened = [s_multi, s_exact, s_lucene2]

    one = "1 segment" if args.optimize else f"{nseg} segments"
    fns: dict[str, object] = {}
    fns[f"exact, {one}"] = lambda q: s_exact.search(q, K)
    if args.optimize:
        fns[f"exact, {nseg} segments (as written)"] = lambda q: s_multi.search(q, K)
    for tp in args.settings:
        fns[f"phase 1 only {label(tp)}"] = (lambda tp_: lambda q: s_exact.search(tp_.split(q)[0], tp_.window(K)))(tp)
        fns[f"two-phase {label(tp)}, phase 2 forward"] = (
            lambda tp_: lambda q: s_exact.search(q, K, two_phase=tp_))(tp)
    if args.settings:
        tp0 = args.settings[0]
        fns[f"two-phase {label(tp0)}, phase 2 Lucene filter"] = lambda q: s_lucene2.search(q, K, two_phase=tp0)
    for p, path in pruned_paths:
        sp_ = LuceneEngine(str(path)).searcher()
        opened.append(sp_)
        name = f"top={p.top_n}" + (f" floor={p.floor:g}" if p.floor else "")
        fns[f"static {name} alone"] = (lambda s_: lambda q: s_.search(q, K))(sp_)
        for tp in args.combine:
            fns[f"static {name} + two-phase {label(tp)}"] = (
                lambda s_, tp_: lambda q: s_.search(q, K, two_phase=tp_))(sp_, tp)

    for cap, path in capped_paths:
        sc_ = LuceneEngine(str(path)).searcher()
        opened.append(sc_)
        assert sc_._capped_postings() is not None
        for tp in args.cap_combine:
            fns[f"capped cap={cap} + two-phase {label(tp)}"] = (
                lambda s_, tp_: lambda q: s_.search(q, K, two_phase=tp_))(sc_, tp)
    print(f"[{preset}] timing {len(fns)} rows x {len(queries)} queries; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    lat = time_interleaved(fns, queries)
    print(f"[{preset}] timing {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    exact_ids, gains = [], []
    for q in queries:
        full = s_exact.search(q, 1000)
        exact_ids.append([h.id for h in full[:K]])
        gains.append({h.id: h.score for h in full})
    rows = []
    for name, fn in fns.items():
        rec, ndcg = [], []
        for q, want, gain in zip(queries, exact_ids, gains):
            got = [h.id for h in fn(q)]
            if name.startswith("phase 1 only"):
                got = got[:K]
            r, n = fidelity(got, want, gain)
            rec.append(r)
            ndcg.append(n)
        rows.append((name, *lat[name], float(np.mean(rec)), float(np.min(rec)), float(np.mean(ndcg))))
    ref = lat[f"exact, {one}"][0]
    print(f"\n### {preset} preset: {args.pages:,} pages, {len(queries)} queries, k={K}; truth: exact Lucene "
          f"(unpruned)\n")
    print(describe(preset, figures))
    for n in notes:
        print(f"- {n}")
    print(f"\n| Lucene search | p50 ms | p99 ms | speed-up vs exact {one} (p50) | recall@10 | worst query recall@10 | "
          "nDCG@10 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, p50, p99, rec, worst, ndcg in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {ref / p50:.1f}x | {rec:.4f} | {worst:.1f} | {ndcg:.4f} |")
    ok = [(ref / p50, name, rec) for name, p50, _, rec, _, _ in rows
          if not name.startswith(("exact", "phase 1")) and rec >= 0.97]
    if ok:
        sp_, name, rec = max(ok)
        print(f"\nfastest with recall@10 >= 0.97: {name} ({sp_:.1f}x exact's p50, recall {rec:.4f})")
    else:
        print("\nno approximate setting reaches recall@10 >= 0.97")
    for s in opened:
        s.close()
    if not args.keep:
        for path in [base, merged, *(p for _, p in pruned_paths), *(p for _, p in capped_paths)]:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--preset", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    ap.add_argument("--settings", type=parse_settings, default=parse_settings("0.3:5,0.4:10"),
                    help="two-phase settings on the exact index, PRUNE_RATIO:EXPANSION, comma-separated")
    ap.add_argument("--prune", type=parse_prune, default=parse_prune("top=128;top=256"),
                    help="static pruning settings (vsplade.pruning), ';'-separated, e.g. 'top=128;top=200,floor=0.1'")
    ap.add_argument("--combine", type=parse_settings, default=parse_settings("0:5,0:10,0.3:10"),
                    help="two-phase settings on each pruned index (phase 2: the unpruned pages)")
    ap.add_argument("--cap", type=lambda v: [int(x) for x in v.split(",") if x.strip()], default=[],
                    help="per-term posting caps (--prune cap=C: capped + inverted postings), comma-separated")
    ap.add_argument("--cap-combine", type=parse_settings, default=parse_settings("0:10,0:20,0:30"),
                    help="two-phase settings on each capped index (phase 1: the capped postings)")
    ap.add_argument("--no-optimize", dest="optimize", action="store_false",
                    help="leave every index with the writer's segments (no 1-segment rows)")
    ap.add_argument("--scale", type=float, default=10000.0, help="the Lucene index's impact scale (the engine's default)")
    ap.add_argument("--threads", type=int, default=2, help="Lucene indexing threads")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the indexes (under --workdir)")
    args = ap.parse_args()
    vocab = default_vocabulary()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vsplade-bench-approx-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"# Approximate search on Lucene: {args.pages:,} pages (scale {args.scale:g})")
    t0 = time.perf_counter()
    for preset in args.preset:
        run_preset(preset, args, vocab, work)
        print(f"\nload average after {preset}: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{time.perf_counter() - t0:.0f}s since the start", flush=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
