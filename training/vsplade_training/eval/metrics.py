"""Metrics the way the official `eval_vidore_v2.py` computes them (spec sections 4 and 7).

- pytrec_eval with ``map_cut``, ``ndcg_cut``, ``recall`` and ``P`` at k in {1,3,5,10,20,50,100},
  default relevance level 1, graded nDCG gains;
- each metric is the mean over the queries pytrec_eval evaluates (those with qrels), rounded
  to 5 decimals, under the keys ``ndcg_at_k``, ``map_at_k``, ``recall_at_k``, ``precision_at_k``;
- per dataset also ``eval_flops`` (sum_v P(q_v>0) P(d_v>0), `vsplade.sparse.flops`),
  ``query_avg_nonzero`` and ``passage_avg_nonzero``;
- ``_average``: the plain mean over datasets of ndcg_at_5, ndcg_at_10, map_at_5, map_at_10,
  recall_at_5, recall_at_10, recall_at_100 and eval_flops (of the per-dataset values as
  written, i.e. already rounded), plus ``num_datasets``.

Ties: trec_eval (hence pytrec_eval) orders a query's documents by score descending, then by
document id descending in byte order (strcmp); `trec_order` reproduces that, and the run files
are written in that order so `trec_eval qrels run` gives the same numbers.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from vsplade.runs import score_texts
from vsplade.sparse import flops

CUTOFFS = (1, 3, 5, 10, 20, 50, 100)
ROUND = 5
# pytrec_eval measure -> official key prefix
MEASURES = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at"}
AVERAGE_KEYS = ("ndcg_at_5", "ndcg_at_10", "map_at_5", "map_at_10", "recall_at_5", "recall_at_10", "recall_at_100",
                "eval_flops")

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def metric_keys() -> list[str]:
    return [f"{prefix}_{k}" for prefix in MEASURES.values() for k in CUTOFFS]


def retrieval_metrics(qrels: Qrels, run: Run) -> dict[str, float]:
    """The 28 official metrics for one dataset, from pytrec_eval."""
    import pytrec_eval

    cut = ",".join(str(k) for k in CUTOFFS)
    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(d) for q, d in qrels.items()}, {f"{m}.{cut}" for m in MEASURES}
    )
    per_query = evaluator.evaluate({q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()})
    out = {}
    for measure, prefix in MEASURES.items():
        for k in CUTOFFS:
            vals = [v[f"{measure}_{k}"] for v in per_query.values()]
            out[f"{prefix}_{k}"] = round(float(np.mean(vals)), ROUND) if vals else 0.0
    return out


def sparsity_stats(query_matrix: sp.csr_matrix, doc_matrix: sp.csr_matrix) -> dict[str, float]:
    """eval_flops, query_avg_nonzero, passage_avg_nonzero (entries > 0), unrounded."""

    def avg_nnz(m: sp.csr_matrix) -> float:
        if m.shape[0] == 0:
            return 0.0
        row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        return float(np.bincount(row_of[m.data > 0], minlength=m.shape[0]).mean())

    return {
        "eval_flops": flops(query_matrix, doc_matrix),
        "query_avg_nonzero": avg_nnz(query_matrix),
        "passage_avg_nonzero": avg_nnz(doc_matrix),
    }


def average(per_dataset: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    names = [n for n in per_dataset if not n.startswith("_")]
    out: dict[str, float] = {}
    for key in AVERAGE_KEYS:
        vals = [per_dataset[n][key] for n in names if key in per_dataset[n]]
        if vals:
            mean = float(np.mean(vals))
            out[key] = round(mean, ROUND) if key != "eval_flops" else mean
    out["num_datasets"] = len(names)
    return out


def metrics_json(per_dataset: Mapping[str, Mapping[str, float]]) -> dict:
    """{dataset: {...31 keys}, "_average": {...}} in the official shape."""
    out = {name: dict(m) for name, m in per_dataset.items()}
    out["_average"] = average(per_dataset)
    return out


# -- ranking order and TREC files ---------------------------------------------------------------
def trec_order(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) in trec_eval's order: score desc, then doc id desc (byte order)."""
    # sort by id desc first, then a stable sort by score desc keeps that order within ties
    by_id = sorted(scores.items(), key=lambda kv: kv[0].encode("utf-8"), reverse=True)
    return sorted(by_id, key=lambda kv: -kv[1])


def run_lines(run: Run, tag: str) -> list[str]:
    """TREC run lines (qid Q0 docid rank score tag) in trec_eval's order, scores written as
    `vsplade search` writes them (vsplade.runs.score_texts: Pyserini's 6 decimals, more only
    where a near-tie needs them to keep trec_eval's order), so both commands' runs read alike."""
    lines = []
    for q, docs in run.items():
        _check_trec_id(q, "query")
        ranked = trec_order(docs)
        for rank, ((d, _), text) in enumerate(zip(ranked, score_texts([s for _, s in ranked])), start=1):
            _check_trec_id(d, "page")
            lines.append(f"{q} Q0 {d} {rank} {text} {tag}")
    return lines


def _check_trec_id(x: str, what: str) -> None:
    if not x or any(c.isspace() for c in x):
        raise ValueError(f"{what} id {x!r} is empty or holds whitespace; TREC run files cannot carry it")


def read_run(path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run
