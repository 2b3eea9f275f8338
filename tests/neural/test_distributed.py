"""Multi-process encoding: per-rank shards merge into one encoded dir equal to a one-process run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vsplade.encoded import EncodedDir
from vsplade.encoders.neural import VSpladeEncoder
from vsplade.encoders.neural.distributed import encode_rank, merge_ranks, owner
from vsplade.pipeline import encoder_info


@pytest.fixture(scope="module")
def encoder(checkpoint_fp32):
    return VSpladeEncoder.from_pretrained(str(checkpoint_fp32), batch_size=4)


def _single(encoder, inputs, tmp_path, model):
    from vsplade.encoded import EncodedDirWriter
    from vsplade.pipeline import index_pages

    out = tmp_path / "single"
    index_pages(inputs, encoder, lambda info: EncodedDirWriter(out, info), model, dpi=30, progress=False)
    return EncodedDir(out).load()


def test_ranks_merge_into_one_dir_and_resume(encoder, checkpoint_fp32, pdf_dir, data_dir, tmp_path):
    model = str(checkpoint_fp32)
    inputs = [str(pdf_dir / "byaldi_financial_report.pdf"), str(data_dir / "sample_page.png")]
    want = _single(encoder, inputs, tmp_path, model)
    assert len({owner(i, 2) for i in want.ids}) == 2, "both ranks must own pages"
    out = tmp_path / "multi"
    s0 = encode_rank(inputs, encoder, out, 0, 2, model, dpi=30)
    s1 = encode_rank(inputs, encoder, out, 1, 2, model, dpi=30)
    assert s0["indexed"] + s1["indexed"] == len(want.ids)
    # a crashed rank re-run skips what its shard already holds
    assert encode_rank(inputs, encoder, out, 1, 2, model, dpi=30)["indexed"] == 0
    res = merge_ranks(out, encoder_info(encoder, model))
    assert res["total"] == len(want.ids)
    assert not (out / "ranks").exists()
    got = EncodedDir(out).load()
    assert sorted(got.ids) == sorted(want.ids)
    order = [got.ids.index(i) for i in want.ids]
    np.testing.assert_allclose(got.matrix[order].toarray(), want.matrix.toarray(), rtol=1e-4, atol=1e-5)
    # after the merge, a new run with a different world size encodes nothing again
    assert encode_rank(inputs, encoder, out, 0, 3, model, dpi=30)["indexed"] == 0


@pytest.mark.slow
def test_torchrun_two_processes(checkpoint_fp32, data_dir, tmp_path):
    out = tmp_path / "tr"
    imgs = [str(data_dir / "sample_page.png"), str(data_dir / "vidore_samples")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29611",
           "-m", "vsplade.encoders.neural.distributed", *imgs, "--model", str(checkpoint_fp32), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    merged = json.loads(res.stdout.strip().splitlines()[-1])
    n = 1 + len([p for p in (data_dir / "vidore_samples").iterdir() if p.suffix in (".jpeg", ".jpg")])
    assert merged["total"] == n
    assert len(EncodedDir(out)) == n
