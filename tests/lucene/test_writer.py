"""Writer behaviour: resume after a crash, info mismatch, recreate, bad vectors, real pages + CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.sparse import SparseBatch
from vsplade_lucene import LuceneEngine

from lucene_support import INFO, QuantizedReference, assert_same_hits, random_queries


def test_resume_after_crash_equals_one_pass(tmp_path, corpus, vocab):
    path = tmp_path / "idx"
    eng = LuceneEngine(str(path), scale=100)
    w = eng.writer(INFO)
    w.add(corpus.select(range(0, 120)))
    w.commit()
    w.add(corpus.select(range(120, 200)))  # never committed: lost in the "crash"
    w.abort()
    w2 = eng.writer(INFO)
    assert w2.done_ids() == set(corpus.ids[:120])
    w2.add(corpus)  # the pipeline may hand over everything again: done pages are skipped
    s = w2.close()
    assert (s.indexed, s.skipped) == (len(corpus) - 120, 120)
    ref = QuantizedReference(corpus)
    with eng.searcher() as searcher:
        assert searcher.num_docs == len(corpus)
        for q in random_queries(corpus, vocab, n=10, seed=9):
            assert_same_hits(searcher.search(q, 10), ref.search(q, 10))


def test_other_info_is_refused_unless_recreate(tmp_path, corpus):
    path = tmp_path / "idx"
    with LuceneEngine(str(path)).writer(INFO) as w:
        w.add(corpus.select(range(10)))
    with pytest.raises(IndexMismatchError, match="encoder"):
        LuceneEngine(str(path)).writer({"name": "other"})
    with pytest.raises(IndexMismatchError, match="scale"):
        LuceneEngine(str(path), scale=50).writer(INFO)
    with LuceneEngine(str(path)).writer({"name": "other"}, recreate=True) as w:
        assert w.done_ids() == set()
        w.add(corpus.select(range(3)))
    with LuceneEngine(str(path)).searcher() as s:
        assert s.num_docs == 3 and s.index_info() == {"name": "other"}


def test_refuses_foreign_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexMismatchError, match="not a vsplade Lucene index"):
        LuceneEngine(str(tmp_path)).writer(INFO, recreate=True)
    assert (tmp_path / "notes.txt").exists()
    with pytest.raises(EngineError, match="no Lucene index"):
        LuceneEngine(str(tmp_path / "missing")).searcher()


def test_bad_vector_fails_alone(tmp_path):
    batch = SparseBatch.from_dicts([{1: 0.5}, {2: float("nan")}, {3: 0.7}], ["ok1", "bad", "ok2"])
    with LuceneEngine(str(tmp_path / "i")).writer(INFO) as w:
        w.add(batch)
    s = w.close()
    assert s.indexed == 2 and s.failures == [("bad", "page bad: weight is NaN")]


def test_lexical_pages_equal_exact(tmp_path, pdf_dir):
    """Real pages: the lexical encoder on the test PDFs, indexed through the CLI (default engine)."""
    from vsplade.cli import app
    from vsplade.encoded import EncodedDir
    from vsplade.encoders import load_query_encoder

    runner = CliRunner()
    enc_dir, idx = tmp_path / "enc", tmp_path / "idx"
    r = runner.invoke(app, ["encode", str(pdf_dir), "--model", "lexical", "--out", str(enc_dir)])
    assert r.exit_code in (0, 1), r.output
    r = runner.invoke(app, ["index", str(enc_dir), "--engine", "lucene", "--index", str(idx), "--json"])
    assert r.exit_code == 0, r.output
    batch = EncodedDir(enc_dir).load()
    assert json.loads(r.stdout.strip().splitlines()[-1])["indexed"] == len(batch)

    with LuceneEngine(str(idx)).searcher() as s:
        assert s.scale == 10000  # the direct build's default
    ref = QuantizedReference(batch, scale=10000)
    qenc = load_query_encoder("lexical")
    texts = ["install a package with apt", "stub code generation for COM interfaces", "reference card",
             "the", "camlidl", "interface definition language"]
    with LuceneEngine(str(idx)).searcher() as s:
        for t in texts:
            q = qenc.encode(t)
            want = ref.search(q, 10)
            assert want, t
            assert_same_hits(s.search(q, 10), want)

    r = runner.invoke(app, ["search", texts[1], "--engine", "lucene", "--index", str(idx), "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    want = ref.search(qenc.encode(texts[1]), 3)
    assert [h["id"] for h in out["hits"]] == [h.id for h in want]
    assert out["hits"][0]["source"] and out["hits"][0]["page"] >= 1


def test_cli_index_pdfs_default_engine_and_resume(tmp_path, pdf_dir):
    from vsplade.cli import app
    from vsplade.engines import default_engine_name

    assert default_engine_name() == "lucene"
    runner = CliRunner()
    idx = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(idx), "--json"])
    assert r.exit_code in (0, 1), r.output
    first = json.loads(r.stdout.strip().splitlines()[-1])
    assert first["indexed"] > 0
    r = runner.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--index", str(idx), "--json"])
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["indexed"] == 0 and again["skipped"] == first["indexed"]
    r = runner.invoke(app, ["search", "apt-get install", "--index", str(idx), "-k", "2", "--explain"])
    assert r.exit_code == 0 and "matched:" in r.output, r.output


def test_cli_index_scale_is_kept_and_searched_with(tmp_path, pdf_dir):
    """--scale 1000: the index keeps it, and search quantizes queries with it (not the default 100)."""
    from vsplade.cli import app
    from vsplade.encoded import EncodedDir
    from vsplade.encoders import load_query_encoder

    runner = CliRunner()
    enc_dir, idx = tmp_path / "enc", tmp_path / "idx"
    runner.invoke(app, ["encode", str(pdf_dir), "--model", "lexical", "--out", str(enc_dir)])
    r = runner.invoke(app, ["index", str(enc_dir), "--index", str(idx), "--scale", "1000", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads((idx / "vsplade-lucene.json").read_text())["scale"] == 1000
    ref = QuantizedReference(EncodedDir(enc_dir).load(), scale=1000)
    text = "stub code generation for COM interfaces"
    r = runner.invoke(app, ["search", text, "--index", str(idx), "-k", "5", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout.strip().splitlines()[-1])["hits"]
    want = ref.search(load_query_encoder("lexical").encode(text), 5)
    assert [h["id"] for h in hits] == [h.id for h in want]
    assert hits[0]["score"] == pytest.approx(want[0].score, rel=1e-6)


def test_cli_export_jsonvector(tmp_path, pdf_dir):
    from vsplade.cli import app

    runner = CliRunner()
    enc_dir = tmp_path / "enc"
    runner.invoke(app, ["encode", str(pdf_dir), "--model", "lexical", "--out", str(enc_dir)])
    r = runner.invoke(app, ["export", str(enc_dir), "--to", "jsonvector", "--out", str(tmp_path / "jv"), "--scale", "50"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["scale"] == 50 and res["docs"] > 0 and len(res["files"]) >= 2


def test_default_scale_per_build_and_kept_on_append(tmp_path, corpus):
    direct, jv = tmp_path / "direct", tmp_path / "jv"
    with LuceneEngine(str(direct)).writer(INFO) as w:
        w.add(corpus.select(range(5)))
    with LuceneEngine(str(jv), build="jsonvector").writer(INFO) as w:
        w.add(corpus.select(range(5)))
    assert json.loads((direct / "vsplade-lucene.json").read_text())["scale"] == 10000
    assert json.loads((jv / "vsplade-lucene.json").read_text())["scale"] == 100
    # appending without --scale keeps the index's scale (no mismatch error)...
    at100 = tmp_path / "at100"
    with LuceneEngine(str(at100), scale=100).writer(INFO) as w:
        w.add(corpus.select(range(5)))
    with LuceneEngine(str(at100)).writer(INFO) as w:
        w.add(corpus.select(range(5, 8)))
    with LuceneEngine(str(at100)).searcher() as s:
        assert s.num_docs == 8 and s.scale == 100
    # ...while --recreate without --scale starts over at the build's default
    with LuceneEngine(str(at100)).writer(INFO, recreate=True) as w:
        w.add(corpus.select(range(2)))
    assert json.loads((at100 / "vsplade-lucene.json").read_text())["scale"] == 10000


def test_page_whose_impacts_overflow_lucene_fails_alone(tmp_path):
    # 600 terms of weight 400 at scale 10000: 2.4e9 > 2**31 - 1 summed term frequencies
    huge = {i: 400.0 for i in range(1000, 1600)}
    batch = SparseBatch.from_dicts([{1: 0.5}, huge, {3: 2.0}], ["ok1", "huge", "ok2"])
    with LuceneEngine(str(tmp_path / "i")).writer(INFO) as w:
        w.add(batch)
    s = w.close()
    assert s.indexed == 2 and [f[0] for f in s.failures] == ["huge"]
    assert "smaller --scale" in s.failures[0][1] and "scale 10000" in s.failures[0][1]
