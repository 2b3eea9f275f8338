"""Hybrid search on the memory engine: fusion against pyserini.fusion, BM25 against the formula,
--text-field through Python and the CLI, and its errors."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections import Counter

import numpy as np
import pytest
from hybrid_support import MODES, check_against_pyserini, pyserini_fused, random_queries, synthetic
from typer.testing import CliRunner

from vsplade import Collection
from vsplade.bm25 import LENGTH_TABLE, norm_byte, tokenize
from vsplade.cli import app
from vsplade.engines import EngineError
from vsplade.engines.base import Hit
from vsplade.engines.memory import ExactScorer
from vsplade.fusion import Fusion, fuse

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_fuse_equals_pyserini_on_random_runs_with_ties_and_depth():
    rng = random.Random(3)
    checked = 0
    for trial in range(40):
        ids = [f"d{i:03d}" for i in range(rng.randint(5, 80))]
        vec = sorted((Hit(i, float(rng.randint(1, 6))) for i in rng.sample(ids, rng.randint(1, len(ids)))),
                     key=lambda h: -h.score)
        txt = sorted((Hit(i, rng.random() * 10) for i in rng.sample(ids, rng.randint(1, len(ids)))),
                     key=lambda h: -h.score)
        depth, k = rng.randint(1, 40), rng.randint(1, 30)
        for mode in MODES:
            got = fuse(vec, txt, mode, k, depth)
            want = pyserini_fused(vec[:depth], txt[:depth], mode, k)
            assert [h.id for h in got] == [i for i, _ in want], (trial, mode)
            assert np.allclose([h.score for h in got], [s for _, s in want], rtol=0, atol=1e-12)
            checked += len(got)
    assert checked > 500


def test_fusion_spec_forms():
    assert Fusion.of("rrf") == Fusion("rrf") and str(Fusion.of("RRF")) == "rrf"
    assert Fusion.of("minmax:0.6").weight == 0.6 and str(Fusion.of("minmax:0.6")) == "minmax:0.6"
    assert Fusion.of("rrf:10").rrf_k == 10
    for bad in ("", "max", "minmax:1.5", "minmax:x", "rrf:-1", None, 3):
        with pytest.raises(ValueError, match="minmax:W"):
            Fusion.of(bad)


def test_tokenize_follows_standard_analyzer_rules():
    assert tokenize("The Quick-Brown fox's e-mail: U.S.A. 3.14 1,000 a,b x:y foo_bar") == [
        "the", "quick", "brown", "fox's", "e", "mail", "u.s.a", "3.14", "1,000", "a", "b", "x:y", "foo_bar"]
    assert tokenize("中文字") == ["中", "文", "字"]
    assert tokenize("x" * 300) == ["x" * 255, "x" * 45]


def test_memory_bm25_is_the_formula_with_lucenes_one_byte_lengths():
    batch = synthetic(300, seed=1)
    scorer = ExactScorer(batch)
    docs = [Counter(tokenize(m["text"])) for m in batch.meta]
    n = sum(1 for d in docs if d)
    avgdl = sum(sum(d.values()) for d in docs) / n
    for length in (0, 1, 39, 40, 41, 150, 900):  # exact up to 39 words, then 4 significant bits
        decoded = LENGTH_TABLE[norm_byte(length)]
        assert decoded == length if length < 40 else 0.9 * length <= decoded <= length
    checked = 0
    for q in ["alpha", "sigma rho", "rho rho beta", "kappa nothing"]:
        qc = Counter(tokenize(q))
        want = np.zeros(len(docs))
        for r, d in enumerate(docs):
            dl = float(LENGTH_TABLE[norm_byte(sum(d.values()))]) if d else 0.0
            for w, c in qc.items():
                if d.get(w):
                    df = sum(1 for x in docs if w in x)
                    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                    want[r] += c * idf * d[w] / (d[w] + 0.9 * (1 - 0.4 + 0.4 * dl / avgdl))
        got = scorer.text_index.scores(q)
        assert np.allclose(got, want, rtol=2e-6, atol=0), q
        assert (got > 0).sum() > 10
        checked += 1
    assert checked == 4


def test_hybrid_on_a_synthetic_memory_index_equals_pyserini(tmp_path):
    col = Collection.create(tmp_path / "ix", model="lexical", engine="memory", text_field=True)
    batch = synthetic(400, seed=2)
    with col.engine.writer({"model": "lexical"}) as w:
        w.set_properties({"text_field": True})
        w.add(batch)
    with col._searcher() as s:
        for q in ["alpha beta", "sigma", "rho theta iota"]:
            qv = {col.query_encoder.vocab.term(t): 1.0 for t in (1003, 1050, 1099)}
            for mode in MODES:
                # a depth under k is raised to k (vsplade.fusion.depth_for)
                assert s.search_hybrid(qv, q, 10, mode, 5) == s.search_hybrid(qv, q, 10, mode, 10)
                for depth in (10, 50, 400):
                    got = s.search_hybrid(qv, q, 10, mode, depth)
                    want = pyserini_fused(s.search(qv, depth), s.search_text(q, depth), mode, 10)
                    assert [h.id for h in got] == [i for i, _ in want]
                    assert np.allclose([h.score for h in got], [x for _, x in want], rtol=1e-12)
    # catalog rows and page lookups leave the text out
    assert all("text" not in r for r in col.catalog())


@pytest.fixture(scope="module")
def text_ix(tmp_path_factory, pdf_dir):
    ix = tmp_path_factory.mktemp("hybrid") / "ix"
    r = run("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", ix, "--text-field")
    assert r.exit_code == 0, r.output
    return ix


def test_pdfs_through_collection_equal_pyserini(text_ix):
    col = Collection.open(text_ix, engine="memory")
    assert col.properties()["text_field"] is True and col.info()["text_field"] is True
    n = sum(check_against_pyserini(col, t, 10, m) for t in random_queries(6, seed=1) for m in MODES)
    assert n > 60


def test_cli_search_hybrid_json_equals_python(text_ix):
    r = run("search", "install a package", "--engine", "memory", "--index", text_ix, "--hybrid", "minmax:0.6",
            "-k", "5", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output.strip().splitlines()[-1])["hits"]
    want = Collection.open(text_ix, engine="memory").search("install a package", k=5, hybrid="minmax:0.6")
    assert [h["id"] for h in got] == [h.id for h in want] and len(want) == 5
    assert all(abs(h["score"] - w.score) < 1e-5 for h, w in zip(got, want))
    assert got[0]["hybrid"]["vector_rank"] is not None
    text = run("search", "install a package", "--engine", "memory", "--index", text_ix, "--hybrid", "rrf", "-k", "3")
    assert text.exit_code == 0 and "(vector #" in text.output and "text #" in text.output
    bad = run("search", "x", "--engine", "memory", "--index", text_ix, "--hybrid", "max")
    assert bad.exit_code == 2 and "minmax:W" in bad.output
    assert run("search", "x", "--engine", "memory", "--index", text_ix, "--depth", "5").exit_code == 2


def test_an_index_without_the_text_field_says_to_rebuild(tmp_path, pdf_dir):
    ix = tmp_path / "plain"
    assert run("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", ix).exit_code == 0
    r = run("search", "package", "--engine", "memory", "--index", ix, "--hybrid", "rrf")
    assert r.exit_code != 0
    line = [x for x in r.output.splitlines() if x.strip()]
    assert len(line) == 1 and "--text-field" in line[0] and str(ix) in line[0] and "Traceback" not in r.output
    # adding text to it later would leave its older pages without any: refused, one line
    r = run("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", ix, "--text-field")
    assert r.exit_code != 0 and "--recreate" in r.output and "Traceback" not in r.output
    assert run("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", ix, "--text-field",
               "--recreate").exit_code == 0
    assert Collection.open(ix, engine="memory").search("package", k=3, hybrid="rrf")


def test_an_encoded_dir_without_text_takes_it_from_its_pdfs(tmp_path, pdf_dir, text_ix):
    docs = tmp_path / "docs"
    shutil.copytree(pdf_dir, docs)
    enc = tmp_path / "enc"
    assert run("encode", docs, "--model", "lexical", "--out", enc).exit_code == 0
    ix = tmp_path / "ix"
    r = run("index", enc, "--engine", "memory", "--index", ix, "--text-field")
    assert r.exit_code == 0, r.output
    want = Collection.open(text_ix, engine="memory")
    got = Collection.open(ix, engine="memory")
    for q in random_queries(4, seed=7):
        assert [(h.id, round(h.score, 6)) for h in got.search(q, k=10, hybrid="rrf")] == [
            (h.id, round(h.score, 6)) for h in want.search(q, k=10, hybrid="rrf")]
    # the PDFs gone: one line naming the encoded dir
    shutil.rmtree(docs)
    r = run("index", enc, "--engine", "memory", "--index", tmp_path / "ix2", "--text-field")
    assert r.exit_code != 0 and str(enc) in r.output and "Traceback" not in r.output


def test_an_encoded_dir_with_text_carries_it(tmp_path, pdf_dir, text_ix):
    enc = tmp_path / "enc"
    assert run("encode", pdf_dir, "--model", "lexical", "--out", enc, "--text-field").exit_code == 0
    ix = tmp_path / "ix"
    assert run("index", enc, "--engine", "memory", "--index", ix).exit_code == 0  # no flag: the dir has text
    got = Collection.open(ix, engine="memory").search("interface language", k=5, hybrid="minmax:0.6")
    want = Collection.open(text_ix, engine="memory").search("interface language", k=5, hybrid="minmax:0.6")
    assert [h.id for h in got] == [h.id for h in want] and got


def test_hybrid_and_two_phase_do_not_combine(text_ix):
    col = Collection.open(text_ix, engine="memory")
    with pytest.raises(EngineError, match="choose one"):
        col.search("package", hybrid="rrf", two_phase=True)


def test_files_added_later_get_their_text_without_the_flag(tmp_path, pdf_dir):
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    later.mkdir()
    shutil.copy(pdf_dir / "camlidl-1.04.doc.pdf", first)
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", later)
    col = Collection.create(tmp_path / "ix", model="lexical-noidf", engine="memory", text_field=True)
    assert col.index(first, progress=False).ok
    again = Collection.open(tmp_path / "ix", engine="memory")  # text_field not given: the index has it
    assert again.index(later, progress=False).ok
    hits = again.search("reportbug apt-get", k=5, hybrid="rrf")
    assert hits and any(h.source.endswith("debian-refcard-en-a4.pdf") and h.hybrid["text"] for h in hits)


def test_page_listings_leave_the_text_out_and_bm25_keeps_it(text_ix, tmp_path):
    """The page text of a --text-field index lives in its parts for BM25; catalogs (read side
    and writer side) list pages without it, so listing 100k pages does not carry their text."""
    from vsplade.encoded import EncodedDir, is_encoded_dir

    assert is_encoded_dir(text_ix)
    d = EncodedDir(text_ix)
    rows = d.catalog()
    assert rows and not any("text" in r for r in rows)
    assert any(m.get("text") for b in d.iter_batches() for m in b.meta)  # the text is still stored
    col = Collection.open(text_ix, engine="memory")
    assert col.search("interface language", k=3, hybrid="rrf")[0].hybrid["text"] is not None
