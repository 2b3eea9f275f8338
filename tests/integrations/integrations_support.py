"""Shared by the framework adapter tests: a real index of the test PDFs on a given engine, the
queries and filters they run, and the Collection.search reference they are compared with."""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).parent.parent / "data"

QUERIES = ["apt-get install a package", "interface definition language", "camlidl stub code generation",
           "remove a file from the system", "zzqx nothing matches this"]
# (source, pages) as Collection.search takes them
FILTERS = [(None, None), ("camlidl-1.04.doc.pdf", (3, 12)), ("debian-refcard-en-a4.pdf", None)]


def make_docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in sorted((DATA / "pdfs").glob("*.pdf")):
        shutil.copy(f, root / f.name)
    shutil.copy(DATA / "sample_page.png", root / "scan.png")  # no text layer: indexed, empty
    return root


def build_collection(tmp: Path, engine: str, **settings):
    from vsplade import Collection

    index = settings.pop("index", None) or str(tmp / "ix")
    col = Collection.create(index, engine=engine, overwrite=True, **settings)
    report = col.index(make_docs(tmp / "docs"), progress=False)
    assert report.ok, report.summary
    return col


def reference(col, query: str, k: int, source=None, pages=None) -> list[tuple[str, float, str]]:
    """(id, score, page text) of Collection.search: what every adapter must return."""
    return [(h.id, h.score, h.text()) for h in col.search(query, k=k, source=source, pages=pages)]


def checked_cases(col, make_retriever, cls, k: int, retrieve, rows):
    """The adapter's results for every filter and query the adapters are checked on, each
    already checked equal to Collection.search's (rows(results) == reference): (retriever,
    query, source, pages, results), one retriever of class `cls` per filter, made with
    make_retriever(k=, source=, pages=) and asked with retrieve(retriever, query). At the end,
    that the queries found pages: equal empty lists would prove nothing."""
    seen = 0
    for source, pages in FILTERS:
        retriever = make_retriever(k=k, source=source, pages=pages)
        assert isinstance(retriever, cls)
        for q in QUERIES:
            got = retrieve(retriever, q)
            assert rows(got) == reference(col, q, k, source, pages), (q, source, pages)
            seen += len(got)
            yield retriever, q, source, pages, got
    assert seen > 10, seen
