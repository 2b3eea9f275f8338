"""ModernVBert configurations: full size (spec section 0), tiny (tests), and the one a
checkpoint's ``config.json`` + tensor shapes describe.

The official ``config.json`` is colpali's "compatible" layout whose field names are not all
transformers' (``embed_dim``, ``text_model_name``...). Sizes are therefore taken from the tensor
shapes (they cannot lie), the rest from the config where it uses transformers' names, and
otherwise from the published backbones (ettin-encoder-150m = ModernBERT-base shape, SigLIP
base patch16 512).
"""

from __future__ import annotations

from typing import Any

from transformers import ModernBertConfig, ModernVBertConfig, SiglipVisionConfig

from ...vocab import VOCAB_SIZE

IMAGE_TOKEN_ID = 50407
ADDITIONAL_VOCAB = 40  # the Idefics3 vision-language tokens 50368..50407
PAD_ID = 50283

TEXT_PREFIX = "mlm.model.text_model."
VISION_PREFIX = "mlm.model.vision_model."

_TEXT_DEFAULTS: dict[str, Any] = dict(
    vocab_size=VOCAB_SIZE + ADDITIONAL_VOCAB, hidden_size=768, intermediate_size=1152, num_hidden_layers=22,
    num_attention_heads=12, global_attn_every_n_layers=3, local_attention=128, max_position_embeddings=8192,
    pad_token_id=PAD_ID, cls_token_id=50281, sep_token_id=50282, bos_token_id=50281, eos_token_id=50282,
    norm_eps=1e-5, hidden_activation="gelu", classifier_activation="gelu", mlp_bias=False, attention_bias=False,
    norm_bias=False, decoder_bias=True, tie_word_embeddings=False,
)
_VISION_DEFAULTS: dict[str, Any] = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=512,
    patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=False,
)
# colpali / timm-style names -> transformers names
_VISION_ALIASES = {"embed_dim": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
                   "patch": "patch_size", "mlp_dim": "intermediate_size"}


def make_config(text: dict | None = None, vision: dict | None = None, image_token_id: int = IMAGE_TOKEN_ID,
                pixel_shuffle_factor: int = 4) -> ModernVBertConfig:
    t = {**_TEXT_DEFAULTS, **(text or {})}
    v = {**_VISION_DEFAULTS, **(vision or {})}
    t.pop("model_type", None)
    v.pop("model_type", None)
    return ModernVBertConfig(
        text_config=ModernBertConfig(**t),
        vision_config=SiglipVisionConfig(**v),
        image_token_id=image_token_id,
        pixel_shuffle_factor=pixel_shuffle_factor,
        tie_word_embeddings=False,
    )


def full_size_config(image_token_id: int = IMAGE_TOKEN_ID) -> ModernVBertConfig:
    """The published architecture (spec section 0): 64 visual tokens per 512 px tile."""
    return make_config(image_token_id=image_token_id)


def tiny_config(image_token_id: int = IMAGE_TOKEN_ID, hidden: int = 64, layers: int = 2, tile: int = 64,
                patch: int = 16, shuffle: int = 2) -> ModernVBertConfig:
    """A random-weight model small enough for CPU tests (~0.1 s a forward): 4 visual tokens per tile."""
    return make_config(
        text=dict(hidden_size=hidden, intermediate_size=hidden * 3 // 2, num_hidden_layers=layers,
                  num_attention_heads=4, max_position_embeddings=4096),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                    image_size=tile, patch_size=patch),
        image_token_id=image_token_id,
        pixel_shuffle_factor=shuffle,
    )


