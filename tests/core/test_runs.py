"""Run files people can use as they are (vsplade.runs): FILE:PAGE page ids that hand-written
qrels match, scores written as Pyserini writes them (6 decimals) without letting the rounding
reorder what trec_eval reads."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from vsplade.engines.base import Hit
from vsplade.runs import docid_of, file_page, parse_file_page, score_texts, write_run

pytrec_eval = pytest.importorskip("pytrec_eval")


def _trec_order(scores: dict[str, float]) -> list[str]:
    """trec_eval's order: score desc, then doc id desc."""
    return [d for d, _ in sorted(sorted(scores.items(), key=lambda kv: kv[0].encode(), reverse=True),
                                 key=lambda kv: -kv[1])]


def test_scores_are_written_as_pyserini_writes_them():
    scores = [21.385299200000002, 10.712500480000001, 3.25, 0.5000004]
    assert score_texts(scores) == [f"{s:.6f}" for s in scores] == ["21.385299", "10.712500", "3.250000", "0.500000"]


def test_a_near_tie_gets_the_digits_that_keep_it_apart_and_only_it():
    scores = [5.5, 1.0000001192092896, 1.0, 0.25, 3e-7, 1e-25, 0.0]
    texts = score_texts(scores)
    assert texts[0] == "5.500000" and texts[3] == "0.250000"  # untouched
    assert texts[1:3] == ["1.0000001", "1.0000000"]
    assert float(texts[4]) == pytest.approx(3e-7) and float(texts[5]) > float(texts[6]) == 0.0
    assert [float(t) for t in texts] == sorted((float(t) for t in texts), reverse=True)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.floats(0, 1e4, allow_nan=False), st.sampled_from([1.0, 1.0000001, 1.0000002, 0.9999999])),
                min_size=1, max_size=40))
def test_rounded_scores_keep_every_order_and_every_tie(scores):
    back = [float(t) for t in score_texts(scores)]
    for i, a in enumerate(scores):
        for j, b in enumerate(scores):
            assert (a < b) == (back[i] < back[j]) and (a == b) == (back[i] == back[j]), (a, b, back[i], back[j])
        assert abs(back[i] - a) <= 5e-7 * (1 + 1e-9)


def test_a_near_tie_ranks_in_trec_eval_as_the_engine_ranked_it():
    """6 decimals alone would read 1.0000001 and 1.0 as equal, and trec_eval would put
    'b-page' (larger id) first: P@1 would count the wrong page."""
    hits = [Hit("a-page", 1.0000001192092896), Hit("b-page", 1.0), Hit("c-page", 0.5)]
    out = io.StringIO()
    write_run(out, "trec", [("q1", "text")], [hits], "tag")
    assert out.getvalue().splitlines()[2] == "q1 Q0 c-page 3 0.500000 tag"
    parsed = pytrec_eval.parse_run(io.StringIO(out.getvalue()))["q1"]
    assert _trec_order(parsed) == ["a-page", "b-page", "c-page"]
    assert pytrec_eval.RelevanceEvaluator({"q1": {"a-page": 1}}, {"P_1"}).evaluate({"q1": parsed})["q1"]["P_1"] == 1.0


@pytest.mark.parametrize("name", ["plain.pdf", "my notes.pdf", "v2: draft.pdf", "100%\tdone.pdf", "a:7.pdf"])
def test_file_page_ids_are_one_token_and_read_back(name):
    docid = file_page(f"sub dir/{name}", 12)
    assert not any(c.isspace() for c in docid) and docid.endswith(":12")
    assert parse_file_page(docid) == (f"sub dir/{name}", 12)
    with pytest.raises(ValueError, match="FILE:PAGE"):
        parse_file_page("no-page-number")


def test_file_page_needs_a_file_name():
    with pytest.raises(ValueError, match="--docid file-page cannot name it"):
        docid_of(Hit("corpus-17", 1.0), "file-page")
    out = io.StringIO()
    with pytest.raises(ValueError, match="page corpus-17 has no file name"):
        write_run(out, "trec", [("q", "t")] * 2, [[Hit("a", 2.0, "a.pdf", 1)], [Hit("corpus-17", 1.0)]], docid="file-page")
    assert out.getvalue() == ""  # nothing half-written
    with pytest.raises(ValueError, match="--docid must be"):
        write_run(io.StringIO(), "trec", [("q", "t")], [[Hit("x", 1.0)]], docid="path")


@pytest.fixture(scope="module")
def collection(tmp_path_factory, pdf_dir):
    """A memory index of the test PDFs, one of them under a name with a space and a ':'."""
    from vsplade.collection import Collection

    root = tmp_path_factory.mktemp("runs")
    docs = root / "docs"
    (docs / "ref cards").mkdir(parents=True)
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", docs / "ref cards" / "debian: refcard.pdf")
    shutil.copy(pdf_dir / "camlidl-1.04.doc.pdf", docs / "camlidl.pdf")
    col = Collection.create(root / "index", model="lexical", engine="memory")
    col.index(docs, progress=False)
    with col:
        yield col


TOPICS = [("q1", "debian package management"), ("q2", "camlidl interface definition"), ("q3", "install")]


