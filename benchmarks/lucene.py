"""Lucene connector benchmark: indexing speed (direct path vs Pyserini's JsonVectorCollection
CLI), search latency (ours, Pyserini's LuceneImpactSearcher, the exact scorer, Seismic), index
size, and the ranking loss of integer quantization. Prints markdown tables.

    python benchmarks/lucene.py --docs 100000 --queries 300 [--preset quality|efficient]
                                [--skip-jsonvector] [--skip-seismic]

The workload is benchmarks/corpus.py (every benchmark's): pages and queries whose average FLOPs
match V-SPLADE's published ones (1.51 Quality, 0.98 Efficient), ~550 non-zeros a page; the
measured FLOPs and postings per query are printed with the tables.
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
import scipy.sparse as sp

from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch, quantize_impacts, quantize_query_impacts
from vsplade.vocab import default_vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import PRESETS, Workload, describe, measure  # noqa: E402
from interleave import pct, time_interleaved  # noqa: E402


def time_each(fn, queries):
    for q in queries:  # one untimed pass: JIT-compiles the JVM's search path, fills caches
        fn(q)
    ts = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        ts.append(time.perf_counter() - t)
    return pct(ts, 50), pct(ts, 99)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--preset", choices=list(PRESETS), default="quality", help="the workload's FLOPs (benchmarks/corpus.py)")
    ap.add_argument("--scale", type=float, default=10000.0, help="the direct index's impact scale (the engine's default)")
    ap.add_argument("--jsonvector-scale", type=float, default=100.0, help="the JsonVectorCollection export's scale (its cost grows with it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-jsonvector", action="store_true")
    ap.add_argument("--skip-seismic", action="store_true")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from vsplade_lucene import LuceneEngine, jvm

    vocab = default_vocabulary()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vsplade-bench-lucene-"))
    t = time.perf_counter()
    workload = Workload(args.preset)
    m = workload.pages(args.docs, seed=0)
    ids = [f"p{i}" for i in range(args.docs)]
    meta = [{"id": d, "source": f"doc{i // 20}.pdf", "page": i % 20 + 1} for i, d in enumerate(ids)]
    corpus = SparseBatch(m, ids, meta)
    raw_queries = workload.queries(args.queries, seed=1)
    queries = [{vocab.terms[int(i)]: float(w) for i, w in zip(qi, qw)} for qi, qw in raw_queries]
    figures = measure(m, raw_queries)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"# Lucene connector benchmark: {args.docs} pages, {args.queries} queries, scale {args.scale:g} (direct) / "
          f"{args.jsonvector_scale:g} (JsonVectorCollection)\n\n{describe(args.preset, figures)}", flush=True)
    print(f"corpus generated in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    # -- indexing -----------------------------------------------------------------------------
    rows = []
    direct = work / "direct"
    eng = LuceneEngine(str(direct), scale=args.scale, threads=args.threads)
    t = time.perf_counter()
    with eng.writer({"name": "bench"}, recreate=True) as w:
        for s in range(0, args.docs, 1024):
            w.add(corpus.select(range(s, min(s + 1024, args.docs))))
    secs = time.perf_counter() - t
    rows.append((f"direct (ours: Java ImpactIndexer, {args.threads} threads)", secs, args.docs / secs))
    print(f"direct: {secs:.1f}s", file=sys.stderr, flush=True)
    if not args.skip_jsonvector:
        from vsplade_lucene.jsonvector import export, index_collection

        coll = work / "jsonvector"
        shutil.rmtree(coll, ignore_errors=True)
        t = time.perf_counter()
        export((corpus.select(range(s, min(s + 4096, args.docs))) for s in range(0, args.docs, 4096)), coll,
               scale=args.jsonvector_scale, shards=max(2, args.threads))
        exp_secs = time.perf_counter() - t
        jidx = work / "jv-index"
        shutil.rmtree(jidx, ignore_errors=True)
        t = time.perf_counter()
        index_collection(coll, jidx, threads=args.threads)
        cli_secs = time.perf_counter() - t
        rows.append((f"JsonVectorCollection export (ours)", exp_secs, args.docs / exp_secs))
        rows.append((f"Pyserini/Anserini IndexCollection CLI, {args.threads} threads", cli_secs, args.docs / cli_secs))
        print(f"jsonvector: export {exp_secs:.1f}s, CLI {cli_secs:.1f}s", file=sys.stderr, flush=True)
    print("\n## Indexing\n\n| path | seconds | pages/s |\n|---|---:|---:|")
    for name, secs, rate in rows:
        print(f"| {name} | {secs:.1f} | {rate:,.0f} |")
    if not args.skip_jsonvector:
        print(f"\nDirect vs CLI: {rows[0][2] / rows[2][2]:.1f}x faster (CLI alone, export excluded).")
    size = du(direct)
    print(f"\nIndex size: {size / 2**20:.1f} MiB, {size / args.docs:.0f} bytes/page (direct path)")
    if not args.skip_jsonvector:
        print(f"JsonVectorCollection-built index: {du(work / 'jv-index') / args.docs:.0f} bytes/page")

    # -- search -------------------------------------------------------------------------------
    lat = []
    searcher = eng.searcher()
    exact = ExactScorer(corpus, vocab)
    for k in (10, 100):
        p50, p99 = time_each(lambda q: searcher.search(q, k), queries)
        searcher.batch_search(queries, k, threads=args.threads)  # warm the worker threads
        t = time.perf_counter()
        searcher.batch_search(queries, k, threads=args.threads)
        per_q = (time.perf_counter() - t) / len(queries) * 1000
        lat.append((f"vsplade lucene (ours), k={k}", p50, p99, per_q))
        p50, p99 = time_each(lambda q: exact.search(q, k), queries)
        lat.append((f"exact scorer / memory engine (scipy CSC), k={k}", p50, p99, None))
    print("search ours + exact done", file=sys.stderr, flush=True)

    # Pyserini's own searcher (vsplade_lucene.pyserini_searcher), step by step from what it did
    # at the start of issue 24 item 4 to the default: the query quantized at the index's scale
    # (Anserini repeats each term impact-many times into a text), Anserini's sort by (score,
    # id), that text analyzed in full by Anserini's WhitespaceAnalyzer (only its rerankers read
    # the tokens), Pyserini's query map (a JInt constructor per term). Timed interleaved with
    # vsplade's searcher, query by query, so load from other processes hits every column alike.
    from jnius import autoclass  # the JVM is up: LuceneEngine started it

    from vsplade_lucene.pyserini_compat import DEFAULT_QUERY_SCALE, pyserini_searcher

    whitespace = autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")
    t = time.perf_counter()
    pyserini = {}
    opened = []  # each variant's searcher, in the order of variants (batch_search reuses two)
    # (label, query scale, plain top-k, Anserini's analyzer in full, Pyserini's own query map,
    # ranked through Anserini's _search without the query text)
    q = DEFAULT_QUERY_SCALE
    variants = [("before: query scale = index scale, sorted, full analyzer, Pyserini's map", args.scale, False, True, True, False),
                (f"query scale {q:g}, plain top-k, full analyzer, Pyserini's map", q, True, True, True, False),
                (f"query scale {q:g}, plain top-k, one-token analyzer, Pyserini's map", q, True, False, True, False),
                (f"query scale {q:g}, plain top-k, one-token analyzer, boxed map", q, True, False, False, False),
                (f"after (default): query scale {q:g}, plain top-k, query built in one call, ranked by _search", q, True, False, False, True)]
    for label, qscale, plain, full, pyserini_map, direct_search in variants:
        ps = pyserini_searcher(direct, query_encoder=object(), query_scale=qscale, plain_top_k=plain)  # queries are {term: weight} dicts
        if full:
            ps.set_analyzer(whitespace())
        if not direct_search:
            ps._direct = False  # Anserini's search(Map, k)
        assert ps.direct_search == direct_search
        opened.append(ps)
        base = type(ps).__mro__[1]  # Pyserini's LuceneImpactSearcher.search: JInt per term
        run = (lambda ps_, base_: lambda q, k_: ps_._rescale(base_.search(ps_, q, k_)))(ps, base) if pyserini_map else ps.search
        pyserini[f"Pyserini LuceneImpactSearcher ({label})"] = run
    ps_open = (time.perf_counter() - t) / len(pyserini)
    ratios = {}
    for k in (10, 100):
        ours_name = "vsplade lucene (ours), interleaved with Pyserini"
        fns = {ours_name: lambda q: searcher.search(q, k)}
        fns.update({name: (lambda run_: lambda q: run_(q, k))(run) for name, run in pyserini.items()})
        res = time_interleaved(fns, queries)
        for name, (p50, p99) in res.items():
            lat.append((f"{name}, k={k}", p50, p99, None))
        ratios[k] = {name: res[name][0] / res[ours_name][0] for name in pyserini}
        # the default alone against ours: the steps above share the JVM with the old paths'
        # 100k-token texts (their allocation and cache churn land on every column)
        default = list(pyserini)[-1]
        pair = time_interleaved({ours_name: fns[ours_name], default: fns[default]}, queries)
        for name, (p50, p99) in pair.items():
            lat.append((f"{name}, two interleaved alone, k={k}", p50, p99, None))
        ratios[k]["default alone"] = pair[default][0] / pair[ours_name][0]
    # batch_search at args.threads threads (k=10): ours, Pyserini's default (PyseriniQuery.batchSearch:
    # every query ranked by _search) and Anserini's own batch_search over search(Map, k) (the
    # previous default); whole batches, 7 rounds in alternating order, median QPS
    qids = [str(i) for i in range(len(queries))]
    by_map, default_ps = opened[-2], opened[-1]  # boxed map through search(Map, k); the default
    assert not by_map.direct_search and default_ps.direct_search
    batches = {"vsplade lucene (ours), batch_search": lambda: searcher.batch_search(queries, 10, threads=args.threads),
               "Pyserini, default: batch_search ranked by _search (PyseriniQuery.batchSearch)":
                   lambda: default_ps.batch_search(queries, qids, 10, threads=args.threads),
               "Pyserini, previous default: Anserini's batch_search over search(Map, k)":
                   lambda: by_map.batch_search(queries, qids, 10, threads=args.threads)}
    batch_s = {name: [] for name in batches}
    for fn in batches.values():
        fn()  # warm
    for r in range(7):
        for name, fn in (list(batches.items()) if r % 2 == 0 else list(batches.items())[::-1]):
            t = time.perf_counter()
            fn()
            batch_s[name].append(time.perf_counter() - t)
    agreement = []
    for name, run in pyserini.items():
        same = same_set = 0
        overlap, worst = [], 0.0
        for q in queries:
            ours = searcher.search(q, 10)
            theirs = run(q, 10)
            a, b = [h.id for h in ours], [h.docid for h in theirs]
            same += a == b
            same_set += set(a) == set(b)
            overlap.append(len(set(a) & set(b)) / max(1, len(a)))
            mine = {h.id: h.score for h in ours}
            for h in theirs:  # scores of a hit both return, relative to ours
                if h.docid in mine:
                    worst = max(worst, abs(h.score - mine[h.docid]) / mine[h.docid])
        agreement.append((name, same, same_set, float(np.mean(overlap)), worst))

    def print_rows(rows_):
        for name, p50, p99, per_q in rows_:
            print(f"| {name} | {p50:.2f} | {p99:.2f} | {'' if per_q is None else f'{per_q:.2f}'} |", flush=True)

    print(f"\n## Search latency ({args.docs} pages, {len(queries)} queries, one thread unless noted)\n")
    print("| searcher | p50 ms | p99 ms | batch ms/query (%d threads) |" % args.threads)
    print("|---|---:|---:|---:|")
    print_rows(lat)
    print(f"\nPyserini LuceneImpactSearcher open (Python idf table over all terms): {ps_open:.1f}s", flush=True)
    print("\nPyserini's p50 / ours (interleaved):\n")
    for name in list(pyserini) + ["default alone"]:
        print(f"- {name}: k=10 {ratios[10][name]:.2f}x, k=100 {ratios[100][name]:.2f}x")
    print(f"\n## batch_search, {args.threads} threads, k=10 ({len(queries)} queries a batch, 7 batches each, interleaved)\n")
    print("| searcher | median QPS | min | max |")
    print("|---|---:|---:|---:|")
    for name, secs in batch_s.items():
        secs = sorted(secs)
        print(f"| {name} | {len(queries) / secs[len(secs) // 2]:,.0f} | {len(queries) / secs[-1]:,.0f} | {len(queries) / secs[0]:,.0f} |")
    print(f"\n## Pyserini's searcher vs vsplade's searcher, top-10 ({len(queries)} queries)\n")
    print("| Pyserini searcher | identical top-10 (order) | same top-10 set | mean overlap@10 | max relative score difference |")
    print("|---|---:|---:|---:|---:|")
    for name, same, same_set, ov, worst in agreement:
        n = len(queries)
        print(f"| {name} | {100 * same / n:.1f}% ({same}/{n}) | {100 * same_set / n:.1f}% ({same_set}/{n}) | {ov:.4f} | {worst:.2e} |")

    if not args.skip_seismic:
        import seismic

        ds = seismic.SeismicDataset()
        mm = corpus.matrix
        ds.add_documents_by_id(ids, mm.indices.astype(np.int64), mm.data.astype(np.float32), mm.indptr.astype(np.int64))
        t = time.perf_counter()
        sidx = seismic.SeismicIndex.build_from_dataset(ds, num_threads=args.threads)
        print(f"\nSeismic build: {time.perf_counter() - t:.1f}s", flush=True)
        sq = []
        for q in queries:
            comps = np.array([str(vocab.id_of(tm)) for tm in q], dtype=seismic.get_seismic_string())
            sq.append((comps, np.array(list(q.values()), dtype=np.float32)))
        srows = []
        for k in (10, 100):
            run = lambda c: sidx.search("q", c[0], c[1], k=k, query_cut=20, heap_factor=0.7)  # noqa: E731
            p50, p99 = time_each(run, sq)
            srows.append((f"Seismic (query_cut 20, heap_factor 0.7), k={k}", p50, p99, None))
            rec = []
            for q, c in zip(queries, sq):
                want = {h.id for h in exact.search(q, k)}
                got = {r[2] for r in run(c)}
                rec.append(len(want & got) / max(1, len(want)))
            print(f"Seismic recall@{k} vs exact: {float(np.mean(rec)):.3f}")
        print("\n| searcher | p50 ms | p99 ms | |\n|---|---:|---:|---:|")
        print_rows(srows)

    # -- correctness on the benchmark corpus + quantization loss --------------------------------
    ints, dropped = quantize_impacts(corpus.matrix, args.scale)
    qexact = ExactScorer(SparseBatch(ints.astype(np.float32), ids, meta), vocab)
    agree = 0
    for q in queries[:100]:
        qi = {tm: float(v) for tm, v in quantize_query_impacts(q, args.scale).items()}
        agree += [h.id for h in searcher.search(q, 10)] == [h.id for h in qexact.search(qi, 10)]
    print(f"\nLucene top-10 == exact scorer on the same integer impacts: {agree}/{min(100, len(queries))} queries")
    same_as_float = sum([h.id for h in searcher.search(q, 10)] == [h.id for h in exact.search(q, 10)] for q in queries)
    print(f"Lucene top-10 == exact float scorer (unquantized): {same_as_float}/{len(queries)} queries")
    print(f"\n## Integer quantization vs float (exact scorer), top-10\n\n| scale | identical top-10 (order) | same top-10 set | mean overlap@10 | weights dropped |\n|---:|---:|---:|---:|---:|")
    for scale in sorted({10.0, 100.0, 1000.0, 10000.0, args.scale}):
        ints, dropped = quantize_impacts(corpus.matrix, scale)
        qs = ExactScorer(SparseBatch(ints.astype(np.float32), ids, meta), vocab)
        same, same_set, ov = 0, 0, []
        for q in queries:
            a = [h.id for h in exact.search(q, 10)]
            qi = {tm: float(v) for tm, v in quantize_query_impacts(q, scale).items()}
            b = [h.id for h in qs.search(qi, 10)]
            same += a == b
            same_set += set(a) == set(b)
            ov.append(len(set(a) & set(b)) / max(1, len(a)))
        print(f"| {scale:g} | {100 * same / len(queries):.1f}% | {100 * same_set / len(queries):.1f}% | {np.mean(ov):.4f} | {dropped} |")
    searcher.close()
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
