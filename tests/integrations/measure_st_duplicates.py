"""How far rankings move when a query side is served by sentence-transformers' SparseStaticEmbedding
(a repeated token counts once) instead of vsplade's li_lsr (each occurrence adds). Not a test: a
measurement for benchmarks/RESULTS.md. Lexical index (memory engine) of tests/data/pdfs; queries
are word windows cut from the pages' own text (natural repeats: "the ... the").

    .venv/bin/python tests/integrations/measure_st_duplicates.py [N_QUERIES]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from integrations_support import build_collection  # noqa: E402


def main(n: int = 300, k: int = 10, seed: int = 0) -> None:
    col = build_collection(Path(tempfile.mkdtemp()), "memory")
    q = col.query_encoder
    from vsplade.render import hit_text

    pages = [hit_text(r) for r in col.catalog()]
    words = [p.split() for p in pages if len(p.split()) > 20]
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        w = words[rng.integers(len(words))]
        size = int(rng.integers(4, 13))
        start = int(rng.integers(0, len(w) - size))
        texts.append(" ".join(w[start:start + size]))
    ours = [q.encode(t) for t in texts]
    once = [{term: q._weights[q.vocab.id_of(term)] for term in d} for d in ours]
    with col._searcher() as s:
        a = s.batch_search(ours, k)
        b = s.batch_search(once, k)
    rep = [i for i, (x, y) in enumerate(zip(ours, once)) if x != y]
    top1 = np.mean([bool(a[i]) and bool(b[i]) and a[i][0].id == b[i][0].id for i in rep]) if rep else 1.0
    overlap = np.mean([len({h.id for h in a[i]} & {h.id for h in b[i]}) / max(1, len(a[i])) for i in rep]) if rep else 1.0
    same = np.mean([[h.id for h in a[i]] == [h.id for h in b[i]] for i in rep]) if rep else 1.0
    print(f"{len(col)} pages, {n} queries of 4-12 words, k={k}")
    print(f"queries with a repeated token: {len(rep)} ({len(rep) / n:.0%})")
    print(f"among them: same top-1 {top1:.1%}, identical top-{k} order {same:.1%}, mean overlap@{k} {overlap:.1%}")
    all_same = (n - len(rep) + same * len(rep)) / n
    print(f"over all queries: identical top-{k} {all_same:.1%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
