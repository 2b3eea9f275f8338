"""Shared test setup: offline Hugging Face, paths to tests/data (a fresh clone needs nothing else)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def pdf_dir() -> Path:
    return DATA / "pdfs"


@pytest.fixture(scope="session")
def vocab():
    from vsplade.vocab import default_vocabulary

    return default_vocabulary()
