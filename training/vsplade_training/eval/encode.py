"""Corpus pages -> an encoded dir per dataset, encoded once and reused across runs and engines;
queries -> {term: weight} with the torch-free query encoder.

The encoded dir (`vsplade.encoded`) is resumable: an interrupted encoding continues with the
pages it lacks. A finished dir is reused without loading the document encoder when its
encoder info names the same model (and, for a local checkpoint, the same weights hash).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import scipy.sparse as sp

from vsplade.encoded import EncodedDir, EncodedDirError, EncodedDirWriter, is_encoded_dir
from vsplade.encoders import DocumentEncoder
from vsplade.pipeline import encoder_info
from vsplade.query import QueryEncoder
from vsplade.sparse import SparseBatch

from .loading import DatasetError, EvalDataset

log = logging.getLogger(__name__)


@dataclass
class EncodedCorpus:
    path: Path
    batch: SparseBatch  # rows in encoded-dir order
    info: dict
    seconds: float
    encoded_pages: int  # pages encoded in this run (0 when reused)
    warnings: list[str] = field(default_factory=list)


def _weights_sha256(model: str) -> str | None:
    from vsplade.encoders.checkpoint_table import WEIGHTS_FILE
    from vsplade.pages import file_sha256

    p = Path(model) / WEIGHTS_FILE
    return file_sha256(p) if p.is_file() else None


def _reusable(path: Path, model: str, ds: EvalDataset) -> bool:
    if not is_encoded_dir(path):
        return False
    try:
        enc = EncodedDir(path)
    except EncodedDirError:
        return False  # unfinished: resume through the writer
    info = enc.encoder_info
    if info.get("model") != model:
        return False
    if "weights_sha256" in info and _weights_sha256(model) not in (None, info["weights_sha256"]):
        log.info("%s: %s was re-encoded with other weights; encoding again", ds.name, path)
        return False
    return set(enc.ids()) >= set(ds.corpus_ids)


def encode_corpus(
    ds: EvalDataset,
    model: str,
    path: Path,
    make_encoder: Callable[[], DocumentEncoder],
    reencode: bool = False,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> EncodedCorpus:
    t0 = time.perf_counter()
    warnings: list[str] = []
    encoded = 0
    if reencode or not _reusable(path, model, ds):
        encoder = make_encoder()
        if encoder.needs_fit:
            encoder.fit(ds.pages(images=False))
        info = encoder_info(encoder, model)
        with EncodedDirWriter(path, info, recreate=reencode) as writer:
            todo = set(ds.corpus_ids) - writer.done_ids()
            skip = set(ds.corpus_ids) - todo
            from tqdm.auto import tqdm

            with tqdm(total=len(todo), desc=f"encoding {ds.name}", unit="page", file=sys.stderr,
                      disable=progress is False) as bar:
                for batch in encoder.encode_stream(ds.pages(skip=skip, images=encoder.needs_image or encoder.uses_pixels), batch_size):
                    writer.add(batch)
                    encoded += len(batch)
                    bar.update(len(batch))
        warnings = list(getattr(encoder, "warnings", []))
    enc = EncodedDir(path)
    batch = enc.load()
    missing = set(ds.corpus_ids) - set(batch.ids)
    if missing:
        raise DatasetError(f"{ds.name}: encoded dir {path} lacks {len(missing)} corpus page(s), e.g. {sorted(missing)[0]!r}")
    if len(batch) != len(ds.corpus_ids):
        # extra rows (a corpus that shrank): keep exactly the corpus pages
        keep = set(ds.corpus_ids)
        batch = batch.select([i for i, d in enumerate(batch.ids) if d in keep])
    return EncodedCorpus(path, batch, enc.encoder_info, time.perf_counter() - t0, encoded, warnings)


@dataclass
class EncodedQueries:
    ids: list[str]
    terms: list[dict[str, float]]  # what the engines get
    matrix: sp.csr_matrix  # [Q, V], for FLOPs and nnz
    seconds: float


def encode_queries(qenc: QueryEncoder, queries: dict[str, str]) -> EncodedQueries:
    ids = list(queries)
    texts = [queries[q] for q in ids]
    t0 = time.perf_counter()
    terms = [qenc.encode(t) for t in texts]
    seconds = time.perf_counter() - t0
    return EncodedQueries(ids, terms, qenc.encode_matrix(texts), seconds)

