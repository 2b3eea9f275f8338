"""Pillow's 8-bit LANCZOS resize, replayed in torch bit for bit (so it can run on the device).

What `PIL.Image.resize(size, Image.LANCZOS)` does to an 8-bit image (Pillow 13.0.0,
src/libImaging/Resample.c `ImagingResampleInner`, src/PIL/Image.py `Image.resize`), and what
this module replays:

- Coefficients (`precompute_coeffs`): per output position xx, center = (xx + 0.5) * scale
  (scale = in / out), support = 3 * max(scale, 1), taps from xmin = int(center - support + 0.5)
  (>= 0) to xmax = int(center + support + 0.5) (<= in), weight = lanczos((x + xmin - center +
  0.5) / max(scale, 1)), lanczos(x) = sinc(x) sinc(x / 3) on [-3, 3), sinc(x) = sin(pi x) / (pi x)
  in double precision with the C library's sin (Python's math.sin calls the same function), the
  weights divided by their plain left-to-right sum; then (`normalize_coeffs_8bpc`) each weight
  to an int32 with 22 fractional bits, rounded half away from zero.
- Each pass: out = clip8((1 << 21) + sum(in * w)), clip8(v) = clamp(v >> 22, 0, 255) (int32
  arithmetic, arithmetic shift: the lookup table Pillow uses, on the range that can occur), the
  intermediate image stored as uint8 (rounded and clipped between the passes).
- Pass order (the rule added in Pillow 13, python-pillow/Pillow#9549): the vertical pass runs
  first when the height shrinks by more than twice as many pixels as the width does,
  `(H_in - H_out) > 0 and (H_in - H_out) > 2 * (W_in - W_out)`; otherwise horizontal first.
  (Before Pillow 13: always horizontal first; Pillow 12.2-12.3 add Image.resize's own
  vertical-first special case for images more than 100x taller than wide.) A pass whose axis keeps its size is skipped.
  The wrong order moves pixels (up to 23 grey levels on the ViDoRe test pages, 56 on synthetic
  edges), so the rule is part of the replay.
- The horizontal-first pass is run by Pillow only on the rows the vertical pass reads
  (ybox_first..ybox_last): the other rows never reach the output, so running it on every row
  gives the same pixels.
- Modes: "RGB" and "L" images are resized as they are (this replay takes any channel count);
  Image.resize premultiplies "RGBA"/"LA" (converts to "RGBa"/"La" and back) and uses NEAREST for
  "P"/"1" - the page paths convert every page to RGB before resizing, as the Idefics3 processor
  does, so those cases never reach a resize here. No `box`, no `reducing_gap` (the processor
  passes neither).

`PILLOW_ORDER` names the rule this replay implements; `pillow_order_supported()` says whether
the installed Pillow is one it was checked against (tests/neural/test_lanczos.py compares it with
PIL on many geometries; the fast path falls back to PIL's resize otherwise).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Resample.c
SUPPORT = 3.0  # LANCZOS
PILLOW_ORDER = "pillow13"  # the rule replayed: vertical first iff dh > 0 and dh > 2 * dw


def pillow_order_supported() -> bool:
    """True when the installed Pillow is one whose resize this replays (13.x: the pass-order
    rule above; a later major version may change it again, so it is not assumed)."""
    import PIL

    try:
        return int(PIL.__version__.split(".")[0]) == 13
    except ValueError:
        return False


def _sin(a: np.ndarray) -> np.ndarray:
    """The C library's sin (what Pillow calls), element by element: numpy's own vectorised
    sin may differ from it in the last bit on some CPUs, which can move a 22-bit weight."""
    return np.fromiter(map(math.sin, a.ravel().tolist()), dtype=np.float64, count=a.size).reshape(a.shape)


def _lanczos_np(x: np.ndarray) -> np.ndarray:
    """lanczos_filter over an array, the same double operations in the same order."""
    def sinc(v: np.ndarray) -> np.ndarray:
        s = v * math.pi
        with np.errstate(invalid="ignore", divide="ignore"):
            out = _sin(s) / s
        return np.where(v == 0.0, 1.0, out)

    inside = (-3.0 <= x) & (x < 3.0)
    return np.where(inside, sinc(x) * sinc(x / 3), 0.0)


@lru_cache(maxsize=512)
def coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index int64 [out, k], weight int32 [out, k]): Pillow's taps for one axis
    (precompute_coeffs + normalize_coeffs_8bpc, vectorised over the outputs, the same double
    arithmetic). Taps past xmax point at the last tap in range with weight 0."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"invalid sizes {in_size} -> {out_size}")
    scale = float(in_size) / out_size  # (double)(in1 - in0) / outSize, box = (0, in_size)
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / filterscale
    center = 0.0 + (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # (int): toward 0
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize, dtype=np.int64)
    valid = taps[None, :] < xmax[:, None]
    pos = taps[None, :] + xmin[:, None]
    k = np.where(valid, _lanczos_np((pos.astype(np.float64) - center[:, None] + 0.5) * inv), 0.0)
    ww = np.zeros(out_size, dtype=np.float64)
    for t in range(ksize):  # the C loop's left-to-right sum (adding the 0.0 of unused taps is exact)
        ww = ww + k[:, t]
    nz = ww != 0.0
    k[nz] = k[nz] / ww[nz, None]
    one = float(1 << PRECISION_BITS)
    w = np.where(k < 0, np.trunc(-0.5 + k * one), np.trunc(0.5 + k * one)).astype(np.int32)
    w[~valid] = 0
    last = np.maximum(xmin + xmax - 1, 0)
    idx = np.where(valid, pos, last[:, None]).clip(0, in_size - 1)
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


def horizontal_first(in_w: int, in_h: int, out_w: int, out_h: int) -> bool:
    """Pillow 13's pass order (Resample.c ImagingResampleInner)."""
    dh, dw = in_h - out_h, in_w - out_w
    return not (dh > 0 and dh > dw * 2)


