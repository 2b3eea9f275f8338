"""The direct indexing path: SparseBatch -> Lucene impact index, impacts written as term frequencies.

Pyserini's JsonVectorCollection route repeats every term ``impact`` times in a pseudo-text
(cost grows with the SUM of the impacts). Here each non-zero becomes ONE token ``term|impact``
and Lucene's ``DelimitedTermFrequencyTokenFilter`` (analysis-common, inside the Anserini jar)
turns it into the term with that term frequency, so the cost grows with the number of
non-zeros. The resulting postings (term, doc, freq) are what the JsonVectorCollection route
produces, in the same field (``contents``, DOCS_AND_FREQS, norms from ImpactSimilarity), with
the same ``id`` fields (stored + BINARY doc values, as Anserini 1.7 writes them), so Pyserini's ``LuceneImpactSearcher`` reads it unchanged.

Delimiter safety: the filter splits each token at its FIRST '|', and term names never contain
'|' (nor whitespace, which the tokenizer splits on): vsplade.vocab percent-escapes both.

Doc ids: one Java thread adds documents and merges only touch adjacent segments
(LogByteSizeMergePolicy), so Lucene doc ids are the insertion order. Ties therefore break by
indexing order, as in the exact scorer, and vsplade-docs.jsonl is aligned with doc ids.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import orjson

from vsplade.engines.base import EngineError, IndexSummary, IndexWriter
from vsplade.sparse import SparseBatch, bad_rows, quantize_impacts
from vsplade.vocab import Vocabulary, default_vocabulary

from . import jvm
from .store import (
    CONTENTS_FIELD,
    ID_FIELD,
    RAW_FIELD,
    DocsFile,
    check_compatible,
    meta_line,
    new_config,
    prepare_dir,
    read_config,
    write_config,
)

log = logging.getLogger(__name__)

DELIMITER = "|"
_CHARSEQ_FIELD = "(Ljava/lang/String;Ljava/lang/CharSequence;Lorg/apache/lucene/index/IndexableFieldType;)V"


def impact_analyzer():
    """whitespace tokenizer + delimitedTermFrequency('|'): 'term|7' -> term with freq 7."""
    J = jvm.classes()
    b = J.CustomAnalyzer.builder()
    tok = J.HashMap()
    tok.put("maxTokenLen", "1024")  # term names are <= 128 chars; never split a token
    b.withTokenizer("whitespace", tok)
    flt = J.HashMap()
    flt.put("delimiter", DELIMITER)
    b.addTokenFilter("delimitedTermFrequency", flt)
    return b.build()


def contents_field_type():
    """Anserini's DefaultLuceneDocumentGenerator field type for a non-positional impact index."""
    J = jvm.classes()
    ft = J.FieldType()
    ft.setStored(False)
    ft.setTokenized(True)
    ft.setIndexOptions(J.IndexOptions.DOCS_AND_FREQS)
    ft.freeze()
    return ft


def open_index_writer(path: Path, analyzer, ram_buffer_mb: float, create: bool):
    J = jvm.classes()
    cfg = J.IndexWriterConfig(analyzer)
    # Anserini indexes impact collections with ImpactSimilarity (norm = 1 for every doc)
    cfg.setSimilarity(J.ImpactSimilarity())
    cfg.setRAMBufferSizeMB(float(ram_buffer_mb))
    cfg.setMergePolicy(J.LogByteSizeMergePolicy())  # adjacent merges keep doc ids in insertion order
    cfg.setOpenMode(J.OpenMode.CREATE if create else J.OpenMode.CREATE_OR_APPEND)
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    return J.IndexWriter(directory, cfg), directory


class TermStrings:
    """'term|' prefixes and 'impact ' suffixes as numpy object arrays, so a page's contents
    string is two fancy-indexing gathers and one join (C loops; ~2x faster than a list
    comprehension over the mostly non-ASCII term names)."""

    NUMBERS = 4096

    def __init__(self, vocab: Vocabulary):
        self.prefix = np.array([t + DELIMITER for t in vocab.terms], dtype=object)
        self.numbers = np.array([f"{i} " for i in range(self.NUMBERS)], dtype=object)

    def contents(self, idx: np.ndarray, vals: np.ndarray) -> str:
        if len(vals) == 0:
            return ""
        if vals.max() >= self.NUMBERS:  # huge impacts (large scale): rare, plain path
            return " ".join(f"{t}{v}" for t, v in zip(self.prefix[idx], vals.tolist()))
        parts = np.empty(2 * len(idx), dtype=object)
        parts[0::2] = self.prefix[idx]
        parts[1::2] = self.numbers[vals]
        return "".join(parts)


