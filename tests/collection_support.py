"""The reference side of the engine contract (tests/engine_contract.py): the shared test folder
of real PDFs, its queries and filters, the memory Collection's float weights, those weights as an
engine stores them (integer impacts for Lucene, 9-bit FeatureField values for OpenSearch), and a
brute-force scorer + hit comparisons over them. The concurrency tests reuse the folder and queries."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from vsplade.encoded import EncodedDir
from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch

DATA = Path(__file__).parent / "data"

QUERIES = ["apt-get install a package", "interface definition language", "camlidl stub code generation",
           "debian reference card", "the type of a pointer", "remove a file from the system"]
# (source, (first page, last page)) as Collection.search takes them
FILTERS = [("camlidl-1.04.doc.pdf", (3, 12)), (["debian-refcard-en-a4.pdf", "scan.png"], (None, None)),
           (None, (20, None)), ("camlidl-1.04.doc.pdf", (None, 2)), ("debian-refcard-en-a4.pdf", (2, 2))]
WORDS = ["interface", "the", "package", "camlidl", "file", "apt", "type", "function", "list", "system"]
PAGES = 35  # the test PDFs' pages + scan.png (no text layer: indexed, empty)


def make_docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in sorted((DATA / "pdfs").glob("*.pdf")):
        shutil.copy(f, root / f.name)
    shutil.copy(DATA / "sample_page.png", root / "scan.png")
    return root


def memory_batch(mem_col) -> SparseBatch:
    """The float weights of the memory Collection (its index is an encoded dir)."""
    return EncodedDir(mem_col.engine.index).load()


def stored_like(batch: SparseBatch, transform: Callable[[np.ndarray], np.ndarray]) -> SparseBatch:
    """The batch with each weight replaced by what the engine stores (and scores)."""
    m = batch.matrix.copy().astype(np.float64)
    m.data = np.asarray(transform(m.data), dtype=np.float64)
    m.eliminate_zeros()
    return SparseBatch(m.tocsr(), batch.ids, batch.meta)


def brute_force(scorer: ExactScorer, batch: SparseBatch, query: dict, k: int | None, source=None,
                pages=(None, None), rescale: float = 1.0) -> list[tuple[str, float]]:
    """Top-k (k=None: all) by scoring EVERY page, then keeping those the filter admits (score
    desc, row asc)."""
    lo, hi = pages
    scores = scorer.scores(query) * rescale
    allowed = {source} if isinstance(source, str) else set(source) if source else None
    out = []
    for r in np.lexsort((np.arange(len(scores)), -scores)):
        m = batch.meta[r]
        if scores[r] <= 0 or (allowed is not None and m["source"] not in allowed):
            continue
        if (lo is not None and m["page"] < lo) or (hi is not None and m["page"] > hi):
            continue
        out.append((batch.ids[r], float(scores[r])))
    return out if k is None else out[:k]


def random_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=3)) for _ in range(n)]


def assert_hits(got, want: list[tuple[str, float]], tol: Callable[[float], float], what=""):
    """Same ids in the same order, each score within tol(expected score)."""
    assert [h.id for h in got] == [i for i, _ in want], what
    for h, (i, s) in zip(got, want):
        assert abs(h.score - s) <= tol(s), (what, i, h.score, s)


def assert_ranked(got, full: list[tuple[str, float]], k: int, tol: Callable[[float], float], what=""):
    """For an engine whose order among EXACTLY equal scores is unspecified (OpenSearch: internal
    doc ids, which follow the bulk threads): the top-k of `full` (every admitted page, ranked),
    except that pages tying exactly may come in any order, and a tie across the k-th place may
    be cut anywhere. Scores within tol."""
    want = full[:k]
    assert len(got) == len(want), what
    ids = [h.id for h in got]
    assert len(set(ids)) == len(ids), what
    for h, (_, s) in zip(got, want):
        assert h.id in {d for d, x in full if x == s}, (what, h.id, s)
        assert abs(h.score - s) <= tol(s), (what, h.id, h.score, s)


def untied(full: list[tuple[str, float]], k: int) -> bool:
    """No two of the first k+1 pages score exactly the same: the order is the engine's to keep."""
    top = [s for _, s in full[: k + 1]]
    return len(set(top)) == len(top)
