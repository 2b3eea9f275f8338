"""`vsplade-train train | captions | merge-captions`: plain functions registered in cli.py.

Multi-GPU: `torchrun --nproc_per_node N -m vsplade_training.cli train ...` or
`accelerate launch -m vsplade_training.cli train ...` (one process per GPU; the loss gathers
queries, passages and hard negatives across ranks).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger("vsplade_training")


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def train(
    recipe: str = typer.Option("quality", help="recipe name (quality, efficient) or a .yaml/.json path"),
    set_: list[str] = typer.Option([], "--set", help="override a recipe key: --set lr=1e-4 (repeatable)"),
    dataset: Optional[str] = typer.Option(None, help="training set: `datasets` dir or Hub id (overrides the recipe)"),
    model: Optional[str] = typer.Option(None, help="ModernVBert backbone or V-SPLADE export (overrides the recipe)"),
    output_dir: Optional[str] = typer.Option(None, help="checkpoints and export go here"),
    resume: Optional[str] = typer.Option(None, help="checkpoint dir to resume from, or 'last'"),
    export: bool = typer.Option(True, help="write OUTPUT_DIR/export (checkpoint) and OUTPUT_DIR/export/bundle at the end"),
):
    """Train V-SPLADE with a recipe; checkpoints resume; the export loads with `vsplade encode --model`."""
    import torch

    from .export import export_trained
    from .recipes import RecipeError, load_recipe, parse_overrides
    from .trainer import make_trainer

    _setup_logging()
    try:
        overrides = parse_overrides(set_)
        for k, v in (("dataset", dataset), ("model", model), ("output_dir", output_dir)):
            if v is not None:
                overrides[k] = v
        cfg = load_recipe(recipe, overrides)
        if not cfg.dataset or not cfg.model:
            raise RecipeError("dataset and model must be set (recipe, --dataset/--model or --set)")
    except (RecipeError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    trainer = make_trainer(cfg)
    out = Path(cfg.output_dir)
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    ckpt = None
    if resume == "last":
        from transformers.trainer_utils import get_last_checkpoint

        ckpt = get_last_checkpoint(str(out))
        if ckpt is None:
            log.info("no checkpoint in %s: starting from scratch", out)
    elif resume:
        ckpt = resume
    trainer.train(resume_from_checkpoint=ckpt)
    if export and trainer.is_world_process_zero():
        tok_file = _tokenizer_file(cfg.model)
        paths = export_trained(trainer.accelerator.unwrap_model(trainer.model), out / "export", tok_file,
                               dtype=torch.bfloat16, longest_edge=cfg.image_longest_edge)
        typer.echo(f"exported {paths['checkpoint']} (bundle: {paths['bundle']})")


def _tokenizer_file(model: str) -> Path:
    p = Path(model) / "tokenizer.json"
    if p.is_file():
        return p
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(model, "tokenizer.json"))


def captions(
    dataset: str = typer.Argument(..., help="training set (`datasets` dir or Hub id); row position = index"),
    out_dir: Path = typer.Option(..., "--out", help="dir of caption_{start:06d}.jsonl files"),
    model: str = typer.Option("Qwen/Qwen3-VL-30B-A3B-Instruct", help="captioning VLM (dir or Hub id)"),
    backend: str = typer.Option("vllm", help="vllm (GPU, batched) or transformers (any machine, slow)"),
    split: str = typer.Option("train"),
    shard_id: int = typer.Option(0, help="this worker's shard (contiguous rows)"),
    num_shards: int = typer.Option(1, help="number of workers (one per GPU)"),
    batch_size: int = typer.Option(64),
    max_new_tokens: int = typer.Option(4096),
    limit: Optional[int] = typer.Option(None, help="caption at most this many rows in this call"),
    device: Optional[str] = typer.Option(None, help="transformers backend: cpu, cuda, cuda:1..."),
    tensor_parallel: int = typer.Option(1, help="vllm backend: GPUs per worker"),
):
    """Caption the training images (greedy, the official prompt); reruns resume."""
    from .captions.backends import make_backend
    from .captions.run import caption_shard
    from .data import load_any

    _setup_logging()
    ds = load_any(dataset, split)
    opts = {"max_new_tokens": max_new_tokens}
    if backend == "transformers":
        opts["device"] = device
    elif backend == "vllm":
        opts["tensor_parallel"] = tensor_parallel
    try:
        be = make_backend(backend, model, **opts)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    s = caption_shard(ds, be, out_dir, shard_id=shard_id, num_shards=num_shards, batch_size=batch_size, limit=limit)
    typer.echo(json.dumps({"file": str(s.path), "rows": [s.rows.start, s.rows.stop], "already_done": s.skipped,
                           "written": s.written, "tokens": s.tokens, "seconds": round(s.seconds, 1)}))


def merge_captions(
    dataset: str = typer.Argument(..., help="training set (`datasets` dir or Hub id)"),
    captions_path: Path = typer.Argument(..., metavar="CAPTIONS", help="caption JSONL file or dir of caption_*.jsonl"),
    out: Path = typer.Option(..., "--out", help="where to save the merged dataset (save_to_disk)"),
    split: str = typer.Option("train"),
    index_column: str = typer.Option("index", help="original row index column (row position when absent)"),
    caption_column: str = typer.Option("caption"),
    overwrite: bool = typer.Option(False, help="replace an existing caption column"),
    report: Optional[Path] = typer.Option(None, help="write the merge report (JSON) here; default OUT/merge_report.json"),
):
    """Join captions into the training set by original row index; report rows left without one."""
    from .captions.merge import merge_captions as merge, write_report
    from .captions.shards import CaptionFileError
    from .data import load_any

    _setup_logging()
    ds = load_any(dataset, split)
    try:
        merged, rep = merge(ds, captions_path, index_column=index_column, caption_column=caption_column,
                            overwrite=overwrite)
    except (CaptionFileError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    merged.save_to_disk(str(out))
    write_report(rep, report or out / "merge_report.json")
    summary = {k: v for k, v in rep.to_dict().items() if k != "missing_indices"}
    summary["missing_first"] = rep.missing_indices[:20]
    typer.echo(json.dumps(summary))
    if rep.missing:
        raise typer.Exit(1)
