"""ViDoRe v2 evaluation (`vsplade-train eval`), computed like the official `eval_vidore_v2.py`
(spec sections 4 and 7) and through the engines users deploy.

- `loading`: evaluation sets (ViDoRe v2 names, Hub ids, BEIR-layout dirs, image folders) -> `EvalDataset`
- `encode`: corpus -> cached encoded dir; queries -> {term: weight} (torch-free)
- `ranking`: engine index + search -> a full run (every page, zero-filled), latencies
- `metrics`: pytrec_eval metrics, official keys/rounding/averages, trec_eval tie order, run files
- `runner`: one evaluation over several datasets -> metrics.json + report.json
- `command`: the typer command
"""

from .loading import VIDORE_V2, DatasetError, EvalDataset, load_eval_dataset
from .metrics import metrics_json, retrieval_metrics, sparsity_stats, trec_order
from .runner import EvalConfig, EvalResult, evaluate

__all__ = [
    "VIDORE_V2", "DatasetError", "EvalDataset", "load_eval_dataset", "metrics_json", "retrieval_metrics",
    "sparsity_stats", "trec_order", "EvalConfig", "EvalResult", "evaluate",
]
