"""Fixtures for the ViDoRe evaluation tests (`vsplade-train eval`).

Built offline from the real pages and queries in tests/data:
- `vidore_root`: a DATA_DIR holding two sets in the ViDoRe v2 BEIR layout, each table written
  with `save_to_disk`: ``esg_reports_v2`` (README spelling) from tests/data/vidore_samples
  (images embedded as an `Image` column, integer corpus ids, a `language` column: the French
  query is filtered out) and ``economics_reports_eng_v2`` converted from the
  vidore_arxivqa_mini export (corpus_ids/scores lists -> one qrels row per page);
- `tiny_checkpoint`: a tiny random ModernVBert V-SPLADE model exported in the official layout.
Other training tests import their fixtures from fixtures_train.py; nothing here is autouse.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = DATA / "vidore_samples"
ARXIVQA = DATA / "vidore_arxivqa_mini"
TOKENIZER = DATA / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json"


def _french(text: str) -> bool:
    return text.startswith("Quelle")


def write_beir(root: Path, corpus: dict, queries: dict, qrels: dict, image_feature: bool = True) -> Path:
    import datasets

    root.mkdir(parents=True, exist_ok=True)
    cfeat = datasets.Features({"corpus-id": datasets.Value("int64"), "image": datasets.Image()}) if image_feature else None
    datasets.Dataset.from_dict(corpus, features=cfeat).save_to_disk(str(root / "corpus"))
    datasets.Dataset.from_dict(queries).save_to_disk(str(root / "queries"))
    datasets.Dataset.from_dict(qrels).save_to_disk(str(root / "qrels"))
    return root


def samples_tables():
    """vidore_samples as ViDoRe v2 tables: corpus-id = position of the image in sorted order."""
    spec = json.loads((SAMPLES / "queries_qrels.json").read_text())
    files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    cid = {f: i for i, f in enumerate(files)}
    corpus = {"corpus-id": list(range(len(files))), "image": [str(SAMPLES / f) for f in files]}
    qids = list(spec["queries"])
    queries = {
        "query-id": qids,
        "query": [spec["queries"][q] for q in qids],
        "language": ["french" if _french(spec["queries"][q]) else "english" for q in qids],
    }
    rows = [(q, cid[f], s) for q, docs in spec["qrels"].items() for f, s in docs.items()]
    qrels = {"query-id": [r[0] for r in rows], "corpus-id": [r[1] for r in rows], "score": [r[2] for r in rows]}
    return corpus, queries, qrels


def arxivqa_tables():
    import datasets

    dd = datasets.load_from_disk(str(ARXIVQA))
    c = dd["corpus"]
    corpus = {"corpus-id": c["corpus_id"], "image": [str(ARXIVQA / p) for p in c["image_path"]]}
    queries = {"query-id": dd["queries"]["query_id"], "query": dd["queries"]["text"]}
    r = dd["relevant_docs"]
    rows = [(q, d, s) for q, ds, ss in zip(r["query_id"], r["corpus_ids"], r["scores"]) for d, s in zip(ds, ss)]
    qrels = {"query-id": [x[0] for x in rows], "corpus-id": [x[1] for x in rows], "score": [x[2] for x in rows]}
    return corpus, queries, qrels


@pytest.fixture(scope="session")
def vidore_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vidore")
    write_beir(root / "esg_reports_v2", *samples_tables())
    write_beir(root / "economics_reports_eng_v2", *arxivqa_tables())
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vsplade.encoders.neural import build_model, export_checkpoint, tiny_config

    torch.manual_seed(7)
    model = build_model(tiny_config())
    with torch.no_grad():
        # random init gives fully dense vectors; spread the head so pages differ and some
        # logits are <= 0 (the same trick as tests/neural/conftest.py)
        model.mlm.lm_head.bias.normal_(0, 2.0)
        model.mlm.projection_head.norm.bias.normal_(0, 0.5)
        model.query_head.projection.bias.fill_(-1.0)
    return export_checkpoint(model.eval(), tmp_path_factory.mktemp("tiny_vsplade"), TOKENIZER, dtype=torch.float32)


@pytest.fixture
def beir_writer():
    """write_beir(root, corpus, queries, qrels[, image_feature]) for tests that build broken sets."""
    return write_beir


@pytest.fixture
def sample_tables():
    """Fresh (corpus, queries, qrels) column dicts of vidore_samples in the ViDoRe v2 layout."""
    return samples_tables()


@pytest.fixture(scope="session")
def osmem_url(tmp_path_factory):
    """A real OpenSearch-API server (osmem-server) on 127.0.0.1 for the engine comparison;
    VSPLADE_OPENSEARCH_URL points the test at a real cluster instead."""
    url = os.environ.get("VSPLADE_OPENSEARCH_URL")
    if url:
        yield url
        return
    osmem = pytest.importorskip("osmem_server", reason="osmem-server is not installed (pip install osmem-server)")
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("osmem") / "server.log", "ab")
    # stdin stays an open pipe: osmem exits when it closes; --parent-pid ends it with pytest
    proc = subprocess.Popen([osmem.resolve_binary(), "--addr", f"127.0.0.1:{port}", "--no-ja", "--parent-pid",
                             str(os.getpid())], stdin=subprocess.PIPE, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"osmem-server did not start on {url} (see {log.name})")
            time.sleep(0.1)
    yield url
    proc.kill()
    proc.wait(10)
    log.close()
