"""The fast page path: page -> uint8 tiles on the host, rescale / normalise on the device.

The reference route (`processor.features`, the Idefics3 processor) spends ~0.4 s of one core on
a 2048 px page: LANCZOS resizes through numpy <-> PIL round trips, a float64 rescale, a float32
normalise and padding copies of 17 x 3 x 512 x 512 values, and the tokenizer over ~1,150
tokens. This module keeps pixels uint8 until they are on the device and does no float work on
the host:

- Geometry (`plan_image`, `plan_pdf`): the processor's own arithmetic (longest edge -> even
  side, sides rounded up to tile multiples, the tile grid, the global view), so tile counts and
  token ids are always the reference's.
- PDF pages (`PdfCache.render`): pdfium renders straight at the final size the reference ends
  with (W x H, multiples of the tile; the reference stretches its 144-dpi raster to it with two
  LANCZOS resizes), into a numpy buffer, RGB; and the global view is a second render straight at
  tile x tile (the reference: LANCZOS of the big page). No 144-dpi raster, no resampling: sharper
  text, different pixels (benchmarks/RESULTS.md reports how far the vectors move). pdfium is not
  thread-safe: every call here holds `PDFIUM_LOCK`, and the encoder renders in the one thread
  that also iterates the page reader.
- Image pages, two routes giving the processor's pixels bit for bit (the same resizes: same
  sizes, LANCZOS, same order, on 8-bit RGB):
  - resize on the device (`device_resize`, the default when CUDA is available): the host only
    decodes and converts to RGB; the decoded page goes over as uint8 and `lanczos.resize` (a
    torch replay of Pillow 13's 8-bit LANCZOS: its coefficients, its 22-bit integer rounding,
    its pass-order rule) resizes it there, then tiles and normalises. The coefficients are
    computed on the host when the page is prepared (cached per size pair).
  - PIL on the host (the default on the CPU, where PIL's C is the cheaper "device"): the
    processor's own PIL resizes, without its numpy round trips and float work.
- Tiles: views of the page (reshape/permute, no copy) until `collate_fast` copies them, once,
  into the uint8 staging batch (pinned memory on CUDA) that is sent with non_blocking=True.
- Normalise (`normalise`): a 256-entry table equal, bit for bit, to the processor's
  float32(float64(x) * rescale) then (x - mean) / std in float32, applied on the device, then the
  model dtype. Padded tile slots are set to 0 after it (the vision tower skips all-zero tiles),
  and `pixel_attention_mask` is None: every real tile is full-size, the model builds the mask.
- Token ids depend only on the tile grid: computed once per (rows, cols) with the processor's own
  text expansion and tokenizer, then reused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .pdfrender import (  # noqa: F401  (re-exported: the geometry and the renderer live there)
    DEFAULT_DPI, DEFAULT_MAX_EDGE, PDFIUM_LOCK, PdfCache, Plan, plan_image, plan_pdf, raster_scale, raster_size,
    render_pdf_page,
)
from . import lanczos
from .processor import PROMPT


# -- normalisation --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _lut_np(rescale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """[C, 256] float32: exactly transformers' rescale (float64 multiply, float32 cast) then
    normalize ((x - mean) / std in float32), for every uint8 value."""
    v = (np.arange(256, dtype=np.float64) * rescale).astype(np.float32)
    return np.stack([(v - np.float32(m)) / np.float32(s) for m, s in zip(mean, std)]).astype(np.float32)


def normalise(tiles: torch.Tensor, lut: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [..., H, W, C] -> dtype [..., C, H, W] through the per-channel tables lut [C, 256]
    (one gather when all channels share a table, as with mean = std = 0.5)."""
    idx = tiles.int()
    if bool((lut == lut[:1]).all()):
        out = lut[0][idx]
    else:
        out = torch.stack([lut[ch][idx[..., ch]] for ch in range(tiles.shape[-1])], dim=-1)
    return out.movedim(-1, -3).to(dtype)