_DEV_COEFFS: dict = {}


def _coeffs_on(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (in_size, out_size, device)
    got = _DEV_COEFFS.get(key)
    if got is None:
        idx, w = coefficients(in_size, out_size)
        got = (torch.from_numpy(idx.copy()).to(device), torch.from_numpy(w.copy()).to(device))
        if len(_DEV_COEFFS) > 256:
            _DEV_COEFFS.clear()
        _DEV_COEFFS[key] = got
    return got


def resample_axis(x: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """One Pillow pass along `dim` of a uint8 tensor (any other dims): uint8 result."""
    in_size = x.shape[dim]
    idx, w = _coeffs_on(in_size, out_size, x.device)
    shape = [1] * x.dim()
    shape[dim] = out_size
    acc = torch.full([out_size if d == dim else s for d, s in enumerate(x.shape)], 1 << (PRECISION_BITS - 1),
                     dtype=torch.int32, device=x.device)
    for t in range(idx.shape[1]):
        acc += x.index_select(dim, idx[:, t]).to(torch.int32) * w[:, t].view(shape)
    acc >>= PRECISION_BITS
    return acc.clamp_(0, 255).to(torch.uint8)


def prepare(source: tuple[int, int], steps) -> None:
    """Compute (and cache) the coefficients of a chain of resizes from `source` (W, H) through
    `steps` [(W, H), ...]: host work, done where the page is prepared (the encoder's thread
    pool), so the device step only looks them up."""
    w, h = source
    for ow, oh in steps:
        if ow != w:
            coefficients(w, ow)
        if oh != h:
            coefficients(h, oh)
        w, h = ow, oh


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`Image.resize(size, LANCZOS)` of a uint8 [H, W] or [H, W, C] tensor, on its device.
    size is (width, height) as PIL writes it."""
    out_w, out_h = int(size[0]), int(size[1])
    in_h, in_w = int(x.shape[0]), int(x.shape[1])
    if x.dtype != torch.uint8:
        raise TypeError(f"uint8 expected, got {x.dtype}")
    if out_w < 1 or out_h < 1:
        raise ValueError(f"invalid size {size}")
    if (out_w, out_h) == (in_w, in_h):
        return x.clone()
    if horizontal_first(in_w, in_h, out_w, out_h):
        if out_w != in_w:
            x = resample_axis(x, out_w, 1)
        if out_h != in_h:
            x = resample_axis(x, out_h, 0)
    else:
        if out_h != in_h:
            x = resample_axis(x, out_h, 0)
        if out_w != in_w:
            x = resample_axis(x, out_w, 1)
    return x
