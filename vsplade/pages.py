"""Pages: PDFs, image files, folders and globs -> Page(id, source, page_no, image, text).

Owns input discovery, PDF rendering (pypdfium2), image decoding (Pillow), text layers and
stable page ids (content hash + page number). A bad input (corrupt, encrypted, empty,
truncated, not a PDF, unreadable image, an image too large to decode) becomes a `PageFailure`
naming the file (and page), and reading goes on with the next one: nothing in a file's
content can abort a run.

Hostile inputs, by design:
- Render cap (`max_edge`, default 2048 px, the longest edge the neural encoder's Idefics3
  processor resizes every page to; it never feeds the model more). It is applied before
  rasterising: a PDF page is rendered at min(dpi, what fits the cap), so a 14,400 pt page costs
  a 2048 px bitmap, not 28,800 px; an image is decoded reduced where the format allows (JPEG:
  `Image.draft`, libjpeg's 1/2..1/8 scaling) and resized down (LANCZOS). Each downscaled page
  adds a line to `PageReader.warnings` (file, page, sizes).
- Decode limit (`max_decode_pixels`, default Pillow's own `Image.MAX_IMAGE_PIXELS`, 89.5 Mpx):
  an image (or TIFF frame) whose decode would exceed it fails, named, before any pixel is
  decoded; so does anything Pillow itself calls a decompression bomb. This bounds the memory of
  one decode (about 8 bytes a pixel at most: the decoded frame plus its 8-bit RGB copy).
- render=False (the lexical encoder) decodes no pixels: the header is read (Image.open), the
  frames counted, a PNG's chunk CRCs checked (`verify`, so a truncated or corrupt PNG fails as
  it would when rendered); the same limits apply, so both modes accept the same pages.
- Pixel modes become 8-bit RGB correctly: 16-bit and 32-bit integer greys (I;16*, I) are scaled
  (not clipped) to 8 bit, floats (F) from [0, 1]; images with alpha (RGBA, LA, PA, P with a
  transparent index) are composited on white; 1, L, P, CMYK, YCbCr through Pillow.
- Frames: every frame of a TIFF is its own page (page_no = frame number, 1-based; ids as for
  PDF pages), because multi-page TIFF is a document format (scans, faxes). Animated GIF, WebP
  and PNG read their first frame only, with a warning: their frames are moments of one picture,
  not pages, and indexing each would flood an index with near-duplicates. (MPO, the stereo /
  multi-picture JPEG that cameras write as .jpg, reads its primary picture, silently.)
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import math
import os
import threading
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

# pdfium (pypdfium2) is not thread-safe: two threads in it at once corrupt its state ("Data
# format error" on a good PDF). Every use in this process holds this lock: page reading here,
# word boxes (vsplade.highlight), and so hit.text()/image()/highlights() from many threads (a
# LangChain async batch, the HTTP service). Indexing is single-threaded: uncontended.
PDFIUM_LOCK = threading.RLock()

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
PDF_SUFFIXES = {".pdf"}
DEFAULT_DPI = 144
# The neural encoder's processor resizes every page's longest edge to 4 x its 512 px tile
# (vsplade/encoders/neural/processor.py, Idefics3 `size.longest_edge`); pixels beyond are wasted.
DEFAULT_MAX_EDGE = 2048
# Pillow's Image.MAX_IMAGE_PIXELS (where Pillow starts warning of a decompression bomb).
DEFAULT_MAX_DECODE_PIXELS = 89_478_485
# Formats whose frames are pages (every frame is read); any other multi-frame image is animated.
MULTIPAGE_FORMATS = {"TIFF"}
# Multi-frame formats whose extra frames are not pages and not animation (read frame 1, silently).
SILENT_MULTIFRAME_FORMATS = {"MPO"}


@dataclass
class Page:
    id: str
    source: str
    page_no: int  # 1-based, as PDF viewers show it
    image: "object | None" = None  # PIL.Image when rendered
    text: str = ""
    sha256: str = ""
    path: str = ""  # absolute path it was read from ("" when the source is not a local file)

    def meta(self) -> dict:
        meta = {"id": self.id, "source": self.source, "page": self.page_no, "sha256": self.sha256}
        if self.path:
            meta["path"] = self.path
        return meta


@dataclass
class PageFailure:
    source: str
    page_no: int | None
    error: str

    def __str__(self) -> str:
        where = f"{self.source} page {self.page_no}" if self.page_no else self.source
        return f"{where}: {self.error}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def discover(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[PageFailure]]:
    """Expand files, folders (recursive, supported suffixes only) and globs, in a stable order.

    An input that yields nothing is a failure that says truly why: missing, a broken or looping
    symbolic link, not a regular file (a FIFO, a socket, a device), or a folder with no PDF or
    image file under it (a folder named x.pdf included)."""
    files: list[Path] = []
    failures: list[PageFailure] = []
    seen: set[Path] = set()

    def add(p: Path):
        # the same name given twice is read once; two links to one file are two files, each
        # named by its link (vsplade.catalog.source_key), as two copies would be
        rp = Path(os.path.abspath(p))
        if rp not in seen:
            seen.add(rp)
            files.append(p)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | PDF_SUFFIXES]
            if not found:
                failures.append(PageFailure(text, None, EMPTY_FOLDER))
            for p in found:
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
            failures.append(PageFailure(text, None, _why_unreadable(path)))
    return files, failures


# a folder given as an input with nothing to read under it (a --sync run accepts it: the
# folder's files are gone, so are their pages)
EMPTY_FOLDER = "a folder with no PDF or image file under it; give PDF or image files, folders holding them, or globs"
_NOT_REGULAR = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
                stat.S_ISBLK: "a block device"}


def _why_unreadable(path: Path) -> str:
    """Why an input that is neither a folder nor a regular file yields nothing, in words that
    are true (a FIFO exists: "no such file" would send the user looking for a typo)."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it never reaches a file); fix or remove the link"
        if path.is_symlink():
            return f"a broken symbolic link (its target {os.readlink(path)!r} does not exist)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "no such file or directory"
        return f"cannot read it ({e.strerror or e})"
    kind = next((name for test, name in _NOT_REGULAR.items() if test(st.st_mode)), "not a regular file")
    return f"not a regular file but {kind}; give PDF or image files, folders or globs"


