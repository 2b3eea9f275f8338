"""Training end to end on a tiny random ModernVBert: loss goes down, resume continues the
same schedule, and the export loads in the core encoder and the torch-free query encoder."""

import math

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from vsplade_training.export import export_trained
from vsplade_training.model import li_lsr_query_vectors
from vsplade_training.schedule import flops_weight, wsd_factor
from vsplade_training.trainer import make_trainer

from fixtures_train import save_image_dataset, tiny_backbone, tiny_train_config  # noqa: F401

# real training runs (the 30-step one ~45 s on 2 cores): make test only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset16(tmp_path_factory):
    return save_image_dataset(tmp_path_factory.mktemp("ds16") / "train", n=16)


@pytest.fixture(scope="module")
def trained(tiny_backbone, dataset16, tmp_path_factory):
    cfg = tiny_train_config(tiny_backbone, dataset16, tmp_path_factory.mktemp("run30"), max_steps=30, logging_steps=5)
    tr = make_trainer(cfg)
    tr.train()
    return tr


def test_30_steps_reduce_the_loss_and_log_sparsity(trained):
    logs = [h for h in trained.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == [5, 10, 15, 20, 25, 30]
    first, last = logs[0], logs[-1]
    assert last["loss"] < first["loss"] - 0.3, [h["loss"] for h in logs]
    # every term is logged; FLOPS regularisation makes passages sparser
    for k in ("train_rank", "train_flops", "train_caption_flops", "train_push_up", "train_caption_rank",
              "train_p_nnz", "train_p_max", "train_flops_qd"):
        assert k in first and math.isfinite(first[k])
    assert last["train_p_nnz"] < first["train_p_nnz"]
    assert last["train_caption_rank"] < first["train_caption_rank"]
    # quadratic FLOPS warm-up (t_w = 10): 0.01 * (5/10)^2 at step 5, full weight from step 10
    assert first["flops_weight"] == pytest.approx(0.01 * 0.25)
    assert logs[1]["flops_weight"] == pytest.approx(0.01) == flops_weight(10, 0.01, 10)
    # WSD: warm-up ceil(0.1*30) = 3, decay floor(0.2*30) = 6 steps
    assert last["learning_rate"] == pytest.approx(2e-3 * wsd_factor(29, 30, 0.1, 0.2), rel=1e-6)


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def _trainable(tr):
    return {k: v.detach().clone() for k, v in tr.model.named_parameters() if v.requires_grad}


def test_resume_continues_the_same_schedule(tiny_backbone, dataset16, tmp_path):
    kw = dict(max_steps=8, logging_steps=1, save_steps=4, lr=1e-3, warmup_ratio=0.25, decay_ratio=0.5,
              flops_warmup_steps=6)
    a = make_trainer(tiny_train_config(tiny_backbone, dataset16, tmp_path / "a", **kw))
    a.train()
    b = make_trainer(tiny_train_config(tiny_backbone, dataset16, tmp_path / "b", **kw))
    b.add_callback(StopAt(4))
    b.train()
    assert (tmp_path / "b" / "checkpoint-4").is_dir() and b.state.global_step == 4
    c = make_trainer(tiny_train_config(tiny_backbone, dataset16, tmp_path / "b", **kw))
    c.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-4"))
    la = {h["step"]: h for h in a.state.log_history if "loss" in h}
    lc = {h["step"]: h for h in c.state.log_history if "loss" in h}
    assert sorted(lc) == list(range(1, 9))  # steps 1-4 come back with the checkpoint state
    for s in range(5, 9):
        # same LR (WSD position), same FLOPS weight, same batches (epoch 1 reshuffled identically)
        assert lc[s]["learning_rate"] == pytest.approx(la[s]["learning_rate"], rel=1e-6)
        assert lc[s]["flops_weight"] == pytest.approx(la[s]["flops_weight"], rel=1e-6)
        assert lc[s]["loss"] == pytest.approx(la[s]["loss"], rel=1e-3)
    pa, pc = _trainable(a), _trainable(c)
    assert pa.keys() == pc.keys()
    for k in pa:
        assert torch.allclose(pa[k], pc[k], atol=1e-5), k


def test_export_loads_in_encoder_and_query_encoder(trained, tmp_path, dataset16):
    from PIL import Image

    from vsplade.bundle import load_bundle
    from vsplade.encoders.neural import VSpladeEncoder
    from vsplade.encoders.neural.processor import collate, features
    from vsplade.pages import Page

    cfg = trained.cfg
    tok = trained.processor_for_export.tokenizer
    tokenizer_file = f"{cfg.model}/tokenizer.json"
    paths = export_trained(trained.model, tmp_path / "export", tokenizer_file, dtype=torch.float32,
                           longest_edge=cfg.image_longest_edge)
    enc = VSpladeEncoder.from_pretrained(str(paths["checkpoint"]), device="cpu", dtype="float32", workers=1)

    # documents: the exported model gives the trained (LoRA-unmerged) model's vectors
    import datasets

    img = datasets.load_from_disk(str(dataset16))[0]["image"].convert("RGB")
    model = trained.model.eval()
    with torch.no_grad():
        b = collate([features(trained.processor_for_export, img)], tok.pad_token_id)
        want = model.vsplade(b["input_ids"], b["attention_mask"], b["pixel_values"], b["pixel_attention_mask"]).vector
    got = enc.encode([Page(id="p1", source="mem", page_no=1, image=img, text="")]).matrix.toarray()[0]
    want = want[0].numpy()
    assert (want > 0).sum() > 0
    assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()

    # queries: training-side torch vectors == bundle (torch-free) == encoder.query_encoder()
    queries = ["what does the energy chart show", "office records and more records"]
    with torch.no_grad():
        table = model.query_table()
        ids = tok(queries, add_special_tokens=False, padding=True, return_tensors="pt")
        q_torch = li_lsr_query_vectors(table, ids["input_ids"], ids["attention_mask"]).numpy()
    bundle = load_bundle(paths["bundle"])
    assert bundle.config["mode"] == "li_lsr"
    for i, q in enumerate(queries):
        from_bundle = bundle.encode_ids(q)
        from_ckpt = enc.query_encoder().encode_ids(q)
        assert from_bundle.keys() == from_ckpt.keys() == set(np.nonzero(q_torch[i])[0].tolist())
        for k, v in from_bundle.items():
            assert v == pytest.approx(from_ckpt[k], rel=1e-6)
            assert v == pytest.approx(float(q_torch[i, k]), rel=1e-5)
    # duplicates add: " records" appears twice in the second query
    rec = tok(" records", add_special_tokens=False)["input_ids"]
    assert len(rec) == 1
    assert bundle.encode_ids(queries[1])[rec[0]] == pytest.approx(2 * float(table[rec[0]]), rel=1e-5)


def test_mixed_rlhn_text_batches_train(tiny_backbone, dataset16, tmp_path):
    """RLHN text batches (positive + 2 hard negatives, text-only) mixed 2:1 with image batches."""
    from fixtures_train import save_rlhn_dataset

    rlhn = save_rlhn_dataset(tmp_path / "rlhn", n=12)
    cfg = tiny_train_config(tiny_backbone, dataset16, tmp_path / "mix", max_steps=6, logging_steps=1,
                            rlhn_dataset=str(rlhn), text_ratio=2, num_hard_negatives=2, per_device_batch_size=2)
    tr = make_trainer(cfg)
    batches = list(tr.get_train_dataloader())
    kinds = ["hard_neg_input_ids" in b for b in batches]
    assert kinds[:3] == [True, True, False]  # text, text, image
    text = batches[0]
    assert text["hard_neg_input_ids"].shape[0] == 4 and "passage_pixel_values" not in text and "caption_input_ids" not in text
    assert "caption_input_ids" in batches[2] and "passage_pixel_values" in batches[2]
    tr.train()
    logs = [h for h in tr.state.log_history if "loss" in h]
    assert len(logs) == 6 and all(math.isfinite(h["loss"]) for h in logs)
    # caption terms only appear in image steps: their mean is logged over fewer micro-batches
    assert sum("train_push_up" in h for h in logs) == sum(1 for b in kinds[:6] if not b)
