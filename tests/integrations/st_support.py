"""Tiny sentence-transformers SparseEncoders built offline in the library's own format: a random
2-layer ModernBERT MLM (the V-SPLADE vocabulary, 50368 ids) + SpladePooling as the document
route, a random SparseStaticEmbedding as the query route, saved with SparseEncoder.save."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE, default_tokenizer_path


def hf_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(default_tokenizer_path()), pad_token="[PAD]",
                                   unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=512)


def static_weights(seed: int = 0) -> np.ndarray:
    """Random positive weights; some zero, and the special ids NONZERO (vsplade masks them)."""
    rng = np.random.default_rng(seed)
    w = rng.gamma(2.0, 0.7, VOCAB_SIZE).astype(np.float32)
    w[rng.random(VOCAB_SIZE) < 0.05] = 0.0
    w[list(SPECIAL_IDS)] = 1.5
    return w


def build_inference_free(out: Path, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding, SpladePooling
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    torch.manual_seed(seed)
    mlm_dir = out.parent / (out.name + "-mlm")
    tok = hf_tokenizer()
    cfg = ModernBertConfig(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                           cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                           bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    mlm_model = ModernBertForMaskedLM(cfg)
    with torch.no_grad():  # ~97% of the logits below 0: sparse page vectors, as a trained SPLADE gives
        sample = tok(["debian reference card apt-get install the package"], return_tensors="pt")
        logits = mlm_model(**sample).logits
        mlm_model.decoder.bias -= torch.quantile(logits.flatten().float()[:1_000_000], 0.97)
    mlm_model.save_pretrained(mlm_dir)
    tok.save_pretrained(mlm_dir)
    mlm = Transformer(str(mlm_dir), transformer_task="fill-mask", max_seq_length=256)
    static = SparseStaticEmbedding(tok, weight=torch.from_numpy(static_weights(seed)), frozen=True)
    router = Router.for_query_document(query_modules=[static], document_modules=[mlm, SpladePooling("max")])
    SparseEncoder(modules=[router], device="cpu").save(str(out))
    return out


def as_dict(sparse_row) -> dict[int, float]:
    """{id: weight} of one sentence-transformers sparse vector (a torch sparse tensor)."""
    t = sparse_row.coalesce()
    return {int(i): float(v) for i, v in zip(t.indices()[0], t.values()) if float(v) != 0.0}
