"""Training data: the ColPali-style image set, optional RLHN text triples, homogeneous batches.

Owns: loading (local `datasets` dir or Hub id), the query filter (with a logged count), the
caption column check, the RLHN sample, `TrainDataset` (one index space: image rows first,
then text rows) and `TaskAwareBatchSampler` (homogeneous batches at a text:image ratio,
reshuffled every epoch). Turning items into tensors is the collator's job (collator.py).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import Dataset, Sampler

log = logging.getLogger(__name__)

IMAGE, TEXT = "image", "text"


class DataError(ValueError):
    pass


def load_any(source: str, split: str = "train"):
    """A `datasets.Dataset` from a save_to_disk dir (Dataset or DatasetDict) or a Hub id."""
    import datasets

    p = Path(source)
    if p.exists():
        try:
            ds = datasets.load_from_disk(str(p))
        except FileNotFoundError as e:
            raise DataError(f"{p}: not a dataset saved with `datasets` save_to_disk ({e})") from None
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"{p}: no split {split!r} (has {list(ds)})")
            ds = ds[split]
        return ds
    return datasets.load_dataset(source, split=split)


@dataclass
class FilterReport:
    rows: int
    short_queries: int
    missing_captions: int
    kept: int


def prepare_image_dataset(
    ds,
    *,
    name: str,
    index_column: str = "index",
    caption_column: str | None = "caption",
    missing_captions: str = "error",
    min_query_chars: int = 5,
    hard_negatives_column: str | None = None,
):
    """Add the original row index, drop short queries, check captions. Returns (ds, report).

    `caption_column=None` means caption terms are off: the column is then not required.
    Filters read only the text columns, so no image is decoded here.
    """
    for col in ("query", "image"):
        if col not in ds.column_names:
            raise DataError(f"{name}: missing column {col!r} (has {ds.column_names})")
    if hard_negatives_column and hard_negatives_column not in ds.column_names:
        raise DataError(f"{name}: hard-negatives column {hard_negatives_column!r} not found (has {ds.column_names})")
    if index_column not in ds.column_names:
        ds = ds.add_column(index_column, list(range(len(ds))))
    rows = len(ds)
    ds = ds.filter(
        lambda q: [isinstance(x, str) and len(x.strip()) > min_query_chars for x in q],
        input_columns=["query"],
        batched=True,
    )
    short = rows - len(ds)
    if short:
        log.info("%s: dropped %d of %d rows with queries of <= %d characters", name, short, rows, min_query_chars)
    missing = 0
    if caption_column:
        if caption_column not in ds.column_names:
            raise DataError(
                f"{name}: no {caption_column!r} column but the caption terms are on; run "
                "`vsplade-train captions` and `vsplade-train merge-captions`, or set "
                "push_up_weight, caption_flops_weight and caption_rank_weight to 0"
            )
        caps = ds.select_columns([caption_column, index_column])
        bad = [
            r[index_column] for r in caps if not isinstance(r[caption_column], str) or not r[caption_column].strip()
        ]
        missing = len(bad)
        if bad and missing_captions == "error":
            raise DataError(
                f"{name}: {len(bad)} rows have no caption in column {caption_column!r} "
                f"(original indices {bad[:10]}{'...' if len(bad) > 10 else ''}); caption them or set missing_captions=drop"
            )
        if bad:
            drop = set(bad)
            ds = ds.filter(lambda i: [x not in drop for x in i], input_columns=[index_column], batched=True)
            log.info("%s: dropped %d rows without a caption", name, len(bad))
    return ds, FilterReport(rows=rows, short_queries=short, missing_captions=missing, kept=len(ds))


def sample_rlhn(ds, *, name: str, rows: int, seed: int, negatives: int, min_query_chars: int = 5):
    """Sample `rows` RLHN rows with the seed; keep rows with a positive and enough negatives."""
    for col in ("query", "positive_passages", "negative_passages"):
        if col not in ds.column_names:
            raise DataError(f"{name}: missing column {col!r} (has {ds.column_names})")
    ds = ds.shuffle(seed=seed)
    if rows and rows < len(ds):
        ds = ds.select(range(rows))
    n = len(ds)
    ds = ds.filter(
        lambda q, pos, neg: [
            isinstance(a, str) and len(a.strip()) > min_query_chars and len(b) > 0 and len(c) >= negatives
            for a, b, c in zip(q, pos, neg)
        ],
        input_columns=["query", "positive_passages", "negative_passages"],
        batched=True,
    )
    if n - len(ds):
        log.info("%s: dropped %d of %d text rows (short query, no positive or < %d negatives)", name, n - len(ds), n, negatives)
    return ds


def _passage_text(p: Any) -> str:
    if isinstance(p, dict):
        title, text = (p.get("title") or "").strip(), (p.get("text") or "").strip()
        return f"{title} {text}".strip() if title else text
    return str(p)


class TrainDataset(Dataset):
    """Image rows at [0, n_image), text rows at [n_image, n_image + n_text).

    Items are dicts with `task` = "image" (query, image, caption or None, hard_negatives:
    list of images) or "text" (query, positive, negatives: strings). RLHN picks one random
    positive and `negatives` random negatives per row, from (seed, epoch, row).
    """

    def __init__(
        self,
        image_ds,
        text_ds=None,
        *,
        caption_column: str | None = "caption",
        hard_negatives_column: str | None = None,
        num_hard_negatives: int = 1,
        seed: int = 0,
    ):
        self.image_ds = image_ds
        self.text_ds = text_ds
        self.caption_column = caption_column
        self.hard_negatives_column = hard_negatives_column
        self.num_hard_negatives = num_hard_negatives
        self.seed = seed
        self.epoch = 0
        self.n_image = len(image_ds) if image_ds is not None else 0
        self.n_text = len(text_ds) if text_ds is not None else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_image + self.n_text

    def task_of(self, idx: int) -> str:
        return IMAGE if idx < self.n_image else TEXT

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if idx < self.n_image:
            row = self.image_ds[int(idx)]
            item = {"task": IMAGE, "query": row["query"], "image": row["image"], "caption": None, "hard_negatives": []}
            if self.caption_column:
                item["caption"] = row[self.caption_column]
            if self.hard_negatives_column:
                hn = row[self.hard_negatives_column]
                hn = hn if isinstance(hn, list) else [hn]
                item["hard_negatives"] = [x for x in hn if x is not None][: self.num_hard_negatives]
            return item
        j = int(idx) - self.n_image
        row = self.text_ds[j]
        rng = random.Random(f"{self.seed}/{self.epoch}/{j}")
        pos = rng.choice(row["positive_passages"])
        negs = rng.sample(list(row["negative_passages"]), self.num_hard_negatives)
        return {"task": TEXT, "query": row["query"], "positive": _passage_text(pos), "negatives": [_passage_text(n) for n in negs]}


class TaskAwareBatchSampler(Sampler[list[int]]):
    """Homogeneous batches (all image or all text), `text_ratio` text batches per image batch.

    Each global batch (batch_size x num_replicas rows of one task) is yielded as
    `num_replicas` consecutive local batches, so accelerate's round-robin sharding gives every
    rank the same task in the same step (the all-gather in the loss needs equal shapes).
    Incomplete global batches are dropped. The order is reshuffled per epoch from
    (seed, epoch) — the official sampler never called set_epoch (spec section 10, bug 19).
    """

    def __init__(
        self,
        n_image: int,
        n_text: int,
        batch_size: int,
        text_ratio: float = 0.0,
        num_replicas: int = 1,
        seed: int = 0,
        dataset: TrainDataset | None = None,
    ):
        if batch_size < 1 or num_replicas < 1:
            raise ValueError("batch_size and num_replicas must be >= 1")
        self.n_image, self.n_text = n_image, n_text
        self.batch_size, self.num_replicas = batch_size, num_replicas
        self.text_ratio = text_ratio if n_text else 0.0
        self.seed = seed
        self.epoch = 0
        self.dataset = dataset
        g = batch_size * num_replicas
        self._n_img_batches = n_image // g
        self._n_txt_batches = n_text // g if self.text_ratio > 0 else 0
        if self._n_img_batches + self._n_txt_batches == 0:
            raise DataError(f"not enough rows ({n_image} image, {n_text} text) for one batch of {g}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return (self._n_img_batches + self._n_txt_batches) * self.num_replicas

    def task_order(self) -> list[str]:
        """Interleave: a text batch while text_emitted < ratio * (image_emitted + 1); leftovers last."""
        order, ni, nt = [], 0, 0
        while ni < self._n_img_batches or nt < self._n_txt_batches:
            if nt < self._n_txt_batches and (ni >= self._n_img_batches or nt < self.text_ratio * (ni + 1) - 1e-9):
                order.append(TEXT)
                nt += 1
            else:
                order.append(IMAGE)
                ni += 1
        return order

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        img = list(range(self.n_image))
        txt = list(range(self.n_image, self.n_image + self.n_text))
        rng.shuffle(img)
        rng.shuffle(txt)
        g, b = self.batch_size * self.num_replicas, self.batch_size
        pos = {IMAGE: 0, TEXT: 0}
        pools = {IMAGE: img, TEXT: txt}
        for task in self.task_order():
            start = pos[task]
            chunk = pools[task][start : start + g]
            pos[task] = start + g
            for r in range(self.num_replicas):
                yield chunk[r * b : (r + 1) * b]


def steps_per_epoch(sampler: TaskAwareBatchSampler, grad_accum: int) -> int:
    """Optimizer steps per epoch on each rank."""
    return max(1, math.ceil(len(sampler) // sampler.num_replicas / grad_accum))
