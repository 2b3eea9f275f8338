"""The web page's start view (vsplade.serve.examples, SearchService.start_view): example
queries that recur on the pages, spread over the files, never a running header or a
function word; the view follows the index when it changes."""

from __future__ import annotations

import shutil

from vsplade.serve.examples import example_queries, example_terms

HEADER = "Acme Handbook\n"  # on every page: says nothing about any of them


FILLER = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def _pages():
    manual = [("manual.pdf", HEADER + ("stub code here\n" if i < 4 else "") + ("idl file there\n" if 4 <= i < 7 else "")
               + f"item {FILLER[i]}\n") for i in range(10)]
    report = [("report.pdf", HEADER + "fiscal year results\nannual report\n" + extra) for extra in ("fiscal year\n", "")]
    return manual + report


def test_examples_are_repeated_pairs_one_file_each_first():
    """Each file's most repeated pair first (the larger file first), then the pairs on most
    pages, then single words on several pages; never the header on every page ('acme
    handbook', 'item'), a function word ('here') or a word twice."""
    assert example_queries(_pages(), 5) == ["stub code", "fiscal year", "idl file", "annual report", "results"]
    assert example_queries(_pages(), 2) == ["stub code", "fiscal year"]


def test_single_words_fill_in_and_nothing_from_nothing():
    pages = [("a.pdf", "kernel\nscheduler"), ("a.pdf", "kernel\nmemory"), ("b.pdf", "scheduler\ndisk"), ("b.pdf", "disk")]
    # no pair repeats; 'memory' is on one page only
    assert example_queries(pages, 3) == ["disk", "kernel", "scheduler"]
    assert example_queries([], 5) == [] and example_queries([("a.pdf", "")], 5) == []
    assert example_terms([["debian", "the"], ["debian", "package"], ["package", "debian", "@"]], 2) == ["debian", "package"]


def test_start_view_counts_the_collection_and_follows_it(tmp_path, pdf_dir):
    from vsplade.collection import Collection
    from vsplade.serve.service import SearchService

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", docs / "refcard.pdf")
    col = Collection.create(tmp_path / "ix", model="lexical", engine="memory")
    col.index(docs, progress=False)
    svc = SearchService(col, cache_dir=tmp_path / "cache")
    try:
        first = svc.info()["start"]
        assert (first["pages"], first["files"], first["examples_from"]) == (2, 1, "page text")
        assert 4 <= len(first["examples"]) <= 5
        for q in first["examples"]:  # each example finds pages
            assert col.search(q, k=1), q
        assert svc.start_view() is first  # cached: the same object while the index is unchanged
        shutil.copy(pdf_dir / "camlidl-1.04.doc.pdf", docs / "camlidl.pdf")
        col.index(docs, sync=True, progress=False)
        second = svc.info()["start"]
        assert (second["pages"], second["files"]) == (2 + 26, 2) and second is not first
    finally:
        svc.close()
