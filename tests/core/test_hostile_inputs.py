"""Hostile inputs (issue 18, item 3): decompression bombs, huge PDF pages, images the lexical
encoder never needs decoded, 16-bit and other pixel modes, multi-page TIFFs and animations.

Every hostile file is generated here (tmp dirs), none is committed: a 20000 x 20000 PNG is
written row by row through zlib (0.4 MB on disk), a 14,400 pt PDF page by hand (~600 bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsplade import pages as _pages
from vsplade.catalog import page_id
from vsplade.pages import PageReader, read_pages

DEFAULT_MAX_EDGE = getattr(_pages, "DEFAULT_MAX_EDGE", 2048)  # getattr: this file also ran on the code before

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
# Generous: the whole hostile run measures ~0.2 GB after the fix; before it, the huge PDF page
# alone took 6.4 GB and the bomb aborted the run.
RSS_BOUND_MB = 1536


# -- generators ------------------------------------------------------------------------------
def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path: Path, width: int, height: int, color_type: int = 0, bit_depth: int = 8, fill: int = 0) -> Path:
    """A valid PNG streamed row by row through zlib: a 20000 x 20000 one costs no memory to make."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" + bytes([fill]) * (width * channels * bit_depth // 8)
    comp = zlib.compressobj(6)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)))
        pending = []
        for _ in range(height):
            data = comp.compress(row)
            if data:
                pending.append(data)
            if sum(map(len, pending)) > 1 << 16:
                f.write(_chunk(b"IDAT", b"".join(pending)))
                pending = []
        pending.append(comp.flush())
        f.write(_chunk(b"IDAT", b"".join(pending)))
        f.write(_chunk(b"IEND", b""))
    return path


def write_pdf(path: Path, width_pt: float, height_pt: float, text: str = "hostile huge page") -> Path:
    """A one-page PDF written by hand (correct xref), with a text layer."""
    content = f"BT /F1 {max(12, int(height_pt / 40))} Tf 72 {int(height_pt / 2)} Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt} {height_pt}] /Contents 4 0 R "
        f"/Resources << /Font << /F1 5 0 R >> >> >>".encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def write_gray16(path: Path, width: int = 300, height: int = 200) -> Path:
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (height, 1))).save(path)  # mode I;16 -> a 16-bit grey PNG
    return path


FRAME_COLOURS = [(255, 0, 0), (0, 128, 0), (0, 0, 255)]


