"""Memory engine RAM and exact-search latency, before/after one float32 copy (issue 24 item 6).

    python benchmarks/memory_ram.py --pages 100000 [--preset quality] [--queries 300]
                                    [--before REV] [--workdir DIR] [--unmerged] [--no-latency]

Before = vsplade/engines/memory.py as of git revision REV (default: the commit before the
one-copy scorer), loaded from git into this process; after = the working tree's. One
encoded dir (benchmarks/corpus.py pages, realistic page metadata: ids, file keys, pages,
sha256) is written with the encoded-dir writer (in a child process; merged into one part up to
the writer's merge cap, 200M non-zeros; over it, as at 1M pages, or with --unmerged, left as
its 4096-page shards: the two loading paths), then:

- RAM: each searcher opened in its own child process, alternately (before, after, before,
  after): resident memory added by opening it (RSS after - RSS before, /proc/self/status)
  per page, and the process's peak (VmHWM: loading included), plus open time; the first
  child of each side then writes its top-100 for every query, and the two must be the same
  hits with scores equal within 1e-9 relative;
- latency (not with --no-latency: at 1M pages two engines in one process are ~14 GB): both
  searchers in this process, exact search timed query by query in turn (interleaved, so load
  from other processes falls on both alike), p50/p99 at k=10 and k=100.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import PRESETS, Workload, describe, measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BEFORE = "124ae3f"  # memory.py before the one-copy scorer (float64 CSC + float32 CSR)


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def load_before(rev: str, workdir: Path):
    """memory.py as of `rev`, imported as a sibling module of vsplade.engines (its relative
    imports resolve against today's package; its own code is the old one)."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:vsplade/engines/memory.py"], check=True,
                         capture_output=True, text=True).stdout
    path = workdir / "memory_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("vsplade.engines._memory_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def searcher_class(which: str, rev: str, workdir: Path):
    if which == "before":
        return load_before(rev, workdir).MemorySearcher
    from vsplade.engines.memory import MemorySearcher

    return MemorySearcher


def child(which: str, rev: str, enc: Path, workdir: Path, hits_out: Path | None, preset: str, queries: int) -> None:
    cls = searcher_class(which, rev, workdir)
    import vsplade.vocab

    vocab = vsplade.vocab.default_vocabulary()  # loaded before the baseline: both sides need it
    base = status_kb("VmRSS")
    t = time.perf_counter()
    s = cls(enc)
    secs = time.perf_counter() - t
    rss = status_kb("VmRSS")
    arrays = getattr(s.scorer, "nbytes", None)  # its own count of what it holds (after only)
    print(json.dumps({"which": which, "open_s": secs, "added_kb": rss - base, "peak_kb": status_kb("VmHWM"),
                      "base_kb": base, "arrays_bytes": arrays}), flush=True)
    if hits_out is not None:
        qs = Workload(preset).query_dicts(queries, vocab, seed=1)
        hits_out.write_text(json.dumps([[(h.id, h.score) for h in s.search(q, 100)] for q in qs]))
    del s


