"""One V-SPLADE-like synthetic workload for every benchmark: pages and queries whose average
FLOPs (the expected number of query terms a page shares, sum_j P(query has j) x P(page has j))
match V-SPLADE's published figures, ~550 non-zeros a page, the sample page's weight range.

    python benchmarks/corpus.py [--pages 100000] [--queries 1000]   # prints the calibration table

Why a model and not random ids: query terms and page terms of a real model share one frequency
distribution (frequent word pieces are in many pages AND many queries), which is what makes a
query touch many postings. Uniform random ids give FLOPs ~0.1; drawing queries and pages from
two different permutations (the old benchmarks/lucene.py) ~0.1 too; V-SPLADE reports 1.51
(Quality) and 0.98 (Efficient): ten times more postings per query.

The model: one Zipf-like term distribution p_j ~ 1/(rank_j + OFFSET)^alpha over the vocabulary
(ranks a fixed random permutation of the ids). A page holds term j independently with
probability 1 - exp(-lambda_d p_j), a query with 1 - exp(-lambda_q p_j) (Poisson sampling: the
expected FLOPs are then exact sums, so alpha is calibrated analytically per preset, and the
benchmark measures the FLOPs of the pages and queries it actually generated). lambda_d gives
PAGE_NNZ terms a page on average, lambda_q QUERY_TERMS terms a query.
Weights: pages lognormal clipped to the sample page's max (1.836); queries an idf-like table
weight (log of the inverse page frequency), as an inference-free query side gives frequent
word pieces small weights.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

VOCAB_SIZE = 50_368
PAGE_NNZ = 550  # the model card's sample page: nnz 552
QUERY_TERMS = 12  # a ViDoRe-style question, tokenized, distinct pieces
MAX_PAGE_WEIGHT = 1.836  # the sample page's max weight
OFFSET = 10.0
SPECIAL_IDS = 100  # ids below this are never drawn: special/unused tokens hold no weight
PERMUTATION_SEED = 20260  # one term ranking for every preset and seed: the vocabulary's order
DENSE_PI = 0.02  # terms in more than this share of pages are drawn column-dense (no duplicates)


@dataclass(frozen=True)
class Preset:
    name: str
    flops: float  # V-SPLADE's published average FLOPs for that model


PRESETS = {
    "quality": Preset("quality", 1.51),
    "efficient": Preset("efficient", 0.98),
}


def _lambda_for(p: np.ndarray, expected: float) -> float:
    """lambda such that sum_j 1 - exp(-lambda p_j) = expected (bisection on a monotone sum)."""
    lo, hi = 0.0, 1.0
    while np.sum(-np.expm1(-hi * p)) < expected:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.sum(-np.expm1(-mid * p)) < expected:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _inclusion(alpha: float, page_nnz: float, query_terms: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(page has the rank-r term), P(query has it)) for every rank."""
    p = 1.0 / (np.arange(size) + OFFSET) ** alpha
    p /= p.sum()
    return -np.expm1(-_lambda_for(p, page_nnz) * p), -np.expm1(-_lambda_for(p, query_terms) * p)


def expected_flops(alpha: float, page_nnz: float = PAGE_NNZ, query_terms: float = QUERY_TERMS,
                   size: int = VOCAB_SIZE - SPECIAL_IDS) -> float:
    pd, pq = _inclusion(alpha, page_nnz, query_terms, size)
    return float(np.dot(pd, pq))


