"""lanczos.resize (the torch replay of Pillow's 8-bit LANCZOS) against PIL itself.

Fidelity is equality: every pixel of `Image.resize(size, LANCZOS)`, for odd sizes, upscaling and
downscaling along each axis, both sides of Pillow 13's pass-order rule, 1- and 3-channel images,
and the full-size processor geometries (1, 5, 17 tiles). The opposite pass order is checked to
differ from PIL (so these tests see the order), and the fast path's device route is checked
against the Idefics3 processor at the full geometry.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from vsplade.encoders.neural import build_processor, lanczos
from vsplade.encoders.neural.fastpath import FastPath, collate_fast, to_model_inputs
from vsplade.encoders.neural.processor import features

pytestmark = pytest.mark.skipif(not lanczos.pillow_order_supported(),
                                reason="lanczos.py replays Pillow 13's resize (pass-order rule)")
CPU = torch.device("cpu")
LANCZOS = Image.Resampling.LANCZOS


def page_like(w, h, channels=3, seed=0):
    """Noise, flat white bands and hard black/white edges (the worst case for ringing)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    a[h // 3: h // 2] = 255
    a[:, w // 4: w // 4 + max(1, w // 10)] = 0
    a[(h * 2) // 3:, (w * 2) // 3:] = (np.arange(w - (w * 2) // 3) * 7 % 256).astype(np.uint8)[None, :, None]
    return a[..., 0] if channels == 1 else a


def pil(a, size):
    return np.asarray(Image.fromarray(a).resize(size, LANCZOS))


def replay(a, size):
    return lanczos.resize(torch.from_numpy(np.array(a)), size).numpy()


def opposite_order(a, size):
    """The replay with the other pass order."""
    x = torch.from_numpy(np.array(a))
    (w, h), (in_w, in_h) = size, (a.shape[1], a.shape[0])
    if lanczos.horizontal_first(in_w, in_h, w, h):
        return lanczos.resample_axis(lanczos.resample_axis(x, h, 0), w, 1).numpy()
    return lanczos.resample_axis(lanczos.resample_axis(x, w, 1), h, 0).numpy()


CASES = [
    # (source W, H) -> (W, H): up/up, down/down, up/down, down/up, one axis kept
    ((37, 53), (64, 64)), ((64, 64), (37, 53)), ((101, 41), (61, 29)), ((101, 41), (140, 19)),
    ((41, 101), (19, 140)), ((41, 101), (29, 61)), ((53, 91), (45, 31)), ((91, 53), (31, 45)),
    ((123, 77), (123, 31)), ((123, 77), (61, 77)), ((123, 77), (123, 200)), ((123, 77), (250, 77)),
    # the pass-order rule: vertical first iff dh > 0 and dh > 2 * dw
    ((100, 100), (90, 80)), ((100, 100), (90, 79)), ((100, 100), (90, 81)), ((100, 100), (110, 99)),
    ((100, 300), (99, 90)), ((100, 300), (10, 250)), ((300, 100), (299, 99)),
    # extremes: 1 px, far more than 100x taller than wide (Pillow 12's Python special case)
    ((1, 1), (5, 7)), ((9, 7), (1, 1)), ((3, 301), (224, 224)), ((5, 700), (2, 224)), ((700, 5), (224, 2)),
    ((17, 301), (5, 6)), ((2, 2), (512, 512)),
    # the processor's steps at the real geometry: longest edge 2048, tile multiples, 512 global view
    ((1621, 1191), (2048, 1505)), ((2048, 1505), (2048, 1536)), ((2048, 2048), (512, 512)),
    ((1415, 2016), (1438, 2048)), ((1438, 2048), (1536, 2048)), ((2016, 899), (2048, 913)),
]


@pytest.mark.parametrize("channels", [3, 1], ids=["RGB", "L"])
@pytest.mark.parametrize("src,dst", CASES, ids=[f"{s[0]}x{s[1]}-{d[0]}x{d[1]}" for s, d in CASES])
def test_resize_equals_pil(src, dst, channels):
    a = page_like(*src, channels=channels, seed=src[0] * 7 + dst[1])
    np.testing.assert_array_equal(replay(a, dst), pil(a, dst))


def test_random_sizes_equal_pil():
    rng = np.random.default_rng(17)
    for _ in range(60):
        src = tuple(int(v) for v in rng.integers(1, 260, 2))
        dst = tuple(int(v) for v in rng.integers(1, 260, 2))
        a = page_like(*src, seed=int(src[0]))
        np.testing.assert_array_equal(replay(a, dst), pil(a, dst), err_msg=f"{src} -> {dst}")


def test_the_pass_order_is_seen():
    """The other order gives other pixels on both sides of the rule, so the tests above would
    fail on a wrong rule (the first attempt, without it, moved pixels by up to 26)."""
    moved = {}
    for src, dst in [((100, 100), (90, 79)), ((53, 91), (45, 31)), ((101, 41), (140, 19)),  # vertical first
                     ((100, 100), (90, 81)), ((64, 64), (37, 53)), ((37, 53), (64, 64))]:  # horizontal first
        a = page_like(*src)
        first = "h" if lanczos.horizontal_first(*src, *dst) else "v"
        d = int(np.abs(opposite_order(a, dst).astype(int) - pil(a, dst).astype(int)).max())
        moved[first] = max(moved.get(first, 0), d)
    assert moved["h"] > 0 and moved["v"] > 0, moved


def test_rule_boundaries():
    assert lanczos.horizontal_first(100, 100, 90, 80)  # dh = 20 = 2 * dw: not more than twice
    assert not lanczos.horizontal_first(100, 100, 90, 79)  # dh = 21 > 20
    assert lanczos.horizontal_first(100, 100, 100, 100)
    assert not lanczos.horizontal_first(100, 100, 120, 99)  # width grows, height shrinks
    assert lanczos.horizontal_first(100, 100, 120, 120)  # height grows


def test_coefficients_rows_sum_to_one():
    for n_in, n_out in [(1621, 2048), (2048, 512), (7, 3), (3, 7), (1, 1)]:
        idx, w = lanczos.coefficients(n_in, n_out)
        assert idx.shape == w.shape and idx.min() >= 0 and idx.max() < n_in
        total = w.astype(np.int64).sum(1)
        assert np.abs(total - (1 << lanczos.PRECISION_BITS)).max() <= w.shape[1]  # rounding of each tap


def test_resize_rejects_other_dtypes():
    with pytest.raises(TypeError):
        lanczos.resize(torch.zeros((4, 4, 3), dtype=torch.float32), (2, 2))
    x = torch.from_numpy(page_like(9, 5))
    y = lanczos.resize(x, (9, 5))
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()  # a copy, as PIL's


def _square(im, side):
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(im, (0, 0))
    return canvas


@pytest.mark.parametrize("longest_edge,tiles", [(512, 1), (1024, 5), (2048, 17)])
def test_fast_path_device_route_at_the_full_geometry(tokenizer_file, sample_image, longest_edge, tiles):
    """The processor the benchmark uses at 1 / 5 / 17 tiles (longest edge 512 / 1024 / 2048,
    512 px tiles), a square page upscaled (1449 -> 2048) and one downscaled (2100 -> 1024 / 512):
    the device route's pixels are the processor's bit for bit."""
    proc = build_processor(tokenizer_file, longest_edge=longest_edge)
    fp = FastPath(proc, device_resize=True)
    for side in (1449, 2100) if longest_edge < 2048 else (1449,):
        im = _square(sample_image, side)
        ref = features(proc, im)
        f = fp.from_image(im)
        assert f.deferred and f.num_tiles == ref.num_tiles == tiles
        got = to_model_inputs(fp.lut_on(CPU), collate_fast([f], 50283, CPU), CPU, torch.float32)
        assert torch.equal(got["pixel_values"][0], ref.pixel_values), (longest_edge, side)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_replay_equals_pil():
    dev = torch.device("cuda")
    for src, dst in CASES:
        a = page_like(*src)
        got = lanczos.resize(torch.from_numpy(a).to(dev), dst).cpu().numpy()
        np.testing.assert_array_equal(got, pil(a, dst), err_msg=f"{src} -> {dst}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fast_path_device_route(tiny_processor, images):
    """Pinned sources, non_blocking copies, resize + tiles + normalise on the GPU."""
    from vsplade.encoders.neural.processor import collate

    dev = torch.device("cuda")
    fp = FastPath(tiny_processor, device_resize=True)
    feats = [fp.from_image(im) for im in images]
    b = collate_fast(feats, 50283, dev)
    assert all(s is None or s.is_pinned() for s in b["sources_u8"])
    got = to_model_inputs(fp.lut_on(dev), b, dev, torch.float32)
    ref = collate([features(tiny_processor, im) for im in images], 50283)
    assert torch.equal(got["pixel_values"].cpu(), ref["pixel_values"])


def test_device_resize_default_and_checks(tokenizer_file, tiny_processor):
    """Default: on the device only when CUDA is there; the replay is LANCZOS-only, so another
    filter keeps PIL (and asking for the device route then is an error)."""
    assert FastPath(tiny_processor).device_resize == torch.cuda.is_available()
    assert FastPath(tiny_processor, device_resize=True).device_resize
    assert not FastPath(tiny_processor, device_resize=False).device_resize
    bicubic = build_processor(tokenizer_file, tile=64, image_seq_len=4, resample=int(Image.Resampling.BICUBIC))
    assert not FastPath(bicubic).device_resize
    with pytest.raises(ValueError, match="LANCZOS"):
        FastPath(bicubic, device_resize=True)
