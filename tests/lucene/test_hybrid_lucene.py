"""Hybrid search on a real Lucene index: the text field (StandardAnalyzer + BM25 0.9/0.4) against
the memory engine's BM25 and tokenizer, fusion against pyserini.fusion, on the test PDFs and on
a synthetic corpus with long pages (Lucene's lossy lengths) written in several chunks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hybrid_support import MODES, check_against_pyserini, pyserini_fused, random_queries, synthetic

from vsplade import Collection
from vsplade.bm25 import tokenize
from vsplade.engines.base import PageFilter
from vsplade.engines.memory import ExactScorer


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vsplade_lucene import LuceneEngine

    batch = synthetic(600, seed=4, tricky=True)
    path = tmp_path_factory.mktemp("hybrid-lucene") / "ix"
    # several chunks on several Java threads: each chunk's text segment must join its vectors
    # page for page (ParallelLeafReader), and the segments join in order
    eng = LuceneEngine(str(path), chunk_docs=97, threads=3, commit_every=200)
    with eng.writer({"model": "lexical"}) as w:
        w.set_properties({"text_field": True})
        for start in range(0, len(batch), 64):
            w.add(batch.select(range(start, min(start + 64, len(batch)))))
    searcher = eng.searcher()
    yield batch, searcher, ExactScorer(batch)
    searcher.close()


def test_lucene_bm25_equals_memory_bm25_on_long_and_empty_pages(synth):
    batch, lucene, memory = synth
    compared = 0
    for q in ["alpha", "sigma rho", "rho rho beta", "fortran's foo_bar", "u.s.a 3.14", "kappa nothing", "x:y"]:
        for page_filter in (None, PageFilter.of("f3.pdf"), PageFilter.of(None, 10, 40)):
            got, want = lucene.search_text(q, 50, page_filter), memory.search_text(q, 50, page_filter)
            assert [h.id for h in got] == [h.id for h in want], (q, page_filter)
            assert np.allclose([h.score for h in got], [h.score for h in want], rtol=1e-6, atol=0), q
            compared += len(got)
    assert compared > 300


def test_lucene_hybrid_equals_pyserini_on_the_synthetic_corpus(synth):
    batch, lucene, _ = synth
    from vsplade.vocab import default_vocabulary

    vocab = default_vocabulary()
    rng = random.Random(8)
    for q in ["alpha beta", "sigma", "rho theta iota"]:
        qv = {vocab.term(t): rng.uniform(0.5, 2.0) for t in rng.sample(range(1000, 1100), 4)}
        for mode in MODES:
            got = lucene.search_hybrid(qv, q, 10, mode, 100)
            want = pyserini_fused(lucene.search(qv, 100), lucene.search_text(q, 100), mode, 10)
            assert [h.id for h in got] == [i for i, _ in want]
            assert np.allclose([h.score for h in got], [x for _, x in want], rtol=1e-12)


def test_memory_tokenizer_equals_the_standard_analyzer_on_the_test_pdfs(pdf_dir):
    from vsplade.pages import PageReader
    from vsplade_lucene import jvm

    pages = 0
    for page in PageReader(sorted(pdf_dir.glob("*.pdf")), render=False, text=True):
        if not page.text:
            continue
        with jvm.LOCK:
            lucene_words = str(jvm.classes().TextPages.analyze(page.text)).split("\n")[:-1]
        assert tokenize(page.text) == lucene_words, (page.source, page.page_no)
        pages += 1
    assert pages > 20


def test_pdfs_hybrid_on_lucene_equals_pyserini_and_memory(tmp_path, pdf_dir):
    lucene = Collection.create(tmp_path / "lucene", model="lexical", engine="lucene", text_field=True)
    memory = Collection.create(tmp_path / "memory", model="lexical", engine="memory", text_field=True)
    assert lucene.index(pdf_dir, progress=False).ok and memory.index(pdf_dir, progress=False).ok
    for q in random_queries(5, seed=3):
        for mode in MODES:
            assert check_against_pyserini(lucene, q, 10, mode) > 0
        # RRF depends on ranks alone: the same pages in the same order as the memory engine
        # (Lucene's impacts are quantized, so only where the vector ranking is untied)
        got, want = lucene.search(q, k=10, hybrid="rrf"), memory.search(q, k=10, hybrid="rrf")
        assert {h.id for h in got[:3]} == {h.id for h in want[:3]}, q
    lucene.close()
    memory.close()


def test_deleted_pages_leave_the_text_side_and_later_files_bring_text(tmp_path, pdf_dir):
    import shutil

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("camlidl-1.04.doc.pdf", "debian-refcard-en-a4.pdf"):
        shutil.copy(pdf_dir / name, docs)
    col = Collection.create(tmp_path / "ix", model="lexical-noidf", engine="lucene", text_field=True)
    assert col.index(docs, progress=False).ok
    with col._searcher() as s:
        assert any(h.source == "debian-refcard-en-a4.pdf" for h in s.search_text("package", 50))
    assert col.delete(sources=["debian-refcard-en-a4.pdf"]) > 0
    with col._searcher() as s:
        left = s.search_text("package interface", 50)
    assert left and all(h.source == "camlidl-1.04.doc.pdf" for h in left)
    # a file added later, without the flag: the index has the field, so the pages get text
    shutil.copy(pdf_dir / "byaldi_financial_report.pdf", docs)
    again = Collection.open(tmp_path / "ix", engine="lucene")
    assert again.index(docs, progress=False).ok
    hits = again.search("revenue report", k=5, hybrid="rrf")
    assert any(h.source == "byaldi_financial_report.pdf" and h.hybrid["text"] for h in hits)
    col.close()
    again.close()