def image_seq_len(config: ModernVBertConfig) -> int:
    v = config.vision_config
    return int((v.image_size // v.patch_size) ** 2 // config.pixel_shuffle_factor**2)


def _known(cls, d: dict) -> dict:
    known = cls().to_dict()
    return {k: val for k, val in d.items() if k in known and k not in ("architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype", "id2label", "label2id")}


def config_from_checkpoint(cfg: dict, shapes: dict[str, list[int]]) -> ModernVBertConfig:
    """Config of an exported checkpoint: `cfg` is its config.json, `shapes` its official-key
    tensor shapes. Sizes come from the shapes; missing tensors are reported later by the loader."""
    text = _known(ModernBertConfig, dict(cfg.get("text_config") or {}))
    vis_raw = dict(cfg.get("vision_config") or {})
    for old, new in _VISION_ALIASES.items():
        if old in vis_raw and new not in vis_raw:
            vis_raw[new] = vis_raw[old]
    vision = _known(SiglipVisionConfig, vis_raw)
    tp, vp = "encoder.encoder.model.text_model.", "encoder.encoder.model.vision_model."

    def shape(key):
        return shapes.get(key)

    def count_layers(under: str, into: dict, mlp_weight: str, axis: int) -> None:
        """Layer count (from the highest numbered `under`N. key) and MLP width (layer 0's
        `mlp_weight` along `axis`), text and vision alike."""
        found = {int(k[len(under):].split(".")[0]) for k in shapes if k.startswith(under)}
        if found:
            into["num_hidden_layers"] = max(found) + 1
        mlp = shape(under + "0.mlp." + mlp_weight)
        if mlp:
            into["intermediate_size"] = mlp[axis]

    emb = shape(tp + "embeddings.tok_embeddings.weight")
    extra = shape(tp + "embeddings.tok_embeddings.additional_embedding.weight")
    if emb:
        text["hidden_size"] = emb[1]
        text["vocab_size"] = emb[0] + (extra[0] if extra else 0)
    count_layers(tp + "layers.", text, "Wo.weight", 1)
    pe = shape(vp + "embeddings.patch_embedding.weight")
    if pe:
        vision["hidden_size"], vision["patch_size"] = pe[0], pe[2]
    pos = shape(vp + "embeddings.position_embedding.weight")
    if pos and pe:
        vision["image_size"] = int(round(pos[0] ** 0.5)) * pe[2]
    count_layers(vp + "encoder.layers.", vision, "fc1.weight", 0)
    vision["vision_use_head"] = any(k.startswith(vp + "head.") for k in shapes)
    shuffle = int(cfg.get("pixel_shuffle_factor") or cfg.get("scale_factor") or 4)
    proj = shape("encoder.encoder.model.connector.modality_projection.proj.weight")
    if proj and vision.get("hidden_size"):
        shuffle = int(round((proj[1] / vision["hidden_size"]) ** 0.5))
    return make_config(text, vision, image_token_id=int(cfg.get("image_token_id", IMAGE_TOKEN_ID)),
                       pixel_shuffle_factor=shuffle)


def config_to_json(config: ModernVBertConfig) -> dict:
    """config.json of an export: transformers' own fields plus the colpali "compatible" fields
    the official `build_model` reads (spec section 1)."""
    text = config.text_config.to_dict()
    vision = config.vision_config.to_dict()
    for d in (text, vision):
        d.pop("transformers_version", None)
        d.pop("id2label", None)
        d.pop("label2id", None)
    text["vocab_size"] = VOCAB_SIZE  # compatible layout: base vocab; the 40 extras are additional_vocab_size
    text["text_model_name"] = "jhu-clsp/ettin-encoder-150m"
    vision["embed_dim"] = vision["hidden_size"]
    vision["vision_model_name"] = "google/siglip2-base-patch16-512"
    return {
        "architectures": ["BiModernVBert"],
        "model_type": "modernvbert",
        "vocab_size": VOCAB_SIZE,
        "additional_vocab_size": config.text_config.vocab_size - VOCAB_SIZE,
        "hidden_size": config.text_config.hidden_size,
        "image_token_id": config.image_token_id,
        "pixel_shuffle_factor": config.pixel_shuffle_factor,
        "scale_factor": config.pixel_shuffle_factor,
        "freeze_config": {"freeze_text_layers": True, "freeze_vision_layers": True},
        "text_config": text,
        "vision_config": vision,
    }
