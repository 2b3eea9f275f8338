"""The real sample page through the full-size processor with the official encoding prompt."""

import math

import pytest
from tokenizers import Tokenizer

from vsplade.encoders.neural import PROMPT, build_processor
from vsplade.encoders.neural.processor import collate, features


def expected_text(rows: int, cols: int, seq: int) -> str:
    """Spec section 2's expansion of <image>, written out by hand."""
    img = "<image>" * seq
    grid = ""
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            grid += f"<fake_token_around_image><row_{r}_col_{c}>{img}"
        grid += "\n"
    grid += f"\n<fake_token_around_image><global-img>{img}<fake_token_around_image>"
    return PROMPT.replace("<image>", grid)


def test_official_prompt():
    assert PROMPT == "<|begin_of_text|>User:<image>Describe the image.<end_of_utterance>\nAssistant:"


def test_sample_page_full_size_processor(tokenizer_file, sample_image):
    proc = build_processor(tokenizer_file)  # 2048 px longest edge, 512 px tiles, 64 tokens per tile
    f = features(proc, sample_image)
    w, h = sample_image.size
    scale = 2048 / max(w, h)
    rows, cols = math.ceil(h * scale / 512), math.ceil(w * scale / 512)
    assert (rows, cols) == (3, 4)  # 1449 x 1086 -> 2048 x ~1535
    assert f.num_tiles == rows * cols + 1
    assert tuple(f.pixel_values.shape[1:]) == (3, 512, 512)
    assert -1.0 <= float(f.pixel_values.min()) and float(f.pixel_values.max()) <= 1.0
    tok = Tokenizer.from_file(str(tokenizer_file))
    want = tok.encode(expected_text(rows, cols, 64), add_special_tokens=True).ids
    got = f.input_ids.tolist()
    assert got[0] == 50281 and got[-1] == 50282  # [CLS] ... [SEP]
    assert got == want
    assert got.count(50407) == 64 * f.num_tiles


def test_collate_left_pads(tiny_processor, images):
    feats = [features(tiny_processor, im) for im in images[:2]]
    b = collate(feats, pad_id=50283)
    longest = max(f.seq_len for f in feats)
    short = min(range(2), key=lambda i: feats[i].seq_len)
    pad = longest - feats[short].seq_len
    assert pad > 0
    assert b["input_ids"][short, :pad].tolist() == [50283] * pad
    assert b["attention_mask"][short].tolist() == [0] * pad + [1] * feats[short].seq_len
    assert b["input_ids"][short, pad:].tolist() == feats[short].input_ids.tolist()
    # padded tiles are all zero so the vision tower skips them
    n = feats[short].num_tiles
    assert b["pixel_values"].shape[1] == max(f.num_tiles for f in feats)
    assert (b["pixel_values"][short, n:] == 0).all()


def test_tokenizer_without_image_token_is_refused(tmp_path):
    from vsplade.vocab import default_tokenizer_path

    with pytest.raises(ValueError, match="no <image> token"):
        build_processor(default_tokenizer_path())
