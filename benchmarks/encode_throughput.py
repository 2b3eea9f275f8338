"""Page-encoding throughput of the full-size V-SPLADE architecture (random weights).

For pages of 1, 5 and 17 tiles (longest edge 512 / 1024 / 2048 px, 512 px tiles) and each batch
size, prints pages/s and where the time goes: render (pdfium, a real PDF page at the tile
resolution), preprocess (Idefics3 processor), forward (vision + text tower), pooling (MLM
head + chunked max), sparse+write (CSR, encoded dir). Peak memory: CUDA max allocated on GPU,
the process's peak RSS on CPU (each configuration runs in a fresh subprocess).

    python benchmarks/encode_throughput.py                       # CPU: batch 1, 1 page each
    python benchmarks/encode_throughput.py --device cuda --batch-sizes 1 8 16 32 --pages 64
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiles", type=int, nargs="+", default=[1, 5, 17], choices=sorted(EDGES))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    p.add_argument("--pages", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
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
