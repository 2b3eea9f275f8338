"""The V-SPLADE model: transformers' ModernVBertForMaskedLM + the SPLADE head of spec section 2.

    h = MLMHead(H) * 768^-1/4        MLMHead = dense(+bias) -> GELU -> LayerNorm(+bias) -> decoder(+bias)
    w_v = max_{i: mask=1} log(1 + relu(h_iv)),  special ids zeroed, 50,368 outputs

transformers' MLM head has no biases on dense/norm and 50,408 outputs, so `VSpladeModel`
swaps in biased modules of the official shapes (same attribute names, so peft targets
``dense`` / ``lm_head`` as before). log1p(relu(.)) is monotone, so the max over positions is
taken on the raw scaled logits, chunked over the sequence: one pass gives both the pooled
vector and h_max (pads -1e9, no special mask) that the push-up loss needs, and never holds
[B, L, V] logits at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import ModernVBertConfig, ModernVBertForMaskedLM

from ...vocab import SPECIAL_IDS, VOCAB_SIZE

SCALE = 768 ** -0.25
PAD_FILL = -1e9
# Logit elements per pooling chunk (B x positions x V); 64M bf16 = 128 MiB transient.
DEFAULT_CHUNK_ELEMENTS = 1 << 26


@dataclass
class SpladeOutput:
    vector: torch.Tensor  # [B, V], >= 0, special ids zeroed
    h_max: torch.Tensor | None = None  # [B, V] max over non-pad positions of scaled logits


class SpladeHead(nn.Module):
    """Max-pooled SPLADE activation over the positions of a sequence, chunked over positions.

    Holds no weights: `logits_fn` maps hidden states [B, c, H] to MLM logits [B, c, V]."""

    def __init__(self, vocab_size: int = VOCAB_SIZE, scale: float = SCALE, special_ids=SPECIAL_IDS,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS):
        super().__init__()
        self.vocab_size = vocab_size
        self.scale = scale
        self.chunk_elements = chunk_elements
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[[i for i in special_ids if i < vocab_size]] = False
        self.register_buffer("keep_mask", keep, persistent=False)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, logits_fn,
                return_h_max: bool = False) -> SpladeOutput:
        b, length, _ = hidden.shape
        step = max(1, self.chunk_elements // max(1, b * self.vocab_size))
        valid = attention_mask.bool()
        h_max = None
        for start in range(0, length, step):
            logits = logits_fn(hidden[:, start : start + step]) * self.scale
            logits = logits.masked_fill(~valid[:, start : start + step, None], PAD_FILL)
            part = logits.amax(dim=1)
            h_max = part if h_max is None else torch.maximum(h_max, part)
            del logits
        vector = torch.log1p(torch.relu(h_max)) * self.keep_mask.to(h_max.dtype)
        return SpladeOutput(vector, h_max if return_h_max else None)


class LiLsrQueryHead(nn.Module):
    """Li-LSR query side (spec section 3): a frozen embedding copy and a Linear(H, 1).
    The table softplus(E w + b) is computed from these by `checkpoint_table.li_lsr_table`."""

    def __init__(self, vocab_size: int, hidden: int):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, hidden)
        self.embeddings.weight.requires_grad_(False)
        self.projection = nn.Linear(hidden, 1)

    def table(self) -> torch.Tensor:
        e = self.embeddings.weight.float()
        return nn.functional.softplus(e @ self.projection.weight.float()[0] + self.projection.bias.float()[0])


class VSpladeModel(nn.Module):
    """ModernVBertForMaskedLM (`.mlm`) + SpladeHead (`.pool`) + the Li-LSR query head (`.query_head`)."""

    def __init__(self, config: ModernVBertConfig, vocab_size: int = VOCAB_SIZE):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        mlm = ModernVBertForMaskedLM(config)
        h = config.text_config.hidden_size
        eps = config.text_config.norm_eps
        # the official head: biased dense and LayerNorm, decoder over the 50,368 base tokens only
        mlm.projection_head.dense = nn.Linear(h, h, bias=True)
        mlm.projection_head.norm = nn.LayerNorm(h, eps=eps, bias=True)
        mlm.lm_head = nn.Linear(h, vocab_size, bias=True)
        mlm.vocab_size = vocab_size
        self.mlm = mlm
        self.pool = SpladeHead(vocab_size)
        self.query_head = LiLsrQueryHead(vocab_size, h)

    @property
    def dtype(self) -> torch.dtype:
        return self.mlm.lm_head.weight.dtype

    def init_query_head_from_backbone(self) -> None:
        """Spec: E is a frozen copy of the backbone's main input embeddings (first V rows)."""
        with torch.no_grad():
            emb = self.mlm.model.text_model.embeddings.tok_embeddings.weight
            self.query_head.embeddings.weight.copy_(emb[: self.vocab_size])

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mlm.lm_head(self.mlm.projection_head(hidden))

    def hidden_states(self, input_ids, attention_mask, pixel_values=None, pixel_attention_mask=None) -> torch.Tensor:
        out = self.mlm.model(
            input_ids=input_ids, attention_mask=attention_mask,
            pixel_values=pixel_values, pixel_attention_mask=pixel_attention_mask,
        )
        return out.last_hidden_state

    def forward(self, input_ids, attention_mask, pixel_values=None, pixel_attention_mask=None,
                return_h_max: bool = False) -> SpladeOutput:
        hidden = self.hidden_states(input_ids, attention_mask, pixel_values, pixel_attention_mask)
        return self.pool(hidden, attention_mask, self.mlm_logits, return_h_max=return_h_max)


def build_model(config: ModernVBertConfig, init_weights: bool = True) -> VSpladeModel:
    """A VSpladeModel; `init_weights=False` skips random init (weights are loaded right after)."""
    if init_weights:
        model = VSpladeModel(config)
        model.init_query_head_from_backbone()
        return model.eval()
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older layout
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        return VSpladeModel(config).eval()
