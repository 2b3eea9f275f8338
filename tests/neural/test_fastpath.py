"""The fast page path (issue 17) against the reference route (the Idefics3 processor).

Image pages: the same grid, the same token ids and bit-identical pixel values (max abs
difference 0 after normalisation), so the same vectors. PDF pages: rendered straight at the
model's size, so pixels differ from the 144-dpi-then-resize route; the grid and ids do not, and
the vectors move little (benchmarks/RESULTS.md). No timing assertions here: speed lives in
benchmarks/encode_throughput.py --page-path-only.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsplade.encoders.neural import build_model, build_processor, tiny_config
from vsplade.encoders.neural.encoder import VSpladeEncoder
from vsplade.encoders.neural import lanczos
from vsplade.encoders.neural.fastpath import (
    FastPath, PdfCache, collate_fast, normalise, plan_image, render_pdf_page, to_model_inputs,
)
from vsplade.encoders.neural.processor import collate, features
from vsplade.pages import Page, PageReader

DATA = Path(__file__).parent.parent / "data"
CPU = torch.device("cpu")
# image pages: PIL's resizes on the host (device_resize=False) or the lanczos replay on the
# device (True; here the device is the CPU): both must give the processor's pixels bit for bit
ROUTES = [pytest.param(False, id="pil-host"),
          pytest.param(True, id="device-resize", marks=pytest.mark.skipif(
              not lanczos.pillow_order_supported(), reason="lanczos.py replays Pillow 13's resize"))]


def fast_inputs(fp, feats, staging=False):
    b = collate_fast(feats, 50283, CPU, staging=torch.empty(
        (len(feats), max(f.num_tiles for f in feats), fp.tile, fp.tile, 3), dtype=torch.uint8) if staging else None)
    return b, to_model_inputs(fp.lut_on(CPU), b, CPU, torch.float32)


def synthetic(w, h, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[h // 3: h // 2] = 255  # flat areas and sharp edges, like a page
    return Image.fromarray(a)


@pytest.mark.parametrize("device_resize", ROUTES)
@pytest.mark.parametrize("size", [(40, 30), (64, 64), (65, 64), (300, 120), (120, 300), (257, 511), (1000, 37),
                                  (37, 1000), (129, 128), (2, 2), (256, 256), (255, 257), (511, 256), (700, 699)])
def test_grid_ids_and_pixels_equal_the_processor(tiny_processor, size, device_resize):
    fp = FastPath(tiny_processor, device_resize=device_resize)
    im = synthetic(*size)
    ref = features(tiny_processor, im)
    f = fp.from_image(im)
    assert f.deferred == (device_resize and bool(f.plan.steps or f.plan.rows))
    assert f.num_tiles == ref.num_tiles
    assert torch.equal(f.input_ids, ref.input_ids)
    for staging in (False, True):  # True: the CUDA route (staging batch), minus the pinning
        b, got = fast_inputs(fp, [f], staging)
        # deferred pages: the decoded page itself is staged (CUDA: pinned), not tiles
        assert (b["sources_u8"] is not None and b["sources_u8"][0] is not None) == (staging and f.deferred)
        assert got["pixel_attention_mask"] is None
        assert torch.equal(got["pixel_values"][0], ref.pixel_values), "max abs difference must be 0"


@pytest.mark.parametrize("device_resize", ROUTES)
def test_full_size_sample_page_is_bit_exact(tokenizer_file, sample_image, device_resize):
    proc = build_processor(tokenizer_file)  # 2048 px, 512 px tiles: 13 tiles for this page
    fp = FastPath(proc, device_resize=device_resize)
    ref = features(proc, sample_image)
    f = fp.from_image(sample_image)
    assert (f.num_tiles, f.plan.rows, f.plan.cols) == (13, 3, 4)
    assert torch.equal(f.input_ids, ref.input_ids)
    _, got = fast_inputs(fp, [f])
    assert float((got["pixel_values"][0] - ref.pixel_values).abs().max()) == 0.0


@pytest.mark.parametrize("device_resize", ROUTES)
def test_mixed_batch_pads_like_collate(tiny_processor, images, device_resize):
    fp = FastPath(tiny_processor, device_resize=device_resize)
    ref = collate([features(tiny_processor, im) for im in images], 50283)
    for staging in (False, True):
        b, got = fast_inputs(fp, [fp.from_image(im) for im in images], staging)
        assert torch.equal(b["input_ids"], ref["input_ids"])
        assert torch.equal(b["attention_mask"], ref["attention_mask"])
        assert torch.equal(got["pixel_values"], ref["pixel_values"])  # padded slots all zero, as collate's


def test_lut_is_the_processor_rescale_and_normalise(tiny_processor):
    ip = tiny_processor.image_processor
    fp = FastPath(tiny_processor)
    x = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    want = ip.normalize(ip.rescale(np.moveaxis(x, -1, 0), ip.rescale_factor), ip.image_mean, ip.image_std)
    got = normalise(torch.from_numpy(x), fp.lut_on(CPU), torch.float32)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("device_resize", ROUTES)
def test_modes_are_converted_like_the_processor(tiny_processor, device_resize):
    fp = FastPath(tiny_processor, device_resize=device_resize)
    rgba = synthetic(90, 70).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.random.default_rng(3).integers(0, 256, (70, 90), dtype=np.uint8)))
    for mode in ("L", "RGBA", "P", "CMYK", "LA", "1", "I;16"):
        im = rgba if mode == "RGBA" else synthetic(90, 70).convert(mode)
        _, got = fast_inputs(fp, [fp.from_image(im)])
        assert torch.equal(got["pixel_values"][0], features(tiny_processor, im).pixel_values), mode


def test_render_pdf_page_equals_pypdfium2_render():
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(DATA / "pdfs" / "debian-refcard-en-a4.pdf"))
    page = doc[0]
    w, h = page.get_size()
    bm = page.render(scale=0.5)
    want = np.asarray(bm.to_pil().convert("RGB"))
    bm.close()
    got = render_pdf_page(page, (want.shape[1], want.shape[0]))
    assert got.dtype == np.uint8 and got.flags.writeable
    np.testing.assert_array_equal(got, want)
    # content smaller than the bitmap: white elsewhere
    pad = render_pdf_page(page, (want.shape[1] + 10, want.shape[0] + 5), (want.shape[1], want.shape[0]))
    np.testing.assert_array_equal(pad[: want.shape[0], : want.shape[1]], want)
    assert (pad[:, want.shape[1]:] == 255).all() and (pad[want.shape[0]:] == 255).all()
    page.close()
    doc.close()


def test_pdf_pages_keep_the_reference_grid_and_ids(tiny_processor, pdf_dir):
    fp = FastPath(tiny_processor)
    cache = PdfCache()
    pages = list(PageReader([pdf_dir], render=True, text=False))
    assert len(pages) > 10
    for p in pages:
        f = fp.from_pdf(cache, p.source, p.page_no)
        ref = features(tiny_processor, p.image)
        assert f.num_tiles == ref.num_tiles and torch.equal(f.input_ids, ref.input_ids), (p.source, p.page_no)
        assert f.pixels.shape[:2][::-1] == f.plan.final
    cache.close()


def test_plan_single_tile_and_caps():
    p = plan_image(300, 200, longest_edge=64, tile=64)
    assert (p.rows, p.cols, p.num_tiles, p.final) == (0, 0, 1, (64, 64))
    p = plan_image(10000, 100, longest_edge=2048, tile=512)
    assert p.final == (2048, 512) and (p.rows, p.cols) == (1, 4)


# -- through the encoder, with a tiny model at the full geometry (512 px tiles, 2048 px) -------
@pytest.fixture(scope="module")
def geometry_encoders(tokenizer_file):
    torch.manual_seed(1234)
    model = build_model(tiny_config(tile=512, patch=64, shuffle=2))  # 16 visual tokens per tile
    with torch.no_grad():
        model.mlm.lm_head.bias.normal_(0, 2.0)
        model.mlm.projection_head.norm.bias.normal_(0, 0.5)
    proc = build_processor(tokenizer_file, tile=512, image_seq_len=16)
    ref = VSpladeEncoder(model, proc, "tiny-512", page_path="reference", batch_size=4, workers=2)
    fast = VSpladeEncoder(model, proc, "tiny-512", page_path="fast", batch_size=4, workers=2)
    return ref, fast


def _rows(m):
    return m.toarray()


def _cos(x, y):
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_image_pages_same_top50_and_cosine(geometry_encoders, data_dir):
    ref, fast = geometry_encoders
    inputs = [data_dir / "sample_page.png", data_dir / "vidore_arxivqa_mini" / "images"]
    pr = list(PageReader(inputs[:1] + sorted(inputs[1].glob("*.png"))[:3], render=True, text=False))
    a = _rows(ref.encode(pr).matrix)
    b = _rows(fast.encode(pr).matrix)  # the same decoded images through the fast path
    for x, y in zip(a, b):
        assert set(np.argsort(-x)[:50]) == set(np.argsort(-y)[:50])
        assert _cos(x, y) >= 0.999
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)  # equal pixels: equal vectors


def test_stream_decodes_and_renders_itself(geometry_encoders, data_dir, pdf_dir):
    """Fast path: the reader does not render (needs_image False); the encoder decodes image
    files in its workers (same pixels as the reader) and renders PDF pages at the target size."""
    ref, fast = geometry_encoders
    assert fast.needs_image is False and ref.needs_image is True
    assert fast.info()["page_path"] == "fast" and ref.info()["page_path"] == "reference"
    inputs = [str(data_dir / "sample_page.png"), str(pdf_dir / "debian-refcard-en-a4.pdf")]
    lazy = list(PageReader(inputs, render=False, text=False))
    assert all(p.image is None for p in lazy)
    got = [b for b in fast.encode_stream(iter(lazy), batch_size=2)]
    ids = [i for b in got for i in b.ids]
    assert ids == [p.id for p in lazy]
    m = np.vstack([_rows(b.matrix) for b in got])
    rendered = list(PageReader(inputs, render=True, text=False))
    want = _rows(ref.encode(rendered).matrix)
    np.testing.assert_allclose(m[0], want[0], rtol=1e-5, atol=1e-6)  # the image page: exact
    for x, y in zip(m[1:], want[1:]):  # PDF pages: target-size render vs 144 dpi + LANCZOS
        assert _cos(x, y) >= 0.99
    assert fast.failures == []


def test_stream_skips_and_names_pages_it_cannot_render(geometry_encoders, data_dir, tmp_path):
    _, fast = geometry_encoders
    good = Page(id="good-1", source=str(data_dir / "sample_page.png"), page_no=1)
    gone = Page(id="gone-1", source=str(tmp_path / "gone.png"), page_no=1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    broken = Page(id="bad-1", source=str(bad), page_no=1)
    fast.failures.clear()
    fast.warnings.clear()
    out = list(fast.encode_stream(iter([gone, good, broken]), batch_size=2))
    assert [i for b in out for i in b.ids] == ["good-1"]
    assert [(f.source, f.page_no) for f in fast.failures] == [(gone.source, 1), (broken.source, 1)]
    assert any("gone-1" in w for w in fast.warnings) and any("bad-1" in w for w in fast.warnings)
    with pytest.raises(ValueError, match="page gone-1 .*gone.png page 1"):
        fast.encode([gone])


def test_page_path_is_checked(tiny_model, tiny_processor):
    with pytest.raises(ValueError, match="page_path"):
        VSpladeEncoder(tiny_model, tiny_processor, "m", page_path="gpu")


def test_render_worker_processes_give_the_same_vectors(geometry_encoders, pdf_dir, tmp_path):
    ref, fast = geometry_encoders
    lazy = list(PageReader([pdf_dir / "byaldi_financial_report.pdf"], render=False, text=False))[:3]
    gone = Page(id="gone-1", source=str(tmp_path / "gone.pdf"), page_no=1)
    in_thread = _rows(fast.encode(lazy).matrix)
    procs = VSpladeEncoder(fast.model, fast.processor, "tiny-512", page_path="fast", batch_size=4, render_workers=2)
    try:
        assert procs.render_workers == 2
        got = list(procs.encode_stream(iter(lazy[:1] + [gone] + lazy[1:]), batch_size=2))
        assert [i for b in got for i in b.ids] == [p.id for p in lazy]
        np.testing.assert_array_equal(np.vstack([_rows(b.matrix) for b in got]), in_thread)
        assert [f.source for f in procs.failures] == [gone.source]
    finally:
        procs.close()
    assert VSpladeEncoder(fast.model, fast.processor, "m").render_workers == 0  # CPU default


def test_cuda_only_steps_are_skipped_without_cuda(tiny_processor, images):
    """Pinned staging and non_blocking copies only happen for a CUDA device that exists; asking
    for CUDA on a machine without one stages nothing (no pin_memory call that would fail)."""
    fp = FastPath(tiny_processor)
    feats = [fp.from_image(im) for im in images[:2]]
    b = collate_fast(feats, 50283, "cpu")
    assert b["pixels_u8"] is None  # CPU: the tiles stay views, nothing copied
    if not torch.cuda.is_available():
        assert collate_fast(feats, 50283, "cuda")["pixels_u8"] is None
    ref = collate([features(tiny_processor, im) for im in images[:2]], 50283)
    got = to_model_inputs(fp.lut_on(CPU), b, CPU, torch.bfloat16)
    assert got["pixel_values"].dtype == torch.bfloat16
    assert torch.equal(got["pixel_values"], ref["pixel_values"].to(torch.bfloat16))


@pytest.mark.skipif(not lanczos.pillow_order_supported(), reason="lanczos.py replays Pillow 13's resize")
def test_cuda_staging_rows_for_mixed_batches(tiny_processor, images, monkeypatch):
    """The CUDA bookkeeping, run on the CPU (pinning and the CUDA check patched out): pages
    resized on the device get a staged source and no staging row, the others compact rows; an
    all-deferred batch stages no tile batch at all. Pixels stay the processor's."""
    import vsplade.encoders.neural.fastpath as fpm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(fpm, "_staging", lambda shape: torch.empty(shape, dtype=torch.uint8))
    host, dev = FastPath(tiny_processor, device_resize=False), FastPath(tiny_processor, device_resize=True)
    ref = collate([features(tiny_processor, im) for im in images], 50283)
    for pick in ([dev, host, dev, host], [host, dev, host, dev], [dev] * 4, [host] * 4):
        feats = [fp.from_image(im) for fp, im in zip(pick, images)]
        b = collate_fast(feats, 50283, "cuda")
        deferred = [f.deferred for f in feats]
        assert deferred == [fp is dev for fp in pick]
        if all(deferred):
            assert b["pixels_u8"] is None
        else:
            assert b["pixels_u8"].shape[0] == deferred.count(False)
            assert [r is None for r in b["stage_rows"]] == deferred
        assert [s is not None for s in (b["sources_u8"] or [None] * 4)] == deferred
        got = to_model_inputs(host.lut_on(CPU), b, CPU, torch.float32)
        assert torch.equal(got["pixel_values"], ref["pixel_values"])
