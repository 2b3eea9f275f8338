"""The trainable V-SPLADE: the core `VSpladeModel` with LoRA, and the loss forward pass.

Owns: building the model to train from a backbone (a transformers ModernVBertForMaskedLM dir
or Hub id, or one of our exports to continue from), the LoRA set-up of spec section 5 (peft,
r = alpha = 32, dropout 0, bias none, on the text encoder's Wqkv/Wo/Wi and the MLM head's
dense/decoder; vision, connector, embeddings and norms frozen), the Li-LSR query vectors
(table recomputed every training forward, duplicates add, special ids zeroed) and
`VSpladeTrainModel.forward`, which encodes a collated batch and returns the loss terms.
The encoder itself is vsplade.encoders.neural (not forked here).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

from vsplade.encoders.neural.checkpoint import CheckpointError, load_checkpoint
from vsplade.encoders.neural.model import VSpladeModel, build_model
from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE

from .losses import LossWeights, caption_bow, combine_losses, gate_caption
from .recipes import TrainConfig

log = logging.getLogger(__name__)

# peft's name for the decoder is the module's attribute name in transformers' model
_HEAD_MODULES = {"dense": "projection_head.dense", "decoder": "lm_head", "lm_head": "lm_head"}


def load_backbone(model_id: str, seed: int = 0) -> VSpladeModel:
    """VSpladeModel from a V-SPLADE export (continue training) or a ModernVBertForMaskedLM."""
    p = Path(model_id)
    if (p / "vsplade_config.json").is_file() or ((p / "model.safetensors").is_file() and _is_export(p / "model.safetensors")):
        model, _ = load_checkpoint(model_id)
        return model.float()
    from transformers import ModernVBertForMaskedLM

    mlm = ModernVBertForMaskedLM.from_pretrained(model_id, dtype=torch.float32)
    torch.manual_seed(seed)  # the head's new biases (dense.bias) are random, as upstream, but seeded
    model = build_model(mlm.config, init_weights=True)
    src = mlm.state_dict()
    dst = model.mlm.state_dict()
    load = {}
    for k, v in src.items():
        if k not in dst:
            continue
        if k.startswith("lm_head.") and v.shape[0] > model.vocab_size:
            v = v[: model.vocab_size]  # drop the 40 vision-token outputs (upstream additional_fc)
        if v.shape != dst[k].shape:
            raise CheckpointError(f"{model_id}: tensor {k} has shape {list(v.shape)}, expected {list(dst[k].shape)}")
        load[k] = v
    missing = sorted(set(dst) - set(load))
    # the official head has a dense bias (random, frozen) and a LayerNorm bias; upstream has neither
    allowed = {"projection_head.dense.bias", "projection_head.norm.bias", "lm_head.bias"}
    if set(missing) - allowed:
        raise CheckpointError(f"{model_id}: backbone lacks tensors {sorted(set(missing) - allowed)[:8]}")
    model.mlm.load_state_dict(load, strict=False)
    model.init_query_head_from_backbone()
    return model


def _is_export(weights: Path) -> bool:
    from vsplade.encoders.checkpoint_table import read_header

    return any(k.startswith("encoder.") for k in read_header(weights))


def apply_lora(model: VSpladeModel, cfg: TrainConfig) -> VSpladeModel:
    """Wrap `model.mlm` with peft LoRA; freeze everything but LoRA, the head if lm_head_full,
    and the Li-LSR projection."""
    from peft import LoraConfig, inject_adapter_in_model

    for p in model.parameters():
        p.requires_grad_(False)
    targets = []
    if cfg.lora_r > 0:
        text = "|".join(sorted(set(cfg.lora_targets)))
        targets.append(rf".*text_model\.layers\.\d+\.(attn|mlp)\.({text})")
        if not cfg.lm_head_full and cfg.head_lora_targets:
            heads = "|".join(sorted({_HEAD_MODULES.get(t, t).replace(".", r"\.") for t in cfg.head_lora_targets}))
            targets.append(rf"({heads})")
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                          target_modules="|".join(f"(?:{t})" for t in targets))
        # in place (no PeftModel wrapper): the core model keeps its attribute paths
        inject_adapter_in_model(lora, model.mlm)
        for name, p in model.mlm.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    if cfg.lm_head_full:
        for p in _head_params(model):
            p.requires_grad_(True)
    model.query_head.projection.weight.requires_grad_(True)
    model.query_head.projection.bias.requires_grad_(True)
    model.query_head.embeddings.weight.requires_grad_(False)
    return model


def _head_params(model: VSpladeModel):
    return [*model.mlm.projection_head.parameters(), *model.mlm.lm_head.parameters()]


def merged_copy(model: VSpladeModel) -> VSpladeModel:
    """A plain VSpladeModel with the LoRA deltas merged in (W + alpha/r B A), for export."""
    from peft.tuners.lora import LoraLayer

    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, attr = name.rpartition(".")
            setattr(out.get_submodule(parent_name) if parent_name else out, attr, module.get_base_layer())
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()


def li_lsr_query_vectors(table: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         special_ids=SPECIAL_IDS) -> torch.Tensor:
    """q[b, v] = sum of T[v] over the occurrences of v in query b (spec section 3)."""
    vocab = table.shape[0]
    keep = attention_mask.bool() & (input_ids < vocab) & (input_ids >= 0)
    ids = torch.where(keep, input_ids, torch.zeros_like(input_ids))
    vals = table[ids] * keep.to(table.dtype)
    q = torch.zeros(input_ids.shape[0], vocab, dtype=table.dtype, device=table.device)
    q = q.scatter_add(1, ids, vals)
    mask = torch.ones(vocab, dtype=table.dtype, device=table.device)
    mask[[i for i in special_ids if i < vocab]] = 0
    return q * mask


class VSpladeTrainModel(nn.Module):
    """Batch (from collator.TrainCollator) -> {"loss", term...} plus sparsity stats."""

    def __init__(self, model: VSpladeModel, cfg: TrainConfig):
        super().__init__()
        self.vsplade = model
        self.cfg = cfg
        self.weights: LossWeights = cfg.loss_weights
        self.flops_weight = cfg.flops_weight  # set by the trainer each step (quadratic warm-up)

    # Trainer / accelerate look at these
    @property
    def config(self):
        return self.vsplade.config

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **_ignored):
        # non-reentrant (spec section 5); the Trainer may pass options meant for other models
        kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        mlm = self.vsplade.mlm
        if hasattr(mlm, "activation_checkpointing_enable"):  # transformers >= 5 name
            mlm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            mlm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def query_table(self) -> torch.Tensor:
        return self.vsplade.query_head.table()

    def encode_docs(self, prefix: str, batch: dict, h_max: bool = False):
        ids, mask = batch[f"{prefix}_input_ids"], batch[f"{prefix}_attention_mask"]
        pix = batch.get(f"{prefix}_pixel_values")
        pmask = batch.get(f"{prefix}_pixel_attention_mask")
        if pix is not None:
            pix = pix.to(self.vsplade.dtype)
        return self.vsplade(ids, mask, pix, pmask, return_h_max=h_max)

    def forward(self, **batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        q = li_lsr_query_vectors(self.query_table(), batch["query_input_ids"], batch["query_attention_mask"])
        has_caption = "caption_input_ids" in batch
        p_out = self.encode_docs("passage", batch, h_max=has_caption and cfg.push_up_weight > 0)
        p = p_out.vector.float()
        hn = self.encode_docs("hard_neg", batch).vector.float() if "hard_neg_input_ids" in batch else None
        c = None
        if has_caption:
            c_raw = self.encode_docs("caption", batch).vector.float()
            bow = caption_bow(batch["caption_input_ids"], batch["caption_attention_mask"], VOCAB_SIZE, SPECIAL_IDS)
            c = gate_caption(c_raw, bow)
        out = combine_losses(
            q, p, weights=self.weights, flops_weight=self.flops_weight, temperature=cfg.temperature, hard_neg=hn,
            caption=c, h_max=p_out.h_max.float() if p_out.h_max is not None else None,
            overlap_type=cfg.overlap_type, alpha=cfg.overlap_alpha, zipfian=cfg.zipfian, tau_push=cfg.tau_push,
            push_mode=cfg.push_mode,
        )
        with torch.no_grad():
            pd = p.detach()
            out["p_nnz"] = (pd > 0).float().sum(1).mean()
            out["p_max"] = pd.max()
            out["q_nnz"] = (q.detach() > 0).float().sum(1).mean()
            # training-log FLOPs (spec section 4): sum_v mean|q_v| * mean|p_v|
            out["flops_qd"] = (q.detach().abs().mean(0) * pd.abs().mean(0)).sum()
        return out


def build_train_model(cfg: TrainConfig) -> VSpladeTrainModel:
    model = apply_lora(load_backbone(cfg.model, seed=cfg.seed), cfg)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", n_train, n_all, 100 * n_train / max(1, n_all))
    return VSpladeTrainModel(model, cfg)
