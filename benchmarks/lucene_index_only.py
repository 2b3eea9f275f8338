"""Direct-path indexing speed only, on a cached corpus: for before/after comparisons of the
Lucene writer across versions in one shell run.

    python benchmarks/lucene_index_only.py --docs 100000 [--scale 100] [--chunk-docs N] [--threads N]

The corpus (benchmarks/corpus.py's workload, seed 0) is saved to --cache the first time and
loaded after, so every version indexes the same pages. To time an older version, put it on
the path first, e.g. `git worktree add /tmp/v0 <commit>` and
`PYTHONPATH=/tmp/v0/connectors/lucene python benchmarks/lucene_index_only.py ...`; the line
printed first names the vsplade_lucene that ran.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from corpus import PRESETS, Workload  # noqa: E402

from vsplade.sparse import SparseBatch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--preset", choices=list(PRESETS), default="quality", help="the workload (benchmarks/corpus.py)")
    ap.add_argument("--scale", type=float, default=None, help="impact scale (default: the engine's)")
    ap.add_argument("--chunk-docs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1024, help="pages per writer.add call")
    ap.add_argument("--cache", default=None, help="corpus .npz (default: in the temp dir)")
    args = ap.parse_args()

    import vsplade_lucene
    from vsplade_lucene import LuceneEngine

    cache = Path(args.cache or Path(tempfile.gettempdir()) / f"vsplade-bench-corpus-{args.docs}-{args.preset}.npz")
    if not cache.exists():
        sp.save_npz(cache, Workload(args.preset).pages(args.docs, seed=0))
    m = sp.load_npz(cache).tocsr()
    ids = [f"p{i}" for i in range(m.shape[0])]
    meta = [{"id": d, "source": f"doc{i // 20}.pdf", "page": i % 20 + 1} for i, d in enumerate(ids)]
    corpus = SparseBatch(m, ids, meta)
    opts = {k: v for k, v in (("scale", args.scale), ("chunk_docs", args.chunk_docs), ("threads", args.threads)) if v}
    out = Path(tempfile.mkdtemp(prefix="vsplade-bench-index-"))
    try:
        eng = LuceneEngine(str(out / "idx"), **opts)
        t, c = time.perf_counter(), time.process_time()
        with eng.writer({"name": "bench"}, recreate=True) as w:
            for s in range(0, len(corpus), args.batch):
                w.add(corpus.select(range(s, min(s + args.batch, len(corpus)))))
        secs, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"vsplade_lucene: {Path(vsplade_lucene.__file__).parent}")
    print(f"| pages | seconds | pages/s | process CPU s | peak RSS MiB | options |\n|---:|---:|---:|---:|---:|---|")
    print(f"| {len(corpus):,} | {secs:.1f} | {len(corpus) / secs:,.0f} | {cpu:.1f} | {rss:,.0f} | {opts or 'defaults'} |")


if __name__ == "__main__":
    main()
