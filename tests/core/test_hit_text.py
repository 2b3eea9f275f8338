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
