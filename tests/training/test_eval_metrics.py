"""Metrics of `vsplade-train eval` against hand computations and pytrec_eval's own tie order."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

pytrec_eval = pytest.importorskip("pytrec_eval")

from vsplade_training.eval.metrics import (  # noqa: E402
    AVERAGE_KEYS,
    metric_keys,
    metrics_json,
    read_run,
    retrieval_metrics,
    run_lines,
    sparsity_stats,
    trec_order,
)


def test_trec_order_is_the_order_pytrec_eval_ranks_in():
    # many ties (zero scores as in sparse retrieval), ids that sort differently as numbers
    scores = {"10": 0.0, "9": 0.0, "a": 0.5, "B": 0.5, "d2": 0.0, "d10": 0.25, "é": 0.0, "z": 0.25}
    order = [d for d, _ in trec_order(scores)]
    assert order[:2] == ["a", "B"]  # tie at 0.5: 'a' > 'B' byte-wise, descending
    assert order[2:4] == ["z", "d10"]
    for pos, doc in enumerate(order):
        ev = pytrec_eval.RelevanceEvaluator({"q": {doc: 1}}, {"recip_rank"})
        got = ev.evaluate({"q": scores})["q"]["recip_rank"]
        assert got == pytest.approx(1 / (pos + 1)), (doc, pos)


def test_toy_run_equals_hand_computation():
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d2": 1}}
    run = {
        # q1 ranks d2, d1, d4, d3 (d3/d4 tie: 'd4' first)
        "q1": {"d1": 0.5, "d2": 0.9, "d3": 0.1, "d4": 0.1},
        # q2 ranks d2, d1 (tie: 'd2' first), then d4, d3 (tie at 0)
        "q2": {"d1": 0.3, "d2": 0.3, "d3": 0.0, "d4": 0.0},
        # not judged: pytrec_eval leaves it out of the means
        "q3": {"d1": 1.0, "d2": 0.0, "d3": 0.0, "d4": 0.0},
    }
    m = retrieval_metrics(qrels, run)
    l3, l5 = math.log2(3), math.log2(5)
    idcg = 2 + 1 / l3  # graded gains 2 then 1 at ranks 1, 2
    q1_ndcg = {1: 0.0, 3: (2 / l3) / idcg, 5: (2 / l3 + 1 / l5) / idcg}
    q1_map = {1: 0.0, 3: (1 / 2) / 2, 5: (1 / 2 + 2 / 4) / 2}
    q1_rec = {1: 0.0, 3: 0.5, 5: 1.0}
    q1_p = {1: 0.0, 3: 1 / 3, 5: 2 / 5, 10: 2 / 10, 100: 2 / 100}
    q2_p = {1: 1.0, 3: 1 / 3, 5: 1 / 5, 10: 1 / 10, 100: 1 / 100}
    for k in (1, 3, 5):
        assert m[f"ndcg_at_{k}"] == round((q1_ndcg[k] + 1) / 2, 5)
        assert m[f"map_at_{k}"] == round((q1_map[k] + 1) / 2, 5)
        assert m[f"recall_at_{k}"] == round((q1_rec[k] + 1) / 2, 5)
    for k in (1, 3, 5, 10, 100):
        assert m[f"precision_at_{k}"] == round((q1_p[k] + q2_p[k]) / 2, 5)
    assert m["ndcg_at_100"] == m["ndcg_at_5"] and m["recall_at_100"] == 1.0
    assert sorted(m) == sorted(metric_keys()) and len(m) == 28


def test_metrics_json_shape_and_average():
    a = {k: 0.1 for k in metric_keys()} | {"eval_flops": 1.0, "query_avg_nonzero": 3.0, "passage_avg_nonzero": 9.0}
    b = {k: 0.4 for k in metric_keys()} | {"eval_flops": 2.0, "query_avg_nonzero": 5.0, "passage_avg_nonzero": 7.0}
    out = metrics_json({"esg_reports_eng_v2": a, "biomedical_lectures_eng_v2": b})
    assert set(out) == {"esg_reports_eng_v2", "biomedical_lectures_eng_v2", "_average"}
    avg = out["_average"]
    assert set(avg) == set(AVERAGE_KEYS) | {"num_datasets"}
    assert avg["num_datasets"] == 2
    assert avg["ndcg_at_5"] == 0.25 and avg["recall_at_100"] == 0.25 and avg["eval_flops"] == 1.5
    assert len(out["esg_reports_eng_v2"]) == 31


def test_sparsity_stats_by_hand():
    V = 8
    q = sp.csr_matrix(np.array([[0, 1, 2, 0, 0, 0, 0, 0], [0, 0, 3, 0, 0, 0, 0, 0]], dtype=np.float32))
    d = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 4, 0, 0, 0, 0], [0] * V], dtype=np.float32))
    s = sparsity_stats(q, d)
    # P(q_1)=1/2, P(q_2)=1, P(d_2)=2/3, P(d_3)=1/3 -> 1/2*0 + 1*2/3 + 0*1/3
    assert s["eval_flops"] == pytest.approx(2 / 3)
    assert s["query_avg_nonzero"] == 1.5
    assert s["passage_avg_nonzero"] == 1.0


def test_run_file_round_trips_to_the_same_metrics(tmp_path):
    rng = np.random.default_rng(0)
    docs = [f"p{i}" for i in range(30)]
    run = {f"q{j}": {d: float(rng.integers(0, 4)) / 7 for d in docs} for j in range(5)}
    qrels = {f"q{j}": {docs[int(i)]: int(rng.integers(1, 3)) for i in rng.choice(30, 3, replace=False)} for j in range(5)}
    path = tmp_path / "run.trec"
    path.write_text("\n".join(run_lines(run, "t")) + "\n")
    lines = path.read_text().splitlines()
    assert lines[0].split()[3] == "1" and len(lines) == 150
    back = read_run(path)  # Pyserini's 6 decimals: each score within half a unit of the last one
    assert back.keys() == run.keys() and all(abs(back[q][d] - s) <= 5e-7 for q in run for d, s in run[q].items())
    assert retrieval_metrics(qrels, read_run(path)) == retrieval_metrics(qrels, run)


def test_run_lines_reject_ids_with_whitespace():
    with pytest.raises(ValueError, match="whitespace"):
        run_lines({"q": {"a page.png": 1.0}}, "t")
