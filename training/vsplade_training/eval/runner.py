"""One evaluation: for each dataset, encode the corpus (cached), encode the queries, index and
search with one engine, write the TREC run and qrels, compute the metrics; then write
``metrics.json`` (official shape) and ``report.json`` (engine, timings, latency, counts).

Layout under the work dir::

    encoded/<dataset>/                 encoded dir (reused by every engine and run)
    indexes/<engine>/<dataset>/        on-disk indexes (lucene; memory with --quantize)
    results/<engine>/metrics.json      official metrics.json keys and rounding
    results/<engine>/report.json       timings (encode / index / search), latency, nnz, notes
    results/<engine>/runs/<dataset>.trec, qrels/<dataset>.qrels   (trec_eval can re-check)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vsplade.encoders import DocumentEncoder, load_encoder, load_query_encoder

from .encode import encode_corpus, encode_queries
from .loading import DatasetError, EvalDataset, expand, load_eval_dataset
from .metrics import metrics_json, retrieval_metrics, run_lines, sparsity_stats
from .ranking import build_index, rank

log = logging.getLogger(__name__)

TIE_BREAK = ("every page is ranked for every query (pages the engine did not return score 0.0); "
             "ties: score desc, then page id desc in byte order (trec_eval/pytrec_eval order)")


@dataclass
class EvalConfig:
    model: str
    datasets: Sequence[str] = ()
    engine: str = "memory"
    work_dir: Path = Path("vsplade-eval")
    out_dir: Path | None = None
    data_dir: Path | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    depth: int | None = None
    quantize: float | None = None
    reencode: bool = False
    reindex: bool = False
    text_column: str | None = None
    encoder_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    progress: bool | None = None
    hub: bool = True

    @property
    def engine_label(self) -> str:
        return self.engine + (f"-q{self.quantize:g}" if self.quantize is not None else "")

    @property
    def results_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path(self.work_dir) / "results" / self.engine_label


@dataclass
class EvalResult:
    metrics: dict  # metrics.json content
    report: dict  # report.json content
    metrics_path: Path
    report_path: Path


def evaluate(cfg: EvalConfig, on_dataset: Callable[[str, dict], None] | None = None) -> EvalResult:
    work = Path(cfg.work_dir)
    res_dir = cfg.results_dir
    (res_dir / "runs").mkdir(parents=True, exist_ok=True)
    (res_dir / "qrels").mkdir(parents=True, exist_ok=True)
    qenc = load_query_encoder(cfg.model)
    shared_encoder: list[DocumentEncoder] = []

    def make_encoder() -> DocumentEncoder:
        # one neural model for all datasets; encoders fitted on a corpus (lexical) are per dataset
        if shared_encoder:
            return shared_encoder[0]
        enc = load_encoder(cfg.model, **cfg.encoder_options)
        if not enc.needs_fit:
            shared_encoder.append(enc)
        return enc

    per_dataset: dict[str, dict] = {}
    reports: dict[str, dict] = {}
    for spec in expand(cfg.datasets):
        t_load = time.perf_counter()
        ds = load_eval_dataset(spec, cfg.data_dir, text_column=cfg.text_column, hub=cfg.hub)
        load_s = time.perf_counter() - t_load
        if ds.name in per_dataset:
            raise DatasetError(f"dataset {ds.name} given twice")
        m, rep = evaluate_dataset(ds, cfg, work, res_dir, qenc, make_encoder)
        rep["timings_s"]["load"] = round(load_s, 4)
        per_dataset[ds.name] = m
        reports[ds.name] = rep
        if on_dataset:
            on_dataset(ds.name, {**m, **rep})
    metrics = metrics_json(per_dataset)
    report = {
        "model": cfg.model,
        "engine": cfg.engine,
        "quantize": cfg.quantize,
        "engine_options": {k: v for k, v in cfg.engine_options.items() if not _secret(k)},
        "depth": cfg.depth or "all pages",
        "tie_break": TIE_BREAK,
        "datasets": reports,
        "totals_s": {k: round(sum(r["timings_s"][k] for r in reports.values()), 4)
                     for k in ("encode_corpus", "encode_queries", "index", "open", "search")},
    }
    metrics_path = res_dir / "metrics.json"
    report_path = res_dir / "report.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return EvalResult(metrics, report, metrics_path, report_path)


def _secret(key: str) -> bool:
    k = key.lower()
    return any(s in k for s in ("password", "secret", "token", "api_key", "auth"))


def evaluate_dataset(ds: EvalDataset, cfg: EvalConfig, work: Path, res_dir: Path, qenc, make_encoder):
    corpus = encode_corpus(ds, cfg.model, work / "encoded" / ds.name, make_encoder, reencode=cfg.reencode,
                           batch_size=cfg.batch_size, progress=cfg.progress)
    queries = encode_queries(qenc, ds.queries)
    engine, index_s = build_index(cfg.engine, ds.name, corpus.path, work / "indexes", cfg.engine_options,
                                  reindex=cfg.reindex, quantize=cfg.quantize, progress=cfg.progress)
    er = rank(engine, queries.ids, queries.terms, ds.corpus_ids, depth=cfg.depth, quantize=cfg.quantize)

    tag = f"vsplade-{cfg.engine_label}"
    (res_dir / "runs" / f"{ds.name}.trec").write_text("\n".join(run_lines(er.run, tag)) + "\n")
    (res_dir / "qrels" / f"{ds.name}.qrels").write_text(ds.qrels_trec())

    m = retrieval_metrics(ds.qrels, er.run)
    m.update(sparsity_stats(queries.matrix, corpus.batch.matrix))
    rep = {
        "origin": ds.origin,
        "num_pages": len(ds.corpus_ids),
        "num_queries": len(ds.queries),
        "num_queries_judged": sum(1 for q in ds.qrels if q in ds.queries),
        "queries_dropped_by_language": ds.dropped_queries,
        "empty_pages": int((corpus.batch.matrix.getnnz(axis=1) == 0).sum()),
        "empty_queries": sum(1 for t in queries.terms if not t),
        "encoded_dir": str(corpus.path),
        "pages_encoded_now": corpus.encoded_pages,
        "hits_returned": er.returned_hits,
        "latency": er.latency_summary(),
        "timings_s": {
            "encode_corpus": round(corpus.seconds, 4),
            "encode_queries": round(queries.seconds, 4),
            "index": round(index_s, 4),
            "open": round(er.open_seconds, 4),
            "search": round(er.search_seconds, 4),
        },
        "warnings": corpus.warnings[:5] + ([f"... {len(corpus.warnings) - 5} more"] if len(corpus.warnings) > 5 else []),
    }
    return m, rep
