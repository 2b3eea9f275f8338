"""Seconds per training step and peak memory for the full-size V-SPLADE architecture.

Random weights (ModernVBERT shape: 22-layer ModernBERT 768 + SigLIP base 512/16), the recipe's
LoRA set-up and losses, AdamW; synthetic image batches from tests/data pages (query, page,
caption) or RLHN-shaped text batches. Prints a markdown table row per configuration.

    python benchmarks/train_step.py --batch-size 42 --device cuda --bf16          # the recipe, on a GPU
    python benchmarks/train_step.py --batch-size 1 --longest-edge 512 --steps 2   # CPU-sized
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "training"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="quality")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the recipe's per-device batch")
    ap.add_argument("--longest-edge", type=int, default=None, help="page resize (default 2048: up to 4x4 tiles)")
    ap.add_argument("--task", choices=["image", "text"], default="image")
    ap.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--no-checkpointing", action="store_true")
    args = ap.parse_args()

    from fixtures_train import CAPTIONS, TOKENIZER, image_files, make_rlhn_rows
    from PIL import Image

    from vsplade.encoders.neural.config import full_size_config, image_seq_len
    from vsplade.encoders.neural.model import build_model
    from vsplade.encoders.neural.processor import build_processor
    from vsplade_training.collator import TrainCollator
    from vsplade_training.model import VSpladeTrainModel, apply_lora
    from vsplade_training.recipes import load_recipe

    cfg = load_recipe(args.recipe)
    bs = args.batch_size or cfg.per_device_batch_size
    dev = torch.device(args.device)
    torch.manual_seed(0)
    config = full_size_config()
    net = apply_lora(build_model(config), cfg)
    model = VSpladeTrainModel(net, cfg).to(dev)
    if not args.no_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    proc = build_processor(TOKENIZER, tile=512, image_seq_len=image_seq_len(config), longest_edge=args.longest_edge)
    coll = TrainCollator(proc, caption_terms=cfg.caption_terms, max_caption_tokens=cfg.max_caption_tokens)
    files = image_files()
    if args.task == "image":
        caption = " ".join(CAPTIONS) * 4  # a few hundred tokens, like a Qwen3-VL caption
        items = [{"task": "image", "query": "which energy sources generate electricity at night",
                  "image": Image.open(files[i % len(files)]).convert("RGB"), "caption": caption, "hard_negatives": []}
                 for i in range(bs)]
    else:
        rows = make_rlhn_rows(max(bs, 2))
        long = " ".join(["passage text about energy reports and government records"] * 60)
        items = [{"task": "text", "query": rows["query"][i], "positive": long, "negatives": [long, long]}
                 for i in range(bs)]
    batch = {k: v.to(dev) for k, v in coll(items).items()}
    tiles = int(batch["passage_pixel_values"].shape[1]) if "passage_pixel_values" in batch else 0
    seq = int(batch["passage_input_ids"].shape[1])
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if args.bf16 else torch.autocast(dev.type, enabled=False)

    def step():
        with amp:
            loss = model(**batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB GPU"
        name = torch.cuda.get_device_name(0)
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB RSS"
        name = f"{platform.machine()} CPU x{torch.get_num_threads()} threads"
    print("| device | task | batch | tiles/page | passage seq | bf16 | ckpt | warm-up s | s/step (mean of %d) | peak memory |" % args.steps)
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {args.task} | {bs} | {tiles} | {seq} | {args.bf16} | {not args.no_checkpointing} | {warm:.1f} | "
          f"{sum(times) / len(times):.2f} | {peak} |")


if __name__ == "__main__":
    main()