def build(enc: Path, pages: int, preset: str, unmerged: bool) -> dict:
    from vsplade.encoded import DEFAULT_MERGE_MAX_NNZ, EncodedDirWriter
    from vsplade.sparse import SparseBatch

    w = Workload(preset)
    m = w.pages(pages, seed=0)
    figures = measure(m, w.queries(300, seed=1))
    del w
    cap = 0 if unmerged else DEFAULT_MERGE_MAX_NNZ
    with EncodedDirWriter(enc, {"name": "bench", "model": "bench"}, recreate=True, merge_max_nnz=cap) as wr:
        for s in range(0, pages, 4096):
            rows = range(s, min(s + 4096, pages))
            meta = []
            for r in rows:
                key = f"docs/manual-{r // 20:05d}.pdf"
                sha = hashlib.sha256(key.encode()).hexdigest()
                digest = hashlib.blake2b(f"{key}\n{sha}".encode(), digest_size=8).hexdigest()
                meta.append({"id": f"{digest}-{r % 20 + 1}", "source": key, "page": r % 20 + 1, "sha256": sha})
            wr.add(SparseBatch(m[s:rows.stop], [x["id"] for x in meta], meta))
    del m
    (enc / "bench-figures.json").write_text(json.dumps(figures))
    return figures


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--preset", choices=list(PRESETS), default="quality")
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' memory.py")
    ap.add_argument("--rounds", type=int, default=2, help="RAM: child processes per side")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--unmerged", action="store_true", help="keep the writer's shards (the 1M-page loading path)")
    ap.add_argument("--no-latency", action="store_true", help="skip the in-process latency comparison")
    ap.add_argument("--child", choices=["before", "after", "build"], help=argparse.SUPPRESS)
    ap.add_argument("--hits-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vsplade-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    enc = work / f"enc-{args.preset}-{args.pages}{'-unmerged' if args.unmerged else ''}"
    if args.child == "build":
        return print(json.dumps(build(enc, args.pages, args.preset, args.unmerged)))
    if args.child:
        return child(args.child, args.before, enc, work, Path(args.hits_out) if args.hits_out else None,
                     args.preset, args.queries)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    common = ["--pages", str(args.pages), "--preset", args.preset, "--before", args.before, "--workdir", str(work),
              "--queries", str(args.queries)] + (["--unmerged"] if args.unmerged else [])

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if (enc / "bench-figures.json").is_file():
        figures = json.loads((enc / "bench-figures.json").read_text())
    else:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", "build", *common], check=True,
                             stdout=subprocess.PIPE, text=True, env=env).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(f"encoded dir written in {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
    parts = json.loads((enc / "vsplade.json").read_text())["parts"]
    print(f"# Memory engine: {args.pages:,} pages in {len(parts)} stored part(s); before = memory.py at "
          f"{args.before}, after = working tree\n")
    print(describe(args.preset, figures))
    nnz = figures["nnz_per_page"]

    runs = []
    for rnd in range(args.rounds):
        for which in ("before", "after"):
            hits = ["--hits-out", str(work / f"hits-{enc.name}-{which}.json")] if rnd == 0 else []
            out = subprocess.run([sys.executable, __file__, "--child", which, *common, *hits],
                                 check=True, capture_output=True, text=True, env=env)
            runs.append(json.loads(out.stdout.strip().splitlines()[0]))
            print(f"{which}: {runs[-1]}", file=sys.stderr, flush=True)
    print(f"\n## RAM ({args.rounds} child processes per side, alternating)\n")
    print("| memory engine | RSS added by opening, bytes/page | bytes/non-zero | peak RSS (process) | open s |")
    print("|---|---:|---:|---:|---:|")
    for which in ("before", "after"):
        rs = [r for r in runs if r["which"] == which]
        added = np.median([r["added_kb"] for r in rs]) * 1024
        peak = np.median([r["peak_kb"] for r in rs]) * 1024
        print(f"| {which} | {added / args.pages:,.0f} | {added / args.pages / nnz:.1f} | {peak / 2**20:,.0f} MiB | "
              f"{np.median([r['open_s'] for r in rs]):.1f} |")
    arrays = [r["arrays_bytes"] for r in runs if r["which"] == "after" and r.get("arrays_bytes")]
    if arrays:
        print(f"\nafter: what it holds by its own count (scorer.nbytes: vectors, metadata codes, page ids) "
              f"{arrays[0] / args.pages:,.0f} bytes/page")

    # -- the same hits: each side's first child wrote its top-100 per query ------------------------
    a_all = json.loads((work / f"hits-{enc.name}-before.json").read_text())
    b_all = json.loads((work / f"hits-{enc.name}-after.json").read_text())
    worst = 0.0
    for a, b in zip(a_all, b_all, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b], "before and after rank differently"
        worst = max(worst, max((abs(x - y) / x for (_, x), (_, y) in zip(a, b)), default=0.0))
    assert worst <= 1e-9, worst
    print(f"\nSame top-100 ids before and after on all {len(a_all)} queries; largest relative score difference {worst:.1e}")
    if args.no_latency:
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return

    # -- latency, interleaved in one process ---------------------------------------------------
    from vsplade.vocab import default_vocabulary

    vocab = default_vocabulary()
    queries = Workload(args.preset).query_dicts(args.queries, vocab, seed=1)
    old = searcher_class("before", args.before, work)(enc)
    new = searcher_class("after", args.before, work)(enc)
    print(f"\n## Exact search latency ({len(queries)} queries, one thread, interleaved query by query)\n")
    print("| memory engine | k | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for k in (10, 100):
        fns = {"before": lambda q: old.search(q, k), "after": lambda q: new.search(q, k)}
        for fn in fns.values():
            for q in queries:
                fn(q)
        ts = {n: [] for n in fns}
        for i, q in enumerate(queries):
            for n in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
                t = time.perf_counter()
                fns[n](q)
                ts[n].append(time.perf_counter() - t)
        for n, v in ts.items():
            print(f"| {n} | {k} | {pct(v, 50):.2f} | {pct(v, 99):.2f} |")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
