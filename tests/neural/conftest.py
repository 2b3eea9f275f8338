"""Fixtures for the neural encoder: a tiny random ModernVBert, its processor, and a synthetic
checkpoint written in the official export layout. All built offline in code."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

DATA = Path(__file__).parent.parent / "data"
TOKENIZER = DATA / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json"
TILE = 64
SEQ = 4  # visual tokens per tile in the tiny config (64 px / 16 px patches, shuffle 2)


@pytest.fixture(scope="session")
def tokenizer_file() -> Path:
    return TOKENIZER


@pytest.fixture(scope="session")
def tiny_model():
    from vsplade.encoders.neural import build_model, tiny_config

    torch.manual_seed(1234)
    model = build_model(tiny_config())
    # random init gives a dense vector; give the head a spread so some logits are <= 0
    with torch.no_grad():
        model.mlm.lm_head.bias.normal_(0, 2.0)
        model.mlm.projection_head.dense.bias.uniform_(-0.1, 0.1)
        model.mlm.projection_head.norm.bias.normal_(0, 0.5)
        model.query_head.projection.bias.fill_(-1.0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_processor(tokenizer_file):
    from vsplade.encoders.neural import build_processor

    return build_processor(tokenizer_file, tile=TILE, image_seq_len=SEQ)


@pytest.fixture(scope="session")
def checkpoint_fp32(tiny_model, tokenizer_file, tmp_path_factory) -> Path:
    from vsplade.encoders.neural import export_checkpoint

    return export_checkpoint(tiny_model, tmp_path_factory.mktemp("ck32"), tokenizer_file, dtype=torch.float32)


@pytest.fixture(scope="session")
def checkpoint_bf16(tiny_model, tokenizer_file, tmp_path_factory) -> Path:
    from vsplade.encoders.neural import export_checkpoint

    return export_checkpoint(tiny_model, tmp_path_factory.mktemp("ck16"), tokenizer_file)


@pytest.fixture(scope="session")
def sample_image():
    from PIL import Image

    return Image.open(DATA / "sample_page.png")


@pytest.fixture(scope="session")
def images(sample_image):
    from PIL import Image

    return [
        sample_image,
        sample_image.crop((0, 0, 600, 120)),  # wide strip: few tiles
        Image.open(DATA / "vidore_samples" / "ai_sample.jpeg"),
        sample_image.crop((100, 100, 400, 1000)),  # tall
    ]


@pytest.fixture(scope="session")
def pages(images):
    from vsplade.pages import Page

    return [Page(id=f"img-{i}", source=f"mem{i}.png", page_no=1, image=im, sha256="0" * 64) for i, im in enumerate(images)]
