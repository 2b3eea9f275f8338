"""`vsplade-train eval`: the typer function (registered in `vsplade_training.cli`)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

from .loading import VIDORE_V2, VIDORE_V2_ALL


def _slug(model: str) -> str:
    p = Path(model)
    if p.exists():
        return p.resolve().name or "model"
    return model.replace("/", "__")


def _parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--engine-option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)  # numbers, booleans
        except ValueError:
            out[k.strip()] = v
    return out


def eval_command(
    datasets: list[str] = typer.Argument(
        None, metavar="[DATASET]...",
        help=f"ViDoRe v2 names ({', '.join(VIDORE_V2)}; README spellings *_v2 work too; default "
             f"{VIDORE_V2_ALL} = all four), Hub ids, BEIR-layout dirs, or an image folder with a queries/qrels .json"),
    model: str = typer.Option(..., "--model", "-m", help="V-SPLADE checkpoint (dir or Hub id) or 'lexical'"),
    engine: str = typer.Option("memory", help="memory (exact), lucene, opensearch, or another installed engine"),
    data_dir: Optional[Path] = typer.Option(None, help="local ViDoRe copies: DATA_DIR/<name>/{corpus,queries,qrels}"),
    work_dir: Optional[Path] = typer.Option(None, help="encoded corpora, indexes, results (default ./vsplade-eval/<model>)"),
    out: Optional[Path] = typer.Option(None, help="results dir (default WORK_DIR/results/<engine>)"),
    depth: Optional[int] = typer.Option(None, help="hits asked from the engine per query (default: every page)"),
    quantize: Optional[float] = typer.Option(None, help="memory engine: round weights to integer impacts at this scale"),
    url: Optional[str] = typer.Option(None, help="opensearch: cluster URL (credentials from the connector's env vars)"),
    index_prefix: str = typer.Option("vsplade-eval-", help="opensearch: index name = PREFIX + dataset"),
    engine_option: list[str] = typer.Option([], "--engine-option", help="KEY=VALUE passed to the engine (repeatable)"),
    reencode: bool = typer.Option(False, help="encode the corpora again even when WORK_DIR/encoded has them"),
    reindex: bool = typer.Option(False, help="rebuild the engine's index instead of resuming it"),
    text_column: Optional[str] = typer.Option(None, help="corpus column with page text (used by --model lexical)"),
    device: Optional[str] = typer.Option(None, help="neural encoder device (cpu, cuda, cuda:1)"),
    batch_size: Optional[int] = typer.Option(None, help="pages per encoder batch"),
    offline: bool = typer.Option(False, help="never try the Hub (also when HF_HUB_OFFLINE=1)"),
    json_out: bool = typer.Option(False, "--json", help="print metrics.json to stdout"),
    progress: bool = typer.Option(True, help="progress bars on stderr"),
):
    """Evaluate on ViDoRe v2 (or any ViDoRe-style set) like the paper: nDCG/MAP/Recall/P@k with
    pytrec_eval, FLOPs and nnz, through the engine you deploy; writes metrics.json + report.json."""
    from vsplade.encoders import ModelError
    from vsplade.engines import EngineError, IndexMismatchError
    from vsplade.encoded import EncodedDirError

    from .loading import DatasetError
    from .runner import EvalConfig, evaluate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # one warning per image page without a text layer would drown the output: the summary line
    # and report.json count the empty pages instead
    logging.getLogger("vsplade.encoders.lexical").setLevel(logging.ERROR)
    try:
        opts = _parse_options(engine_option)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    if url:
        opts["url"] = url
    if engine == "opensearch":
        opts["index_prefix"] = index_prefix
        opts.setdefault("progress", progress)
    enc_opts = {k: v for k, v in (("device", device),) if v is not None}
    if batch_size and model != "lexical":
        enc_opts["batch_size"] = batch_size
    cfg = EvalConfig(
        model=model, datasets=datasets or [], engine=engine,
        work_dir=work_dir or Path("vsplade-eval") / _slug(model), out_dir=out, data_dir=data_dir,
        engine_options=opts, depth=depth, quantize=quantize, reencode=reencode, reindex=reindex,
        text_column=text_column, encoder_options=enc_opts, batch_size=batch_size,
        progress=None if progress else False, hub=not offline and os.environ.get("HF_HUB_OFFLINE") != "1",
    )

    def show(name: str, r: dict) -> None:
        t = r["timings_s"]
        typer.echo(
            f"{name}: ndcg@5 {r['ndcg_at_5']:.4f} ndcg@10 {r['ndcg_at_10']:.4f} recall@100 {r['recall_at_100']:.4f} "
            f"flops {r['eval_flops']:.3f} | pages {r['num_pages']} ({r['empty_pages']} empty) queries "
            f"{r['num_queries']} | encode "
            f"{t['encode_corpus']:.1f}s index {t['index']:.1f}s search {t['search']:.2f}s "
            f"(p50 {r['latency'].get('p50_ms', 0):.2f} ms)", err=json_out)

    try:
        result = evaluate(cfg, on_dataset=show)
    except (DatasetError, EngineError, IndexMismatchError, EncodedDirError, ModelError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    avg = result.metrics["_average"]
    if json_out:
        typer.echo(json.dumps(result.metrics))
    else:
        typer.echo(f"average over {avg['num_datasets']} dataset(s): ndcg@5 {avg.get('ndcg_at_5', 0):.4f} "
                   f"ndcg@10 {avg.get('ndcg_at_10', 0):.4f} flops {avg.get('eval_flops', 0):.3f}")
        typer.echo(f"wrote {result.metrics_path} and {result.report_path}")
