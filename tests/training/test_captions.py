"""Caption shards (resume, crash repair), the transformers backend end to end with a tiny
random VLM, and merge-captions with its report."""

import json

import datasets
import pytest

from vsplade_training.captions import caption_shard, merge_captions, qwen_raw_prompt, read_captions, shard_path, shard_range
from vsplade_training.captions.backends import TransformersCaptioner
from vsplade_training.captions.prompt import DOCUMENT_PROMPT
from vsplade_training.captions.shards import CaptionFileError, done_indices, repair_tail
from vsplade_training.data import prepare_image_dataset

from fixtures_train import image_dataset_dir, make_image_rows, tiny_vlm_dir  # noqa: F401


class CountingBackend:
    """Deterministic stand-in for a VLM, for the bookkeeping tests (the real one is below)."""

    def __init__(self):
        self.calls = []

    def generate(self, images):
        self.calls.append(len(images))
        return [(f"caption of a {im.size[0]}x{im.size[1]} page", 7) for im in images]


def test_shard_range_by_hand():
    assert [shard_range(10, s, 3) for s in range(3)] == [range(0, 4), range(4, 8), range(8, 10)]
    assert shard_range(2, 2, 3) == range(2, 2)
    with pytest.raises(ValueError):
        shard_range(10, 3, 3)


def test_official_prompt_shape():
    p = qwen_raw_prompt()
    assert p.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>You are an assistant")
    assert p.endswith("Answer ONLY with the caption.<|im_end|>\n<|im_start|>assistant\n")
    assert "system" not in p and "maximum 3000 characters" in DOCUMENT_PROMPT


def test_resume_skips_done_rows_and_repairs_a_cut_line(tmp_path):
    ds = datasets.Dataset.from_dict(make_image_rows(6, with_captions=False))
    be = CountingBackend()
    s = caption_shard(ds, be, tmp_path, shard_id=0, num_shards=2, batch_size=2, limit=2)
    assert s.path == shard_path(tmp_path, 0) and s.written == 2 and be.calls == [2]
    # simulate a crash in the middle of a line
    with open(s.path, "a") as f:
        f.write('{"index": 2, "capt')
    with pytest.raises(CaptionFileError, match=r"caption_000000.jsonl:3: invalid JSON"):
        read_captions(s.path)
    s2 = caption_shard(ds, be, tmp_path, shard_id=0, num_shards=2, batch_size=2)
    assert (s2.skipped, s2.written) == (2, 1) and be.calls == [2, 1]
    recs = [json.loads(line) for line in s2.path.read_text().splitlines()]
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert all(r["num_tokens"] == 7 for r in recs)
    # a finished shard does nothing
    s3 = caption_shard(ds, be, tmp_path, shard_id=0, num_shards=2)
    assert s3.written == 0 and be.calls == [2, 1]
    # shard 1 writes its own file starting at its first row
    s4 = caption_shard(ds, be, tmp_path, shard_id=1, num_shards=2)
    assert s4.path.name == "caption_000003.jsonl" and s4.written == 3


def test_repair_tail_drops_invalid_last_line(tmp_path):
    p = tmp_path / "caption_000000.jsonl"
    p.write_text('{"index": 0, "caption": "a", "num_tokens": 1}\n{"index": 1, "cap\n')
    assert repair_tail(p) > 0
    assert done_indices(p) == {0}


def test_merge_reports_missing_rows_and_orphans(tmp_path):
    ds = datasets.Dataset.from_dict(make_image_rows(5, with_captions=False))
    (tmp_path / "caption_000000.jsonl").write_text(
        "".join(json.dumps({"index": i, "caption": f"cap {i}", "num_tokens": 2}) + "\n" for i in (0, 2, 3))
    )
    (tmp_path / "caption_000005.jsonl").write_text(json.dumps({"index": 9, "caption": "orphan", "num_tokens": 1}) + "\n")
    merged, rep = merge_captions(ds, tmp_path)
    assert merged["caption"] == ["cap 0", None, "cap 2", "cap 3", None]
    assert (rep.rows, rep.captioned, rep.missing, rep.orphans, rep.missing_indices) == (5, 3, 2, 1, [1, 4])
    with pytest.raises(ValueError, match="already has a 'caption' column"):
        merge_captions(merged, tmp_path)
    # join goes by the original index column, not by position, once rows were filtered
    filtered = ds.add_column("index", list(range(5))).select([2, 3])
    m2, r2 = merge_captions(filtered, tmp_path)
    assert m2["caption"] == ["cap 2", "cap 3"] and r2.missing == 0


def test_transformers_backend_end_to_end_then_merge(tmp_path, tiny_vlm_dir):
    ds = datasets.Dataset.from_dict(make_image_rows(5, with_captions=False))
    be = TransformersCaptioner(str(tiny_vlm_dir), device="cpu", max_new_tokens=6)
    assert "Answer ONLY with the caption." in be.prompt  # the official instruction via the chat template
    for shard in range(2):
        caption_shard(ds, be, tmp_path / "caps", shard_id=shard, num_shards=2, batch_size=2)
    caps, _ = read_captions(tmp_path / "caps")
    assert sorted(caps) == [0, 1, 2, 3, 4]
    recs = [json.loads(x) for f in sorted((tmp_path / "caps").glob("*.jsonl")) for x in f.read_text().splitlines()]
    assert all(1 <= r["num_tokens"] <= 6 and r["caption"] == r["caption"].strip() for r in recs)
    # greedy: the same image captioned again gives the same text
    again = be.generate([ds[0]["image"].convert("RGB")])[0][0]
    assert again == caps[0]
    merged, rep = merge_captions(ds, tmp_path / "caps")
    assert rep.missing == 0 and merged["caption"] == [caps[i] for i in range(5)]
    # the merged set is accepted by the training data loader (captions present for every row)
    assert all(c for c in merged["caption"]), merged["caption"]
    out_dir = tmp_path / "merged"
    merged.save_to_disk(str(out_dir))
    _, frep = prepare_image_dataset(datasets.load_from_disk(str(out_dir)), name="merged")
    assert frep.missing_captions == 0 and frep.kept == 3  # rows 1 ("hi") and 4 (blank) are short queries
