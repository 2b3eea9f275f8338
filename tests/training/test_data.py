"""Data loading, filtering, RLHN mixing and the homogeneous batch sampler."""

import logging
from collections import Counter

import datasets
import pytest

from vsplade_training.data import (
    IMAGE,
    TEXT,
    DataError,
    TaskAwareBatchSampler,
    TrainDataset,
    load_any,
    prepare_image_dataset,
    sample_rlhn,
)
from vsplade_training.recipes import RecipeError, load_recipe

from fixtures_train import QUERIES, image_dataset_dir, make_image_rows, rlhn_dir  # noqa: F401


def test_load_from_disk_and_datasetdict(image_dataset_dir, tmp_path):
    ds = load_any(str(image_dataset_dir))
    assert len(ds) == 10 and {"query", "image", "caption"} <= set(ds.column_names)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_any(str(tmp_path / "dd"), split="train")) == 10
    with pytest.raises(DataError, match="no split 'test'"):
        load_any(str(tmp_path / "dd"), split="test")


def test_short_queries_dropped_with_count_and_original_index(image_dataset_dir, caplog):
    ds = load_any(str(image_dataset_dir))
    with caplog.at_level(logging.INFO):
        out, rep = prepare_image_dataset(ds, name="tiny")
    short = [i for i, q in enumerate(QUERIES) if len(q.strip()) <= 5]
    assert rep.short_queries == len(short) == 2 and rep.kept == 8
    assert "dropped 2 of 10 rows" in caplog.text
    # the original row index survives the filter (merge-captions and captions join on it)
    assert out["index"] == [i for i in range(10) if i not in short]


def test_missing_caption_column_is_an_error_unless_caption_terms_off():
    ds = datasets.Dataset.from_dict(make_image_rows(4, with_captions=False))
    with pytest.raises(DataError, match="no 'caption' column.*merge-captions"):
        prepare_image_dataset(ds, name="nocap")
    out, rep = prepare_image_dataset(ds, name="nocap", caption_column=None)
    assert rep.kept == 3  # row 1 ("hi") is too short


def test_empty_captions_error_or_drop():
    rows = make_image_rows(4)
    rows["caption"][2] = "  "
    rows["caption"][3] = None
    ds = datasets.Dataset.from_dict(rows)
    with pytest.raises(DataError, match=r"2 rows have no caption .*\[2, 3\]"):
        prepare_image_dataset(ds, name="holes")
    out, rep = prepare_image_dataset(ds, name="holes", missing_captions="drop")
    assert out["index"] == [0] and rep.missing_captions == 2


def test_rlhn_sample_and_items(rlhn_dir):
    ds = sample_rlhn(load_any(str(rlhn_dir)), name="rlhn", rows=8, seed=3, negatives=2)
    assert len(ds) == 7  # the row with one negative is dropped
    img = datasets.Dataset.from_dict(make_image_rows(4, hard_negatives=True))
    data = TrainDataset(img, ds, hard_negatives_column="hard_negative", num_hard_negatives=2, seed=3)
    assert len(data) == 11 and data.task_of(3) == IMAGE and data.task_of(4) == TEXT
    it = data[0]
    assert it["task"] == IMAGE and it["caption"] and len(it["hard_negatives"]) == 1
    t = data[5]
    assert t["task"] == TEXT and len(t["negatives"]) == 2 and len(set(t["negatives"])) == 2
    assert t["positive"].startswith("pos title")
    # same (seed, epoch, row) -> same pick; the choice is random across epochs/rows but reproducible
    assert data[5] == data[5]
    picks = set()
    for e in range(6):
        data.set_epoch(e)
        picks.add(tuple(data[5]["negatives"]))
    assert len(picks) > 1


def test_sampler_homogeneous_ratio_and_epochs():
    s = TaskAwareBatchSampler(n_image=12, n_text=40, batch_size=2, text_ratio=3, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 6 + 20
    tasks = ["T" if b[0] >= 12 else "I" for b in batches]
    for b in batches:  # homogeneous
        assert all((i >= 12) == (b[0] >= 12) for i in b)
    assert "".join(tasks[:8]) == "TTTITTTI"  # 3 text batches per image batch
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))  # every row at most once per epoch
    s.set_epoch(1)
    assert list(s) != batches  # reshuffled per epoch
    s.set_epoch(0)
    assert list(s) == batches  # and reproducible


def test_sampler_groups_for_ranks():
    """Two replicas: consecutive local batches form one global batch of one task."""
    s = TaskAwareBatchSampler(n_image=9, n_text=16, batch_size=2, text_ratio=1, num_replicas=2, seed=0)
    batches = list(s)
    assert len(batches) % 2 == 0 and all(len(b) == 2 for b in batches)
    for a, b in zip(batches[0::2], batches[1::2]):
        assert (a[0] >= 9) == (b[0] >= 9)
    counts = Counter("T" if b[0] >= 9 else "I" for b in batches)
    assert counts == {"I": 4, "T": 8}  # 9 // 4 = 2 image and 16 // 4 = 4 text global batches
    with pytest.raises(DataError, match="not enough rows"):
        TaskAwareBatchSampler(n_image=3, n_text=0, batch_size=2, num_replicas=2)


def test_recipes_load_and_reject_unknown_keys(tmp_path):
    q = load_recipe("quality")
    assert (q.temperature, q.flops_weight, q.push_up_weight, q.tau_push, q.lr) == (0.1, 0.01, 5.0, 0.5, 5e-4)
    assert q.caption_terms
    e = load_recipe("efficient")
    assert e.flops_weight > q.flops_weight
    off = load_recipe("quality", ["push_up_weight=0", "caption_flops_weight=0", "caption_rank_weight=0"])
    assert not off.caption_terms
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-4\nlearning_rate: 3\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: unknown keys \['learning_rate'\]"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="overlap_type"):
        load_recipe("quality", ["overlap_type=words"])
    with pytest.raises(RecipeError, match="unknown recipe"):
        load_recipe("fastest")
