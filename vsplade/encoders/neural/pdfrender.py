"""PDF pages -> uint8 RGB pixels at the model's size, and the processor's geometry.

Torch-free on purpose: render worker processes (`VSpladeEncoder(render_workers=N)`) import only
this module, numpy and pypdfium2. `render_job` is what such a worker runs; in-process callers
use `PdfCache` from one thread (pdfium is not thread-safe; every call here holds PDFIUM_LOCK).
"""

from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass

import numpy as np

PDFIUM_LOCK = threading.RLock()
MAX_IMAGE_SIZE = 4096  # transformers' Idefics3 absolute maximum side
DEFAULT_DPI = 144  # vsplade.pages.DEFAULT_DPI: the raster the reference route would start from
DEFAULT_MAX_EDGE = 2048  # vsplade.pages.DEFAULT_MAX_EDGE (render cap)


# -- geometry (the processor's arithmetic) ----------------------------------------------------
def _rescale_to_max_len(height: int, width: int, max_len: int) -> tuple[int, int]:
    aspect = width / height
    if width >= height:
        width = max_len
        height = int(width / aspect)
        if height % 2 != 0:
            height += 1
    else:
        height = max_len
        width = int(height * aspect)
        if width % 2 != 0:
            width += 1
    return max(height, 1), max(width, 1)


def _below_upper_bound(height: int, width: int, max_len: int = MAX_IMAGE_SIZE) -> tuple[int, int]:
    aspect = width / height
    if width >= height and width > max_len:
        width = max_len
        height = int(width / aspect)
    elif height > width and height > max_len:
        height = max_len
        width = int(height * aspect)
    return max(height, 1), max(width, 1)