def _sniff(path: Path, head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "pdf"
    if path.suffix.lower() in PDF_SUFFIXES:
        return "bad-pdf"
    return "image"


class PageReader:
    """Iterate pages of many inputs; failures collect in `.failures` instead of raising.

    render: rasterise PDF pages / decode images (the neural encoder needs them; the lexical
    encoder does not). text: extract the PDF text layer. max_edge: render cap, the longest edge
    in pixels of any rendered page (None: no cap; pages above it are downscaled and named in
    `.warnings`). max_decode_pixels: the largest image (or frame) decoded at all, after any
    reduced decode (None: Pillow's own decompression-bomb limit only); larger ones fail named.
    """

    def __init__(
        self,
        inputs: Iterable[str | os.PathLike],
        dpi: int = DEFAULT_DPI,
        render: bool = True,
        text: bool = True,
        skip_ids: set[str] | None = None,
        max_edge: int | None = DEFAULT_MAX_EDGE,
        max_decode_pixels: int | None = DEFAULT_MAX_DECODE_PIXELS,
        identify: "Callable[[Path], tuple[str, str]] | None" = None,
        only_pages: "set[int] | None" = None,
    ):
        if dpi <= 0:
            raise ValueError(f"dpi must be positive, got {dpi}")
        if max_edge is not None and max_edge <= 0:
            raise ValueError(f"max_edge must be positive or None, got {max_edge}")
        if max_decode_pixels is not None and max_decode_pixels <= 0:
            raise ValueError(f"max_decode_pixels must be positive or None, got {max_decode_pixels}")
        self.files, self.failures = discover(inputs)
        self.dpi = dpi
        self.render = render
        self.text = text
        self.skip_ids = skip_ids or set()
        self.max_edge = max_edge
        self.max_decode_pixels = max_decode_pixels
        self.skipped = 0
        self.warnings: list[str] = []
        # identify(path) -> (source key, sha256): a collection names its files itself
        # (vsplade.catalog) and page ids follow from (key, content, page number)
        self.identify = identify
        self._key: str | None = None
        self.only_pages = only_pages  # read just these page numbers (showing one hit's page)

    def _unwanted(self, pid: str) -> bool:
        return self.only_pages is not None and int(pid.rsplit("-", 1)[1]) not in self.only_pages

    def _page_id(self, sha: str, page_no: int) -> str:
        # one id rule (vsplade.catalog.page_id); a file read outside a collection is keyed by
        # its name, as indexing that file alone names it, so `inspect` and `index` agree
        from .catalog import page_id

        return page_id(self._key, sha, page_no)

    def _path(self, path: Path) -> str:
        # the path as the user reaches the file (a link keeps its own name: vsplade.catalog)
        return os.path.abspath(path) if self.identify is not None else ""

    def __iter__(self) -> Iterator[Page]:
        for path in self.files:
            yield from self._read_file(path)

    def _fail(self, source: str, page_no: int | None, error: str) -> None:
        failure = PageFailure(source, page_no, error)
        log.warning("skipped %s", failure)
        self.failures.append(failure)

    def _warn(self, message: str) -> None:
        log.info("%s", message)
        self.warnings.append(message)

    def _read_file(self, path: Path) -> Iterator[Page]:
        source = str(path)
        self._key = None
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
        if self.identify is not None:
            try:
                self._key, sha = self.identify(path)
            except OSError as e:
                self._fail(source, None, f"cannot read file ({e.strerror or e})")
                return
            source = self._key
        else:
            sha = file_sha256(path)
            self._key = path.name
        kind = _sniff(path, head)
        if kind == "bad-pdf":
            self._fail(source, None, "not a PDF (no %PDF header)")
        elif kind == "pdf":
            yield from self._read_pdf(path, source, sha)
        else:
            yield from self._read_image(path, source, sha)

    def _read_image(self, path: Path, source: str, sha: str) -> Iterator[Page]:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # over the limit anyway: it fails below, named, rather than warning on stderr
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
        except Image.DecompressionBombError:
            size = _header_size(path)
            dims = f"{size[0]} x {size[1]} px = {size[0] * size[1] / 1e6:.0f} Mpx, " if size else ""
            self._fail(source, None, f"image too large to decode ({dims}over Pillow's decompression-bomb "
                                     f"limit of {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx)")
            return
        except Exception as e:  # Pillow raises many types on hostile headers
            self._fail(source, None, _unreadable(e))
            return
        with im:
            if im.format in MULTIPAGE_FORMATS:
                yield from self._read_frames(im, path, source, sha)
                return
            pid = self._page_id(sha, 1)
            if pid in self.skip_ids or self._unwanted(pid):
                self.skipped += 1
                return
            try:
                frames = int(getattr(im, "n_frames", 1))  # GIF: skips frame data, decodes nothing
            except Exception:
                frames = 1  # a damaged later frame; the first one is all that is read
            if frames > 1 and im.format not in SILENT_MULTIFRAME_FORMATS:
                self._warn(f"{source}: animated {im.format} with {frames} frames; only the first frame is read")
            try:
                image = self._frame(im, path, source, 1)
            except _TooLarge as e:
                self._fail(source, None, str(e))
                return
            except Exception as e:
                self._fail(source, None, _unreadable(e))
                return
            yield Page(pid, source, 1, image, "", sha, self._path(path))

    def _read_frames(self, im, path: Path, source: str, sha: str) -> Iterator[Page]:
        """Every frame of a multi-page image (TIFF) as its own page."""
        page_no = 0
        while True:
            if page_no:
                try:
                    im.seek(page_no)
                except EOFError:
                    return
                except Exception as e:  # a broken IFD chain: the frames before it are kept
                    self._fail(source, page_no + 1, _unreadable(e))
                    return
            page_no += 1
            pid = self._page_id(sha, page_no)
            if pid in self.skip_ids or self._unwanted(pid):
                self.skipped += 1
                continue
            try:
                image = self._frame(im, path, source, page_no)
            except Exception as e:
                self._fail(source, page_no, str(e) if isinstance(e, _TooLarge) else _unreadable(e))
                continue
            yield Page(pid, source, page_no, image, "", sha, self._path(path))

    def _frame(self, im, path: Path, source: str, page_no: int):
        """The current frame as 8-bit RGB within the render cap, or None when not rendering.
        Raises _TooLarge before decoding anything over the decode limit."""
        full = im.size
        target = _fit(full, self.max_edge)
        if target is not None:
            im.draft(None, target)  # JPEG: libjpeg decodes at 1/2, 1/4 or 1/8 scale; others: no-op
        w, h = im.size
        if self.max_decode_pixels is not None and w * h > self.max_decode_pixels:
            reduced = f", {w} x {h} px at the smallest decode scale" if (w, h) != full else ""
            raise _TooLarge(f"image too large to decode ({full[0]} x {full[1]} px{reduced} = {w * h / 1e6:.0f} "
                            f"Mpx, over the decode limit of {self.max_decode_pixels / 1e6:.1f} Mpx)")
        if im.format == "PNG":
            _verify_png(path)  # chunk CRCs to IEND: truncation and corruption, without decoding
        if not self.render:
            return None
        im.load()
        image = _to_rgb(im, target)
        if target is not None:
            self._warn(f"{source} page {page_no}: image is {full[0]} x {full[1]} px, downscaled to "
                       f"{image.size[0]} x {image.size[1]} px (render cap: longest edge {self.max_edge} px)")
        return image

    def _read_pdf(self, path: Path, source: str, sha: str) -> Iterator[Page]:
        import pypdfium2 as pdfium

        try:
            with PDFIUM_LOCK:
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
                pid = self._page_id(sha, page_no)
                if pid in self.skip_ids or self._unwanted(pid):
                    self.skipped += 1
                    continue
                try:
                    with PDFIUM_LOCK:  # held per page, never across the yield
                        page = pdf[i]
                        try:
                            text = ""
                            if self.text:
                                tp = page.get_textpage()
                                text = tp.get_text_range()
                                tp.close()
                            image = None
                            if self.render:
                                image = self._render_page(page, source, page_no)
                        finally:
                            page.close()
                except Exception as e:  # pdfium raises a variety of errors on damaged pages
                    self._fail(source, page_no, f"cannot render page ({type(e).__name__}: {e})")
                    continue
                yield Page(pid, source, page_no, image, _clean_text(text), sha, self._path(path))
        finally:
            with PDFIUM_LOCK:
                pdf.close()


    def _render_page(self, page, source: str, page_no: int):
        """Rasterise at the requested dpi, or smaller when that would exceed the render cap: the
        scale is chosen from the page size before pdfium allocates the bitmap."""
        width, height = page.get_size()
        if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
            raise ValueError(f"invalid page size {width} x {height} pt")
        scale = self.dpi / 72
        full = (math.ceil(width * scale), math.ceil(height * scale))  # pypdfium2's bitmap size
        capped = self.max_edge is not None and max(full) > self.max_edge
        if capped:
            scale = self.max_edge / max(width, height)
            while max(math.ceil(width * scale), math.ceil(height * scale)) > self.max_edge:
                scale = math.nextafter(scale, 0)
        bitmap = page.render(scale=scale)
        try:
            image = bitmap.to_pil().convert("RGB")
        finally:
            bitmap.close()
        if capped:
            self._warn(f"{source} page {page_no}: page is {width:g} x {height:g} pt; {self.dpi} dpi would render "
                       f"{full[0]} x {full[1]} px, rendered at {image.size[0]} x {image.size[1]} px "
                       f"(render cap: longest edge {self.max_edge} px)")
        return image


class _TooLarge(ValueError):
    pass


def _unreadable(e: Exception) -> str:
    return f"not a readable PDF or image ({type(e).__name__}: {e})"


def _fit(size: tuple[int, int], max_edge: int | None) -> tuple[int, int] | None:
    """The size that brings the longest edge down to max_edge (aspect kept), or None if it fits."""
    w, h = size
    if max_edge is None or max(w, h) <= max_edge:
        return None
    s = max_edge / max(w, h)
    return max(1, min(max_edge, round(w * s))), max(1, min(max_edge, round(h * s)))


def _verify_png(path: Path) -> None:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.verify()


def _header_size(path: Path) -> tuple[int, int] | None:
    """An image's size from its header, past Pillow's bomb check (for the error message only)."""
    from PIL import Image

    try:
        Image.init()
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                ok = accept is None or accept(prefix)
                if not ok or isinstance(ok, str):
                    continue
                fp.seek(0)
                try:
                    return tuple(factory(fp, str(path)).size)
                except Exception:
                    continue
    except Exception:
        pass
    return None


_WHITE = (255, 255, 255)


def _to_rgb(im, target: tuple[int, int] | None):
    """A decoded frame -> a new 8-bit RGB image, resized to `target` if given (LANCZOS, the
    encoder's resampling). High bit depths are scaled, not clipped; alpha is composited on white."""
    from PIL import Image

    original, mode = im, im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        im = _scale_to_l(im)
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")  # so that downscaling averages (grey), not samples
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, HSV...; Pillow raises on what it cannot convert
    if target is not None and im.size != target:
        im = im.resize(target, Image.LANCZOS, reducing_gap=3.0)  # RGBA/LA: premultiplied inside
    if im.mode in ("LA", "RGBA"):
        out = Image.new("RGB", im.size, _WHITE)
        out.paste(im.convert("RGB") if im.mode == "LA" else im, (0, 0), im.getchannel("A"))
        return out
    if im.mode == "RGB":
        return im.copy() if im is original else im  # never the file's own image object
    return im.convert("RGB")


def _scale_to_l(im):
    """16/32-bit integer or float grey -> 8-bit L. I;16: value >> 8. I: values within 0..255 are
    kept, within 0..65535 are 16-bit (>> 8), anything else is stretched min..max. F: [0, 1] x 255,
    within 0..255 kept, else stretched. (Pillow's own conversion clips: a 16-bit scan is white.)"""
    import numpy as np
    from PIL import Image

    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        out = (a >> 8).astype(np.uint8)
    else:
        if a.dtype.kind == "f":
            a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (a.min(), a.max()) if a.size else (0, 0)
        if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
            out = a * np.float32(255)
            out += np.float32(0.5)
        elif lo >= 0 and hi <= 255:
            out = a
        elif a.dtype.kind != "f" and lo >= 0 and hi <= 65535:
            out = a >> 8
        else:
            out = (a - lo).astype(np.float32)
            out *= np.float32(255 / (float(hi) - float(lo)))
            out += np.float32(0.5)
        out = np.clip(out, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


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