# -- the page features of the fast path ------------------------------------------------------
@dataclass
class FastFeatures:
    """One page on the fast path: uint8 pixels (HWC) at the final size and its global view."""

    input_ids: torch.Tensor  # [L]
    pixels: np.ndarray | None  # uint8 [H, W, 3], H and W multiples of the tile; None: deferred
    global_view: np.ndarray | None  # uint8 [t, t, 3]; None for a single-tile page (= pixels)
    plan: Plan
    # device_resize: the decoded page (uint8 RGB [h, w, 3] or grey [h, w], plan.source), resized
    # on the device
    source: np.ndarray | None = None

    @property
    def deferred(self) -> bool:
        """True when the resizes are left to the device (`device_pixels`)."""
        return self.pixels is None

    @property
    def num_tiles(self) -> int:
        return self.plan.num_tiles

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[0])


class FastPath:
    """The fast page path for one processor's settings (longest edge, tile, LANCZOS, mean/std,
    prompt) with the per-grid token-id cache. Thread-safe."""

    def __init__(self, processor, prompt: str = PROMPT, device_resize: bool | None = None):
        ip = processor.image_processor
        size = ip.size
        self.longest_edge = int(size["longest_edge"] if isinstance(size, dict) else size.longest_edge)
        self.tile = int(ip.max_image_size["longest_edge"])
        self.resample = int(ip.resample)
        if not (ip.do_resize and ip.do_image_splitting and ip.do_rescale and ip.do_normalize):
            raise ValueError("the fast page path needs resize, image splitting, rescale and normalize on")
        mean, std = ip.image_mean, ip.image_std
        mean = tuple(float(m) for m in (mean if isinstance(mean, (list, tuple)) else [mean] * 3))
        std = tuple(float(s) for s in (std if isinstance(std, (list, tuple)) else [std] * 3))
        self.lut = _lut_np(float(ip.rescale_factor), mean, std)
        self.processor = processor
        if prompt.count(processor.image_token) != 1:
            raise ValueError("the prompt must hold exactly one <image> token")
        self.prompt = prompt
        self._ids: dict[tuple[int, int], torch.Tensor] = {}
        self._lock = threading.Lock()
        self._luts: dict = {}
        # image pages: resize on the device (lanczos replay) or with PIL on the host.
        # None: on the device when CUDA is available (the encoder's device then defaults to it).
        from PIL import Image

        replayable = self.resample == int(Image.Resampling.LANCZOS) and lanczos.pillow_order_supported()
        if device_resize and not replayable:
            raise ValueError("device_resize needs LANCZOS and a Pillow whose resize lanczos.py replays (13.x)")
        wanted = torch.cuda.is_available() if device_resize is None else bool(device_resize)
        self.device_resize = replayable and wanted

    def input_ids(self, rows: int, cols: int) -> torch.Tensor:
        """The processor's ids for a page of this grid (its text expansion, its tokenizer)."""
        ids = self._ids.get((rows, cols))
        if ids is None:
            with self._lock:
                ids = self._ids.get((rows, cols))
                if ids is None:
                    proc = self.processor
                    text = proc.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
                    enc = proc.tokenizer(self.prompt.replace(proc.image_token, text))
                    ids = self._ids[(rows, cols)] = torch.tensor(enc["input_ids"], dtype=torch.long)
        return ids

    def plan_image(self, width: int, height: int) -> Plan:
        return plan_image(width, height, self.longest_edge, self.tile)

    def plan_pdf(self, width_pt: float, height_pt: float) -> Plan:
        return plan_pdf(width_pt, height_pt, self.longest_edge, self.tile, max_edge=self.max_edge)

    def from_image(self, image) -> FastFeatures:
        """A PIL image, any mode (converted to RGB first, as `processor.features` does).
        device_resize: grey pages ("L", and "1" through "L": the same values) go over with one
        channel; RGB of them has three equal channels, each resized alike, so the device
        resizes the one and repeats it (exact, a third of the bytes)."""
        plan = self.plan_image(*image.size)
        if self.device_resize and (plan.steps or plan.rows):
            if image.mode == "1":
                image = image.convert("L")
            elif image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            lanczos.prepare(plan.source, plan.steps + (((self.tile, self.tile),) if plan.rows else ()))
            return FastFeatures(self.input_ids(plan.rows, plan.cols), None, None, plan, source=np.asarray(image))
        if image.mode != "RGB":
            image = image.convert("RGB")
        im = image
        for s in plan.steps:
            im = im.resize(s, resample=self.resample)
        # np.array: a writable copy (np.asarray of a PIL image is read-only, which torch warns about)
        glob = np.array(im.resize((self.tile, self.tile), resample=self.resample)) if plan.rows else None
        return FastFeatures(self.input_ids(plan.rows, plan.cols), np.array(im), glob, plan)

    def from_pdf(self, cache: PdfCache, path: str, page_no: int) -> FastFeatures:
        """A PDF page rendered straight at the model's sizes (call from the rendering thread)."""
        return self.from_rendered(cache.render(path, page_no, self.plan_pdf))

    def from_rendered(self, rendered) -> FastFeatures:
        """`PdfCache.render` / `pdfrender.render_job` output -> features."""
        pixels, glob, plan = rendered
        return FastFeatures(self.input_ids(plan.rows, plan.cols), pixels, glob, plan)

    @property
    def max_edge(self) -> int:
        # the reader's cap follows the longest edge (vsplade.pipeline.render_cap)
        return max(DEFAULT_MAX_EDGE, self.longest_edge)

    def lut_on(self, device: torch.device) -> torch.Tensor:
        t = self._luts.get(device)
        if t is None:
            t = self._luts[device] = torch.from_numpy(self.lut).to(device)
        return t


