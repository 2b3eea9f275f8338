"""Caption one contiguous shard of a dataset, resumably (spec section 6)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .shards import append_records, done_indices, repair_tail, shard_path, shard_range

log = logging.getLogger(__name__)


@dataclass
class CaptionSummary:
    path: Path
    rows: range
    skipped: int  # already in the file from an earlier run
    written: int
    tokens: int
    seconds: float


def _to_rgb(img):
    from PIL import Image

    if isinstance(img, dict) and img.get("bytes") is not None:
        import io

        img = Image.open(io.BytesIO(img["bytes"]))
    elif isinstance(img, (str, Path)):
        img = Image.open(img)
    if not hasattr(img, "convert"):
        raise TypeError(f"not an image: {type(img).__name__}")
    return img.convert("RGB")


def caption_shard(
    dataset,
    backend,
    out_dir: str | Path,
    *,
    shard_id: int = 0,
    num_shards: int = 1,
    batch_size: int = 64,
    limit: int | None = None,
    image_column: str = "image",
) -> CaptionSummary:
    """Caption rows of shard `shard_id` not yet in its file; row index = dataset position.

    `dataset` is the training set as saved (positions are the original row indices that
    merge-captions joins on). `limit` caps the rows captioned in this call (for trials).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = shard_range(len(dataset), shard_id, num_shards)
    path = shard_path(out, rows.start)
    if repair_tail(path):
        log.warning("%s: removed a partial last line left by an interrupted run", path)
    done = done_indices(path)
    todo = [i for i in rows if i not in done]
    if limit is not None:
        todo = todo[:limit]
    log.info("shard %d/%d rows %d..%d: %d done, %d to caption -> %s", shard_id, num_shards, rows.start, rows.stop - 1, len(done & set(rows)), len(todo), path)
    t0, tokens, written = time.time(), 0, 0
    col = dataset.select_columns([image_column]) if hasattr(dataset, "select_columns") else dataset
    for b in range(0, len(todo), batch_size):
        idx = todo[b : b + batch_size]
        images = []
        for i in idx:
            try:
                images.append(_to_rgb(col[i][image_column]))
            except Exception as e:  # name the row: one bad image should be findable
                raise ValueError(f"row {i}: cannot read column {image_column!r} ({e})") from e
        outs = backend.generate(images)
        append_records(path, ({"index": i, "caption": c, "num_tokens": n} for i, (c, n) in zip(idx, outs)))
        written += len(idx)
        tokens += sum(n for _, n in outs)
        log.info("  %d/%d captioned, %.1f s", written, len(todo), time.time() - t0)
    return CaptionSummary(path, rows, len(done & set(rows)), written, tokens, time.time() - t0)
