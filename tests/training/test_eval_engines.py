"""The same evaluation through the deployable engines: on vectors every engine stores exactly
(integer weights, integer query weights) memory, Lucene (Pyserini's impact index) and
OpenSearch (osmem-server, real HTTP) must give identical runs and identical metrics; with the
tiny V-SPLADE model, memory --quantize 100 must equal Lucene at its default scale 100."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

pytest.importorskip("pytrec_eval")
pytestmark = pytest.mark.slow  # evaluation runs end to end on every engine: make test only

from vsplade.encoded import EncodedDirWriter  # noqa: E402
from vsplade.encoders import load_query_encoder  # noqa: E402
from vsplade.engines import EngineError, get_engine_class  # noqa: E402
from vsplade.sparse import SparseBatch  # noqa: E402
from vsplade_training.cli import app  # noqa: E402
from vsplade_training.eval.loading import load_eval_dataset  # noqa: E402
from vsplade_training.eval.metrics import read_run, trec_order  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
runner = CliRunner()
SETS = [DATA / "vidore_samples", DATA / "vidore_arxivqa_mini"]


def _engine_or_skip(name: str):
    try:
        get_engine_class(name)
    except (EngineError, ImportError) as e:
        pytest.skip(f"the {name} engine is not installed/loadable: {e}")


def _eval(work: Path, *args) -> dict:
    r = runner.invoke(app, ["eval", *map(str, SETS), "--model", "lexical", "--work-dir", str(work), "--offline",
                            "--no-progress", *args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def integer_work_dir(tmp_path_factory) -> Path:
    """Encoded dirs for the two sets holding random integer weights (1..9) over the terms of
    their queries plus noise terms, written where `eval --model lexical` finds and reuses them.
    Lexical query weights are token counts (integers): every engine scores them exactly."""
    work = tmp_path_factory.mktemp("eval_int")
    q = load_query_encoder("lexical")
    rng = np.random.default_rng(42)
    for path in SETS:
        ds = load_eval_dataset(str(path), hub=False)
        qterms = sorted({i for t in ds.queries.values() for i in q.encode_ids(t)})
        rows = []
        for _ in ds.corpus_ids:
            cols = set(rng.choice(qterms, size=len(qterms) // 2, replace=False).tolist())
            cols |= set(rng.integers(1000, 40000, size=50).tolist())
            rows.append({c: float(rng.integers(1, 10)) for c in cols})
        rows[-1] = {}  # an empty page: still ranked (score 0) by every engine
        batch = SparseBatch.from_dicts(rows, ds.corpus_ids)
        with EncodedDirWriter(work / "encoded" / ds.name, {"name": "lexical", "model": "lexical"}) as w:
            w.add(batch)
    return work


def _results(work: Path, label: str) -> tuple[dict, dict]:
    res = work / "results" / label
    metrics = json.loads((res / "metrics.json").read_text())
    runs = {n: read_run(res / "runs" / f"{n}.trec") for n in metrics if not n.startswith("_")}
    return metrics, runs


def _orders(runs: dict) -> dict:
    return {n: {q: [d for d, _ in trec_order(docs)] for q, docs in run.items()} for n, run in runs.items()}


@pytest.fixture(scope="module")
def memory_results(integer_work_dir):
    _eval(integer_work_dir)
    return _results(integer_work_dir, "memory")


def test_memory_reused_the_integer_vectors(memory_results, integer_work_dir):
    metrics, runs = memory_results
    rep = json.loads((integer_work_dir / "results" / "memory" / "report.json").read_text())
    assert all(d["pages_encoded_now"] == 0 for d in rep["datasets"].values())
    assert metrics["vidore_samples"]["passage_avg_nonzero"] > 0
    # scores are integers and positive for most pages: a real ranking, not all ties
    scores = [s for run in runs.values() for docs in run.values() for s in docs.values()]
    assert all(float(s).is_integer() for s in scores) and sum(s > 0 for s in scores) > len(scores) / 2


def test_lucene_gives_identical_runs_and_metrics(memory_results, integer_work_dir):
    _engine_or_skip("lucene")
    _eval(integer_work_dir, "--engine", "lucene")
    metrics, runs = _results(integer_work_dir, "lucene")
    assert metrics == memory_results[0]
    assert _orders(runs) == _orders(memory_results[1])
    assert (integer_work_dir / "indexes" / "lucene" / "vidore_samples").is_dir()
    rep = json.loads((integer_work_dir / "results" / "lucene" / "report.json").read_text())
    assert rep["datasets"]["vidore_samples"]["latency"]["p50_ms"] > 0


def test_opensearch_gives_identical_runs_and_metrics(memory_results, integer_work_dir, osmem_url):
    _engine_or_skip("opensearch")
    _eval(integer_work_dir, "--engine", "opensearch", "--url", osmem_url, "--index-prefix",
          f"vsplade-eval-{integer_work_dir.name.lower()}-", "--engine-option", "progress=false")
    metrics, runs = _results(integer_work_dir, "opensearch")
    assert metrics == memory_results[0]
    assert _orders(runs) == _orders(memory_results[1])


def test_tiny_model_memory_quantized_equals_lucene(tiny_checkpoint, vidore_root, tmp_path):
    _engine_or_skip("lucene")
    base = ["eval", "esg_reports_eng_v2", "--model", str(tiny_checkpoint), "--data-dir", str(vidore_root),
            "--work-dir", str(tmp_path), "--offline", "--no-progress"]
    r = runner.invoke(app, [*base, "--quantize", "100"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "--engine", "lucene", "--engine-option", "scale=100"])
    assert r.exit_code == 0, r.output
    mem, mem_runs = _results(tmp_path, "memory-q100")
    luc, luc_runs = _results(tmp_path, "lucene")
    assert luc == mem
    assert _orders(luc_runs) == _orders(mem_runs)