def write_multipage_tiff(path: Path) -> Path:
    frames = [Image.new("RGB", (60 + 10 * i, 40), c) for i, c in enumerate(FRAME_COLOURS)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def write_corrupt_png(path: Path) -> Path:
    """sample_page.png with 4 KB of its compressed pixel data overwritten."""
    data = bytearray((DATA / "sample_page.png").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    return path


def make_hostile_dir(d: Path) -> dict:
    """Every hostile input of issue 18 next to the good test files. Returns what to expect."""
    d.mkdir(parents=True, exist_ok=True)
    for pdf in sorted((DATA / "pdfs").glob("*.pdf")):
        shutil.copy(pdf, d / pdf.name)
    shutil.copy(DATA / "sample_page.png", d / "sample_page.png")
    write_png(d / "bomb.png", 20000, 20000)
    write_pdf(d / "huge-page.pdf", 14400, 14400)
    write_gray16(d / "gray16.png")
    write_multipage_tiff(d / "multipage.tiff")
    write_corrupt_png(d / "corrupt.png")
    (d / "truncated.png").write_bytes((DATA / "sample_page.png").read_bytes()[: 1910604 // 2])
    return {"bad": {"bomb.png", "corrupt.png", "truncated.png"},
            "downscaled": {"huge-page.pdf"},
            "extra_pages": {("huge-page.pdf", 1), ("gray16.png", 1), ("multipage.tiff", 1),
                            ("multipage.tiff", 2), ("multipage.tiff", 3)}}


GOOD_FILES = [p.name for p in sorted((DATA / "pdfs").glob("*.pdf"))] + [
    "sample_page.png", "huge-page.pdf", "gray16.png", "multipage.tiff"]


def good_pages(d: Path) -> list:
    """Every good page: the committed test files plus the hostile-but-valid ones."""
    pages, failures = read_pages([d / n for n in GOOD_FILES], render=False)
    assert failures == []
    return pages


def good_page_ids(d: Path) -> set[str]:
    return {p.id for p in good_pages(d)}


def indexed_pages(out: Path) -> list[tuple[str, int]]:
    """(file name, page) of every row of an encoded dir / memory index, whatever its id scheme."""
    from vsplade.encoded import EncodedDir

    ed = EncodedDir(out)
    if hasattr(ed, "catalog"):
        rows = ed.catalog()
    else:
        rows = [json.loads(line) for line in (out / "pages.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == len(ed.ids()) == len(set(ed.ids()))
    return sorted((Path(r["source"]).name, int(r["page"])) for r in rows)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 20000, 20000)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("hostile") / "in"
    return d, make_hostile_dir(d)


def names(failures) -> set[str]:
    return {Path(f.source).name for f in failures}


# -- decompression bombs and decode errors ---------------------------------------------------
@pytest.mark.parametrize("render", [True, False])
def test_decompression_bomb_is_a_named_failure_and_the_run_goes_on(bomb, render):
    good = DATA / "sample_page.png"
    reader = PageReader([bomb, good], render=render)
    pages = list(reader)
    assert [Path(p.source).name for p in pages] == ["sample_page.png"]
    assert len(reader.failures) == 1
    f = reader.failures[0]
    assert f.source == str(bomb) and "too large" in f.error and "20000 x 20000" in f.error, f.error
    assert "bomb.png" in str(f)


def test_image_over_the_decode_limit_fails_named_but_a_jpeg_decodes_reduced(tmp_path):
    Image.new("RGB", (2000, 1000), (10, 20, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (2000, 1000), (10, 20, 30)).save(tmp_path / "big.jpg", quality=95)
    reader = PageReader([tmp_path / "big.png", tmp_path / "big.jpg"], max_edge=500, max_decode_pixels=1_000_000)
    pages = list(reader)
    assert names(reader.failures) == {"big.png"}
    assert "too large" in reader.failures[0].error and "2000 x 1000" in reader.failures[0].error
    # libjpeg decodes the JPEG at 1/4 scale (Image.draft): 500 x 250 px, under the limit
    assert [(Path(p.source).name, p.image.size) for p in pages] == [("big.jpg", (500, 250))]


@pytest.mark.parametrize("render", [True, False])
def test_corrupt_truncated_and_not_images_are_named_in_both_modes(tmp_path, bad_inputs, render):
    write_corrupt_png(tmp_path / "corrupt.png")
    (tmp_path / "truncated.png").write_bytes((DATA / "sample_page.png").read_bytes()[:500_000])
    (tmp_path / "text.jpg").write_text("not an image\n")
    reader = PageReader([tmp_path, bad_inputs, DATA / "sample_page.png"], render=render)
    pages = list(reader)
    assert [Path(p.source).name for p in pages] == ["sample_page.png"]
    assert {"corrupt.png", "truncated.png", "text.jpg", "garbage.png"} <= names(reader.failures)
    for f in reader.failures:
        if f.source.endswith((".png", ".jpg")):
            assert "not a readable PDF or image" in f.error, f


# -- the render cap --------------------------------------------------------------------------
def test_huge_pdf_page_renders_within_the_cap_with_a_warning(tmp_path):
    pdf = write_pdf(tmp_path / "huge-page.pdf", 14400, 14400)
    assert pdf.stat().st_size < 1000
    reader = PageReader([pdf])
    pages = list(reader)
    assert reader.failures == []
    assert len(pages) == 1 and max(pages[0].image.size) == DEFAULT_MAX_EDGE
    assert pages[0].image.size == (DEFAULT_MAX_EDGE, DEFAULT_MAX_EDGE)
    assert "hostile huge page" in pages[0].text
    assert len(reader.warnings) == 1
    w = reader.warnings[0]
    assert str(pdf) in w and "page 1" in w and "2048 x 2048" in w and "28800 x 28800" in w, w


def test_render_cap_is_a_parameter_and_never_exceeded(pdf_dir):
    refcard = pdf_dir / "debian-refcard-en-a4.pdf"
    reader = PageReader([refcard], dpi=144, max_edge=600)
    pages = list(reader)
    assert [max(p.image.size) for p in pages] == [600, 600]
    w, h = pages[0].image.size
    assert abs(w / h - 842 / 595) < 0.01  # aspect kept
    assert len(reader.warnings) == 2 and all("refcard" in w and "600" in w for w in reader.warnings)
    # under the cap nothing changes and nothing is said
    reader = PageReader([refcard], dpi=144)
    assert [p.image.size for p in reader] == [(1684, 1191)] * 2 and reader.warnings == []  # 841.9 x 595.3 pt
    # no cap: the old behaviour
    reader = PageReader([refcard], dpi=300, max_edge=None)
    assert max(next(iter(reader)).image.size) == 3508 and reader.warnings == []
    # odd sizes never round above the cap
    for edge in (1, 7, 333, 1001, 2047):
        assert all(max(p.image.size) <= edge for p in PageReader([refcard], dpi=300, max_edge=edge))
    with pytest.raises(ValueError):
        PageReader([refcard], max_edge=0)


def test_big_images_are_downscaled_to_the_cap_with_a_warning(tmp_path):
    Image.new("RGB", (5000, 3000), (200, 100, 50)).save(tmp_path / "wide.png")
    Image.new("RGB", (6000, 8000), (200, 100, 50)).save(tmp_path / "tall.jpg", quality=90)
    small = DATA / "sample_page.png"
    reader = PageReader([tmp_path / "wide.png", tmp_path / "tall.jpg", small])
    got = {Path(p.source).name: p.image for p in reader}
    assert got["wide.png"].size == (2048, 1229)
    assert got["tall.jpg"].size == (1536, 2048)
    assert got["sample_page.png"].size == (1449, 1086)  # under the cap: untouched
    assert got["wide.png"].getpixel((100, 100)) == (200, 100, 50)
    assert all(abs(a - b) <= 3 for a, b in zip(got["tall.jpg"].getpixel((100, 100)), (200, 100, 50)))
    assert len(reader.warnings) == 2
    assert any("wide.png" in w and "5000 x 3000" in w and "2048 x 1229" in w for w in reader.warnings)
    assert any("tall.jpg" in w and "6000 x 8000" in w and "1536 x 2048" in w for w in reader.warnings)


def test_default_cap_is_the_neural_processors_longest_edge():
    pytest.importorskip("transformers")
    import inspect

    from vsplade.encoders.neural.processor import build_processor

    sig = inspect.signature(build_processor).parameters
    assert sig["longest_edge"].default is None  # None -> 4 * tile
    assert 4 * sig["tile"].default == DEFAULT_MAX_EDGE


# -- no decode when the encoder does not need pixels ----------------------------------------
def test_render_false_decodes_no_pixels(tmp_path, monkeypatch):
    write_png(tmp_path / "big.png", 8000, 8000, color_type=2)  # 192 MB of pixels, 0.2 MB file
    write_gray16(tmp_path / "gray16.png")
    write_multipage_tiff(tmp_path / "multipage.tiff")
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(tmp_path / "photo.jpg")
    frames = [Image.new("P", (40, 40), i) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])

    def no_decode(*a, **k):
        raise AssertionError("decoded pixels with render=False")

    # every tile decoder (PNG, JPEG, TIFF, GIF...) is made through Image._getdecoder
    monkeypatch.setattr(Image, "_getdecoder", no_decode)
    reader = PageReader([tmp_path], render=False)
    pages = list(reader)
    assert reader.failures == []
    assert sorted((Path(p.source).name, p.page_no) for p in pages) == [
        ("anim.gif", 1), ("big.png", 1), ("gray16.png", 1),
        ("multipage.tiff", 1), ("multipage.tiff", 2), ("multipage.tiff", 3), ("photo.jpg", 1)]
    assert all(p.image is None for p in pages)


# -- pixel modes -----------------------------------------------------------------------------
def _mode_cases():
    """(name, writer, expected RGB at x=0..n-1 of row 0)."""
    def gray16(p):
        Image.fromarray(np.array([[0, 32896, 65535]], np.uint16)).save(p)

    def int32_tiff(p):
        Image.fromarray(np.array([[0, 32896, 65535]], np.int32)).save(p)

    def float_tiff(p):
        Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(p)

    def la(p):
        Image.fromarray(np.array([[[0, 0], [0, 255], [100, 128]]], np.uint8), "LA").save(p)

    def rgba(p):
        Image.fromarray(np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 255, 128]]], np.uint8), "RGBA").save(p)

    def p_transparent(p):
        im = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
        im.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0])
        im.save(p, transparency=0)

    def pa(p):
        im = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
        im.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0])
        im.save(p, transparency=bytes([0, 255, 128]))

    def cmyk_tiff(p):
        Image.fromarray(np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8), "CMYK").save(p)

    def bilevel(p):
        Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1").save(p)

    def grey(p):
        Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(p)

    return [
        ("gray16.png", gray16, [(0,) * 3, (128,) * 3, (255,) * 3]),
        ("int32.tiff", int32_tiff, [(0,) * 3, (128,) * 3, (255,) * 3]),
        ("float.tiff", float_tiff, [(0,) * 3, (128,) * 3, (255,) * 3]),
        ("la.png", la, [(255,) * 3, (0,) * 3, (177,) * 3]),
        ("rgba.png", rgba, [(255, 255, 255), (255, 0, 0), (127, 127, 255)]),
        ("p-transparent.png", p_transparent, [(255, 255, 255), (0, 0, 255), (0, 255, 0)]),
        ("pa.png", pa, [(255, 255, 255), (0, 0, 255), (127, 255, 127)]),
        ("cmyk.tiff", cmyk_tiff, [(255, 255, 255), (0, 255, 255), (0, 0, 0)]),
        ("bilevel.png", bilevel, [(0, 0, 0), (255, 255, 255), (0, 0, 0)]),
        ("grey.png", grey, [(0, 0, 0), (128, 128, 128), (255, 255, 255)]),
    ]


