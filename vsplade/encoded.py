"""The encoded dir: page vectors on disk, seed-compatible.

Layout::

    sparse_docs.npz   scipy CSR float32 [N, V] (the official encode_sparse_documents.py output)
    doc_ids.json      list of str, aligned to rows
    pages.jsonl       one {"id", "source", "page", "sha256"} per row
    vsplade.json      {"format": "vsplade-encoded", "encoder": {...}, "vocab_size", "num_docs", ...}

While writing, rows go to ``shards/part-NNNNN.{npz,ids.json,pages.jsonl}`` (each shard
written to a temp name and renamed, so a crash never leaves half a shard). A re-run skips
the ids already in shards. On close the shards are merged into ``sparse_docs.npz`` unless the
corpus is larger than `merge_max_nnz`; then they stay and ``vsplade.json`` lists them, and
readers stream them one at a time (bounded memory).

A directory with only ``sparse_docs.npz`` + ``doc_ids.json`` (the official output) loads
too; its vocabulary is assumed to be the default one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import orjson
import scipy.sparse as sp

from .engines.base import IndexMismatchError, IndexSummary
from .sparse import SparseBatch, concat
from .vocab import TERM_NAMING, VOCAB_SIZE

ENCODED_FORMAT = "vsplade-encoded"
MATRIX_FILE = "sparse_docs.npz"
IDS_FILE = "doc_ids.json"
PAGES_FILE = "pages.jsonl"
CONFIG_FILE = "vsplade.json"
SHARD_DIR = "shards"
DEFAULT_SHARD_DOCS = 4096
DEFAULT_MERGE_MAX_NNZ = 200_000_000  # ~1.6 GB of CSR in memory at merge time


class EncodedDirError(ValueError):
    pass


def is_encoded_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / MATRIX_FILE).is_file() or (p / CONFIG_FILE).is_file()) and (
        (p / IDS_FILE).is_file() or (p / SHARD_DIR).is_dir()
    )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    sp.save_npz(tmp, sp.csr_matrix(matrix, dtype=np.float32), compressed=False)
    os.replace(tmp, path)


def _write_jsonl(path: Path, rows) -> None:
    _atomic_write_bytes(path, b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class EncodedDir:
    """Read side."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise EncodedDirError(f"{self.path}: no such encoded dir")
        cfg_path = self.path / CONFIG_FILE
        if cfg_path.is_file():
            try:
                self.config = json.loads(cfg_path.read_text())
            except ValueError as e:
                raise EncodedDirError(f"{cfg_path}: invalid JSON ({e})") from None
            if self.config.get("format") != ENCODED_FORMAT:
                raise EncodedDirError(f"{cfg_path}: not an encoded dir (format={self.config.get('format')!r})")
        elif (self.path / MATRIX_FILE).is_file() and (self.path / IDS_FILE).is_file():
            # the official encoder's output: default vocabulary, unknown settings
            self.config = {"format": ENCODED_FORMAT, "encoder": {"name": "unknown"}, "vocab_size": VOCAB_SIZE}
        else:
            raise EncodedDirError(
                f"{self.path}: not an encoded dir (expected {MATRIX_FILE} + {IDS_FILE}, or {CONFIG_FILE})"
            )
        if self.config.get("state") == "writing":
            raise EncodedDirError(f"{self.path}: encoding did not finish; re-run `vsplade encode` to resume")

    @property
    def encoder_info(self) -> dict:
        return self.config.get("encoder", {})

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size", VOCAB_SIZE))

    def _parts(self) -> list[tuple[Path, list[str], list[dict] | None]]:
        shards = self.config.get("shards")
        if shards:
            parts = []
            for name in shards:
                base = self.path / SHARD_DIR / name
                ids = orjson.loads(Path(f"{base}.ids.json").read_bytes())
                pages_path = Path(f"{base}.pages.jsonl")
                parts.append((Path(f"{base}.npz"), ids, _read_jsonl(pages_path) if pages_path.is_file() else None))
            return parts
        ids = orjson.loads((self.path / IDS_FILE).read_bytes())
        pages_path = self.path / PAGES_FILE
        return [(self.path / MATRIX_FILE, [str(i) for i in ids], _read_jsonl(pages_path) if pages_path.is_file() else None)]

    def iter_batches(self) -> Iterator[SparseBatch]:
        """One SparseBatch per stored part (a whole merged corpus, or one shard)."""
        for npz, ids, pages in self._parts():
            try:
                matrix = sp.load_npz(npz).tocsr()
            except (OSError, ValueError) as e:
                raise EncodedDirError(f"{npz}: cannot read ({e})") from None
            if matrix.shape[0] != len(ids):
                raise EncodedDirError(f"{npz}: {matrix.shape[0]} rows but {len(ids)} ids")
            if matrix.shape[1] != self.vocab_size:
                raise EncodedDirError(f"{npz}: {matrix.shape[1]} columns, expected vocabulary size {self.vocab_size}")
            yield SparseBatch(matrix, ids, pages or [])

    def load(self) -> SparseBatch:
        return concat(self.iter_batches(), self.vocab_size)

    def ids(self) -> list[str]:
        return [i for _, ids, _ in self._parts() for i in ids]

    def __len__(self) -> int:
        return int(self.config.get("num_docs", len(self.ids())))


