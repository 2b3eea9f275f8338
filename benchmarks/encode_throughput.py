"""Page-encoding throughput of the full-size V-SPLADE architecture (random weights).

For pages of 1, 5 and 17 tiles (longest edge 512 / 1024 / 2048 px, 512 px tiles) and each batch
size, prints pages/s and where the time goes: render (pdfium, a real PDF page at the tile
resolution), preprocess (Idefics3 processor), forward (vision + text tower), pooling (MLM
head + chunked max), sparse+write (CSR, encoded dir). Peak memory: CUDA max allocated on GPU,
the process's peak RSS on CPU (each configuration runs in a fresh subprocess).

    python benchmarks/encode_throughput.py                       # CPU: batch 1, 1 page each
    python benchmarks/encode_throughput.py --device cuda --batch-sizes 1 8 16 32 --pages 64

Page path only (no model; issue 17): the reference route (pages.py-style 144-dpi render, then
the Idefics3 processor) and the fast route (vsplade.encoders.neural.fastpath) side by side in
one run, CPU milliseconds of one core (thread CPU time) per page and step, at 1, 5 and 17 tiles:

    python benchmarks/encode_throughput.py --page-path-only tests/data/pdfs/*.pdf
    python benchmarks/encode_throughput.py --page-path-only tests/data/vidore_arxivqa_mini/images

Image pages run a third route, "fast, resize on device" (FastPath(device_resize=True), the
default when CUDA is available): the host decodes, converts to RGB and stages the decoded page;
the LANCZOS resizes (vsplade.encoders.neural.lanczos), tiling and normalisation are device work.
On a machine without a GPU the device is this CPU: that work is timed on rows of its own,
outside the host total.

Pages are padded to a square (white, page at the top left) so that the grids are exactly 1, 5
and 17 tiles (`--no-square`: the pages' own grids, e.g. 13 tiles for A4 at 2048 px). The last
line is one JSON object (the 17-tile numbers, or the largest configuration run, at the top
level; every configuration under "by_tiles"). "tiles" names the configuration (1 / 5 / 17 =
longest edge 512 / 1024 / 2048 px); "grid_tiles" the tile counts the pages actually got;
"fast_device_resize_ms_per_page" (image inputs only) the host total of the route that leaves the
resizes to the device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nested_timer import NestedTimer  # benchmarks/, this script's folder, is on sys.path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "tests/data/tokenizers/modernvbert-reconstructed/tokenizer.json"
PDF = ROOT / "tests/data/pdfs/byaldi_financial_report.pdf"
EDGES = {1: 512, 5: 1024, 17: 2048}


def run_one(tiles: int, batch_size: int, pages: int, device: str, dtype: str | None, threads: int | None) -> dict:
    import pypdfium2 as pdfium
    import torch

    from vsplade.encoded import EncodedDirWriter
    from vsplade.encoders.neural import build_model, build_processor, full_size_config
    from vsplade.encoders.neural.encoder import VSpladeEncoder, pick_dtype
    from vsplade.encoders.neural.processor import collate, features
    from vsplade.pages import Page

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    dt = pick_dtype(dtype, dev)
    torch.manual_seed(0)
    model = build_model(full_size_config()).to(dev, dt).eval()
    proc = build_processor(TOKENIZER, longest_edge=EDGES[tiles])
    enc = VSpladeEncoder(model, proc, "random-full-size", device=dev, batch_size=batch_size)
    edge = EDGES[tiles]

    # render: a real PDF page rendered so its longest side is `edge` px; square-padded so the
    # processor makes exactly `tiles` tiles
    from PIL import Image

    doc = pdfium.PdfDocument(str(PDF))
    t = time.perf_counter()
    imgs = []
    for i in range(pages):
        page = doc[i % len(doc)]
        w, h = page.get_size()
        im = page.render(scale=edge / max(w, h)).to_pil().convert("RGB")
        page.close()
        sq = Image.new("RGB", (edge, edge), "white")
        sq.paste(im, (0, 0))
        imgs.append(sq)
    render_s = time.perf_counter() - t

    t = time.perf_counter()
    feats = [features(proc, im) for im in imgs]
    pre_s = time.perf_counter() - t
    assert feats[0].num_tiles == tiles, (feats[0].num_tiles, tiles)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # warm-up (kernels, allocator)
    with torch.inference_mode():
        b = collate(feats[:batch_size], enc.pad_id)
        model(b["input_ids"].to(dev), b["attention_mask"].to(dev), b["pixel_values"].to(dev, dt),
              b["pixel_attention_mask"].to(dev))
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    fwd_s = pool_s = 0.0
    rows = []
    with torch.inference_mode():
        for s in range(0, pages, batch_size):
            b = collate(feats[s : s + batch_size], enc.pad_id)
            t = time.perf_counter()
            hidden = model.hidden_states(b["input_ids"].to(dev), b["attention_mask"].to(dev),
                                         b["pixel_values"].to(dev, dt), b["pixel_attention_mask"].to(dev))
            sync()
            t2 = time.perf_counter()
            out = model.pool(hidden, b["attention_mask"].to(dev), model.mlm_logits)
            rows.append(out.vector.float().cpu().numpy())
            sync()
            fwd_s += t2 - t
            pool_s += time.perf_counter() - t2
    import numpy as np

    t = time.perf_counter()
    matrix = enc._to_sparse(np.vstack(rows))
    from vsplade.sparse import SparseBatch

    ids = [f"p{i}" for i in range(pages)]
    with tempfile.TemporaryDirectory() as d:
        with EncodedDirWriter(Path(d) / "enc", enc.info()) as w:
            w.add(SparseBatch(matrix, ids, [Page(i, "bench", 1).meta() for i in ids]))
    write_s = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    total = render_s + pre_s + fwd_s + pool_s + write_s
    gpu_s = fwd_s + pool_s
    return {
        "tiles": tiles, "batch": batch_size, "pages": pages, "seq_len": feats[0].seq_len,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads",
        "dtype": str(dt).replace("torch.", ""),
        "model_pages_s": pages / gpu_s, "serial_pages_s": pages / total,
        "render_ms": 1000 * render_s / pages, "preprocess_ms": 1000 * pre_s / pages,
        "forward_ms": 1000 * fwd_s / pages, "pooling_ms": 1000 * pool_s / pages, "write_ms": 1000 * write_s / pages,
        "peak_gib": peak, "peak_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS",
    }


# -- page path only ---------------------------------------------------------------------------
STEPS = ("render", "resize/tile", "normalise", "tokenise", "collate", "other")
COLLATE_CHUNK = 8


def _page_list(inputs: list[str], max_pages: int | None) -> list[tuple[str, str, int]]:
    """(kind, path, page_no) for every page of INPUTs (files, folders, globs as vsplade.pages)."""
    import pypdfium2 as pdfium

    from vsplade.pages import discover

    files, failures = discover(inputs)
    for f in failures:
        print(f"skipped {f}", file=sys.stderr)
    out = []
    for f in files:
        with open(f, "rb") as fh:
            pdf = fh.read(4) == b"%PDF"
        if pdf:
            doc = pdfium.PdfDocument(str(f))
            out += [("pdf", str(f), i + 1) for i in range(len(doc))]
            doc.close()
        else:
            out.append(("image", str(f), 1))
    return out[:max_pages] if max_pages else out


class _Clock(NestedTimer):
    """Thread CPU time per bucket, in ms; nested timed calls count once, in the outermost bucket."""

    def __init__(self):
        super().__init__(time.thread_time, 1000, dict.fromkeys(STEPS, 0.0))

    def wrap(self, obj, name: str, bucket: str) -> None:
        setattr(obj, name, self.timed(bucket, getattr(obj, name)))


def _square(im):
    from PIL import Image

    side = max(im.size)
    if im.size == (side, side):
        return im
    sq = Image.new("RGB", (side, side), "white")
    sq.paste(im, (0, 0))
    return sq


def _ref_render(kind: str, path: str, page_no: int, docs: dict, square: bool):
    """The page image the reader hands the reference route: vsplade.pages' 144-dpi render
    (capped at 2048 px) or the decoded image, RGB."""
    from PIL import Image

    from vsplade.encoders.neural.fastpath import raster_scale

    if kind == "image":
        with Image.open(path) as im:
            img = im.convert("RGB")
    else:
        page = docs[path][page_no - 1]
        bm = page.render(scale=raster_scale(*page.get_size()))
        img = bm.to_pil().convert("RGB")
        bm.close()
        page.close()
    return _square(img) if square else img


def _fast_pdf(fp, docs: dict, path: str, page_no: int, square: bool):
    """fastpath's PDF route; square: the page drawn at the top left of a square canvas, at the
    size the reference's square-padded raster would be resized to."""
    from vsplade.encoders.neural.fastpath import FastFeatures, raster_size, render_pdf_page

    page = docs[path][page_no - 1]
    try:
        if not square:
            plan = fp.plan_pdf(*page.get_size())
            pixels = render_pdf_page(page, plan.final)
            glob = render_pdf_page(page, (plan.tile, plan.tile)) if plan.rows else None
        else:
            rw, rh = raster_size(*page.get_size())
            side = max(rw, rh)
            plan = fp.plan_image(side, side)
            fw, fh = plan.final
            content = (max(1, round(rw * fw / side)), max(1, round(rh * fh / side)))
            pixels = render_pdf_page(page, plan.final, content)
            t = plan.tile
            glob = render_pdf_page(page, (t, t), (max(1, round(rw * t / side)), max(1, round(rh * t / side)))) \
                if plan.rows else None
            from vsplade.encoders.neural.fastpath import Plan

            plan = Plan(plan.final, (), plan.final, plan.rows, plan.cols, plan.tile)
    finally:
        page.close()
    return FastFeatures(fp.input_ids(plan.rows, plan.cols), pixels, glob, plan)