@pytest.mark.parametrize("name,write,expected", _mode_cases(), ids=[c[0] for c in _mode_cases()])
def test_every_pixel_mode_converts_to_the_right_rgb(tmp_path, name, write, expected):
    path = tmp_path / name
    write(path)
    pages, failures = read_pages([path])
    assert failures == [] and len(pages) == 1
    im = pages[0].image
    assert im.mode == "RGB" and im.size == (3, 1)
    got = [im.getpixel((x, 0)) for x in range(3)]
    for g, e in zip(got, expected):
        assert all(abs(a - b) <= 1 for a, b in zip(g, e)), (Image.open(path).mode, got, expected)


def test_16_bit_png_keeps_its_gradient(tmp_path):
    pages, _ = read_pages([write_gray16(tmp_path / "gray16.png")])
    row = np.asarray(pages[0].image)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and abs(int(row[150]) - 128) <= 1
    assert (np.diff(row.astype(int)) >= 0).all() and len(set(row.tolist())) > 200


# -- frames ----------------------------------------------------------------------------------
def test_every_frame_of_a_multipage_tiff_is_its_own_page(tmp_path):
    tiff = write_multipage_tiff(tmp_path / "scan.tiff")
    for render in (True, False):
        reader = PageReader([tiff], render=render)
        pages = list(reader)
        assert [p.page_no for p in pages] == [1, 2, 3]
        assert reader.failures == [] and reader.warnings == []
        assert [p.id for p in pages] == [page_id(tiff.name, pages[0].sha256, n) for n in (1, 2, 3)]
        if render:
            assert [p.image.getpixel((5, 5)) for p in pages] == FRAME_COLOURS
            assert [p.image.size for p in pages] == [(60, 40), (70, 40), (80, 40)]
    # a single-frame image keeps its id (page 1) as before
    one, _ = read_pages([DATA / "sample_page.png"], render=False)
    assert one[0].id == page_id("sample_page.png", one[0].sha256, 1)


