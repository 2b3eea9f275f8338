"""sentence-transformers, export side: a vsplade query side written as a `SparseEncoder` dir.

    vsplade bundle CHECKPOINT --format sentence-transformers --out st-query/
    SparseEncoder("st-query/").encode_query("signed forms")   # the same weights as vsplade's

The dir is a `Router` with one route, "query": a frozen `SparseStaticEmbedding` whose weight is
vsplade's query table with its masked ids zeroed (the five special ids; for `lexical`/bow also
id 0), over the same tokenizer (lowercasing and the leading space of the lexical model are
written into the tokenizer's normalizer and pre-tokenizer). There is no "document" route: a
V-SPLADE page vector comes from the page image, which sentence-transformers cannot encode;
encode_document() says so.

What the library's module cannot express: SparseStaticEmbedding scores a token once however
often it occurs (presence x weight), where V-SPLADE's li_lsr query adds each occurrence (spec
section 3). Queries without a repeated token get identical weights; for the others
`duplicate_gap()` names the terms that differ. bow queries are presence by definition: exact.
The lexical model's lowercasing + leading space differ in two more places, both rare in typed
queries: text that starts with whitespace or holds runs of spaces (vsplade always prepends a
space; the ByteLevel pre-tokenizer only when there is none), and special tokens typed in
capitals ("[CLS]": vsplade lowercases first, so it is plain text; transformers matches it).
Exporting needs torch (sentence-transformers does); searching with vsplade never does.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

FORMAT_NAME = "sentence-transformers"
# SparseStaticEmbedding truncates at the tokenizer's model_max_length; vsplade never truncates
MAX_LENGTH = 1_000_000


def query_weights(query_encoder) -> np.ndarray:
    """float32 [V]: the weight vsplade gives one occurrence of each token (masked ids 0)."""
    return np.asarray(query_encoder._weights, dtype=np.float32)


def _tokenizer_spec(query_encoder) -> dict:
    spec = json.loads(Path(query_encoder.vocab.tokenizer_path).read_text(encoding="utf-8"))
    spec["truncation"], spec["padding"] = None, None
    if query_encoder.lowercase:  # vsplade lowercases before the tokenizer's own normalizer
        norm = spec.get("normalizer")
        spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, *([norm] if norm else [])]}
    if query_encoder.prefix_space:
        pre = spec.get("pre_tokenizer") or {}
        if pre.get("type") != "ByteLevel":
            raise ValueError("a leading-space query model needs a ByteLevel pre-tokenizer to export")
        spec["pre_tokenizer"] = dict(pre, add_prefix_space=True)
    return spec


def write_sparse_encoder(out: Path, query_encoder) -> tuple[Path, str]:
    """The `vsplade.bundle_formats` entry point: (out dir, sha256 of its query weights file)."""
    try:
        import torch
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        raise ValueError(f"--format {FORMAT_NAME} needs sentence-transformers: "
                         f"pip install 'vsplade[sentence-transformers]' ({e})") from None
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: not empty; give a new or empty dir for the sentence-transformers model")
    with tempfile.TemporaryDirectory() as tmp:
        tok_file = Path(tmp) / "tokenizer.json"
        tok_file.write_text(json.dumps(_tokenizer_spec(query_encoder), ensure_ascii=False), encoding="utf-8")
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tok_file), pad_token="[PAD]", unk_token="[UNK]",
                                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                            model_max_length=MAX_LENGTH)
    weights = query_weights(query_encoder)
    if len(tokenizer) != len(weights):
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens and the query table {len(weights)}")
    static = SparseStaticEmbedding(tokenizer, weight=torch.from_numpy(weights.copy()), frozen=True)
    router = Router({"query": [static]}, default_route=None, allow_empty_key=False)
    model = SparseEncoder(modules=[router], device="cpu")
    model.save(str(out))
    table = next(out.glob("query_*SparseStaticEmbedding/model.safetensors"))
    (out / "vsplade.json").write_text(json.dumps({
        "format": "vsplade-sentence-transformers", "version": 1, "query_mode": query_encoder.mode,
        "lowercase": query_encoder.lowercase, "prefix_space": query_encoder.prefix_space,
        "model": getattr(query_encoder, "config", {}).get("encoder", {}).get("model"),
        "differs": ("repeated query tokens: vsplade adds each occurrence (li_lsr), "
                    "SparseStaticEmbedding counts a token once") if query_encoder.mode == "li_lsr" else None,
    }, indent=2) + "\n")
    return out, hashlib.sha256(table.read_bytes()).hexdigest()


def duplicate_gap(query_encoder, text: str) -> dict[int, tuple[float, float]]:
    """{token id: (vsplade weight, SparseStaticEmbedding weight)} where the export differs for
    this query: the repeated tokens of an li_lsr query (empty for bow, or without repeats)."""
    ours = query_encoder.encode_ids(text)
    w = query_encoder._weights
    return {i: (v, w[i]) for i, v in ours.items() if abs(v - w[i]) > 1e-6 * max(1.0, v)}
