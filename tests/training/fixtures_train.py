"""Fixtures for the training tests (imported by the test modules; conftest.py belongs to eval).

Everything is built offline and small: an image dataset from the real images in tests/data,
an RLHN-shaped text dataset, and a tiny random Idefics3 VLM with its processor for the
transformers caption backend. (A Qwen-VL processor cannot be built here: transformers 5.x
requires torchvision for the Qwen-VL video processor, and torchvision is not installed in the
CPU environment; Idefics3's processor has a PIL path.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1] / "data"
TOKENIZER = DATA / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json"

QUERIES = [
    "what does the energy chart show",
    "hi",  # too short: filtered
    "which sources generate electricity at night",
    "government records office forms",
    "   ",  # empty after strip: filtered
    "healthcare spending by country",
    "artificial intelligence adoption rates",
    "kazakhstan energy transition shift",
    "signed forms and records",
    "dog records office",
]
CAPTIONS = [
    "A stacked bar chart of hourly energy generation by source.",
    "Short page.",
    "Electricity generation from nuclear, wind and solar over a day.",
    "A table listing government records and forms.",
    "Blank.",
    "A chart of healthcare spending per country.",
    "A report page about artificial intelligence adoption.",
    "A slide about the energy transition in Kazakhstan.",
    "A form with signatures and records.",
    "A page about dog records kept by an office.",
]


def image_files() -> list[Path]:
    files = sorted((DATA / "vidore_samples").glob("*.jp*g")) + [DATA / "sample_page.png"]
    return files


def make_image_rows(n: int = 10, with_captions: bool = True, hard_negatives: bool = False) -> dict:
    from PIL import Image

    files = image_files()
    # small copies keep the processor and the tiny models fast
    imgs = []
    for i in range(n):
        im = Image.open(files[i % len(files)]).convert("RGB")
        im.thumbnail((96, 96))
        imgs.append(im)
    rows = {"query": [QUERIES[i % len(QUERIES)] for i in range(n)], "image": imgs}
    if with_captions:
        rows["caption"] = [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]
    if hard_negatives:
        rows["hard_negative"] = [imgs[(i + 1) % n] for i in range(n)]
    return rows


def save_image_dataset(path: Path, **kw) -> Path:
    import datasets

    rows = make_image_rows(**kw)
    features = {"query": datasets.Value("string"), "image": datasets.Image()}
    if "caption" in rows:
        features["caption"] = datasets.Value("string")
    if "hard_negative" in rows:
        features["hard_negative"] = datasets.Image()
    datasets.Dataset.from_dict(rows, features=datasets.Features(features)).save_to_disk(str(path))
    return path


def make_rlhn_rows(n: int = 8) -> dict:
    def passages(i, k, tag):
        return [{"docid": f"{tag}{i}-{j}", "title": f"{tag} title {j}", "text": f"{tag} passage {j} about topic {i}"} for j in range(k)]

    return {
        "query": [f"text query number {i} about a topic" for i in range(n)],
        "positive_passages": [passages(i, 2, "pos") for i in range(n)],
        "negative_passages": [passages(i, 3 if i else 1, "neg") for i in range(n)],  # row 0: too few negatives
    }


def save_rlhn_dataset(path: Path, n: int = 8) -> Path:
    import datasets

    datasets.Dataset.from_dict(make_rlhn_rows(n)).save_to_disk(str(path))
    return path


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def save_tiny_vlm(path: Path) -> Path:
    """A random Idefics3ForConditionalGeneration (~3M parameters) and its processor."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER), eos_token="<end_of_utterance>", pad_token="[PAD]")
    ip = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=CHAT_TEMPLATE).save_pretrained(path)
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        text_config=dict(
            model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"),
            pad_token_id=tok.pad_token_id, bos_token_id=None,
        ),
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def image_dataset_dir(tmp_path_factory) -> Path:
    return save_image_dataset(tmp_path_factory.mktemp("imgds") / "train")


@pytest.fixture(scope="session")
def rlhn_dir(tmp_path_factory) -> Path:
    return save_rlhn_dataset(tmp_path_factory.mktemp("rlhn") / "rlhn")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-idefics3")


def save_tiny_backbone(path: Path) -> Path:
    """A random tiny ModernVBertForMaskedLM (what training starts from) + the tokenizer."""
    import shutil

    import torch
    from transformers import ModernVBertForMaskedLM

    from vsplade.encoders.neural.config import tiny_config

    torch.manual_seed(0)
    ModernVBertForMaskedLM(tiny_config()).save_pretrained(path)
    shutil.copyfile(TOKENIZER, Path(path) / "tokenizer.json")
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-modernvbert")


def tiny_train_config(backbone: Path, dataset: Path, out: Path, **kw):
    from vsplade_training.recipes import load_recipe

    values = dict(
        model=str(backbone), dataset=str(dataset), output_dir=str(out), per_device_batch_size=4,
        gradient_accumulation_steps=1, max_steps=30, lr=2e-3, warmup_ratio=0.1, decay_ratio=0.2, bf16=False,
        gradient_checkpointing=False, optim="adamw_torch", logging_steps=5, save_steps=1000,
        dataloader_num_workers=0, lora_r=8, lora_alpha=8, flops_warmup_steps=10, temperature=0.1, seed=0,
        max_caption_tokens=64, image_longest_edge=64,
    )
    values.update(kw)
    return load_recipe("quality", values)
