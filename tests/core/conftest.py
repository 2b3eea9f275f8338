"""Bad inputs, generated from the real test PDFs so every failure mode is a real file."""

import io
import shutil

import pytest


@pytest.fixture
def bad_inputs(tmp_path, pdf_dir, data_dir):
    from pypdf import PdfReader, PdfWriter

    d = tmp_path / "bad"
    d.mkdir()
    real = (pdf_dir / "debian-refcard-en-a4.pdf").read_bytes()
    (d / "zero-bytes.pdf").write_bytes(b"")
    (d / "truncated.pdf").write_bytes(real[: len(real) // 3])
    (d / "not-a-pdf.pdf").write_text("this is a text file with a .pdf name\n")
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    empty = io.BytesIO()
    PdfWriter().write(empty)
    (d / "zero-pages.pdf").write_bytes(empty.getvalue())
    w = PdfWriter()
    for page in PdfReader(pdf_dir / "debian-refcard-en-a4.pdf").pages:
        w.add_page(page)
    w.encrypt("secret", algorithm="AES-128")
    with open(d / "encrypted.pdf", "wb") as f:
        w.write(f)
    (d / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    png = (data_dir / "vidore_arxivqa_mini" / "images" / "0.png").read_bytes()
    (d / "truncated.png").write_bytes(png[:200])
    return d


@pytest.fixture
def good_inputs(tmp_path, pdf_dir, data_dir):
    d = tmp_path / "good"
    d.mkdir()
    shutil.copy(pdf_dir / "debian-refcard-en-a4.pdf", d / "refcard.pdf")
    shutil.copy(data_dir / "vidore_samples" / "ai_sample.jpeg", d / "ai.jpeg")
    return d
