"""Hybrid search checks shared by the engine tests (imported by name): the reference fusion is
Pyserini's own (pyserini.fusion on TrecRuns), never vsplade.fusion, so a formula slip in
vsplade.fusion shows up as a mismatch."""

from __future__ import annotations

import random

import pandas as pd
from pyserini.fusion import interpolation, reciprocal_rank_fusion
from pyserini.trectools import RescoreMethod, TrecRun

from vsplade.engines.base import PageFilter
from vsplade.sparse import SparseBatch

MODES = ("rrf", "minmax:0.6", "minmax:0.2")
SYN_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
# what a regular-expression tokenizer is likeliest to split differently from StandardAnalyzer
TRICKY_TEXT = "Fortran's U.S.A. e-mail 3.14 1,000 a,b x:y foo_bar Ümlaut "
WORDS = ("install package debian interface language stub code camlidl report revenue manual page "
         "apt get remove search file system network").split()


def synthetic(n: int, seed: int, tricky: bool = False) -> SparseBatch:
    """n pages with random vectors and random texts (some long: Lucene's lossy lengths; some
    empty); tricky: every 50th page (from the 8th) starts with TRICKY_TEXT."""
    rng = random.Random(seed)
    rows, meta = [], []
    for i in range(n):
        rows.append({rng.randrange(1000, 1100): rng.uniform(0.1, 3.0) for _ in range(rng.randint(1, 12))})
        words = SYN_WORDS[: rng.randint(2, len(SYN_WORDS))]
        text = " ".join(rng.choice(words) for _ in range(rng.choice([0, 3, 20, 39, 40, 41, 150, 900])))
        if tricky and i % 50 == 7:
            text = TRICKY_TEXT + text
        meta.append({"id": f"p{i}", "source": f"f{i % 7}.pdf", "page": i // 7 + 1, "text": text})
    return SparseBatch.from_dicts(rows, [m["id"] for m in meta], meta)


def trec_run(hits) -> TrecRun:
    """A one-topic TrecRun of hits in their order (rank 1..n), as Pyserini reads a run file."""
    run = TrecRun()
    run.run_data = pd.DataFrame([("q", "Q0", h.id, rank, float(h.score), "t") for rank, h in enumerate(hits, 1)],
                                columns=TrecRun.columns)
    return run


def pyserini_fused(vector, text, mode: str, k: int) -> list[tuple[str, float]]:
    """(id, score) of pyserini.fusion's fusion of the two runs: RRF (rrf_k 60), or for
    minmax:W interpolation with alpha=W of the two runs min-max normalised (RescoreMethod.NORMALIZE)."""
    runs = [trec_run(vector), trec_run(text)]
    if mode == "rrf":
        fused = reciprocal_rank_fusion(runs, rrf_k=60, k=k)
    else:
        w = float(mode.split(":")[1])
        fused = interpolation([r.rescore(RescoreMethod.NORMALIZE) for r in runs], alpha=w, k=k)
    return list(zip(fused.run_data["docid"], fused.run_data["score"].astype(float)))


def check_against_pyserini(col, text: str, k: int, mode: str, depth: int = 100, source=None, pages=None) -> int:
    """col.search(text, hybrid=mode) equals Pyserini's fusion of the engine's own two runs at
    depth (same pages, same order, scores to 1e-9). Returns how many hits it compared."""
    got = col.search(text, k=k, hybrid=mode, depth=depth, source=source, pages=pages)
    filters = col.filters(source, pages)
    page_filter = PageFilter.of(filters.get("sources"), filters.get("page_min"), filters.get("page_max"))
    with col._searcher() as s:
        vector = s.search(col.query_encoder.encode(text), depth, **filters)
        lexical = s.search_text(text, depth, page_filter)
    want = pyserini_fused(vector, lexical, mode, k)
    assert [h.id for h in got] == [i for i, _ in want], (text, mode, [h.id for h in got], want)
    for h, (_, score) in zip(got, want):
        assert abs(h.score - score) <= 1e-9 * max(1.0, abs(score)), (text, mode, h.id, h.score, score)
    # each hit's sides are the runs' own scores and ranks
    vrank = {h.id: (r, h.score) for r, h in enumerate(vector, 1)}
    trank = {h.id: (r, h.score) for r, h in enumerate(lexical, 1)}
    for h in got:
        assert (h.hybrid["vector_rank"], h.hybrid["vector"]) == vrank.get(h.id, (None, None))
        assert (h.hybrid["text_rank"], h.hybrid["text"]) == trank.get(h.id, (None, None))
    return len(got)


def random_queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 4))) for _ in range(n)]
