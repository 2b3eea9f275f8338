"""`vsplade-train eval` end to end through the CLI: a tiny random V-SPLADE model on ViDoRe-layout
sets built from the real pages and queries in tests/data, checked against an independent dense
Q x N scoring (the paper's way) and pytrec_eval; the lexical encoder on image pages; errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytrec_eval = pytest.importorskip("pytrec_eval")
pytestmark = pytest.mark.slow  # encode, index and evaluate end to end: make test only

from vsplade.encoded import EncodedDir  # noqa: E402
from vsplade.encoders import load_query_encoder  # noqa: E402
from vsplade_training.cli import app  # noqa: E402
from vsplade_training.eval.loading import load_eval_dataset  # noqa: E402
from vsplade_training.eval.metrics import AVERAGE_KEYS, metric_keys  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
runner = CliRunner()
SETS = ["esg_reports_eng_v2", "economics_reports_v2"]


def _eval(*args):
    r = runner.invoke(app, ["eval", *args, "--offline", "--no-progress"])
    return r


def _dense_metrics(ds, encoded_dir: Path, model: str) -> dict:
    """The official protocol, independently: dense Q x N scores, every page, pytrec_eval."""
    batch = EncodedDir(encoded_dir).load()
    q = load_query_encoder(model)
    qids = list(ds.queries)
    qm = q.encode_matrix([ds.queries[i] for i in qids]).toarray().astype(np.float64)
    scores = qm @ batch.matrix.toarray().astype(np.float64).T
    run = {qid: {d: float(s) for d, s in zip(batch.ids, row)} for qid, row in zip(qids, scores)}
    measures = {"ndcg_cut.1,3,5,10,20,50,100", "map_cut.1,3,5,10,20,50,100", "recall.1,3,5,10,20,50,100",
                "P.1,3,5,10,20,50,100"}
    per_q = pytrec_eval.RelevanceEvaluator(ds.qrels, measures).evaluate(run)
    out = {}
    for m, key in (("ndcg_cut", "ndcg_at"), ("map_cut", "map_at"), ("recall", "recall_at"), ("P", "precision_at")):
        for k in (1, 3, 5, 10, 20, 50, 100):
            out[f"{key}_{k}"] = round(float(np.mean([v[f"{m}_{k}"] for v in per_q.values()])), 5)
    return out


@pytest.fixture(scope="module")
def tiny_eval(tiny_checkpoint, vidore_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("eval_tiny")
    r = _eval(*SETS, "--model", str(tiny_checkpoint), "--data-dir", str(vidore_root), "--work-dir", str(work),
              "--batch-size", "4", "--device", "cpu")
    assert r.exit_code == 0, r.output
    return work, r


def test_tiny_model_metrics_equal_the_dense_official_protocol(tiny_eval, tiny_checkpoint, vidore_root):
    work, r = tiny_eval
    metrics = json.loads((work / "results" / "memory" / "metrics.json").read_text())
    assert set(metrics) == {"esg_reports_eng_v2", "economics_reports_eng_v2", "_average"}
    for name in ("esg_reports_eng_v2", "economics_reports_eng_v2"):
        m = metrics[name]
        assert set(m) == set(metric_keys()) | {"eval_flops", "query_avg_nonzero", "passage_avg_nonzero"}
        ds = load_eval_dataset(name, vidore_root, hub=False)
        expected = _dense_metrics(ds, work / "encoded" / name, str(tiny_checkpoint))
        assert {k: m[k] for k in expected} == expected
        enc = EncodedDir(work / "encoded" / name).load()
        assert m["passage_avg_nonzero"] == pytest.approx(enc.matrix.getnnz() / len(enc))
        assert m["passage_avg_nonzero"] > 0 and m["query_avg_nonzero"] > 0 and m["eval_flops"] > 0
    avg = metrics["_average"]
    assert avg["num_datasets"] == 2
    for k in AVERAGE_KEYS:
        vals = [metrics[n][k] for n in ("esg_reports_eng_v2", "economics_reports_eng_v2")]
        assert avg[k] == pytest.approx(np.mean(vals), abs=1e-9 if k == "eval_flops" else 1e-5)
    assert "average over 2 dataset(s)" in r.output


def test_run_files_reproduce_the_metrics(tiny_eval):
    from vsplade_training.eval.metrics import read_run, retrieval_metrics

    work, _ = tiny_eval
    res = work / "results" / "memory"
    metrics = json.loads((res / "metrics.json").read_text())
    for name in ("esg_reports_eng_v2", "economics_reports_eng_v2"):
        qrels = {}
        for line in (res / "qrels" / f"{name}.qrels").read_text().splitlines():
            q, _, d, s = line.split()
            qrels.setdefault(q, {})[d] = int(s)
        run = read_run(res / "runs" / f"{name}.trec")
        pages = len(json.loads((work / "encoded" / name / "doc_ids.json").read_text()))
        assert all(len(docs) == pages for docs in run.values())  # every page ranked for every query
        got = retrieval_metrics(qrels, run)
        assert got == {k: metrics[name][k] for k in got}


def test_report_has_timings_latency_and_counts(tiny_eval):
    work, _ = tiny_eval
    rep = json.loads((work / "results" / "memory" / "report.json").read_text())
    esg = rep["datasets"]["esg_reports_eng_v2"]
    assert esg["num_pages"] == 7 and esg["num_queries"] == 5 and esg["queries_dropped_by_language"] == 1
    assert esg["pages_encoded_now"] == 7
    assert set(esg["timings_s"]) >= {"encode_corpus", "encode_queries", "index", "search"}
    assert esg["latency"]["p50_ms"] > 0
    assert "page id desc" in rep["tie_break"]


def test_second_run_reuses_the_encoded_corpus(tiny_eval, tiny_checkpoint, vidore_root, tmp_path):
    work, _ = tiny_eval
    r = _eval(SETS[0], "--model", str(tiny_checkpoint), "--data-dir", str(vidore_root), "--work-dir", str(work),
              "--out", str(tmp_path / "again"))
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "again" / "report.json").read_text())
    assert rep["datasets"]["esg_reports_eng_v2"]["pages_encoded_now"] == 0
    first = json.loads((work / "results" / "memory" / "metrics.json").read_text())["esg_reports_eng_v2"]
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["esg_reports_eng_v2"]
    assert again == first


def test_memory_quantized_run(tiny_eval, tiny_checkpoint, vidore_root):
    work, _ = tiny_eval
    r = _eval(SETS[0], "--model", str(tiny_checkpoint), "--data-dir", str(vidore_root), "--work-dir", str(work),
              "--quantize", "100")
    assert r.exit_code == 0, r.output
    q = json.loads((work / "results" / "memory-q100" / "metrics.json").read_text())["esg_reports_eng_v2"]
    assert (work / "indexes" / "memory-q100" / "esg_reports_eng_v2").is_dir()
    run = (work / "results" / "memory-q100" / "runs" / "esg_reports_eng_v2.trec").read_text().split("\n", 1)[0]
    assert float(run.split()[4]).is_integer()  # integer impacts x integer query weights


def test_lexical_on_image_pages_runs_with_empty_vectors(vidore_root, tmp_path):
    r = _eval(str(DATA / "vidore_samples"), str(DATA / "vidore_arxivqa_mini"), "--model", "lexical",
              "--work-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "results" / "memory" / "metrics.json").read_text())
    rep = json.loads((tmp_path / "results" / "memory" / "report.json").read_text())
    for name in ("vidore_samples", "vidore_arxivqa_mini"):
        assert metrics[name]["passage_avg_nonzero"] == 0 and metrics[name]["eval_flops"] == 0
        assert metrics[name]["query_avg_nonzero"] > 0
        assert rep["datasets"][name]["empty_pages"] == rep["datasets"][name]["num_pages"]
    # every score is 0: the ranking is page id descending, so the hand value follows from qrels
    # arxivqa: q_0 -> page '0' is last of 10 ('9'..'0'), q_1 -> page '1' is 9th
    ndcg10 = (1 / np.log2(11) + 1 / np.log2(10)) / 2
    assert metrics["vidore_arxivqa_mini"]["ndcg_at_10"] == round(ndcg10, 5)
    assert metrics["vidore_arxivqa_mini"]["ndcg_at_5"] == 0


def test_bad_dataset_exits_2_with_its_name(tmp_path):
    r = _eval("no_such_set", "--model", "lexical", "--work-dir", str(tmp_path))
    assert r.exit_code == 2
    assert "no_such_set" in r.output


def test_unknown_engine_exits_2(tmp_path):
    r = _eval(str(DATA / "vidore_samples"), "--model", "lexical", "--work-dir", str(tmp_path), "--engine", "nope")
    assert r.exit_code == 2 and "unknown engine 'nope'" in r.output