def _staging(shape: tuple[int, ...]) -> torch.Tensor:
    """Pinned host buffer (torch's caching host allocator reuses freed ones)."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=True)


def page_tiles(f: FastFeatures, pixels=None):
    """uint8 [rows, cols, t, t, 3] (a single tile: [1, t, t, 3]), a view of the page, no copy;
    row-major as the processor orders them. `pixels`: the page (numpy or torch, e.g. resized on
    the device by `device_pixels`), default f.pixels."""
    t, rows, cols = f.plan.tile, f.plan.rows, f.plan.cols
    px = f.pixels if pixels is None else pixels
    if not rows:
        return px[None]
    px = px.reshape(rows, t, cols, t, 3)
    return px.permute(0, 2, 1, 3, 4) if isinstance(px, torch.Tensor) else px.transpose(0, 2, 1, 3, 4)


def device_pixels(f: FastFeatures, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A deferred page's resizes where `source` (its decoded uint8 [h, w, 3], or [h, w] grey)
    lives: the processor's chain (plan.steps), then the global view (tile x tile) from the
    result, each `lanczos.resize` (Pillow's LANCZOS bit for bit). -> (page [H, W, 3], global
    view or None)."""
    px = source
    for step in f.plan.steps:
        px = lanczos.resize(px, step)
    glob = lanczos.resize(px, (f.plan.tile, f.plan.tile)) if f.plan.rows else None
    if px.dim() == 2:  # a grey page: RGB = the channel three times
        px = px.unsqueeze(-1).expand(*px.shape, 3)
        glob = glob.unsqueeze(-1).expand(*glob.shape, 3) if glob is not None else None
    return px, glob


def collate_fast(items: list[FastFeatures], pad_id: int, device: torch.device | str = "cpu",
                 staging: torch.Tensor | None = None) -> dict:
    """Left-padded ids and masks (as `processor.collate`) and the pages' uint8 tiles.

    For CUDA the tiles are copied once into a pinned uint8 batch [B, N, t, t, 3] (`staging`,
    or a new one), so the transfer can be non-blocking; elsewhere nothing is copied here (the
    tiles stay views of the pages until they are normalised). Padded slots are not written:
    `to_model_inputs` zeroes them after normalising. Deferred pages (resized on the device)
    have no tiles yet: their decoded page is copied once into its own buffer (`sources_u8`:
    pinned on CUDA; with an explicit `staging` elsewhere, unpinned, the same route minus the
    pinning) and their slots in the batch stay unwritten."""
    device = torch.device(device)
    b = len(items)
    length = max(i.seq_len for i in items)
    n = max(i.num_tiles for i in items)
    t = items[0].plan.tile
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    for r, it in enumerate(items):
        ids[r, length - it.seq_len:] = it.input_ids
        mask[r, length - it.seq_len:] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "pages": items,
             "num_tiles": [i.num_tiles for i in items], "tile": t, "pixels_u8": None, "sources_u8": None,
             "stage_rows": None}
    cuda = device.type == "cuda" and torch.cuda.is_available()
    if staging is not None:  # the caller's batch, one row per page
        batch["pixels_u8"] = staging
        batch["stage_rows"] = list(range(b))
        stage_pages(items, staging.numpy())
    elif cuda and not all(i.deferred for i in items):
        # rows only for the pages that have tiles (deferred ones are tiled on the device)
        rows, k = [], 0
        for it in items:
            rows.append(None if it.deferred else k)
            k += not it.deferred
        nt = max(i.num_tiles for i in items if not i.deferred)
        pix = _staging((k, nt, t, t, 3))
        batch["pixels_u8"], batch["stage_rows"] = pix, rows
        stage_pages(items, pix.numpy(), rows)
    if (staging is not None or cuda) and any(i.deferred for i in items):
        srcs: list[torch.Tensor | None] = []
        for it in items:
            if it.deferred:
                buf = _staging(it.source.shape) if cuda else torch.empty(it.source.shape, dtype=torch.uint8)
                buf.numpy()[:] = it.source
                srcs.append(buf)
            else:
                srcs.append(None)
        batch["sources_u8"] = srcs
    return batch