def _fast_page(fp, clock: _Clock, kind: str, path: str, page_no: int, docs: dict, square: bool):
    """One page through a fast route (`fp`: resize on the host or on the device), its steps
    charged to `clock`. An image is decoded as the reference route decodes it."""
    t = time.thread_time()
    if kind == "pdf":
        ff = _fast_pdf(fp, docs, path, page_no, square)
        t = clock.add("render", t)
    else:
        img = _ref_render(kind, path, page_no, docs, square)
        t = clock.add("render", t)
        ff = fp.from_image(img)  # plan, coefficients (cached per size pair), np.asarray
        t = clock.add("resize/tile", t)
    fp.input_ids(ff.plan.rows, ff.plan.cols)
    clock.add("tokenise", t)
    return ff


def page_path_run(pages: list[tuple[str, str, int]], tiles: int, square: bool) -> dict:
    """Both routes over `pages` at one configuration; per-page ms of one core per step."""
    import pypdfium2 as pdfium
    import torch

    from vsplade.encoders.neural import build_processor, lanczos
    from vsplade.encoders.neural.fastpath import FastPath, collate_fast, to_model_inputs
    from vsplade.encoders.neural.processor import collate, features

    edge = EDGES[tiles]
    docs = {p: pdfium.PdfDocument(p) for k, p, _ in pages if k == "pdf"}
    proc = build_processor(TOKENIZER, longest_edge=edge)
    fp = FastPath(proc, device_resize=False)
    # image pages only: the route that leaves the resizes to the device (PDF pages are rendered
    # at the final size, nothing to resize: the same as "fast")
    dev_route = any(k == "image" for k, _, _ in pages) and lanczos.pillow_order_supported()
    fpd = FastPath(proc, device_resize=True) if dev_route else None
    ip = proc.image_processor
    ref, fast, fdev = _Clock(), _Clock(), _Clock()
    dev_clock = _Clock()  # the device work of fdev on this CPU: resize (wrapped) vs the rest
    real_resize = lanczos.resize
    dev_clock.wrap(lanczos, "resize", "resize/tile")
    for name in ("process_image", "resize", "resize_for_vision_encoder", "split_images"):
        ref.wrap(ip, name, "resize/tile")
    for name in ("rescale", "normalize"):
        ref.wrap(ip, name, "normalise")
    ref.wrap(ip, "pad", "collate")
    ref.wrap(proc.tokenizer, "_encode_plus", "tokenise")
    # warm-up, untimed: lazy imports, the tokenizer, the fast path's per-grid id cache
    k0, p0, n0 = pages[0]
    im0 = _ref_render(k0, p0, n0, docs, square)
    features(proc, im0)
    fp.from_image(im0)
    if fpd is not None:
        fpd.from_image(im0)
    if k0 == "pdf":
        _fast_pdf(fp, docs, p0, n0, square)
    ref.totals = dict.fromkeys(STEPS, 0.0)
    ref_total = 0.0
    ref_feats, fast_feats, dev_feats, grids = [], [], [], []
    dev = torch.device("cpu")
    lut = fp.lut_on(dev)
    norm_cpu_ms = 0.0
    dev_route_device_ms = 0.0
    staging = None
    for kind, path, page_no in pages:
        # reference
        t = time.thread_time()
        img = _ref_render(kind, path, page_no, docs, square)
        t = ref.add("render", t)
        before = sum(ref.totals.values())
        f = features(proc, img)
        call = 1000 * (time.thread_time() - t)
        ref.totals["other"] += call - (sum(ref.totals.values()) - before)  # the processor's own glue
        ref_total += call
        ref_feats.append(f)
        # fast
        ff = _fast_page(fp, fast, kind, path, page_no, docs, square)
        fast_feats.append(ff)
        if fpd is not None:  # fast, resize on device
            dev_feats.append(_fast_page(fpd, fdev, kind, path, page_no, docs, square))
        grids.append(ff.num_tiles)
        if f.num_tiles != ff.num_tiles or not torch.equal(f.input_ids, ff.input_ids):
            raise AssertionError(f"{path} page {page_no}: the routes disagree on the grid or the ids")
        # batch steps, per chunk
        if len(fast_feats) == COLLATE_CHUNK or (kind, path, page_no) == pages[-1]:
            t = time.thread_time()
            collate(ref_feats, 50283)
            ref.add("collate", t)
            n = max(x.num_tiles for x in fast_feats)
            shape = (COLLATE_CHUNK, n, fp.tile, fp.tile, 3)
            if staging is None or staging.shape[1] < n:
                staging = torch.zeros((COLLATE_CHUNK, 17, fp.tile, fp.tile, 3), dtype=torch.uint8)  # reused, like pinned
            t = time.thread_time()
            batch = collate_fast(fast_feats, 50283, dev, staging=staging[: len(fast_feats), :n])
            t = fast.add("collate", t)
            to_model_inputs(lut, batch, dev, torch.float32)
            norm_cpu_ms += 1000 * (time.thread_time() - t)
            if fpd is not None:
                t = time.thread_time()
                # the staging route (on CUDA pinned): tiles of PDF pages, decoded images as they are
                batch = collate_fast(dev_feats, 50283, dev, staging=staging[: len(dev_feats), :n])
                t = fdev.add("collate", t)
                to_model_inputs(lut, batch, dev, torch.float32)
                dev_route_device_ms += 1000 * (time.thread_time() - t)
            ref_feats, fast_feats, dev_feats = [], [], []
    lanczos.resize = real_resize
    for d in docs.values():
        d.close()
    n = len(pages)
    ref_ms = {k: v / n for k, v in ref.totals.items()}
    fast_ms = {k: v / n for k, v in fast.totals.items()}
    dev_extra = {}
    if fpd is not None:
        fdev_ms = {k: v / n for k, v in fdev.totals.items()}
        resize_ms = dev_clock.totals["resize/tile"] / n
        dev_extra = {"fast_device": fdev_ms, "fast_device_ms_per_page": sum(fdev_ms.values()),
                     "fast_device_resize_on_this_cpu_ms": resize_ms,
                     "fast_device_normalise_on_this_cpu_ms": dev_route_device_ms / n - resize_ms}
    return {
        "tiles": tiles, "longest_edge": edge, "pages": n, "grid_tiles": sorted(set(grids)),
        "reference": ref_ms, "fast": fast_ms,
        "reference_ms_per_page": sum(ref_ms.values()),
        "reference_features_call_ms": ref_total / n,
        "fast_ms_per_page": sum(fast_ms.values()),
        "fast_normalise_on_this_cpu_ms": norm_cpu_ms / n,
        **dev_extra,
    }


