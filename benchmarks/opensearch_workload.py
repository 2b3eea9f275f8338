"""The OpenSearch benchmarks' view of benchmarks/corpus.py: one Workload (a --preset flag),
its pages cut into SparseBatches with the ids and metadata the OpenSearch benchmarks have always
used (bench-00000001, 20 pages a file), its queries as {term: weight} dicts, and the workload
line every benchmark prints (FLOPs, postings per query)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import PAGE_NNZ, PRESETS, QUERY_TERMS, Workload, describe, measure  # noqa: E402

from vsplade.sparse import SparseBatch  # noqa: E402


def add_preset_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--preset", choices=list(PRESETS), default="quality",
                    help="the workload's average FLOPs (benchmarks/corpus.py): quality 1.51, efficient 0.98")


def workload(preset: str, features: int = PAGE_NNZ, qterms: int = QUERY_TERMS) -> Workload:
    """features / qterms: non-zeros a page and terms a query on average (the corpus defaults
    550 / 12; the Zipf exponent is recalibrated so the FLOPs stay the preset's)."""
    return Workload(preset, page_nnz=features, query_terms=qterms)


def batch_of(m: sp.csr_matrix, start: int) -> SparseBatch:
    """Rows of `m` as pages numbered from `start` (ids and metadata as opensearch_bulk's)."""
    ids = [f"bench-{i:08d}" for i in range(start, start + m.shape[0])]
    meta = [{"id": d, "source": f"/corpus/file{(start + i) // 20:05d}.pdf", "page": (start + i) % 20 + 1}
            for i, d in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def batches(m: sp.csr_matrix, size: int, offset: int = 0):
    for s in range(0, m.shape[0], size):
        yield batch_of(m[s:s + size], offset + s)


def query_dicts(raw: list[tuple[np.ndarray, np.ndarray]], vocab) -> list[dict[str, float]]:
    return [{vocab.terms[int(i)]: float(w) for i, w in zip(ids, ws)} for ids, ws in raw]


def workload_line(preset: str, m: sp.csr_matrix, raw_queries) -> str:
    return describe(preset, measure(m, raw_queries))
