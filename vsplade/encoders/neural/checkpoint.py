"""Checkpoints in the official export layout (spec section 1) <-> `VSpladeModel`.

Owns the tensor-name mapping, the strict loader and `export_checkpoint`. Unlike the official
`load_hf_export` (strict=False, every prefixed key "consumed"), every tensor must be accounted
for: a missing, unexpected or misshaped tensor is a `CheckpointError` that names it.

    official key                                                   VSpladeModel key
    encoder.encoder.model.text_model.embeddings.tok_embeddings.weight [V,H]  \\ rows 0..V-1 and V..V+39 of
    encoder.encoder.model.text_model.embeddings.tok_embeddings           } mlm.model.text_model.embeddings.
        .additional_embedding.weight [40,H]                            /  tok_embeddings.weight [V+40,H]
    encoder.encoder.model.text_model.X                                 mlm.model.text_model.X
    encoder.encoder.model.vision_model.X                               mlm.model.vision_model.X
    encoder.encoder.model.connector.modality_projection.proj.weight    mlm.model.connector.modality_projection.weight
    encoder.mlm_head.{dense,norm}.{weight,bias}                        mlm.projection_head.{dense,norm}.*
    encoder.mlm_head.decoder.{weight,bias}                             mlm.lm_head.*
    query_encoder.{embeddings.weight,projection.weight,projection.bias} query_head.*

Our own training output is written by `export_checkpoint` in this same layout (LoRA merged),
so one loader serves both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping

import torch

from ...pages import file_sha256  # noqa: F401  (encoder.py imports it from here)
from ...vocab import VOCAB_SIZE
from ..checkpoint_table import TOKENIZER_FILE, WEIGHTS_FILE, CheckpointError, read_header, resolve_files
from .config import config_from_checkpoint, config_to_json, image_seq_len
from .model import VSpladeModel, build_model

CONFIG_FILE = "config.json"
VSPLADE_CONFIG = "vsplade_config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, PREPROCESSOR_FILE, PROCESSOR_FILE, VSPLADE_CONFIG)

_EMB = "mlm.model.text_model.embeddings.tok_embeddings.weight"
_OFF_EMB = "encoder.encoder.model.text_model.embeddings.tok_embeddings.weight"
_OFF_EXTRA = "encoder.encoder.model.text_model.embeddings.tok_embeddings.additional_embedding.weight"
_PREFIXES = [  # (native prefix, official prefix), most specific first
    ("mlm.model.connector.modality_projection.weight", "encoder.encoder.model.connector.modality_projection.proj.weight"),
    ("mlm.model.text_model.", "encoder.encoder.model.text_model."),
    ("mlm.model.vision_model.", "encoder.encoder.model.vision_model."),
    ("mlm.projection_head.", "encoder.mlm_head."),
    ("mlm.lm_head.", "encoder.mlm_head.decoder."),
    ("query_head.", "query_encoder."),
]


def native_to_official(state: Mapping[str, torch.Tensor], vocab_size: int = VOCAB_SIZE) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if key == _EMB:
            out[_OFF_EMB], out[_OFF_EXTRA] = t[:vocab_size], t[vocab_size:]
            continue
        for nat, off in _PREFIXES:
            if key.startswith(nat):
                out[off + key[len(nat):]] = t
                break
        else:
            raise CheckpointError(f"model tensor {key!r} has no place in the export layout")
    return out


def official_to_native(key: str) -> str | None:
    for nat, off in sorted(_PREFIXES, key=lambda p: -len(p[1])):
        if key.startswith(off):
            return nat + key[len(off):]
    return None


def expected_shapes(model: VSpladeModel) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in native_to_official(model.state_dict(), model.vocab_size).items()}


def check_tensors(found: Mapping[str, list[int]], expected: Mapping[str, list[int]], where: str) -> None:
    """Raise CheckpointError naming every missing, unexpected and misshaped tensor."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if list(found[k]) != list(expected[k]))
    if not (missing or extra or wrong):
        return
    lines = [f"{where}: the checkpoint does not match the model"]

    def show(title, keys, fmt):
        if keys:
            lines.append(f"  {title} ({len(keys)}): " + ", ".join(fmt(k) for k in keys[:12]) + (" ..." if len(keys) > 12 else ""))

    show("missing tensors", missing, lambda k: f"{k} {expected[k]}")
    show("unexpected tensors", extra, lambda k: f"{k} {list(found[k])}")
    show("wrong shapes", wrong, lambda k: f"{k} is {list(found[k])}, expected {expected[k]}")
    raise CheckpointError("\n".join(lines))