class DirectImpactWriter(IndexWriter):
    """Streaming, resumable writer. Commits every `commit_every` docs and on close."""

    def __init__(
        self,
        path: Path,
        info: Mapping[str, Any],
        scale: float = 100.0,
        recreate: bool = False,
        vocab: Vocabulary | None = None,
        ram_buffer_mb: float = 256.0,
        commit_every: int = 20000,
        progress: bool = False,
    ):
        if not scale > 0:
            raise EngineError(f"impact scale must be > 0, got {scale}")
        self.path = Path(path)
        self.info = dict(info)
        self.scale = float(scale)
        self.vocab = vocab or default_vocabulary()
        self.commit_every = int(commit_every)
        self.summary = IndexSummary()
        self._closed = False

        prepare_dir(self.path, recreate)
        old = read_config(self.path)
        if old is not None:
            check_compatible(self.path, old, self.info, self.scale)
            self.config = old
            if old.get("build") != "direct":
                raise EngineError(
                    f"{self.path} was built through JsonVectorCollection; add pages with the same "
                    "route or --recreate"
                )
            self.config["state"] = "writing"
        else:
            self.config = new_config(self.info, self.scale, build="direct")
        write_config(self.path, self.config)

        self._strings = TermStrings(self.vocab)
        self._analyzer = impact_analyzer()
        create = old is None
        self._writer, self._directory = open_index_writer(self.path, self._analyzer, ram_buffer_mb, create)
        committed = int(self._writer.getDocStats().maxDoc)
        self._docs = DocsFile(self.path)
        rows = self._docs.truncate_to(committed) if (committed or self._docs.path.exists()) else []
        self._done: set[str] = {r["id"] for r in rows}
        self._num_docs = committed
        self._pending: list[dict] = []
        self._build_doc()
        self._t0 = time.perf_counter()

    def _build_doc(self) -> None:
        # One Document with reusable fields: per page only the values change, which keeps the
        # number of Python->Java calls per page at five.
        J = jvm.classes()
        self._doc = J.Document()
        self._f_id = J.StringField(ID_FIELD, "", J.Store.YES)
        # Anserini 1.7 stores the id as BINARY doc values and sorts on them to break score ties
        self._f_sort = J.BinaryDocValuesField(ID_FIELD, J.BytesRef(b""))
        self._f_raw = J.StoredField(RAW_FIELD, "{}")
        self._f_contents = J.Field(CONTENTS_FIELD, J.String(""), contents_field_type(), signature=_CHARSEQ_FIELD)
        for f in (self._f_id, self._f_sort, self._f_raw, self._f_contents):
            self._doc.add(f)
        self._BytesRef = J.BytesRef

    # -- IndexWriter API -------------------------------------------------------------------

    def done_ids(self) -> set[str]:
        return set(self._done)

    def add(self, batch: SparseBatch) -> None:
        if self._closed:
            raise EngineError("writer is closed")
        if len(batch) == 0:
            return
        if batch.vocab_size != self.vocab.size:
            raise EngineError(
                f"batch has {batch.vocab_size} columns but the vocabulary has {self.vocab.size} terms"
            )
        keep = self._keep_rows(batch)
        if not keep:
            return
        if len(keep) != len(batch):
            batch = batch.select(keep)
        impacts, dropped = quantize_impacts(batch.matrix, self.scale)
        self.summary.dropped_weights += dropped
        indptr, indices, data = impacts.indptr, impacts.indices, impacts.data
        contents = self._strings.contents
        f_id, f_sort, f_raw, f_contents = self._f_id, self._f_sort, self._f_raw, self._f_contents
        BytesRef, add_doc, doc = self._BytesRef, self._writer.addDocument, self._doc
        for r, doc_id in enumerate(batch.ids):
            s, e = indptr[r], indptr[r + 1]
            if s == e:
                self.summary.empty += 1
            line = meta_line(doc_id, batch.meta[r])
            f_id.setStringValue(doc_id)
            f_sort.setBytesValue(BytesRef(doc_id.encode("utf-8")))
            f_raw.setStringValue(orjson.dumps(line).decode())
            f_contents.setStringValue(contents(indices[s:e], data[s:e]))
            add_doc(doc)
            self._pending.append(line)
            self._done.add(doc_id)
            self.summary.indexed += 1
        if len(self._pending) >= self.commit_every:
            self.commit()

    def _keep_rows(self, batch: SparseBatch) -> list[int]:
        bad = set(bad_rows(batch.matrix).tolist())
        keep, seen = [], set()
        for r, doc_id in enumerate(batch.ids):
            if r in bad:
                try:
                    batch.select([r]).validate()
                except ValueError as e:
                    self.summary.failures.append((doc_id, str(e)))
                continue
            if doc_id in self._done or doc_id in seen:
                self.summary.skipped += 1
                continue
            seen.add(doc_id)
            keep.append(r)
        return keep

    def commit(self) -> None:
        """Make everything added so far durable (doc lines first, then the Lucene commit)."""
        self._docs.append(self._pending)
        self._num_docs += len(self._pending)
        self._pending = []
        self._writer.commit()

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        self.commit()
        self._writer.close()
        self._closed = True
        self.config["state"] = "ready"
        self.config["num_docs"] = self._num_docs
        write_config(self.path, self.config)
        secs = time.perf_counter() - self._t0
        self.summary.extra.update(
            engine="lucene", index=str(self.path), num_docs=self._num_docs, scale=self.scale,
            seconds=round(secs, 3),
        )
        return self.summary

    def abort(self) -> None:
        """Drop what was not committed; committed pages stay for a resume."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.rollback()
        except Exception as e:  # rollback also closes; a second failure must not hide the first
            log.warning("lucene rollback failed: %s", e)
