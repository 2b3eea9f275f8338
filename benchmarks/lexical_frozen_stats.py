"""What freezing the lexical encoder's corpus statistics costs in ranking quality.

A `lexical` index keeps the statistics (df, N, avgdl) it was created with, so files added
later are encoded with them (vsplade.encoders.lexical). Reference: re-fitting on the whole
corpus and re-encoding everything. Two cases, side by side:
- the test PDFs: the index created from all but one file, that file added later;
- a corpus that doubles: created from the first half of the pages, the second half added.
Queries: spans of 2-4 words drawn from the pages' own text (seeded). Printed per case:
top-1 agreement, mean overlap@10, mean nDCG@10 of the frozen ranking graded by the
reference scores, and how far the idf moved (mean |delta idf| over the query terms).

    python benchmarks/lexical_frozen_stats.py [--queries 200] [INPUT...]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np

from vsplade.encoders.lexical import LexicalEncoder
from vsplade.engines.memory import ExactScorer, top_k
from vsplade.pages import read_pages
from vsplade.sparse import concat

ROOT = Path(__file__).resolve().parents[1]


def queries_from(pages, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [p.text for p in pages if len(p.text.split()) > 8]
    out = []
    while len(out) < n:
        words = re.findall(r"[A-Za-z][A-Za-z-]{2,}", texts[rng.integers(len(texts))])
        if len(words) < 5:
            continue
        size = int(rng.integers(2, 5))
        start = int(rng.integers(0, len(words) - size))
        out.append(" ".join(words[start:start + size]))
    return out


def ndcg10(ranking: np.ndarray, gains: np.ndarray) -> float:
    ideal = np.sort(gains)[::-1][:10]
    dcg = sum(gains[r] / math.log2(i + 2) for i, r in enumerate(ranking[:10]))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 1.0


def compare(first, later, queries) -> dict:
    frozen = LexicalEncoder()
    frozen.fit(first)
    batch_frozen = concat([frozen.encode(first), frozen.encode(later)])
    refit = LexicalEncoder()
    refit.fit(first + later)
    batch_ref = concat([refit.encode(first), refit.encode(later)])
    s_frozen, s_ref = ExactScorer(batch_frozen), ExactScorer(batch_ref)
    q = refit.query_encoder()
    top1 = overlap = nd = 0.0
    didf = []
    for text in queries:
        terms = q.encode(text)
        a, b = s_frozen.scores(terms), s_ref.scores(terms)
        ra, rb = top_k(a, 10), top_k(b, 10)
        top1 += float(len(ra) > 0 and len(rb) > 0 and ra[0] == rb[0])
        overlap += len(set(ra) & set(rb)) / max(1, min(10, len(rb)))
        nd += ndcg10(ra, b)
        ids = list(q.encode_ids(text))
        didf.append(float(np.mean(np.abs(frozen.idf[ids] - refit.idf[ids]))) if ids else 0.0)
    n = len(queries)
    return {"pages": f"{len(first)} + {len(later)}", "top1_agree": top1 / n, "overlap@10": overlap / n,
            "ndcg@10": nd / n, "mean |d idf|": float(np.mean(didf))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", default=[str(ROOT / "tests/data/pdfs")])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    pages, _ = read_pages(args.inputs, render=False)
    pages = [p for p in pages if p.text]
    by_file: dict[str, list] = {}
    for p in pages:
        by_file.setdefault(p.source, []).append(p)
    queries = queries_from(pages, args.queries)
    last = max(by_file, key=lambda f: len(by_file[f]))  # added later: the largest file is the hardest case
    cases = {
        f"one file added later ({Path(last).name})": ([p for p in pages if p.source != last], by_file[last]),
        "corpus doubles (first half, then second)": (pages[: len(pages) // 2], pages[len(pages) // 2:]),
    }
    print(f"{len(pages)} pages with text, {len(queries)} queries; reference = re-fit on everything")
    print(f"| case | pages (created + added) | top-1 agree | overlap@10 | nDCG@10 vs re-fit | mean abs d idf |")
    print("|---|---|---|---|---|---|")
    for name, (first, later) in cases.items():
        r = compare(first, later, queries)
        print(f"| {name} | {r['pages']} | {r['top1_agree']:.3f} | {r['overlap@10']:.3f} | {r['ndcg@10']:.4f} | {r['mean |d idf|']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