def _hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def rss_one(route: str, inputs: list[str], square: bool) -> dict:
    """Peak RSS of one process preparing a batch of 32 pages at 2048 px (17 tiles when square)."""
    import pypdfium2 as pdfium
    import torch

    from vsplade.encoders.neural import build_processor
    from vsplade.encoders.neural.fastpath import FastPath, collate_fast, to_model_inputs
    from vsplade.encoders.neural.processor import collate, features

    pages = _page_list(inputs, None)
    pages = (pages * (32 // len(pages) + 1))[:32]
    docs = {p: pdfium.PdfDocument(p) for k, p, _ in pages if k == "pdf"}
    proc = build_processor(TOKENIZER, longest_edge=2048)
    fp = FastPath(proc, device_resize=route == "fast-device")
    base = _hwm_mib()
    dev = torch.device("cpu")
    if route == "reference":
        feats = [features(proc, _ref_render(k, p, n, docs, square)) for k, p, n in pages]
        batch = collate(feats, 50283)
        host = _hwm_mib()
        tiles = int(batch["pixel_values"].shape[1])
        out = {"host_peak_mib": host}
    else:
        from PIL import Image

        feats = []
        for k, p, n in pages:
            if k == "pdf":
                feats.append(_fast_pdf(fp, docs, p, n, square))
            else:
                with Image.open(p) as im:
                    img = im.convert("RGB")
                feats.append(fp.from_image(_square(img) if square else img))
        n = max(f.num_tiles for f in feats)
        staging = torch.empty((32, n, fp.tile, fp.tile, 3), dtype=torch.uint8)
        batch = collate_fast(feats, 50283, dev, staging=staging)
        host = _hwm_mib()
        to_model_inputs(fp.lut_on(dev), batch, dev, torch.float32)
        tiles = n
        out = {"host_peak_mib": host,
               "peak_with_normalise_on_cpu_mib": _hwm_mib()}
    return {"route": route, "pages": 32, "tiles": tiles, "baseline_mib": base, **out}


def gil_run(pages: list[tuple[str, str, int]], square: bool, threads: int) -> dict:
    """Wall time of the fast route's host work over `pages` with `threads` worker threads: image
    pages in the pool; PDF pages under fastpath.PDFIUM_LOCK (pdfium is not thread-safe)."""
    import pypdfium2 as pdfium
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from vsplade.encoders.neural import build_processor
    from vsplade.encoders.neural.fastpath import PDFIUM_LOCK, FastPath

    fp = FastPath(build_processor(TOKENIZER, longest_edge=2048))
    docs = {p: pdfium.PdfDocument(p) for k, p, _ in pages if k == "pdf"}

    def one(item):
        kind, path, page_no = item
        if kind == "pdf":
            with PDFIUM_LOCK:
                return _fast_pdf(fp, docs, path, page_no, square).num_tiles
        with Image.open(path) as im:
            img = im.convert("RGB")
        return fp.from_image(_square(img) if square else img).num_tiles

    one(pages[0])
    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, pages))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"threads": threads, "pages": len(pages), "wall_s": wall, "cpu_s": cpu,
            "pages_per_s": len(pages) / wall, "cpu_per_wall": cpu / wall}