class EncodedDirWriter:
    """Write side: streaming, sharded, resumable. Use as a context manager or call close()."""

    def __init__(
        self,
        path: str | Path,
        info: Mapping[str, Any],
        recreate: bool = False,
        shard_docs: int = DEFAULT_SHARD_DOCS,
        merge_max_nnz: int = DEFAULT_MERGE_MAX_NNZ,
    ):
        self.path = Path(path)
        self.info = dict(info)
        self.shard_docs = shard_docs
        self.merge_max_nnz = merge_max_nnz
        if recreate and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._shard_dir = self.path / SHARD_DIR
        self._check_or_start()
        self._buffer: list[SparseBatch] = []
        self._buffered = 0
        self.summary = IndexSummary()
        self._closed = False

    def _check_or_start(self) -> None:
        cfg_path = self.path / CONFIG_FILE
        if cfg_path.is_file():
            old = json.loads(cfg_path.read_text())
            if old.get("encoder") != self.info:
                raise IndexMismatchError(
                    f"{self.path} holds vectors from encoder {old.get('encoder')}, not {self.info}; "
                    "use a new --out dir or --recreate"
                )
            if old.get("state") != "writing" and (self.path / MATRIX_FILE).is_file():
                # A finished merged dir: split it back into a shard so new pages can be added.
                self._shard_dir.mkdir(exist_ok=True)
                if not list(self._shard_dir.glob("*.npz")):
                    d = EncodedDir(self.path)
                    batch = d.load()
                    self._write_shard(batch)
                for name in (MATRIX_FILE, IDS_FILE, PAGES_FILE):
                    (self.path / name).unlink(missing_ok=True)
        elif any(self.path.iterdir()) and not self._shard_dir.is_dir():
            raise EncodedDirError(f"{self.path} exists and is not an encoded dir; choose an empty --out dir")
        self._write_config(state="writing")

    def _config(self, **extra) -> dict:
        return {
            "format": ENCODED_FORMAT,
            "version": 1,
            "encoder": self.info,
            "vocab_size": VOCAB_SIZE,
            "term_naming": TERM_NAMING,
            **extra,
        }

    def _write_config(self, **extra) -> None:
        _atomic_write_bytes(self.path / CONFIG_FILE, json.dumps(self._config(**extra), indent=2).encode() + b"\n")

    def _shard_names(self) -> list[str]:
        if not self._shard_dir.is_dir():
            return []
        return sorted(p.name[: -len(".npz")] for p in self._shard_dir.glob("part-*.npz"))

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for name in self._shard_names():
            ids_path = self._shard_dir / f"{name}.ids.json"
            if ids_path.is_file():
                done.update(orjson.loads(ids_path.read_bytes()))
        return done

    def add(self, batch: SparseBatch) -> None:
        if not len(batch):
            return
        batch.validate()
        self._buffer.append(batch)
        self._buffered += len(batch)
        nnz = np.diff(batch.matrix.indptr)
        self.summary.indexed += len(batch)
        self.summary.empty += int((nnz == 0).sum())
        if self._buffered >= self.shard_docs:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._write_shard(concat(self._buffer))
            self._buffer, self._buffered = [], 0

    def _write_shard(self, batch: SparseBatch) -> None:
        self._shard_dir.mkdir(exist_ok=True)
        names = self._shard_names()
        n = int(names[-1].split("-")[1]) + 1 if names else 0
        base = self._shard_dir / f"part-{n:05d}"
        _write_jsonl(Path(f"{base}.pages.jsonl"), batch.meta)
        _atomic_write_bytes(Path(f"{base}.ids.json"), orjson.dumps(batch.ids))
        # the npz is written last: a shard counts as done only once its matrix exists
        _save_npz(Path(f"{base}.npz"), batch.matrix)

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        self.flush()
        names = [n for n in self._shard_names() if (self._shard_dir / f"{n}.ids.json").is_file()]
        total_nnz = 0
        num_docs = 0
        for name in names:
            with np.load(self._shard_dir / f"{name}.npz") as z:
                total_nnz += int(z["data"].shape[0])
                num_docs += int(z["shape"][0])
        if total_nnz <= self.merge_max_nnz:
            parts = []
            ids: list[str] = []
            pages: list[dict] = []
            for name in names:
                parts.append(sp.load_npz(self._shard_dir / f"{name}.npz").tocsr())
                ids.extend(orjson.loads((self._shard_dir / f"{name}.ids.json").read_bytes()))
                pages.extend(_read_jsonl(self._shard_dir / f"{name}.pages.jsonl"))
            matrix = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, VOCAB_SIZE), dtype=np.float32)
            _save_npz(self.path / MATRIX_FILE, matrix)
            _atomic_write_bytes(self.path / IDS_FILE, orjson.dumps(ids))
            _write_jsonl(self.path / PAGES_FILE, pages)
            self._write_config(num_docs=num_docs, nnz=total_nnz)
            shutil.rmtree(self._shard_dir, ignore_errors=True)
        else:
            ids = [i for n in names for i in orjson.loads((self._shard_dir / f"{n}.ids.json").read_bytes())]
            _atomic_write_bytes(self.path / IDS_FILE, orjson.dumps(ids))
            self._write_config(num_docs=num_docs, nnz=total_nnz, shards=names)
        self._closed = True
        return self.summary

    def abort(self) -> None:
        # keep the shards already written; the next run resumes from them
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.abort()
