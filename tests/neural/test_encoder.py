"""VSpladeEncoder end to end: batching, streaming, pruning, encoded dir, CLI encode/inspect."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsplade.cli import app
from vsplade.encoded import EncodedDir, EncodedDirWriter
from vsplade.encoders import load_encoder, load_query_encoder
from vsplade.encoders.neural import VSpladeEncoder
from vsplade.encoders.neural.processor import collate, features

runner = CliRunner()


@pytest.fixture(scope="module")
def encoder(checkpoint_fp32):
    return VSpladeEncoder.from_pretrained(str(checkpoint_fp32), batch_size=2)


def test_encode_matches_the_model_row_by_row(encoder, tiny_model, tiny_processor, pages):
    batch = encoder.encode(pages)
    assert batch.ids == [p.id for p in pages]
    assert batch.meta[0]["source"] == "mem0.png"
    for i, p in enumerate(pages):
        with torch.no_grad():
            want = tiny_model(**collate([features(tiny_processor, p.image)], 50283)).vector[0].numpy()
        np.testing.assert_allclose(batch.matrix[i].toarray()[0], want, rtol=1e-4, atol=1e-5)
    batch.validate()


def test_stream_equals_encode_and_keeps_order(encoder, pages):
    whole = encoder.encode(pages)
    parts = list(encoder.encode_stream(iter(pages * 2), batch_size=1))
    ids = [i for b in parts for i in b.ids]
    assert ids == [p.id for p in pages] * 2
    got = np.vstack([b.matrix.toarray() for b in parts])[: len(pages)]
    np.testing.assert_allclose(got, whole.matrix.toarray(), rtol=1e-4, atol=1e-5)


def test_stream_surfaces_reader_errors(encoder, pages):
    def broken():
        yield pages[0]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(encoder.encode_stream(broken(), batch_size=1))


def test_page_without_image_names_the_page(encoder):
    from vsplade.pages import Page

    with pytest.raises(ValueError, match="page x-1 .*a.pdf page 1"):
        encoder.encode([Page(id="x-1", source="a.pdf", page_no=1)])


def test_top_k_and_threshold_pruning(checkpoint_fp32, encoder, pages):
    full = encoder.encode(pages[:2]).matrix.toarray()
    k = VSpladeEncoder.from_pretrained(str(checkpoint_fp32), top_k=20).encode(pages[:2]).matrix
    assert (k.getnnz(axis=1) == 20).all()
    for r in range(2):
        top = np.sort(full[r])[::-1][:20]
        np.testing.assert_allclose(np.sort(k[r].data)[::-1], top, rtol=1e-5)
    cut = float(np.median(full[full > 0]))
    t = VSpladeEncoder.from_pretrained(str(checkpoint_fp32), threshold=cut).encode(pages[:2]).matrix
    assert t.getnnz() == int((full >= cut).sum())
    assert t.data.min() >= cut
    with pytest.raises(ValueError):
        VSpladeEncoder.from_pretrained(str(checkpoint_fp32), top_k=0)


def test_encoded_dir_round_trip(encoder, pages, tmp_path):
    batch = encoder.encode(pages)
    with EncodedDirWriter(tmp_path / "enc", encoder.info()) as w:
        w.add(batch)
    back = EncodedDir(tmp_path / "enc")
    assert back.encoder_info == encoder.info()
    loaded = back.load()
    assert loaded.ids == batch.ids
    assert (loaded.matrix != batch.matrix).nnz == 0


def test_load_encoder_and_query_encoder_dispatch(checkpoint_fp32, encoder):
    assert isinstance(load_encoder(str(checkpoint_fp32)), VSpladeEncoder)
    q = load_query_encoder(str(checkpoint_fp32))
    np.testing.assert_array_equal(q.table, encoder.query_encoder().table)


def test_cli_encode_resumes_and_index_searches(checkpoint_fp32, pdf_dir, tmp_path):
    pdf = str(pdf_dir / "debian-refcard-en-a4.pdf")
    out = tmp_path / "enc"
    args = ["encode", pdf, "--model", str(checkpoint_fp32), "--out", str(out), "--dpi", "30", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout.strip().splitlines()[-1])
    assert first["indexed"] == 2
    res = runner.invoke(app, args)
    again = json.loads(res.stdout.strip().splitlines()[-1])
    assert again["indexed"] == 0 and again["skipped"] == 2
    enc = EncodedDir(out)
    assert len(enc) == 2 and enc.encoder_info["name"] == "vsplade"
    idx = tmp_path / "mem"
    res = runner.invoke(app, ["index", str(out), "--engine", "memory", "--index", str(idx)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", "Debian packages", "--engine", "memory", "--index", str(idx), "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout.strip().splitlines()[-1])["hits"]
    assert len(hits) == 2 and hits[0]["score"] >= hits[1]["score"] > 0


def test_cli_inspect_breakdown_adds_up(checkpoint_fp32, data_dir, encoder):
    img = str(data_dir / "sample_page.png")
    res = runner.invoke(app, ["inspect", img, "--model", str(checkpoint_fp32), "-q", "send signed forms",
                              "-q", "records office", "--json", "--top", "5"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    from PIL import Image

    from vsplade.pages import Page

    batch = encoder.encode([Page(id="s", source=img, page_no=1, image=Image.open(img))])
    ids, w = batch.row(0)
    assert out["nnz"] == len(ids)
    assert out["max"] == pytest.approx(float(w.max()), rel=1e-5)
    assert [round(t[1], 5) for t in out["top_tokens"]] == [round(float(x), 5) for x in np.sort(w)[::-1][:5]]
    q = encoder.query_encoder()
    doc = dict(zip(ids.tolist(), w.tolist()))
    for entry, text in zip(out["queries"], ["send signed forms", "records office"]):
        want = sum(v * doc.get(i, 0.0) for i, v in q.encode_ids(text).items())
        assert entry["score"] == pytest.approx(want, rel=1e-5)
        assert entry["score"] == pytest.approx(sum(c for _, c in entry["top_matches"]), rel=1e-5)


def test_cli_page_path_flag_reaches_the_encoder(checkpoint_fp32, pdf_dir, tmp_path):
    pdf = str(pdf_dir / "debian-refcard-en-a4.pdf")
    for path in ("reference", "fast"):
        out = tmp_path / path
        res = runner.invoke(app, ["encode", pdf, "--model", str(checkpoint_fp32), "--out", str(out),
                                  "--page-path", path, "--render-workers", "0", "--json"])
        assert res.exit_code == 0, res.output
        assert EncodedDir(out).encoder_info["page_path"] == path
    res = runner.invoke(app, ["encode", pdf, "--model", str(checkpoint_fp32), "--out", str(tmp_path / "x"),
                              "--page-path", "bogus"])
    assert res.exit_code == 2 and "page_path must be one of" in res.output


def test_image_resizes_stay_on_the_host_when_the_model_runs_on_the_cpu(checkpoint_fp32, monkeypatch):
    # a box with a GPU can still run the encoder on its CPU: the lanczos replay must not run
    # there (it costs ~25x PIL on a CPU), whatever torch.cuda.is_available() says
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    enc = VSpladeEncoder.from_pretrained(str(checkpoint_fp32), batch_size=2, device="cpu")
    assert enc.fast is not None and enc.fast.device_resize is False
