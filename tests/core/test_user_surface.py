"""The user's surface on the memory engine: the one-object Collection, page images, filters
inside the engine, TREC runs from topics files, and the CLI polish items (each failed before)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsplade import Collection
from vsplade.engines.memory import ExactScorer
from vsplade.render import SourceError

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    for f in (DATA / "pdfs").glob("*.pdf"):
        shutil.copy(f, d / f.name)
    shutil.copy(DATA / "sample_page.png", d / "scan.png")
    return d


@pytest.fixture(scope="module")
def col(docs, tmp_path_factory) -> Collection:
    c = Collection.create(tmp_path_factory.mktemp("ix") / "ix", model="lexical", engine="memory")
    report = c.index(docs, progress=False)
    assert report.ok and report.summary.indexed == 35
    return c


def vsplade(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsplade", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_collection_text_in_hits_out_and_open_remembers_the_model(col):
    hits = col.search("apt-get install a package", k=3)
    assert hits[0].source == "debian-refcard-en-a4.pdf" and hits[0].score > hits[-1].score > 0
    again = Collection.open(col.engine.index, engine="memory")
    assert again.model == "lexical"
    assert [(h.id, h.score) for h in again.search("apt-get install a package", k=3)] == [(h.id, h.score) for h in hits]
    assert col.info()["pages"] == 35 == len(col)
    assert col.search("   ", k=5) == []  # before: a blank query searched for the lone space token
    with pytest.raises(ValueError):
        col.search("x", k=0)


def test_filters_equal_a_brute_force_filter_over_the_exact_scorer(col):
    from vsplade.encoded import EncodedDir

    batch = EncodedDir(col.engine.index).load()
    scorer = ExactScorer(batch)
    rng = np.random.default_rng(3)
    words = ["interface", "the", "package", "camlidl", "file", "apt", "type", "function", "list", "system"]
    cases = [("camlidl-1.04.doc.pdf", (3, 12)), (["debian-refcard-en-a4.pdf", "scan.png"], (None, None)),
             (None, (20, None)), ("camlidl-1.04.doc.pdf", (None, 2))]
    for source, (lo, hi) in cases:
        for _ in range(5):
            text = " ".join(rng.choice(words, size=3))
            got = [(h.id, round(h.score, 9)) for h in col.search(text, k=5, source=source, pages=(lo, hi))]
            scores = scorer.scores(col.query_encoder.encode(text))
            allowed = {source} if isinstance(source, str) else set(source) if source else None
            want = []
            for r in np.lexsort((np.arange(len(scores)), -scores)):
                m = batch.meta[r]
                if scores[r] <= 0 or (allowed and m["source"] not in allowed):
                    continue
                if (lo and m["page"] < lo) or (hi and m["page"] > hi):
                    continue
                want.append((batch.ids[r], round(float(scores[r]), 9)))
            assert got == want[:5], (text, source, lo, hi)


def test_page_images_for_pdf_pages_and_image_files(col, docs, tmp_path):
    pdf_hit = col.search("apt-get install", k=1)[0]
    im = pdf_hit.image(width=320)
    assert im.mode == "RGB" and im.width == 320 and np.asarray(im).std() > 10  # a real page, not blank
    png = next(r for r in col.engine.read_catalog() if r["source"] == "scan.png")
    from vsplade.render import hit_image

    assert hit_image(png).size == Image.open(docs / "scan.png").size
    out = tmp_path / "p.png"
    p = vsplade("show", f"{pdf_hit.source}:{pdf_hit.page}", "--out", out, "--width", 200, "--engine", "memory",
                "--index", col.engine.index)
    assert p.returncode == 0, p.stderr
    assert Image.open(out).width == 200


def test_moved_or_changed_sources_are_a_clear_error(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(DATA / "pdfs" / "debian-refcard-en-a4.pdf", d / "ref.pdf")
    c = Collection.create(tmp_path / "ix", model="lexical-noidf", engine="memory")
    c.index(d, progress=False)
    hit = c.search("apt-get install", k=1)[0]
    shutil.copy(DATA / "pdfs" / "camlidl-1.04.doc.pdf", d / "ref.pdf")  # same name, other content
    with pytest.raises(SourceError, match="ref.pdf.*changed since it was indexed"):
        hit.image()
    (d / "ref.pdf").unlink()
    with pytest.raises(SourceError, match="ref.pdf.*not found"):
        hit.image()
    p = vsplade("show", hit.id, "--out", tmp_path / "x.png", "--engine", "memory", "--index", tmp_path / "ix")
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr


def test_topics_to_a_trec_run_that_trec_eval_reads(col, tmp_path):
    import pytrec_eval

    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tapt-get install package\nq2\tinterface definition language\nq3\tcamlidl stub\n")
    run = tmp_path / "run.trec"
    p = vsplade("search", "--topics", topics, "--output", run, "--run-tag", "mine", "-k", 5, "--threads", 2,
                "--engine", "memory", "--index", col.engine.index)
    assert p.returncode == 0, p.stderr
    lines = run.read_text().splitlines()
    assert all(len(x.split()) == 6 and x.split()[1] == "Q0" and x.endswith(" mine") for x in lines)
    parsed = pytrec_eval.parse_run(io.StringIO(run.read_text()))
    assert set(parsed) == {"q1", "q2", "q3"}
    for qid, text in [("q1", "apt-get install package"), ("q2", "interface definition language")]:
        want = {h.id: h.score for h in col.search(text, k=5)}
        assert set(parsed[qid]) == set(want)
        assert all(abs(parsed[qid][d] - want[d]) < 1e-5 for d in want)
    qrels = {"q1": {next(iter(parsed["q1"])): 1}}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"})
    assert ev.evaluate({"q1": parsed["q1"]})["q1"]["ndcg_cut_10"] == 1.0
    # JSON lines topics and stdin; tsv output
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"id": "a", "text": "apt-get install"}\n')
    p = vsplade("search", "--topics", jl, "--format", "tsv", "-k", 2, "--engine", "memory", "--index", col.engine.index)
    assert p.returncode == 0 and [x.split("\t")[0::2] for x in p.stdout.splitlines()] == [["a", "1"], ["a", "2"]]


@pytest.mark.parametrize("args, needle", [
    (["search", "x", "-k", "0"], "-k"),
    (["search", "--bogus-flag"], "No such option"),
    (["search"], "give one or more query texts"),
    (["search", "q", "--format", "xml"], "--format must be one of"),
    (["nope"], "No such command"),
])
def test_usage_errors_are_one_line_exit_2(col, args, needle):
    p = vsplade(*args, "--engine", "memory", "--index", col.engine.index) if args[0] != "nope" else vsplade(*args)
    assert p.returncode == 2, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], p.stderr


def test_verbose_after_the_subcommand_and_help_keeps_defaults(col):
    p = vsplade("search", "apt", "-k", 1, "--engine", "memory", "--index", col.engine.index, "-v")
    assert p.returncode == 0, p.stderr
    h = vsplade("index", "--help").stdout
    assert "a new index: 10000" in h  # before: '[default: ...]' in the help was eaten as markup


def test_bundle_is_shareable_and_agrees_with_the_engine_default(tmp_path):
    p = vsplade("bundle", "lexical", "--out", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "b" / "query_table.safetensors").stat().st_mode & 0o777 == 0o644  # before: 0600
    cfg = json.loads((tmp_path / "b" / "vsplade.json").read_text())
    assert cfg["quantization"]["lucene_scale"] == 10000  # before: 100, while new indexes use 10000


def test_image_only_pages_are_said_once_with_count_and_hint(tmp_path):
    d = tmp_path / "scans"
    d.mkdir()
    for i in range(4):
        shutil.copy(DATA / "sample_page.png", d / f"scan{i}.png")
    p = vsplade("encode", d, "--model", "lexical-noidf", "--out", tmp_path / "enc")
    assert p.returncode == 0, p.stderr
    warn = [x for x in p.stderr.splitlines() if "no text layer" in x]
    assert len(warn) == 1 and "4 page(s)" in warn[0] and "V-SPLADE" in warn[0], p.stderr
    assert "encoding" in p.stderr and "encoded 4 pages" in p.stderr  # before: encode said 'indexing' / 'indexed'
