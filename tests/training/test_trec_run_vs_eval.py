"""A TREC run from `vsplade search INDEX --topics FILE --output run.trec --format trec --run-tag TAG`
read by trec_eval (pytrec_eval), compared with the run `vsplade-train eval` writes on the SAME index.

The set: the text of the test PDFs' pages as a BEIR-layout corpus (`--text-column text`, the
`lexical` model), topics written from that text, graded qrels from the words each page holds.
`vsplade-train eval` builds its index (WORK/indexes/lucene/<set>; for memory, the encoded dir
WORK/encoded/<set> is the index) and writes WORK/results/<engine>/runs/<set>.trec; then
`vsplade search` runs the same topics on that index. What is compared, per engine:
- eval ranks EVERY page (official ViDoRe protocol: pages the engine did not return get 0.0);
  `vsplade search -k N` returns the matching pages only. Eval's run without its 0.0 filler
  lines must hold exactly the same (query, page) pairs as the search run, with the same scores
  to the last bit (both write the shortest repr of the float) and, in the order trec_eval reads
  them (score desc, then page id desc), the same ranking (the rank column of the search run is
  the engine's order, ties by index order; trec_eval ignores it);
- every trec_eval measure eval reports (nDCG/MAP/recall/P at 1..100, per query) is equal on
  the search run and on eval's run less its filler; and the search run filled the way eval
  fills it (every unreturned page at 0.0) gives eval's metrics.json exactly. Unfilled, the
  measures differ where a judged page scores 0.0 (this set has such pages): that is the
  protocol (eval ranks all pages, a search returns the matching ones), not a scoring gap.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytrec_eval = pytest.importorskip("pytrec_eval")

from vsplade.engines import EngineError, get_engine_class  # noqa: E402
from vsplade.pages import PageReader  # noqa: E402
from vsplade_training.cli import app  # noqa: E402
from vsplade_training.eval.metrics import CUTOFFS, MEASURES, read_run, retrieval_metrics, trec_order  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
NAME = "pdftext"
TOPICS = {
    "q1": "apt-get install", "q2": "interface definition", "q3": "camlidl stub code", "q4": "debian reference card",
    "q5": "remove a package", "q6": "pointer type attribute", "q7": "COM interface", "q8": "search for packages",
    "q9": "zebra xylophone",  # matches no page: eval ranks every page at 0.0, search returns nothing
    "q10": "the file",
}
STOP = {"a", "for", "the"}
runner = CliRunner()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9-]+", text.lower()))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """WORK/pdftext: the BEIR-layout set; WORK/topics.tsv: the same queries as a topics file."""
    import datasets

    root = tmp_path_factory.mktemp("trec")
    pages = list(PageReader([str(p) for p in sorted((DATA / "pdfs").glob("*.pdf"))], render=False))
    ids = [f"{Path(p.source).stem}-p{p.page_no}" for p in pages]
    # graded qrels: 2 for a page holding every query word and for the page before it (where
    # its section starts: no query word needed), 1 for a page holding some of them
    qrels = {}
    for qid, text in TOPICS.items():
        want = _words(text) - STOP
        for n, (cid, p) in enumerate(zip(ids, pages)):
            have = _words(p.text)
            if want <= have:
                qrels[qid, cid] = 2
                if n and pages[n - 1].source == p.source:
                    qrels[qid, ids[n - 1]] = 2
            elif want & have:
                qrels.setdefault((qid, cid), 1)
    qrels = [(q, c, s) for (q, c), s in qrels.items()]
    ds = root / NAME
    # lexical reads only the text column: the image paths are never opened
    datasets.Dataset.from_dict({"corpus-id": ids, "image_path": ["unused.png"] * len(ids),
                                "text": [p.text for p in pages]}).save_to_disk(str(ds / "corpus"))
    datasets.Dataset.from_dict({"query-id": list(TOPICS), "query": list(TOPICS.values())}).save_to_disk(str(ds / "queries"))
    datasets.Dataset.from_dict({"query-id": [q for q, _, _ in qrels], "corpus-id": [c for _, c, _ in qrels],
                                "score": [s for _, _, s in qrels]}).save_to_disk(str(ds / "qrels"))
    (root / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in TOPICS.items()))
    return root


def _qrels(work: Path) -> dict:
    """The qrels file eval wrote next to its run (trec_eval's `qid 0 docid rel`)."""
    rels: dict[str, dict[str, int]] = {}
    for line in next((work / "w").glob(f"results/*/qrels/{NAME}.qrels")).read_text().splitlines():
        q, _, d, s = line.split()
        rels.setdefault(q, {})[d] = int(s)
    return rels


def _per_query(qrels: dict, run: dict) -> dict:
    cut = ",".join(map(str, CUTOFFS))
    return pytrec_eval.RelevanceEvaluator(qrels, {f"{m}.{cut}" for m in MEASURES}).evaluate(run)


@pytest.mark.parametrize("engine", ["memory", "lucene"])
def test_search_topics_run_equals_the_eval_run_on_the_same_index(work, engine, tmp_path):
    try:
        get_engine_class(engine)
    except (EngineError, ImportError) as e:
        pytest.skip(f"the {engine} engine is not installed: {e}")
    w = work / "w"
    r = runner.invoke(app, ["eval", str(work / NAME), "--model", "lexical", "--text-column", "text", "--engine", engine,
                            "--work-dir", str(w), "--offline", "--no-progress"])
    assert r.exit_code == 0, r.output
    res = w / "results" / engine
    eval_run = read_run(res / "runs" / f"{NAME}.trec")
    metrics = json.loads((res / "metrics.json").read_text())[NAME]
    index = w / "encoded" / NAME if engine == "memory" else w / "indexes" / engine / NAME
    assert index.is_dir()
    n_pages = len(next(iter(eval_run.values())))

    out = tmp_path / "run.trec"
    p = subprocess.run([sys.executable, "-m", "vsplade", "search", "--index", str(index), "--engine", engine,
                        "--topics", str(work / "topics.tsv"), "--output", str(out), "--format", "trec",
                        "--run-tag", "my-tag", "-k", str(n_pages)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    lines = [x.split() for x in text.splitlines()]
    assert lines and all(len(x) == 6 and x[1] == "Q0" and x[5] == "my-tag" for x in lines)
    for qid in TOPICS:  # ranks 1..n in file order, scores non-increasing
        mine = [x for x in lines if x[0] == qid]
        assert [int(x[3]) for x in mine] == list(range(1, len(mine) + 1))
        assert [float(x[4]) for x in mine] == sorted((float(x[4]) for x in mine), reverse=True)
    run = pytrec_eval.parse_run(io.StringIO(text))  # trec_eval's reader takes it

    # the same pages with the same scores: eval's run less its 0.0 filler
    matched = {q: {d: s for d, s in docs.items() if s > 0} for q, docs in eval_run.items()}
    assert {q: set(d) for q, d in run.items()} == {q: set(d) for q, d in matched.items() if d}
    assert "q9" not in run and set(eval_run["q9"].values()) == {0.0}
    assert sum(len(d) for d in run.values()) > 5 * len(TOPICS)  # real rankings
    for q, docs in run.items():
        for d, s in docs.items():
            assert abs(s - matched[q][d]) <= 5e-7, (q, d, s, matched[q][d])  # Pyserini's 6 decimals
        # the ranking trec_eval reads (score desc, then page id desc) is the same
        assert [d for d, _ in trec_order(docs)] == [d for d, _ in trec_order(matched[q])], q

    # trec_eval measures (every one eval reports, per query): equal on the search run and on
    # eval's run less its filler; and the search run filled the way eval fills it (every page
    # it did not return at 0.0) gives eval's metrics.json exactly
    qrels = _qrels(work)
    assert len(qrels) >= 8 and any(v == 1 for d in qrels.values() for v in d.values())
    mine = _per_query(qrels, run)
    theirs = _per_query(qrels, {q: d for q, d in matched.items() if d})
    assert set(mine) == set(theirs) == set(qrels) - {q for q in qrels if not matched[q]}
    assert mine == theirs
    filled = {q: {**dict.fromkeys(eval_run[q], 0.0), **run.get(q, {})} for q in eval_run}
    from_search = retrieval_metrics(qrels, filled)
    assert from_search == {k: metrics[k] for k in from_search}
    assert 0 < metrics["ndcg_at_10"] < 1  # graded qrels: a ranking that can be wrong
    # the fill matters on this set: a judged page no query term reaches ranks among eval's
    # 0.0 pages (by page id), so eval's numbers on the unfilled run would differ
    assert any(rel > 0 and matched[q].get(d, 0.0) == 0.0 for q, docs in qrels.items() for d, rel in docs.items())
    assert retrieval_metrics(qrels, run) != from_search


def test_trec_scores_keep_the_order_trec_eval_reads():
    """trec_eval re-sorts by the score it reads (then page id desc): scores written with 6
    decimals only (Pyserini's way) turn near-ties into ties and reorder them (1.0000001 and 1.0
    both read 1.000000 and page 'b' overtakes 'a'); a near-tie gets the decimals it needs."""
    from vsplade.engines.base import Hit
    from vsplade.runs import write_run
    from vsplade_training.eval.metrics import run_lines

    hits = [Hit("a-page", 1.0000001192092896), Hit("b-page", 1.0), Hit("c-page", 10.712500480000001),
            Hit("d-page", 3e-7)]
    hits.sort(key=lambda h: -h.score)
    out = io.StringIO()
    write_run(out, "trec", [("q1", "text")], [hits], "tag")
    parsed = pytrec_eval.parse_run(io.StringIO(out.getvalue()))["q1"]
    assert all(abs(parsed[h.id] - h.score) <= 5e-7 for h in hits) and len(parsed) == len(hits)
    assert "10.712500 " in out.getvalue()  # Pyserini's 6 decimals where no near-tie needs more
    assert [d for d, _ in trec_order(parsed)] == [h.id for h in hits]
    # the same lines as the run `vsplade-train eval` writes for these scores (its tag aside)
    eval_lines = run_lines({"q1": {h.id: h.score for h in hits}}, "tag")
    assert out.getvalue().splitlines() == eval_lines
    # and the measure: 'a' (relevant) is 2nd as ranked, so P@2 = 0.5 (before: 'b' was 2nd, 0.0)
    assert pytrec_eval.RelevanceEvaluator({"q1": {"a-page": 1}}, {"P_2"}).evaluate({"q1": parsed})["q1"]["P_2"] == 0.5
