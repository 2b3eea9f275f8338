"""Page image -> model inputs: Idefics3Processor built offline from a checkpoint's files.

Prompt: the training / evaluation / encoding one of spec sections 1-2 (`process_images`), not
the quickstart's chat template:

    <|begin_of_text|>User:<image>Describe the image.<end_of_utterance>\\nAssistant:

Images: longest edge resized to 2048 px (LANCZOS), split into 512 px tiles (at most 4x4) plus a
global view, rescaled to [-1, 1]; ``[CLS]...[SEP]`` added, pages left-padded with [PAD] when
batched. Each page is processed alone (`features`) so workers can run in parallel; `collate`
pads a batch (zero tiles are skipped by the vision tower).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

PROMPT = "<|begin_of_text|>User:<image>Describe the image.<end_of_utterance>\nAssistant:"
LANCZOS = 1


@dataclass
class PageFeatures:
    input_ids: torch.Tensor  # [L]
    pixel_values: torch.Tensor  # [N, 3, t, t]
    pixel_attention_mask: torch.Tensor  # [N, t, t]

    @property
    def num_tiles(self) -> int:
        return int(self.pixel_values.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[0])


def build_processor(tokenizer_file: str | Path, tile: int = 512, longest_edge: int | None = None,
                    image_seq_len: int = 64, resample: int = LANCZOS):
    from transformers import Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        unk_token="[UNK]", mask_token="[MASK]", padding_side="left",
    )
    if tok.convert_tokens_to_ids("<image>") in (None, tok.unk_token_id):
        raise ValueError(f"{tokenizer_file}: the tokenizer has no <image> token (not a ModernVBERT tokenizer)")
    images = Idefics3ImageProcessorPil(
        size={"longest_edge": longest_edge or 4 * tile}, max_image_size={"longest_edge": tile},
        do_image_splitting=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=resample,
        do_convert_rgb=True, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, do_pad=True,
    )
    return Idefics3Processor(images, tok, image_seq_len=image_seq_len)


def processor_from_files(tokenizer_file: Path, preprocessor_file: Path | None, processor_file: Path | None,
                         tile: int, image_seq_len: int):
    """The checkpoint's processor settings where it has them, else the spec's."""
    pre = json.loads(preprocessor_file.read_text()) if preprocessor_file else {}
    proc = json.loads(processor_file.read_text()) if processor_file else {}
    longest = (pre.get("size") or {}).get("longest_edge")
    tile = (pre.get("max_image_size") or {}).get("longest_edge", tile)
    seq = int(proc.get("image_seq_len", image_seq_len))
    if seq != image_seq_len:
        raise ValueError(f"{processor_file}: image_seq_len {seq} does not match the model's {image_seq_len}")
    return build_processor(tokenizer_file, tile=tile, longest_edge=longest, image_seq_len=seq,
                           resample=int(pre.get("resample", LANCZOS)))


def features(processor, image, prompt: str = PROMPT) -> PageFeatures:
    if image.mode != "RGB":
        image = image.convert("RGB")
    out = processor(images=[[image]], text=[prompt], return_tensors="pt")
    return PageFeatures(out["input_ids"][0], out["pixel_values"][0], out["pixel_attention_mask"][0])


def collate(items: list[PageFeatures], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad ids (spec: left padding), zero-pad tiles; masks mark the real positions."""
    b = len(items)
    length = max(i.seq_len for i in items)
    tiles = max(i.num_tiles for i in items)
    _, c, h, w = items[0].pixel_values.shape
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    pix = torch.zeros((b, tiles, c, h, w), dtype=items[0].pixel_values.dtype)
    pmask = torch.zeros((b, tiles, h, w), dtype=torch.long)
    for r, it in enumerate(items):
        ids[r, length - it.seq_len:] = it.input_ids
        mask[r, length - it.seq_len:] = 1
        pix[r, : it.num_tiles] = it.pixel_values
        pmask[r, : it.num_tiles] = it.pixel_attention_mask
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "pixel_attention_mask": pmask}
