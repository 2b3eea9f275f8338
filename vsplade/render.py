"""A hit's page as a picture (and its text layer), from the source file the index points at.

Used by `Hit.image()`, `Hit.text()`, `vsplade show`, the HTTP service and the adapters. The index records, per page, the
absolute path it was read from and the file's content hash (vsplade.catalog); a page is only
rendered from a file that still has that content, so a picture never shows another version
of the document than the one that was indexed. Rendering goes through vsplade.pages (the
same pdfium/Pillow code, caps and colour handling as indexing).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .pages import DEFAULT_MAX_EDGE, PageReader, file_sha256


class SourceError(ValueError):
    """The page's source file is gone or holds another version than the one indexed."""


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def _sha(path: Path) -> str:
    """Content hash, cached by (path, size, mtime) so showing many pages of one big PDF
    hashes it once."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    sha = file_sha256(path)
    with _sha_lock:
        _sha_cache[key] = sha
    return sha


def _checked(path: str | os.PathLike, sha256: str | None, source: str | None) -> tuple[Path, str]:
    p = Path(path)
    name = source or str(p)
    if not p.is_file():
        raise SourceError(f"{name}: source file not found at {p} (moved or deleted since it was indexed)")
    if sha256 and _sha(p) != sha256:
        raise SourceError(f"{name}: {p} has changed since it was indexed (content hash differs); re-index it "
                          "(vsplade index ... --sync) to see its current pages")
    return p, name


def _read_page(p: Path, name: str, page: int, **reader_options):
    reader = PageReader([p], only_pages={page}, **reader_options)
    for candidate in reader:
        if candidate.page_no == page:
            return candidate
    why = f" ({reader.failures[0].error})" if reader.failures else ""
    raise SourceError(f"{name}: no page {page} in {p}{why}")


def page_text(path: str | os.PathLike, page: int, sha256: str | None = None, source: str | None = None) -> str:
    """The page's text layer ("" for an image or a scan without one), from the indexed version
    of the file only (SourceError otherwise)."""
    p, name = _checked(path, sha256, source)
    return _read_page(p, name, page, render=False, text=True).text or ""


def page_image(path: str | os.PathLike, page: int, sha256: str | None = None, width: int | None = None,
               dpi: int = 144, source: str | None = None):
    """The page as an RGB PIL image, `width` px wide if given (aspect kept, never upscaled
    beyond the render cap). Raises SourceError naming the file when it moved or changed."""
    p, name = _checked(path, sha256, source)
    if width is not None and width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    image = _read_page(p, name, page, dpi=dpi, render=True, text=False,
                       max_edge=max(DEFAULT_MAX_EDGE, width or 0)).image
    if width is not None and image.width != width:
        height = max(1, round(image.height * width / image.width))
        from PIL import Image

        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


def _path_of(meta: dict) -> str:
    path = meta.get("path")
    if not path:
        raise SourceError(f"{meta.get('source') or meta.get('id')}: the index does not record where this page was "
                          "read from (built by an older vsplade or from an encoded dir); re-index the files")
    return path


def hit_image(meta: dict, width: int | None = None):
    """page_image() for a page's metadata as an index stores it (path, page, sha256, source)."""
    return page_image(_path_of(meta), int(meta.get("page") or 1), meta.get("sha256"), width, source=meta.get("source"))


def hit_text(meta: dict) -> str:
    """page_text() for a page's metadata as an index stores it."""
    return page_text(_path_of(meta), int(meta.get("page") or 1), meta.get("sha256"), source=meta.get("source"))


def page_words(path: str | os.PathLike, page: int, sha256: str | None = None, source: str | None = None):
    """The page's words with their boxes (vsplade.highlight.PageWords), from the indexed
    version of the file only; an image file has none (has_text False)."""
    from .highlight import read_words

    p, name = _checked(path, sha256, source)
    try:
        # the content hash (checked above) keys the cache: a page is read once for many queries
        return read_words(p, page, cache_key=sha256 or p.stat().st_mtime_ns)
    except ValueError as e:
        raise SourceError(f"{name}: {e}") from None


def hit_words(meta: dict):
    """page_words() for a page's metadata as an index stores it."""
    return page_words(_path_of(meta), int(meta.get("page") or 1), meta.get("sha256"), source=meta.get("source"))