def _for_vision_encoder(height: int, width: int, tile: int) -> tuple[int, int]:
    aspect = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = int(width / aspect)
        height = math.ceil(height / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = int(height * aspect)
        width = math.ceil(width / tile) * tile
    return height, width


@dataclass(frozen=True)
class Plan:
    """Sizes are (width, height) as PIL writes them. `steps`: the resizes the reference applies
    to the source (equal-size steps dropped, as PIL returns a copy for them)."""

    source: tuple[int, int]
    steps: tuple[tuple[int, int], ...]
    final: tuple[int, int]
    rows: int  # 0, 0: a single tile (the whole page, no global view), as the processor does
    cols: int
    tile: int

    @property
    def num_tiles(self) -> int:
        return self.rows * self.cols + 1 if self.rows else 1


def plan_image(width: int, height: int, longest_edge: int, tile: int) -> Plan:
    h1, w1 = _rescale_to_max_len(height, width, longest_edge)
    h1, w1 = _below_upper_bound(h1, w1)
    h2, w2 = _for_vision_encoder(h1, w1, tile)
    steps = []
    size = (width, height)
    for s in ((w1, h1), (w2, h2)):
        if s != size:
            steps.append(s)
            size = s
    if h2 > tile or w2 > tile:
        rows, cols = (h2 - tile) // tile + 1, (w2 - tile) // tile + 1
    else:
        rows = cols = 0
    return Plan((width, height), tuple(steps), (w2, h2), rows, cols, tile)


def raster_scale(width_pt: float, height_pt: float, dpi: int = DEFAULT_DPI,
                 max_edge: int | None = DEFAULT_MAX_EDGE) -> float:
    """The scale the page reader renders at (vsplade.pages: dpi, capped to max_edge)."""
    if not (math.isfinite(width_pt) and math.isfinite(height_pt) and width_pt > 0 and height_pt > 0):
        raise ValueError(f"invalid page size {width_pt} x {height_pt} pt")
    scale = dpi / 72
    if max_edge is not None and max(math.ceil(width_pt * scale), math.ceil(height_pt * scale)) > max_edge:
        scale = max_edge / max(width_pt, height_pt)
        while max(math.ceil(width_pt * scale), math.ceil(height_pt * scale)) > max_edge:
            scale = math.nextafter(scale, 0)
    return scale


def raster_size(width_pt: float, height_pt: float, dpi: int = DEFAULT_DPI,
                max_edge: int | None = DEFAULT_MAX_EDGE) -> tuple[int, int]:
    """The bitmap the page reader would render (pypdfium2 rounds sides up)."""
    scale = raster_scale(width_pt, height_pt, dpi, max_edge)
    return max(math.ceil(width_pt * scale), 1), max(math.ceil(height_pt * scale), 1)


def plan_pdf(width_pt: float, height_pt: float, longest_edge: int, tile: int, dpi: int = DEFAULT_DPI,
             max_edge: int | None = DEFAULT_MAX_EDGE) -> Plan:
    """The grid the reference route gives this page (from the raster the reader would make);
    the page is rendered straight at `final`, so nothing is left to resize."""
    w, h = raster_size(width_pt, height_pt, dpi, max_edge)
    p = plan_image(w, h, longest_edge, tile)
    return Plan(p.final, (), p.final, p.rows, p.cols, tile)


# -- rendering --------------------------------------------------------------------------------
def render_pdf_page(page, size: tuple[int, int], content: tuple[int, int] | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """A pypdfium2 page rendered into a uint8 [H, W, 3] RGB array of `size` (W, H) (`out`, a
    C-contiguous array of that shape, or a new one), the page stretched to `content` (default:
    the whole bitmap) at the top left, white elsewhere. Same flags as `PdfPage.render`
    (annotations drawn, no forms). Holds PDFIUM_LOCK."""
    import pypdfium2.raw as pdfium_c

    w, h = size
    cw, ch = content or size
    arr = np.empty((h, w, 3), dtype=np.uint8) if out is None else out
    if arr.shape != (h, w, 3) or arr.dtype != np.uint8 or not arr.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {(h, w, 3)}")
    with PDFIUM_LOCK:
        bitmap = pdfium_c.FPDFBitmap_CreateEx(w, h, pdfium_c.FPDFBitmap_BGR, arr.ctypes.data_as(ctypes.c_void_p), w * 3)
        if not bitmap:
            raise MemoryError(f"pdfium could not create a {w} x {h} bitmap")
        try:
            pdfium_c.FPDFBitmap_FillRect(bitmap, 0, 0, w, h, 0xFFFFFFFF)
            pdfium_c.FPDF_RenderPageBitmap(bitmap, page, 0, 0, cw, ch, 0,
                                           pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_REVERSE_BYTE_ORDER)
        finally:
            pdfium_c.FPDFBitmap_Destroy(bitmap)
    return arr


class PdfCache:
    """Open documents, one at a time (pages of a file arrive in order). Not thread-safe by
    design: used from the single rendering thread, every pdfium call under PDFIUM_LOCK."""

    def __init__(self):
        self.path: str | None = None
        self.doc = None

    def page_size(self, path: str, page_no: int) -> tuple[float, float]:
        with PDFIUM_LOCK:
            page = self._doc(path)[page_no - 1]
            try:
                return page.get_size()
            finally:
                page.close()

    def render(self, path: str, page_no: int, plan_fn, alloc=None) -> tuple[np.ndarray, np.ndarray | None, "Plan"]:
        """(page at plan.final, global view at tile x tile or None for a single tile, plan).
        alloc(nbytes) -> a writable uint8 buffer for both (default: new numpy memory)."""
        with PDFIUM_LOCK:
            page = self._doc(path)[page_no - 1]
            try:
                plan = plan_fn(*page.get_size())
                (w, h), t = plan.final, plan.tile
                n_page, n_glob = w * h * 3, (t * t * 3 if plan.rows else 0)
                buf = np.frombuffer(alloc(n_page + n_glob), dtype=np.uint8) if alloc else \
                    np.empty(n_page + n_glob, dtype=np.uint8)
                pixels = render_pdf_page(page, plan.final, out=buf[:n_page].reshape(h, w, 3))
                glob = render_pdf_page(page, (t, t), out=buf[n_page:].reshape(t, t, 3)) if plan.rows else None
                return pixels, glob, plan
            finally:
                page.close()

    def _doc(self, path: str):
        import pypdfium2 as pdfium

        if path != self.path:
            self.close()
            self.doc = pdfium.PdfDocument(path)
            self.path = path
        return self.doc

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self.doc is not None:
                self.doc.close()
            self.doc = None
            self.path = None


# -- render worker processes --------------------------------------------------------------------
# Results cross the process boundary through files in /dev/shm (tmpfs): the worker renders
# straight into a shared mapping, the parent maps it, unlinks it at once and wraps numpy arrays
# around it, so no pixel is pickled or copied (pickling 10 MB a page cost the parent as much CPU
# as rendering it). Without /dev/shm the arrays are pickled.
SHM_DIR = "/dev/shm"
SHM_PREFIX = "vsplade-render-"
_WORKER_CACHE: PdfCache | None = None
_COUNTER = 0


def _shm_alloc(owner: int):
    import mmap
    import os

    holder = {}

    def alloc(nbytes: int):
        global _COUNTER
        _COUNTER += 1
        name = os.path.join(SHM_DIR, f"{SHM_PREFIX}{owner}-{os.getpid()}-{_COUNTER}")
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, nbytes)
            holder["map"] = mmap.mmap(fd, nbytes)
        finally:
            os.close(fd)
        holder["name"] = name
        return holder["map"]

    return alloc, holder


def render_job(path: str, page_no: int, longest_edge: int, tile: int, max_edge: int, owner: int | None = None):
    """Run in a render worker process: one page as (page pixels, global view or None, plan), or,
    with `owner` (the parent's pid) and /dev/shm, as ("shm", file name, plan) for `receive`.
    Each worker keeps its last document open (pages of a file arrive in order)."""
    import os

    global _WORKER_CACHE
    if _WORKER_CACHE is None:
        _WORKER_CACHE = PdfCache()

    def plan_fn(w, h):
        return plan_pdf(w, h, longest_edge, tile, max_edge=max_edge)

    if owner is None or not os.path.isdir(SHM_DIR):
        return _WORKER_CACHE.render(path, page_no, plan_fn)
    alloc, holder = _shm_alloc(owner)
    try:
        pixels, glob, plan = _WORKER_CACHE.render(path, page_no, plan_fn, alloc)
        del pixels, glob
        holder["map"].close()
    except BaseException:
        if "name" in holder:
            holder.get("map") and holder["map"].close()
            os.unlink(holder["name"])
        raise
    return ("shm", holder["name"], plan)


def receive(result) -> tuple[np.ndarray, np.ndarray | None, Plan]:
    """In the parent: `render_job`'s result as arrays (mapping the /dev/shm file and unlinking it)."""
    if not (isinstance(result, tuple) and len(result) == 3 and isinstance(result[0], str) and result[0] == "shm"):
        return result
    import mmap
    import os

    _, name, plan = result
    fd = os.open(name, os.O_RDWR)
    try:
        os.unlink(name)
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    (w, h), t = plan.final, plan.tile
    buf = np.frombuffer(mm, dtype=np.uint8)  # the arrays keep the mapping alive
    pixels = buf[: w * h * 3].reshape(h, w, 3)
    glob = buf[w * h * 3:].reshape(t, t, 3) if plan.rows else None
    return pixels, glob, plan


def remove_leftovers(owner: int) -> int:
    """Delete /dev/shm files of `owner`'s render workers that were never received (a crash or
    a cancelled run). Returns how many."""
    import glob
    import os

    n = 0
    for name in glob.glob(os.path.join(SHM_DIR, f"{SHM_PREFIX}{owner}-*")):
        try:
            os.unlink(name)
            n += 1
        except OSError:
            pass
    return n
