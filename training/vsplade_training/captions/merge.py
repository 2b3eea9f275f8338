"""Join caption JSONL files into the training set by original row index (the official code
has no such step, spec section 10 bug 5).

The join key is the dataset's index column when it has one, else the row position (what
the captioner used). Rows without a caption get None and are listed in the report; captions
whose index is not in the dataset are counted as orphans.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .shards import read_captions

log = logging.getLogger(__name__)


@dataclass
class MergeReport:
    rows: int
    captioned: int
    missing: int
    orphans: int
    missing_indices: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def merge_captions(
    dataset,
    captions: str | Path,
    *,
    index_column: str = "index",
    caption_column: str = "caption",
    overwrite: bool = False,
):
    """Returns (dataset with `caption_column` and `index_column`, MergeReport)."""
    caps, warnings = read_captions(captions)
    if index_column not in dataset.column_names:
        dataset = dataset.add_column(index_column, list(range(len(dataset))))
    if caption_column in dataset.column_names:
        if not overwrite:
            raise ValueError(f"the dataset already has a {caption_column!r} column; pass overwrite to replace it")
        dataset = dataset.remove_columns([caption_column])
    keys = dataset[index_column]
    values = [caps.get(k) for k in keys]
    missing = [k for k, v in zip(keys, values) if v is None]
    orphans = len(set(caps) - set(keys))
    from datasets import Value

    dataset = dataset.add_column(caption_column, values, feature=Value("string"))
    report = MergeReport(
        rows=len(keys),
        captioned=len(keys) - len(missing),
        missing=len(missing),
        orphans=orphans,
        missing_indices=missing,
        warnings=warnings,
    )
    if missing:
        log.warning("%d of %d rows have no caption (first: %s)", len(missing), len(keys), missing[:10])
    if orphans:
        log.warning("%d captions have an index that is not in the dataset", orphans)
    return dataset, report


def write_report(report: MergeReport, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
