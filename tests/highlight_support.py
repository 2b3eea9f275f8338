"""Shared by the highlight tests (library and HTTP): what pdfium itself reads under a box, to
check our word boxes against an extraction that is not ours."""

from __future__ import annotations


def alnum(s: str) -> str:
    """Letters and digits only: pdfium and our words differ in spaces and punctuation."""
    return "".join(c for c in s if c.isalnum())


def text_under(pdf_path, page_no: int, box) -> str:
    """pdfium's own text inside the middle of a box (PDF points, left-bottom-right-top): the
    middle only, so neighbouring lines and letters do not leak in."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        tp = pdf[page_no - 1].get_textpage()
        left, bottom, right, top = box
        h = top - bottom
        return tp.get_text_bounded(left + 0.3, bottom + 0.35 * h, right - 0.3, top - 0.35 * h)
    finally:
        pdf.close()
