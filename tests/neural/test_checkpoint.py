"""Official export layout: written, read back strictly, same vectors; corrupted checkpoints
fail naming the tensor; the torch-free table matches the model's."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vsplade.encoders.checkpoint_table import (
    CheckpointError,
    query_encoder_from_checkpoint,
    read_header,
    read_tensor,
)
from vsplade.encoders.neural import VSpladeEncoder, load_checkpoint
from vsplade.encoders.neural.processor import collate, features
from vsplade.vocab import VOCAB_SIZE

T = "encoder.encoder.model.text_model."


def vectors(model, processor, images):
    with torch.no_grad():
        return model(**collate([features(processor, im) for im in images], 50283)).vector


def test_export_has_the_spec_layout(checkpoint_bf16, tiny_model):
    header = read_header(checkpoint_bf16 / "model.safetensors")
    keys = set(header) - {"__data_start__"}
    h = tiny_model.config.text_config.hidden_size
    assert all(k.startswith(("encoder.", "query_encoder.")) for k in keys)
    expect = {
        T + "embeddings.tok_embeddings.weight": [VOCAB_SIZE, h],
        T + "embeddings.tok_embeddings.additional_embedding.weight": [40, h],
        T + "embeddings.norm.weight": [h],
        T + "layers.0.attn.Wqkv.weight": [3 * h, h],
        T + "layers.0.attn.Wo.weight": [h, h],
        T + "layers.1.attn_norm.weight": [h],
        T + "layers.0.mlp_norm.weight": [h],
        T + "final_norm.weight": [h],
        "encoder.encoder.model.connector.modality_projection.proj.weight": [h, 32 * 4],
        "encoder.mlm_head.dense.weight": [h, h],
        "encoder.mlm_head.dense.bias": [h],
        "encoder.mlm_head.norm.weight": [h],
        "encoder.mlm_head.norm.bias": [h],
        "encoder.mlm_head.decoder.weight": [VOCAB_SIZE, h],
        "encoder.mlm_head.decoder.bias": [VOCAB_SIZE],
        "query_encoder.embeddings.weight": [VOCAB_SIZE, h],
        "query_encoder.projection.weight": [1, h],
        "query_encoder.projection.bias": [1],
    }
    for k, shape in expect.items():
        assert header[k]["shape"] == shape, k
        assert header[k]["dtype"] == "BF16", k
    # spec: norms have no bias in the backbone, and layer 0 has no attn_norm
    assert T + "layers.0.attn_norm.weight" not in keys
    assert not [k for k in keys if k.startswith(T) and "norm.bias" in k]
    assert any(k.startswith("encoder.encoder.model.vision_model.encoder.layers.") for k in keys)
    cfg = json.loads((checkpoint_bf16 / "config.json").read_text())
    assert cfg["vocab_size"] == VOCAB_SIZE and cfg["additional_vocab_size"] == 40
    assert cfg["freeze_config"] and cfg["image_token_id"] == 50407
    assert json.loads((checkpoint_bf16 / "processor_config.json").read_text())["image_seq_len"] == 4
    assert (checkpoint_bf16 / "vsplade_config.json").is_file()


def test_fp32_checkpoint_gives_the_same_vectors(checkpoint_fp32, tiny_model, tiny_processor, images):
    loaded, _ = load_checkpoint(str(checkpoint_fp32))
    torch.testing.assert_close(vectors(loaded, tiny_processor, images[:2]),
                               vectors(tiny_model, tiny_processor, images[:2]), rtol=0, atol=0)


def test_bf16_checkpoint_gives_the_bf16_rounded_model(checkpoint_bf16, tiny_model, tiny_processor, images):
    loaded, _ = load_checkpoint(str(checkpoint_bf16))
    for (k, a), b in zip(loaded.state_dict().items(), tiny_model.state_dict().values()):
        assert torch.equal(a, b.to(torch.bfloat16).float()), k
    got = vectors(loaded, tiny_processor, images[:1])
    want = vectors(tiny_model, tiny_processor, images[:1])
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)


def test_colpali_style_config_loads_from_shapes(checkpoint_fp32, tmp_path, tiny_model, tiny_processor, images):
    """The official config.json names fields its own way; sizes come from the tensor shapes."""
    ck = tmp_path / "ck"
    ck.mkdir()
    for f in checkpoint_fp32.iterdir():
        (ck / f.name).write_bytes(f.read_bytes())
    (ck / "config.json").write_text(json.dumps({
        "architectures": ["BiModernVBert"], "vocab_size": 50368, "additional_vocab_size": 40,
        "freeze_config": {"freeze_text_layers": True}, "image_token_id": 50407, "pixel_shuffle_factor": 2,
        "scale_factor": 2, "hidden_size": 64,
        "text_config": {"text_model_name": "jhu-clsp/ettin-encoder-150m", "vocab_size": 50368,
                        "num_attention_heads": 4, "mlp_bias": False},
        "vision_config": {"vision_model_name": "google/siglip2-base-patch16-512", "embed_dim": 32,
                          "num_attention_heads": 2},
    }))
    loaded, _ = load_checkpoint(str(ck))
    assert loaded.config.text_config.num_hidden_layers == 2
    assert loaded.config.vision_config.image_size == 64
    torch.testing.assert_close(vectors(loaded, tiny_processor, images[:1]),
                               vectors(tiny_model, tiny_processor, images[:1]), rtol=0, atol=0)


def _corrupt(src: Path, dst: Path, edit) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(src / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize("name, edit, message", [
    ("missing", lambda t: t.pop("encoder.mlm_head.dense.bias"), "missing tensors (1): encoder.mlm_head.dense.bias [64]"),
    ("missing-query", lambda t: t.pop("query_encoder.embeddings.weight"), "query_encoder.embeddings.weight"),
    ("shape", lambda t: t.update({T + "layers.1.mlp.Wi.weight": torch.zeros(96, 64)}),
     f"wrong shapes (1): {T}layers.1.mlp.Wi.weight is [96, 64], expected [192, 64]"),
    ("extra", lambda t: t.update({"encoder.mlm_head.dense.bais": torch.zeros(64)}),
     "unexpected tensors (1): encoder.mlm_head.dense.bais [64]"),
    ("prefix", lambda t: t.update({"lm_head.weight": torch.zeros(2, 2)}), "outside encoder.* / query_encoder.*: lm_head.weight"),
])
def test_corrupted_checkpoint_names_the_tensor(checkpoint_bf16, tmp_path, name, edit, message):
    bad = _corrupt(checkpoint_bf16, tmp_path / name, edit)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(bad))
    assert message in str(err.value)
    assert str(bad) in str(err.value)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(str(tmp_path))
    with pytest.raises(CheckpointError, match="not a checkpoint dir"):
        load_checkpoint(str(tmp_path / "nope"))


def test_bf16_reader_matches_safetensors(checkpoint_bf16):
    path = checkpoint_bf16 / "model.safetensors"
    ref = load_file(str(path))
    for name in ("query_encoder.embeddings.weight", "query_encoder.projection.bias", "encoder.mlm_head.norm.bias"):
        np.testing.assert_array_equal(read_tensor(path, name), ref[name].float().numpy())


@pytest.mark.parametrize("fixture", ["checkpoint_fp32", "checkpoint_bf16"])
def test_torch_free_table_matches_the_model(request, fixture, tiny_model):
    ck = request.getfixturevalue(fixture)
    q = query_encoder_from_checkpoint(str(ck))
    loaded, _ = load_checkpoint(str(ck))
    with torch.no_grad():
        want = loaded.query_head.table().numpy()
    assert q.mode == "li_lsr"
    np.testing.assert_allclose(q.table, want, rtol=1e-5, atol=1e-6)
    if fixture == "checkpoint_fp32":
        with torch.no_grad():
            np.testing.assert_allclose(q.table, tiny_model.query_head.table().numpy(), rtol=1e-5, atol=1e-6)
    # a query weight is the table entry, summed over repeats
    ids = q.token_ids("dog dog")
    enc = q.encode_ids("dog dog")
    assert enc[ids[0]] == pytest.approx(float(q.table[ids[0]]) * ids.count(ids[0]))


def test_checkpoint_table_does_not_import_torch():
    code = ("import sys, vsplade.encoders.checkpoint_table as m; "
            "import vsplade.encoders as e; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_bundle_cli_from_checkpoint(checkpoint_bf16, tmp_path):
    from typer.testing import CliRunner

    from vsplade.bundle import load_bundle
    from vsplade.cli import app

    res = CliRunner().invoke(app, ["bundle", str(checkpoint_bf16), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    b = load_bundle(tmp_path / "b")
    q = query_encoder_from_checkpoint(str(checkpoint_bf16))
    np.testing.assert_array_equal(b.table, q.table)
    assert b.mode == "li_lsr"
    assert b.encode("forms") == q.encode("forms")


def test_encoder_from_pretrained_and_info(checkpoint_bf16):
    import hashlib

    enc = VSpladeEncoder.from_pretrained(str(checkpoint_bf16), top_k=50)
    info = enc.info()
    json.dumps(info)
    assert info["name"] == "vsplade" and info["model"] == str(checkpoint_bf16)
    assert info["weights_sha256"] == hashlib.sha256((checkpoint_bf16 / "model.safetensors").read_bytes()).hexdigest()
    assert info["prompt"].startswith("<|begin_of_text|>User:<image>Describe the image.")
    assert info["tile"] == 64 and info["longest_edge"] == 256 and info["top_k"] == 50
    assert info["dtype"] == "float32"  # CPU


def test_unreachable_hub_id_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="naver/no-such-vsplade: cannot fetch model.safetensors from the Hub"):
        load_checkpoint("naver/no-such-vsplade")