def test_a_bad_tiff_frame_fails_alone(tmp_path):
    tiff = write_multipage_tiff(tmp_path / "scan.tiff")
    reader = PageReader([tiff], max_decode_pixels=65 * 40)  # frames are 60, 70, 80 px wide
    pages = list(reader)
    assert [p.page_no for p in pages] == [1]
    assert [(Path(f.source).name, f.page_no) for f in reader.failures] == [("scan.tiff", 2), ("scan.tiff", 3)]


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_animated_images_read_their_first_frame_and_say_so(tmp_path, fmt):
    frames = [Image.new("RGB", (40, 30), c) for c in FRAME_COLOURS]
    path = tmp_path / f"anim.{fmt}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    for render in (True, False):
        reader = PageReader([path], render=render)
        pages = list(reader)
        assert [p.page_no for p in pages] == [1] and reader.failures == []
        if render:
            assert all(abs(a - b) <= 8 for a, b in zip(pages[0].image.getpixel((5, 5)), FRAME_COLOURS[0]))
        assert len(reader.warnings) == 1
        assert str(path) in reader.warnings[0] and "3 frames" in reader.warnings[0] and "first" in reader.warnings[0]


# -- everything at once ----------------------------------------------------------------------
# Peak RSS of the child itself: VmHWM is the high-water mark of the process's own memory map,
# made new by exec. (ru_maxrss is not: Linux carries the forking parent's RSS over into the
# child's, so a big pytest process would count against the child.)
PEAK_RSS = r"""
import resource
def peak_rss_kb():
    try:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_CHILD = PEAK_RSS + r"""