def load_checkpoint(model_id: str, dtype: torch.dtype = torch.float32) -> tuple[VSpladeModel, dict[str, Path | None]]:
    """(model in eval mode, resolved files) from a dir or Hub id in the export layout."""
    files = resolve_files(model_id, CHECKPOINT_FILES)
    weights = files[WEIGHTS_FILE]
    if weights is None:
        raise CheckpointError(
            f"{model_id}: no {WEIGHTS_FILE} (safetensors single file only; no .bin, no sharded checkpoints)"
        )
    cfg_path = files[CONFIG_FILE]
    cfg = {}
    if cfg_path is not None:
        try:
            cfg = json.loads(cfg_path.read_text())
        except ValueError as e:
            raise CheckpointError(f"{cfg_path}: invalid JSON ({e})") from None
    header = read_header(weights)
    shapes = {k: v["shape"] for k, v in header.items() if k != "__data_start__"}
    bad_prefix = sorted(k for k in shapes if not k.startswith(("encoder.", "query_encoder.")))
    if bad_prefix:
        raise CheckpointError(f"{weights}: tensors outside encoder.* / query_encoder.*: {', '.join(bad_prefix[:12])}")
    config = config_from_checkpoint(cfg, shapes)
    model = build_model(config, init_weights=False)
    check_tensors(shapes, expected_shapes(model), str(weights))

    from safetensors.torch import load_file

    raw = load_file(str(weights))
    state: dict[str, torch.Tensor] = {}
    for key, t in raw.items():
        if key in (_OFF_EMB, _OFF_EXTRA):
            continue
        state[official_to_native(key)] = t  # type: ignore[index]
    state[_EMB] = torch.cat([raw[_OFF_EMB], raw[_OFF_EXTRA]], dim=0)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    del raw, state
    return model.to(dtype).eval(), files


def export_checkpoint(
    model: VSpladeModel,
    out_dir: str | Path,
    tokenizer_file: str | Path,
    query_params: Mapping[str, torch.Tensor] | None = None,
    dtype: torch.dtype = torch.bfloat16,
    longest_edge: int | None = None,
) -> Path:
    """Write `model` in the official export layout (LoRA must be merged first:
    ``peft_model.merge_and_unload()``). `query_params` overrides the Li-LSR tensors
    (keys ``embeddings.weight``, ``projection.weight``, ``projection.bias``)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    for k, v in (query_params or {}).items():
        state["query_head." + k] = v
    tensors = {k: v.detach().to(dtype).contiguous().cpu() for k, v in native_to_official(state, model.vocab_size).items()}
    check_tensors({k: list(v.shape) for k, v in tensors.items()}, expected_shapes(model), str(out))
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    config = model.config
    (out / CONFIG_FILE).write_text(json.dumps(config_to_json(config), indent=2) + "\n")
    tile = config.vision_config.image_size
    (out / PREPROCESSOR_FILE).write_text(json.dumps({
        "image_processor_type": "Idefics3ImageProcessor", "do_resize": True, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True, "do_image_splitting": True, "do_pad": True, "resample": 1,
        "size": {"longest_edge": longest_edge or 4 * tile}, "max_image_size": {"longest_edge": tile},
    }, indent=2) + "\n")
    (out / PROCESSOR_FILE).write_text(json.dumps(
        {"processor_class": "Idefics3Processor", "image_seq_len": image_seq_len(config)}, indent=2) + "\n")
    (out / VSPLADE_CONFIG).write_text(json.dumps(
        {"format": "vsplade-checkpoint", "version": 1, "query_encoder": "li_lsr", "activation": "softplus"}, indent=2) + "\n")
    if Path(tokenizer_file).resolve() != (out / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_file, out / TOKENIZER_FILE)
    return out
