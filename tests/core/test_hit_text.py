"""Hit.text(): the page's text layer from its indexed source file (what the RAG adapters and
snippets show), never from another version of the file."""

from __future__ import annotations

import shutil

import pytest

from vsplade import Collection
from vsplade.render import SourceError

def test_hit_text_is_the_pages_text_layer(tmp_path, pdf_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", docs / "ref.pdf")
    col = Collection.create(tmp_path / "ix", engine="memory")
    col.index(docs, progress=False)
    hit = col.search("reportbug", k=1)[0]
    text = hit.text()
    assert "reportbug" in text and (hit.source, hit.page) == ("ref.pdf", hit.page)
    other = [h for h in col.search("debian", k=10) if h.page != hit.page][0]
    assert other.text() != text  # that page's text, not the file's first page
    (docs / "ref.pdf").write_bytes((docs / "ref.pdf").read_bytes() + b"\n%changed\n")
    with pytest.raises(SourceError, match="changed since it was indexed"):
        hit.text()


def test_pages_read_from_many_threads_at_once_are_right(tmp_path, pdf_dir):
    """pdfium is not thread-safe: text, pictures and word boxes of hits read from 8 threads at once
    (a LangChain async batch, the HTTP service) equal the single-threaded reads. Before the one
    pdfium lock (vsplade.pages.PDFIUM_LOCK) this failed with 'Data format error' on good PDFs."""
    from concurrent.futures import ThreadPoolExecutor

    col = Collection.create(tmp_path / "ix", engine="memory")
    col.index(pdf_dir, progress=False)
    hits = col.search("interface package report", k=12)
    assert len(hits) >= 8
    want = [(h.text(), h.image(width=120).tobytes(), len(h.highlights().boxes)) for h in hits]

    def read(i):
        h = hits[i % len(hits)]
        return i % len(hits), (h.text(), h.image(width=120).tobytes(), len(h.highlights().boxes))

    with ThreadPoolExecutor(8) as pool:
        for i, got in pool.map(read, range(96)):
            assert got == want[i], hits[i].id