import json, sys
from vsplade.pages import PageReader
reader = PageReader([sys.argv[1]], render=sys.argv[2] == "render")
pages = [(p.source, p.page_no, p.id, None if p.image is None else list(p.image.size)) for p in reader]
print(json.dumps({"pages": pages, "failures": [[f.source, f.error] for f in reader.failures],
                  "warnings": reader.warnings,
                  "maxrss_mb": peak_rss_kb() / 1024}))
"""


@pytest.mark.parametrize("mode", ["render", "no-render"])
def test_hostile_bulk_run_through_pagereader_has_bounded_rss(hostile, mode):
    d, expect = hostile
    r = subprocess.run([sys.executable, "-c", _CHILD, str(d), mode], capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert {Path(s).name for s, _ in out["failures"]} == expect["bad"], out["failures"]
    assert {p[2] for p in out["pages"]} == good_page_ids(d)
    if mode == "render":
        assert all(max(p[3]) <= DEFAULT_MAX_EDGE for p in out["pages"])
        assert len(out["warnings"]) == len(expect["downscaled"]), out["warnings"]
        assert all(any(n in w for w in out["warnings"]) for n in expect["downscaled"]), out["warnings"]
    else:
        assert all(p[3] is None for p in out["pages"]) and out["warnings"] == []
    assert out["maxrss_mb"] < RSS_BOUND_MB, out["maxrss_mb"]


_CLI = PEAK_RSS + r"""
import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["RSS_OUT"], "w").write(str(peak_rss_kb())))
sys.argv[0] = "vsplade"
runpy.run_module("vsplade", run_name="__main__", alter_sys=True)
"""


def _cli(tmp_path, *args):
    rss = tmp_path / f"rss-{args[0]}"
    r = subprocess.run([sys.executable, "-c", _CLI, *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "RSS_OUT": str(rss)})
    return r, int(rss.read_text()) / 1024


@pytest.mark.parametrize("command", ["index", "encode"])
def test_hostile_bulk_run_through_the_cli(hostile, tmp_path, command):
    d, expect = hostile
    out = tmp_path / "out"
    if command == "index":
        r, rss = _cli(tmp_path, "index", d, "--model", "lexical", "--engine", "memory", "--index", out)
    else:
        r, rss = _cli(tmp_path, "encode", d, "--model", "lexical", "--out", out)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    assert "internal error" not in r.stderr, r.stderr[-3000:]  # the CLI's catch-all for what nothing handled
    for name in expect["bad"]:
        assert any(name in line for line in r.stderr.splitlines()), (name, r.stderr[-3000:])
    assert indexed_pages(out) == sorted((Path(p.source).name, p.page_no) for p in good_pages(d))
    assert rss < RSS_BOUND_MB, rss
