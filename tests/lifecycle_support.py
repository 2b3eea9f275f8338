"""The folder the lifecycle tests change under an index (tests/engine_contract.py on every engine,
the CLI and crash tests in tests/core/test_lifecycle.py and tests/opensearch/test_lifecycle_opensearch.py):
three PDFs, one in a subfolder, cut from the shipped test PDFs."""

from __future__ import annotations

import shutil
from pathlib import Path

from pypdf import PdfReader, PdfWriter

DATA = Path(__file__).parent / "data" / "pdfs"


def pdf_pages(src: Path, out: Path, pages: range) -> Path:
    w = PdfWriter()
    reader = PdfReader(src)
    for i in pages:
        w.add_page(reader.pages[i])
    with open(out, "wb") as f:
        w.write(f)
    return out


def make_folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    shutil.copy(DATA / "debian-refcard-en-a4.pdf", d / "refcard.pdf")
    pdf_pages(DATA / "camlidl-1.04.doc.pdf", d / "sub" / "manual.pdf", range(0, 4))
    pdf_pages(DATA / "camlidl-1.04.doc.pdf", d / "other.pdf", range(10, 13))
    return d


def make_link_folder(folder: Path, links: Path) -> Path:
    """A folder of symbolic links, one per PDF under `folder` (flat, by file name), as Debian
    ships its documentation: the links are the files a user indexes."""
    links.mkdir(parents=True)
    for f in sorted(folder.rglob("*.pdf")):
        (links / f.name).symlink_to(f)
    return links