def calibrate(flops: float, page_nnz: float = PAGE_NNZ, query_terms: float = QUERY_TERMS) -> float:
    """The Zipf exponent whose expected FLOPs are `flops` (FLOPs grow with the skew)."""
    lo, hi = 0.0, 3.0
    if not expected_flops(lo, page_nnz, query_terms) < flops < expected_flops(hi, page_nnz, query_terms):
        raise ValueError(f"FLOPs {flops} is out of reach for {page_nnz} terms a page and {query_terms} a query")
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_flops(mid, page_nnz, query_terms) < flops:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class Workload:
    """Pages and queries of one preset. Same preset and seed, same vectors (any chunking)."""

    def __init__(self, preset: str | Preset = "quality", page_nnz: int = PAGE_NNZ, query_terms: int = QUERY_TERMS,
                 vocab_size: int = VOCAB_SIZE):
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.page_nnz, self.query_terms, self.vocab_size = page_nnz, query_terms, vocab_size
        size = vocab_size - SPECIAL_IDS
        self.alpha = calibrate(self.preset.flops, page_nnz, query_terms)
        by_rank_d, by_rank_q = _inclusion(self.alpha, page_nnz, query_terms, size)
        ids_by_rank = SPECIAL_IDS + np.random.default_rng(PERMUTATION_SEED).permutation(size)
        self.page_p = np.zeros(vocab_size)
        self.query_p = np.zeros(vocab_size)
        self.page_p[ids_by_rank] = by_rank_d
        self.query_p[ids_by_rank] = by_rank_q
        # idf-like query weights, in (0.05, 3]: frequent word pieces weigh little
        with np.errstate(divide="ignore"):
            self.query_weight = np.clip(0.35 * np.log(1.0 / np.maximum(self.page_p, 1e-12)), 0.05, 3.0)

    @cached_property
    def _dense_ids(self) -> np.ndarray:
        return np.flatnonzero(self.page_p > DENSE_PI)

    @cached_property
    def _sparse_ids(self) -> np.ndarray:
        return np.flatnonzero((self.page_p > 0) & (self.page_p <= DENSE_PI))

    def pages(self, n: int, seed: int = 0, chunk: int = 20_000) -> sp.csr_matrix:
        """n pages as a float32 CSR matrix (n x vocab), built chunk by chunk (bounded memory)."""
        return sp.vstack([self._page_chunk(min(chunk, n - s), seed, s // chunk) for s in range(0, n, chunk)],
                         format="csr") if n else sp.csr_matrix((0, self.vocab_size), dtype=np.float32)

    def _page_chunk(self, n: int, seed: int, part: int) -> sp.csr_matrix:
        rng = np.random.default_rng([seed, part])
        dense = self._dense_ids
        hit = rng.random((n, len(dense))) < self.page_p[dense]
        rows_d, k = np.nonzero(hit)
        cols_d = dense[k]
        # rare terms: how many pages hold each (binomial), then which (duplicates are rare at
        # these probabilities and merged below)
        rare = self._sparse_ids
        counts = rng.binomial(n, self.page_p[rare])
        cols_s = np.repeat(rare, counts)
        rows_s = rng.integers(0, n, len(cols_s))
        rows = np.concatenate([rows_d, rows_s])
        cols = np.concatenate([cols_d, cols_s])
        m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, self.vocab_size))
        m.sum_duplicates()
        m.data = np.minimum(MAX_PAGE_WEIGHT, np.exp(rng.normal(-1.3, 0.8, m.nnz))).astype(np.float32)
        m.data = np.maximum(m.data, np.float32(0.01))
        return m

    def queries(self, n: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """n queries as (term ids, weights); never empty (an empty draw is drawn again)."""
        rng = np.random.default_rng([seed, 1 << 20])
        cand = np.flatnonzero(self.query_p > 1e-9)
        out = []
        while len(out) < n:
            ids = cand[rng.random(len(cand)) < self.query_p[cand]]
            if len(ids):
                out.append((ids, self.query_weight[ids].astype(np.float32)))
        return out

    def query_dicts(self, n: int, vocab, seed: int = 1) -> list[dict[str, float]]:
        """The queries as {term: weight} for engines' search()."""
        return [{vocab.terms[int(i)]: float(w) for i, w in zip(ids, ws)} for ids, ws in self.queries(n, seed)]


def measure(pages: sp.csr_matrix, queries: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The workload's own figures: average FLOPs (from the generated pages' and queries' term
    frequencies), postings a query touches, non-zeros per page and terms per query."""
    df = np.bincount(pages.indices, minlength=pages.shape[1])
    qf = np.zeros(pages.shape[1])
    for ids, _ in queries:
        qf[ids] += 1
    postings = [int(df[ids].sum()) for ids, _ in queries]
    return {
        "flops": float(np.dot(df / pages.shape[0], qf / len(queries))),
        "postings_per_query": float(np.mean(postings)),
        "nnz_per_page": pages.nnz / pages.shape[0],
        "terms_per_query": float(np.mean([len(ids) for ids, _ in queries])),
        "max_page_weight": float(pages.data.max()) if pages.nnz else 0.0,
    }


def describe(name: str, figures: dict[str, float]) -> str:
    """One line every benchmark prints under its tables: what workload the numbers are for."""
    return (f"workload {name}: FLOPs {figures['flops']:.2f}, {figures['postings_per_query']:,.0f} postings/query, "
            f"{figures['nnz_per_page']:.0f} nnz/page, {figures['terms_per_query']:.1f} terms/query")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    print(f"| preset | target FLOPs | alpha | measured FLOPs | postings/query | nnz/page | terms/query | max weight |")
    print("|---|---|---|---|---|---|---|---|")
    for name in PRESETS:
        w = Workload(name)
        f = measure(w.pages(args.pages, seed=0), w.queries(args.queries))
        print(f"| {name} | {w.preset.flops} | {w.alpha:.3f} | {f['flops']:.3f} | {f['postings_per_query']:,.0f} | "
              f"{f['nnz_per_page']:.0f} | {f['terms_per_query']:.1f} | {f['max_page_weight']:.3f} |")
    print(f"\n{args.pages:,} pages, {args.queries:,} queries (postings/query grows linearly with the pages)")


if __name__ == "__main__":
    main()
