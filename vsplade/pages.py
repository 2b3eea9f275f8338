"""Pages: PDFs, image files, folders and globs -> Page(id, source, page_no, image, text).

Owns input discovery, PDF rendering (pypdfium2), text layers and stable page ids. A bad
input (corrupt, encrypted, empty, truncated, not a PDF, unreadable image) becomes a
`PageFailure` naming the file (and page), and reading goes on with the next one.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
PDF_SUFFIXES = {".pdf"}
DEFAULT_DPI = 144


@dataclass
class Page:
    id: str
    source: str
    page_no: int  # 1-based, as PDF viewers show it
    image: "object | None" = None  # PIL.Image when rendered
    text: str = ""
    sha256: str = ""

    def meta(self) -> dict:
        return {"id": self.id, "source": self.source, "page": self.page_no, "sha256": self.sha256}


@dataclass
class PageFailure:
    source: str
    page_no: int | None
    error: str

    def __str__(self) -> str:
        where = f"{self.source} page {self.page_no}" if self.page_no else self.source
        return f"{where}: {self.error}"


def page_id(sha256: str, page_no: int) -> str:
    """Same file content + page number -> same id, wherever the file lives."""
    return f"{sha256[:16]}-{page_no}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def discover(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[PageFailure]]:
    """Expand files, folders (recursive, supported suffixes only) and globs, in a stable order."""
    files: list[Path] = []
    failures: list[PageFailure] = []
    seen: set[Path] = set()

    def add(p: Path):
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            files.append(p)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | PDF_SUFFIXES:
                    add(p)
        elif path.is_file():
            add(path)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                failures.append(PageFailure(text, None, "pattern matched no files"))
            for m in matches:
                add(m)
        else:
            failures.append(PageFailure(text, None, "no such file or directory"))
    return files, failures


def _sniff(path: Path, head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "pdf"
    if path.suffix.lower() in PDF_SUFFIXES:
        return "bad-pdf"
    return "image"


class PageReader:
    """Iterate pages of many inputs; failures collect in `.failures` instead of raising.

    render: rasterise PDF pages / decode images (the neural encoder needs them; the lexical
    encoder does not). text: extract the PDF text layer.
    """

    def __init__(
        self,
        inputs: Iterable[str | os.PathLike],
        dpi: int = DEFAULT_DPI,
        render: bool = True,
        text: bool = True,
        skip_ids: set[str] | None = None,
    ):
        if dpi <= 0:
            raise ValueError(f"dpi must be positive, got {dpi}")
        self.files, self.failures = discover(inputs)
        self.dpi = dpi
        self.render = render
        self.text = text
        self.skip_ids = skip_ids or set()
        self.skipped = 0

    def __iter__(self) -> Iterator[Page]:
        for path in self.files:
            yield from self._read_file(path)

    def _fail(self, source: str, page_no: int | None, error: str) -> None:
        failure = PageFailure(source, page_no, error)
        log.warning("skipped %s", failure)
        self.failures.append(failure)

    def _read_file(self, path: Path) -> Iterator[Page]:
        source = str(path)
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as e:
            self._fail(source, None, f"cannot read file ({e.strerror or e})")
            return
        if size == 0:
            self._fail(source, None, "empty file (0 bytes)")
            return
        sha = file_sha256(path)
        kind = _sniff(path, head)
        if kind == "bad-pdf":
            self._fail(source, None, "not a PDF (no %PDF header)")
        elif kind == "pdf":
            yield from self._read_pdf(path, source, sha)
        else:
            yield from self._read_image(path, source, sha)

    def _read_image(self, path: Path, source: str, sha: str) -> Iterator[Page]:
        pid = page_id(sha, 1)
        if pid in self.skip_ids:
            self.skipped += 1
            return
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()
                image = im.convert("RGB") if self.render else None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            self._fail(source, None, f"not a readable PDF or image ({type(e).__name__}: {e})")
            return
        yield Page(pid, source, 1, image, "", sha)

    def _read_pdf(self, path: Path, source: str, sha: str) -> Iterator[Page]:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as e:
            msg = str(e)
            if "password" in msg.lower():
                msg = "encrypted PDF (password required)"
            elif _has_empty_page_tree(path):
                # pdfium refuses to load a PDF whose page tree is empty, with a stale error code
                msg = "PDF has no pages (empty page tree)"
            self._fail(source, None, f"cannot open PDF: {msg}")
            return
        try:
            n = len(pdf)
            if n == 0:
                self._fail(source, None, "PDF has no pages")
                return
            for i in range(n):
                page_no = i + 1
                pid = page_id(sha, page_no)
                if pid in self.skip_ids:
                    self.skipped += 1
                    continue
                try:
                    page = pdf[i]
                    try:
                        text = ""
                        if self.text:
                            tp = page.get_textpage()
                            text = tp.get_text_range()
                            tp.close()
                        image = None
                        if self.render:
                            image = page.render(scale=self.dpi / 72).to_pil().convert("RGB")
                    finally:
                        page.close()
                except Exception as e:  # pdfium raises a variety of errors on damaged pages
                    self._fail(source, page_no, f"cannot render page ({type(e).__name__}: {e})")
                    continue
                yield Page(pid, source, page_no, image, _clean_text(text), sha)
        finally:
            pdf.close()


def _has_empty_page_tree(path: Path) -> bool:
    data = path.read_bytes()
    return re.search(rb"/Count\s+0\b", data) is not None and re.search(rb"/Type\s*/Page(?!s)", data) is None


def _clean_text(text: str) -> str:
    # pdfium returns \r\n line ends and NULs on some producers
    return text.replace("\r\n", "\n").replace("\x00", "").strip()


def read_pages(inputs, **kwargs) -> tuple[list[Page], list[PageFailure]]:
    """Eager convenience for small inputs."""
    reader = PageReader(inputs, **kwargs)
    pages = list(reader)
    return pages, reader.failures