def procs_run(pages: list[tuple[str, str, int]], procs: int, shm: bool = True) -> dict:
    """PDF pages rendered by `procs` render worker processes (pdfrender.render_job, as
    VSpladeEncoder(render_workers=N) does), results pickled back; the parent's CPU per page is
    the unpickling and bookkeeping the encoding process pays."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from vsplade.encoders.neural import build_processor
    import numpy as np

    from vsplade.encoders.neural.fastpath import FastPath, stage_pages
    from vsplade.encoders.neural.pdfrender import receive, render_job

    fp = FastPath(build_processor(TOKENIZER, longest_edge=2048))
    pdfs = [(p, n) for k, p, n in pages if k == "pdf"]
    if not pdfs:
        return {"processes": procs, "pages": 0}
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        owner = os.getpid() if shm else None
        [receive(r) for r in pool.map(render_job, *zip(*[(p, n, 2048, 512, 2048, owner) for p, n in pdfs[:procs]]))]
        cpu0, t0 = time.process_time(), time.perf_counter()
        futs = [pool.submit(render_job, p, n, 2048, 512, 2048, owner) for p, n in pdfs]
        feats = [fp.from_rendered(receive(f.result())) for f in futs]
        staging = np.empty((max(f.num_tiles for f in feats), 512, 512, 3), np.uint8)
        for f in feats:  # touch the pixels as collate does (shm pages fault in here)
            stage_pages([f], staging[None])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"processes": procs, "transfer": "shm" if shm else "pickle", "pages": len(feats), "wall_s": wall,
            "pages_per_s": len(feats) / wall,
            "parent_cpu_ms_per_page": 1000 * cpu / len(feats)}


def fidelity(inputs: list[str], max_pages: int | None) -> dict:
    """Reference vs fast on every page: pixel values (the processor's normalised tiles against
    the fast path's, same grid) and the sparse vectors of a tiny random ModernVBert at the full
    geometry (2048 px, 512 px tiles; patch 64 so it runs on a CPU), seeded."""
    import numpy as np
    import torch

    from vsplade.encoders.neural import build_model, build_processor, tiny_config
    from vsplade.encoders.neural.encoder import VSpladeEncoder
    from vsplade.encoders.neural.processor import features
    from vsplade.pages import PageReader

    torch.manual_seed(1234)
    model = build_model(tiny_config(tile=512, patch=64, shuffle=2))
    with torch.no_grad():  # as tests/neural/conftest.py: a head with some logits <= 0
        model.mlm.lm_head.bias.normal_(0, 2.0)
        model.mlm.projection_head.norm.bias.normal_(0, 0.5)
    proc = build_processor(TOKENIZER, tile=512, image_seq_len=16)
    ref = VSpladeEncoder(model, proc, "tiny-512", page_path="reference", batch_size=4)
    fast = VSpladeEncoder(model, proc, "tiny-512", page_path="fast", batch_size=4)
    fast.fast.device_resize = False  # PIL on the host (the CPU default)
    from vsplade.encoders.neural import lanczos

    # image pages again with the resizes left to the device (lanczos replay; here on this CPU)
    fastd = None
    if lanczos.pillow_order_supported():
        fastd = VSpladeEncoder(model, proc, "tiny-512", page_path="fast", batch_size=4)
        fastd.fast.device_resize = True
    rendered = list(PageReader(inputs, render=True, text=False))[:max_pages]
    lazy = list(PageReader(inputs, render=False, text=False))[:max_pages]
    assert [p.id for p in rendered] == [p.id for p in lazy]
    dev = torch.device("cpu")
    rows = []
    from vsplade.encoders.neural.fastpath import collate_fast, to_model_inputs

    for pr, pl in zip(rendered, lazy):
        rf = features(proc, pr.image)
        x = ref.encode([pr]).matrix.toarray()[0]
        kind = "pdf" if pr.source.endswith(".pdf") else "image"
        for enc, label in ((fast, kind), (fastd, "image, resize on device")):
            if enc is None or (enc is fastd and kind == "pdf"):
                continue
            ff = enc.page_features(pl)
            if enc is fastd and not ff.deferred:
                raise AssertionError(f"{pl.id}: not resized on the device")
            px = to_model_inputs(enc.fast.lut_on(dev), collate_fast([ff], 50283), dev, torch.float32)["pixel_values"][0]
            d = (px - rf.pixel_values).abs()
            y = enc.encode([pl]).matrix.toarray()[0]
            rows.append({"page": f"{Path(pr.source).name}:{pr.page_no}", "kind": label,
                         "tiles": ff.num_tiles, "pixel_max_abs": float(d.max()), "pixel_mean_abs": float(d.mean()),
                         "cosine": float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))),
                         "top50_overlap": len(set(np.argsort(-x)[:50]) & set(np.argsort(-y)[:50])),
                         "max_abs_weight_diff": float(np.abs(x - y).max())})
    fast.close()
    if fastd is not None:
        fastd.close()
    out = {}
    for kind in ("image", "image, resize on device", "pdf"):
        rs = [r for r in rows if r["kind"] == kind]
        if rs:
            out[kind] = {"pages": len(rs), "pixel_max_abs": max(r["pixel_max_abs"] for r in rs),
                         "pixel_mean_abs": float(np.mean([r["pixel_mean_abs"] for r in rs])),
                         "cosine_min": min(r["cosine"] for r in rs), "cosine_mean": float(np.mean([r["cosine"] for r in rs])),
                         "top50_overlap_min": min(r["top50_overlap"] for r in rs),
                         "top50_identical_pages": sum(r["top50_overlap"] == 50 for r in rs)}
    return {"pages": rows, "summary": out}


def page_path_main(args) -> int:
    pages = _page_list(args.page_path_only, args.max_pages)
    if not pages:
        print("no pages", file=sys.stderr)
        return 2
    square = not args.no_square
    print(f"Page path only: {len(pages)} pages from {len(args.page_path_only)} input(s); "
          f"{'square-padded' if square else 'own aspect'}; CPU ms of one core (thread CPU time) per page; "
          f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    results = []
    for tiles in args.tiles:
        r = page_path_run(pages, tiles, square)
        results.append(r)
        print(json.dumps(r), file=sys.stderr)
    print()
    has_dev = "fast_device" in results[0]
    names = ("reference", "fast") + (("fast, resize on device",) if has_dev else ())
    head = "| step | " + " | ".join(f"{r['tiles']} tiles: {nm}" for r in results for nm in names) + " |"
    print(head)
    print("|---|" + "---:|" * (len(results) * len(names)))
    for step in STEPS:
        cells = []
        for r in results:
            cells += [f"{r['reference'][step]:.1f}", f"{r['fast'][step]:.1f}" if step != "normalise" else "on device"]
            if has_dev:
                d = r["fast_device"][step]
                cells.append("on device" if step == "normalise" else f"{d:.1f}")
        label = step if step != "other" else "other (processor glue)"
        print(f"| {label} | " + " | ".join(cells) + " |")
    key = ("reference_ms_per_page", "fast_ms_per_page") + (("fast_device_ms_per_page",) if has_dev else ())
    print("| total, host CPU | " + " | ".join(f"**{r[k]:.1f}**" for r in results for k in key) + " |")
    print("| cores needed per 100 pages/s | " + " | ".join(f"{r[k] / 10:.1f}" for r in results for k in key) + " |")
    if has_dev:
        print("| resize when the device is this CPU (not in the total) | "
              + " | ".join(c for r in results for c in ("", "", f"{r['fast_device_resize_on_this_cpu_ms']:.1f}")) + " |")
    cells = []
    for r in results:
        cells += ["", f"{r['fast_normalise_on_this_cpu_ms']:.1f}"]
        if has_dev:
            cells.append(f"{r['fast_device_normalise_on_this_cpu_ms']:.1f}")
    print("| normalise when the device is this CPU (not in the total) | " + " | ".join(cells) + " |")
    for r in results:
        line = (f"\n{r['tiles']} tiles (longest edge {r['longest_edge']} px, grids {r['grid_tiles']}): "
                f"reference {r['reference_ms_per_page']:.1f} ms/page, fast {r['fast_ms_per_page']:.1f} ms/page, "
                f"{r['reference_ms_per_page'] / max(r['fast_ms_per_page'], 1e-9):.1f}x")
        if has_dev:
            line += (f"; fast, resize on device {r['fast_device_ms_per_page']:.1f} ms/page, "
                     f"{r['reference_ms_per_page'] / max(r['fast_device_ms_per_page'], 1e-9):.1f}x")
        print(line)
    if args.rss:
        print("\nPeak RSS, one process per route, a batch of 32 pages at 2048 px:")
        from vsplade.encoders.neural import lanczos

        routes = ("reference", "fast")
        if any(k == "image" for k, _, _ in pages) and lanczos.pillow_order_supported():
            routes += ("fast-device",)
        for route in routes:
            cmd = [sys.executable, __file__, "--rss-one", route, *(["--no-square"] if args.no_square else []),
                   "--page-path-only", *args.page_path_only]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {json.dumps(r)}")
    if args.fidelity:
        fid = fidelity(args.page_path_only, args.max_pages)
        print("\nFidelity, reference vs fast (tiny random ModernVBert at 2048 px / 512 px tiles, seeded):")
        for r in fid["pages"]:
            print(f"  {json.dumps(r)}")
        for kind, v in fid["summary"].items():
            print(f"  {kind}: {json.dumps(v)}")
    if args.gil:
        print("\nWorker threads (fast route host work, wall clock; PDF renders serialised by PDFIUM_LOCK):")
        for n in (1, 2):
            print(f"  {json.dumps(gil_run(pages, square, n))}")
        print("Render worker processes (PDF pages, own aspect, 2048 px; what render_workers=N runs):")
        for n, shm in ((1, False), (1, True), (2, True)):
            print(f"  {json.dumps(procs_run(pages, n, shm))}")
    top = max(results, key=lambda r: r["tiles"])
    summary = {"pages": len(pages), "tiles": top["tiles"],
               "reference_ms_per_page": round(top["reference_ms_per_page"], 2),
               "fast_ms_per_page": round(top["fast_ms_per_page"], 2),
               **({"fast_device_resize_ms_per_page": round(top["fast_device_ms_per_page"], 2)}
                  if "fast_device" in top else {}),
               "by_tiles": {str(r["tiles"]): {"reference_ms_per_page": round(r["reference_ms_per_page"], 2),
                                              "fast_ms_per_page": round(r["fast_ms_per_page"], 2),
                                              **({"fast_device_resize_ms_per_page": round(r["fast_device_ms_per_page"], 2)}
                                                 if "fast_device" in r else {}),
                                              "grid_tiles": r["grid_tiles"]} for r in results}}
    print(json.dumps(summary))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiles", type=int, nargs="+", default=[1, 5, 17], choices=sorted(EDGES))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    p.add_argument("--pages", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--page-path-only", nargs="+", metavar="INPUT", default=None,
                   help="time the page path alone (no model) on these PDFs / images, reference vs fast")
    p.add_argument("--no-square", action="store_true", help="page path: keep the pages' own grids")
    p.add_argument("--max-pages", type=int, default=None, help="page path: at most this many pages")
    p.add_argument("--rss", action="store_true", help="page path: peak RSS for a batch of 32 pages at 2048 px")
    p.add_argument("--gil", action="store_true", help="page path: 1 vs 2 worker threads / render processes")
    p.add_argument("--fidelity", action="store_true", help="page path: pixels and tiny-model vectors, reference vs fast")
    p.add_argument("--rss-one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_one:
        print(json.dumps(rss_one(args.rss_one, args.page_path_only, not args.no_square)))
        return 0
    if args.page_path_only:
        return page_path_main(args)
    if args.one:
        print(json.dumps(run_one(args.tiles[0], args.batch_sizes[0], args.pages, args.device, args.dtype, args.threads)))
        return 0
    results = []
    for tiles in args.tiles:
        for bs in args.batch_sizes:
            cmd = [sys.executable, __file__, "--one", "--tiles", str(tiles), "--batch-sizes", str(bs),
                   "--pages", str(max(args.pages, bs)), "--device", args.device]
            if args.dtype:
                cmd += ["--dtype", args.dtype]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(json.dumps(r), file=sys.stderr)
    print(f"\nDevice: {results[0]['device']}, dtype {results[0]['dtype']}, full-size ModernVBERT (random weights)\n")
    print("| tiles | tokens | batch | model pages/s | serial pages/s | render ms | preprocess ms | forward ms | pooling ms | sparse+write ms | peak GiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['tiles']} | {r['seq_len']} | {r['batch']} | {r['model_pages_s']:.3f} | {r['serial_pages_s']:.3f} | "
              f"{r['render_ms']:.0f} | {r['preprocess_ms']:.0f} | {r['forward_ms']:.0f} | {r['pooling_ms']:.0f} | "
              f"{r['write_ms']:.1f} | {r['peak_gib']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