def stage_pages(items: list[FastFeatures], view: np.ndarray, rows: list[int | None] | None = None) -> None:
    """Copy every page's tiles (and global view) into the uint8 batch `view` [B, N, t, t, 3],
    page i into row rows[i] (default i) (deferred pages: nothing, they are resized and tiled on
    the device)."""
    for i, it in enumerate(items):
        r = i if rows is None else rows[i]
        if it.deferred or r is None:
            continue
        if it.plan.rows:
            k = it.num_tiles - 1
            view[r, :k].reshape(it.plan.rows, it.plan.cols, *view.shape[2:])[:] = page_tiles(it)
            view[r, k] = it.global_view
        else:
            view[r, 0] = it.pixels


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    """A torch view of a (possibly read-only, as np.asarray of a PIL image is) uint8 array; it
    is only read."""
    if a.flags.writeable:
        return torch.from_numpy(a)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not writable": nothing writes to it
        return torch.from_numpy(a)


def to_model_inputs(lut: torch.Tensor, batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """The model's inputs on `device`: pixel_values [B, N, 3, t, t] in `dtype`, normalised
    there page by page (bounded memory), padded tile slots all zero, pixel_attention_mask None.
    CUDA: the pinned uint8 batch goes over with non_blocking=True. CPU: the tiles are read
    straight from the page views (no pinning, no extra copy). Deferred pages are resized on
    `device` first (`device_pixels`)."""
    nb = device.type == "cuda"
    items: list[FastFeatures] = batch["pages"]
    t = batch["tile"]
    n = max(batch["num_tiles"])
    pix = torch.zeros((len(items), n, 3, t, t), dtype=dtype, device=device)
    u8 = batch["pixels_u8"]
    if u8 is not None:
        u8 = u8.to(device, non_blocking=nb)
    srcs = batch.get("sources_u8")
    for r, (it, k) in enumerate(zip(items, batch["num_tiles"])):
        if it.deferred:
            src = srcs[r] if srcs is not None else _as_tensor(it.source)
            page, glob = device_pixels(it, src.to(device, non_blocking=nb))
            if glob is None:
                pix[r, 0] = normalise(page, lut, dtype)
            else:
                pix[r, : k - 1] = normalise(page_tiles(it, page).flatten(0, 1), lut, dtype)
                pix[r, k - 1] = normalise(glob, lut, dtype)
        elif u8 is not None:
            pix[r, :k] = normalise(u8[batch["stage_rows"][r], :k], lut, dtype)
        elif it.plan.rows:
            tiles = torch.from_numpy(page_tiles(it)).to(device).flatten(0, 1)
            pix[r, : k - 1] = normalise(tiles, lut, dtype)
            pix[r, k - 1] = normalise(torch.from_numpy(it.global_view).to(device), lut, dtype)
        else:
            pix[r, 0] = normalise(torch.from_numpy(it.pixels).to(device), lut, dtype)
    return {"input_ids": batch["input_ids"].to(device, non_blocking=nb),
            "attention_mask": batch["attention_mask"].to(device, non_blocking=nb),
            "pixel_values": pix, "pixel_attention_mask": None}