@pytest.mark.timeout(300)
def test_file_page_run_evaluates_against_hand_written_qrels_as_the_internal_run_does(collection):
    """qrels written by hand with FILE:PAGE ids give, on the file-page run, exactly the
    measures the same judgments give on the internal-id run (mapped through the catalog)."""
    results = collection.search_many([t for _, t in TOPICS], 20)
    by_id = {r["id"]: r for r in collection.catalog()}
    # graded judgments as a person writes them, by file name and page (some judged pages the
    # engine ranks low or misses: measures strictly between 0 and 1)
    qrels_fp = {"q1": {"ref%20cards/debian:%20refcard.pdf:1": 1, "ref%20cards/debian:%20refcard.pdf:2": 2},
                "q2": {"camlidl.pdf:17": 1, "camlidl.pdf:1": 2, "camlidl.pdf:9": 1},
                "q3": {"ref%20cards/debian:%20refcard.pdf:2": 1, "camlidl.pdf:2": 1}}
    name_to_id = {file_page(r["source"], r["page"]): i for i, r in by_id.items()}
    assert set(d for q in qrels_fp.values() for d in q) <= set(name_to_id)  # the names people see
    qrels_int = {q: {name_to_id[d]: rel for d, rel in docs.items()} for q, docs in qrels_fp.items()}

    runs = {}
    for docid in ("internal", "file-page"):
        out = io.StringIO()
        write_run(out, "trec", TOPICS, results, "t", docid=docid)
        runs[docid] = pytrec_eval.parse_run(io.StringIO(out.getvalue()))
    assert set(runs["file-page"]["q1"]) <= set(name_to_id)
    measures = {"ndcg_cut_10", "map", "recall_20", "P_5"}
    fp = pytrec_eval.RelevanceEvaluator(qrels_fp, measures).evaluate(runs["file-page"])
    internal = pytrec_eval.RelevanceEvaluator(qrels_int, measures).evaluate(runs["internal"])
    assert fp == internal
    assert all(0 < fp[q]["ndcg_cut_10"] < 1 for q in qrels_fp), fp  # rankings that can be wrong
    # a file-page id leads back to its page: parse it, look it up by SOURCE:PAGE
    for q, docs in runs["file-page"].items():
        for d in docs:
            source, page = parse_file_page(d)
            assert collection.page(f"{source}:{page}")["id"] == name_to_id[d]


def test_json_run_carries_file_page_ids_and_rounded_numbers(collection):
    results = collection.search_many(["debian package management"], 5, explain=True)
    out = io.StringIO()
    write_run(out, "json", [("q1", "debian package management")], results, docid="file-page")
    row = json.loads(out.getvalue())
    hits = row["hits"]
    assert [h["page_id"] for h in hits] == [h.id for h in results[0]]
    assert [h["id"] for h in hits] == [file_page(h.source, h.page) for h in results[0]]
    assert hits[0]["id"].startswith("ref%20cards/debian:%20refcard.pdf:")
    assert [h["score"] for h in hits] == [float(t) for t in score_texts([h.score for h in results[0]])]
    numbers = [v for h in hits for v in [h["score"], *h["explain"].values()]]
    assert all(len(repr(v).split(".")[-1]) <= 7 for v in numbers), numbers  # no 21.385299200000002
    grouped = collection.search_many(["debian package management"], 3, group_by="file", pages_per_file=2)
    out = io.StringIO()
    write_run(out, "json", [("q1", "x")], grouped, docid="file-page")
    files = json.loads(out.getvalue())["files"]
    assert files and all(h["id"].split(":")[-1].isdigit() for f in files for h in f["hits"])
    assert [f["score"] for f in files] == [float(t) for t in score_texts([f.score for f in grouped[0]])]


def test_cli_search_writes_file_page_runs_and_refuses_unknown_docids(collection, tmp_path):
    """`vsplade search --topics ... --docid file-page` writes the ids hand-written qrels use
    (the same run as write_run's), and a wrong --docid is one line, exit 2, no file left."""
    from typer.testing import CliRunner

    from vsplade.cli import app

    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"{q}\t{t}\n" for q, t in TOPICS))
    index = str(collection.engine.index)
    out = tmp_path / "run.trec"
    r = CliRunner().invoke(app, ["search", "--engine", "memory", "--index", index, "--topics", str(topics),
                                 "--docid", "file-page", "-o", str(out), "-k", "20"])
    assert r.exit_code == 0, r.output
    expected = io.StringIO()
    write_run(expected, "trec", TOPICS, collection.search_many([t for _, t in TOPICS], 20), "vsplade",
              docid="file-page")
    assert out.read_text() == expected.getvalue()
    assert any(line.split()[2].startswith("ref%20cards/debian:%20refcard.pdf:") for line in out.read_text().splitlines())

    bad = tmp_path / "bad.trec"
    r = CliRunner().invoke(app, ["search", "--engine", "memory", "--index", index, "--topics", str(topics),
                                 "--docid", "path", "-o", str(bad)])
    assert r.exit_code == 2 and "--docid must be one of internal, file-page" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not bad.exists()
