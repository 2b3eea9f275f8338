"""Query-encoding latency: the torch-free encoder vs a torch implementation of the same lookup.

Both tokenize with the same tokenizer (no special tokens). The torch path then does what the
official Li-LSR encoder does at inference: scatter-add the table values into a [50368] tensor
and mask the special ids, then turn the non-zeros into the {term: weight} dict an engine query
needs; ours tokenizes (ASCII queries through a per-piece cache that gives exactly the
tokenizer's ids) and aggregates straight into that dict. Same queries, same
process, interleaved. Prints a table (p50/p99 microseconds per query, queries/s).

    .venv/bin/python benchmarks/query_encode.py [--queries N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from vsplade.query import QueryEncoder
from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "tests" / "data" / "vidore_samples" / "queries_qrels.json"


def make_queries(n: int) -> list[str]:
    base = list(json.loads(SAMPLES.read_text())["queries"].values())
    rng = np.random.default_rng(0)
    words = " ".join(base).split()
    out = list(base)
    while len(out) < n:
        out.append(" ".join(rng.choice(words, size=int(rng.integers(4, 16)))))
    return out[:n]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    table = np.random.default_rng(1).uniform(0.01, 2, VOCAB_SIZE).astype(np.float32)
    enc = QueryEncoder(table=table, mode="li_lsr")
    queries = make_queries(args.queries)

    import torch

    torch.set_num_threads(1)
    t_table = torch.from_numpy(table.copy())
    t_mask = torch.ones(VOCAB_SIZE)
    t_mask[list(SPECIAL_IDS)] = 0
    tok = enc.tokenizer

    terms = enc.vocab.terms

    def torch_vector(text):
        ids = tok.encode(text, add_special_tokens=False).ids
        idx = torch.tensor([i for i in ids if i < VOCAB_SIZE], dtype=torch.long)
        out = torch.zeros(VOCAB_SIZE)
        out.scatter_add_(0, idx, t_table[idx])
        return out * t_mask

    def torch_encode(text):
        # an engine needs {term: weight}, so the torch path ends the same way ours does
        vec = torch_vector(text)
        nz = vec.nonzero().flatten()
        return dict(zip((terms[i] for i in nz.tolist()), vec[nz].tolist()))

    # correctness: both paths give the same vector
    for q in queries[:50]:
        ours = enc.encode(q)
        theirs = torch_encode(q)
        assert set(theirs) == set(ours), q
        assert all(abs(theirs[t] - ours[t]) < 1e-5 for t in theirs)

    def timed(fn):
        lat = []
        for q in queries:
            t0 = time.perf_counter_ns()
            fn(q)
            lat.append((time.perf_counter_ns() - t0) / 1000)
        return lat

    paths = {
        "vsplade QueryEncoder.encode -> {term: w} (torch-free)": enc.encode,
        "torch tokenize + scatter_add -> {term: w}": torch_encode,
        "torch tokenize + scatter_add -> dense [50368] only": torch_vector,
    }
    results = {name: [] for name in paths}
    for _ in range(args.repeat):  # interleaved, so both see the same machine state
        for name, fn in paths.items():
            results[name].extend(timed(fn))

    print(f"# query encoding, {len(queries)} queries x {args.repeat}, {platform.machine()} {platform.processor() or ''}, 1 thread")
    print(f"| path | p50 us | p99 us | mean us | queries/s |")
    print(f"|---|---:|---:|---:|---:|")
    p50s = {}
    for name, lat in results.items():
        p50s[name] = percentile(lat, 50)
        mean = statistics.fmean(lat)
        print(f"| {name} | {p50s[name]:.1f} | {percentile(lat, 99):.1f} | {mean:.1f} | {1e6 / mean:,.0f} |")
    names = list(results)
    for other in names[1:]:
        print(f"speed-up at p50 vs '{other}': {p50s[other] / p50s[names[0]]:.1f}x")


if __name__ == "__main__":
    main()
