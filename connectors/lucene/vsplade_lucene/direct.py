"""The direct indexing path: SparseBatch -> Lucene impact index, impacts written as term frequencies.

Pyserini's JsonVectorCollection route repeats every term ``impact`` times in a pseudo-text
(cost grows with the SUM of the impacts). Here each non-zero is one posting whose term
frequency is the impact, so the cost grows with the number of non-zeros and not with the
scale. The postings (term, doc, freq) are what the JsonVectorCollection route produces, in the
same field (``contents``, DOCS_AND_FREQS, norms from ImpactSimilarity), with the same ``id``
fields (stored + BINARY doc values, as Anserini 1.7 writes them), so Pyserini's
``LuceneImpactSearcher`` reads it unchanged.

The Lucene side runs in Java, in our helper jar (``vsplade.lucene.ImpactIndexer`` and
``ChunkReader``, source in connectors/lucene/java/): Python quantizes a chunk of pages with
numpy and hands it over as a few int32/UTF-8 byte arrays in ONE JNI call; Java worker threads
turn each chunk into a segment on every core (the chunk seen as a segment reader, written by
``addIndexes`` through the codec, with no per-token inversion), and one appender adds the
segments to the index in submission order. (Driving ``addDocument`` per page from Python kept
indexing on one core: the GIL and a JNI round trip per field. Term bytes come from the
vocabulary, so no ``term|impact`` text is built or parsed and no delimiter can clash with a
term name.)

Doc ids: segments join the index in submission order and LogByteSizeMergePolicy merges only
adjacent segments, so Lucene doc ids are the insertion order. Ties therefore break by
indexing order, as in the exact scorer, and vsplade-docs.jsonl is aligned with doc ids.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import orjson

from vsplade.crashpoints import crash_point
from vsplade.engines.base import EngineError, IndexSummary, IndexWriter
from vsplade.sparse import SparseBatch, quantize_impacts
from vsplade.vocab import Vocabulary, default_vocabulary

from . import jvm
from . import capped
from .forward import ForwardWriter
from .store import (
    CONTENTS_FIELD,
    ID_FIELD,
    RAW_FIELD,
    TEXT_FIELD,
    DocsFile,
    is_lock_failure,
    java_error,
    lucene_lock_error,
    meta_line,
    new_config,
    open_build,
    open_locked,
    write_config,
)

log = logging.getLogger(__name__)

DEFAULT_CHUNK_DOCS = 16384
MAX_PAGE_IMPACT = 2**31 - 1


def open_index_writer(path: Path, create: bool):
    """Lucene's IndexWriter on DIR. Its write.lock held by another program (or another writer
    in this JVM) is an IndexLockedError, not a Java traceback."""
    J = jvm.classes()
    cfg = J.IndexWriterConfig()
    # Anserini indexes impact collections with ImpactSimilarity (norm = 1 for every doc)
    cfg.setSimilarity(J.ImpactSimilarity())
    cfg.setMergePolicy(J.LogByteSizeMergePolicy())  # adjacent merges keep doc ids in insertion order
    cfg.setOpenMode(J.OpenMode.CREATE if create else J.OpenMode.CREATE_OR_APPEND)
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    try:
        return J.IndexWriter(directory, cfg), directory
    except Exception as e:  # JavaException
        directory.close()
        if is_lock_failure(e):
            raise lucene_lock_error(path, e) from None
        raise java_error(path, e, "opening the Lucene index") from None


def _utf8_with_lengths(strings) -> tuple[bytes, bytes]:
    encoded = [s.encode("utf-8") for s in strings]
    return b"".join(encoded), np.fromiter(map(len, encoded), dtype="<i4", count=len(encoded)).tobytes()


class _Chunk:
    """Pages waiting to be handed to Java, kept as the arrays ImpactIndexer.submit takes."""

    def __init__(self) -> None:
        self.meta: list[bytes] = []
        self.counts: list[np.ndarray] = []
        self.term_ids: list[np.ndarray] = []
        self.impacts: list[np.ndarray] = []
        # the unpruned pages for the forward index, when the writer prunes (else the above)
        self.forward: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.texts: list[str | None] = []  # each page's text layer (meta "text"), None: none given
        self.docs = 0

    def text_arrays(self) -> tuple[bytes, bytes] | None:
        """(UTF-8 texts, int32 byte lengths) when any page of the chunk brought its text
        (hybrid search, `--text-field`), else None: no text field for this chunk."""
        if all(t is None for t in self.texts):
            return None
        # a lone surrogate from a broken text layer must not fail the chunk: it becomes U+FFFD
        encoded = [(t or "").encode("utf-8", "replace") for t in self.texts]
        return b"".join(encoded), np.fromiter(map(len, encoded), dtype="<i4", count=len(encoded)).tobytes()

    def arrays(self) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        meta_lengths = np.fromiter(map(len, self.meta), dtype="<i4", count=len(self.meta))
        return (
            b"".join(self.meta),
            meta_lengths.tobytes(),
            np.concatenate(self.counts).astype("<i4").tobytes(),
            np.concatenate(self.term_ids).astype("<i4").tobytes(),
            np.concatenate(self.impacts).astype("<i4").tobytes(),
        )


class DirectImpactWriter(IndexWriter):
    """Streaming, resumable writer. Java commits every `commit_every` docs and close commits.

    threads: Java threads building segments (default: every core); chunk_docs: pages per
    hand-over to Java, exactly (memory is bounded by about threads + 2 chunks in flight).

    The constructor takes the index's writer lock (store.open_locked) before it touches DIR,
    then Lucene's IndexWriter (its write.lock); close() and abort() release both, and so does
    a constructor that fails. Crash points (vsplade.crashpoints) mark each step, so the
    crash-injection tests can SIGKILL a run at any of them.
    """

    def __init__(
        self,
        path: Path,
        info: Mapping[str, Any],
        scale: float = 10000.0,  # LuceneEngine.DEFAULT_SCALE["direct"]
        recreate: bool = False,
        vocab: Vocabulary | None = None,
        threads: int | None = None,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        commit_every: int = 20000,
        progress: bool = False,
        pruning: Any = None,
        optimize: bool = False,
        forward_index: bool | None = None,
    ):
        """pruning: a vsplade.pruning.StaticPruning (or what StaticPruning.of takes): Lucene
        indexes each page pruned, the forward index keeps it whole ("unpruned"), so two-phase
        search reads the pruned postings in phase 1 and returns full exact scores.
        optimize: force-merge to one segment when the build closes (vsplade_lucene.optimize).
        forward_index: write the forward index (forward.py) for two-phase's phase 2; None: only
        with pruning (it costs ~3.3 KB a page; on an unpruned index query-side two-phase does
        not beat exact search, RESULTS.md). Fixed when the index is created."""
        if not scale > 0:
            raise EngineError(f"impact scale must be > 0, got {scale}")
        threads = int(threads or os.cpu_count() or 1)
        if threads < 1 or chunk_docs < 1:
            raise EngineError(f"threads and chunk_docs must be >= 1, got {threads} and {chunk_docs}")
        self.path = Path(path)
        self.info = dict(info)
        self.scale = float(scale)
        self.vocab = vocab or default_vocabulary()
        self.chunk_docs = int(chunk_docs)
        from vsplade.pruning import StaticPruning

        self.pruning = StaticPruning.of(pruning)
        if self.pruning is not None and self.pruning.is_noop:
            self.pruning = None
        self.optimize = bool(optimize)
        self._want_forward = (self.pruning is not None) if forward_index is None else bool(forward_index)
        self.summary = IndexSummary()
        self._closed = False
        self._writer = self._directory = self._indexer = None

        # the lock before anything touches DIR; every exit path below releases it
        self._lock, lock_created = open_locked(self.path)
        try:
            self._open(recreate, lock_created, threads, int(commit_every))
        except BaseException:
            self._release(rollback=True)
            raise
        self._t0 = time.perf_counter()

    def _open(self, recreate: bool, lock_created: bool, threads: int, commit_every: int) -> None:
        old = open_build(self.path, recreate, lock_created, self.info, self.scale, "direct")
        setting = None if self.pruning is None else self.pruning.properties()["static_pruning"]
        if old is not None and old.get("static_pruning") != setting:
            raise EngineError(f"{self.path} was built with static pruning {old.get('static_pruning')}, not "
                              f"{setting}; add pages with the same setting or --recreate")
        if old is not None:
            self.config = old
            self.config["state"] = "writing"
        else:
            self.config = new_config(self.info, self.scale, build="direct")
            if setting is not None:
                self.config["static_pruning"] = setting
            self.config["forward_index"] = self._want_forward
        # Lucene's write lock (another Lucene program on DIR fails here) before our config
        # changes; a new dir with only Lucene's lock file and no commit point is still new
        self._writer, self._directory = open_index_writer(self.path, create=old is None)
        crash_point("lucene.writer.opened")
        write_config(self.path, self.config, step="open")

        J = jvm.classes()
        names, lengths = _utf8_with_lengths(self.vocab.terms)
        self._indexer = self._java(
            J.ImpactIndexer, self._writer, J.ImpactSimilarity(), names, lengths, ID_FIELD, RAW_FIELD,
            CONTENTS_FIELD, threads, threads + 2, commit_every,
        )
        self._docs = DocsFile(self.path)
        rows = []
        if self.config.get("deletes"):
            # pages were deleted once: doc ids no longer follow the docs file's lines, so the
            # committed pages come from Lucene's own stored rows and the file is rewritten
            rows = self._live_rows()
            self._docs.write(rows)
            crash_point("lucene.docs.rebuilt")
        else:
            committed = int(self._writer.getDocStats().maxDoc)
            if committed or self._docs.path.exists():
                # lines past the last commit (pages a killed run handed over, never committed) go
                rows = self._docs.truncate_to(committed)
                crash_point("lucene.docs.truncated")
        # the forward index for two-phase's phase 2 (forward.py), cut to the committed pages;
        # deletes renumber doc ids, so an index with deletes has none
        # (an index from before this setting existed kept one where it could: True)
        self._forward = ForwardWriter(self.path, self.vocab, self.scale, len(rows),
                                      enabled=self.config.get("forward_index", True) and not self.config.get("deletes"),
                                      unpruned=self.pruning is not None and self.pruning.prunes_pages)
        self._catalog: dict[str, dict] = {r["id"]: r for r in rows}
        self._done: set[str] = set(self._catalog)
        self._num_docs = len(rows)
        self._opened_docs = len(rows)  # the committed pages at open (close rebuilds capped postings past them)
        self._pending: list[dict] = []  # doc lines of the chunk being filled
        self._chunk = _Chunk()

    def _release(self, rollback: bool) -> None:
        """Let go of Java and the locks; with rollback, uncommitted work is dropped. Never raises
        over an error already on its way."""
        try:
            if self._indexer is not None:
                try:
                    self._indexer.close()
                except Exception as e:
                    log.warning("lucene indexer close failed: %s", e)
                self._indexer = None
            if self._writer is not None and rollback:
                try:
                    self._writer.rollback()  # also closes it and frees Lucene's write.lock
                except Exception as e:
                    log.warning("lucene rollback failed: %s", e)
                self._writer = None
            if self._directory is not None:
                try:
                    self._directory.close()
                except Exception:
                    pass
                self._directory = None
        finally:
            self._lock.release()

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
        # the one validation every writer shares (vsplade.sparse): a bad page fails alone
        batch, invalid = batch.split_valid()
        self.summary.failures.extend(invalid)
        keep = self._keep_rows(batch)
        if not keep:
            return
        if len(keep) != len(batch):
            batch = batch.select(keep)
        impacts, dropped = quantize_impacts(batch.matrix, self.scale)
        self.summary.dropped_weights += dropped
        full = None
        if self.pruning is not None and self.pruning.prunes_pages:
            # Lucene gets the pruned pages; the forward index the whole ones (quantized alike)
            full = impacts
            pruned = self.pruning.apply(batch)[0]
            impacts, _ = quantize_impacts(pruned.matrix, self.scale)
            self.summary.extra["pruned_weights"] = (self.summary.extra.get("pruned_weights", 0)
                                                    + int(full.nnz - impacts.nnz))
        counts = np.diff(impacts.indptr)
        self.summary.empty += int((counts == 0).sum())
        self.summary.indexed += len(batch)
        # fill chunks of exactly chunk_docs pages (a big batch becomes several hand-overs)
        start = 0
        while start < len(batch):
            chunk = self._chunk
            end = min(len(batch), start + self.chunk_docs - chunk.docs)
            lo, hi = impacts.indptr[start], impacts.indptr[end]
            for r in range(start, end):
                doc_id = batch.ids[r]
                line = meta_line(doc_id, batch.meta[r])
                chunk.meta.append(doc_id.encode("utf-8"))
                chunk.meta.append(orjson.dumps(line))
                chunk.texts.append(batch.meta[r].get("text"))
                self._pending.append(line)
                self._done.add(doc_id)
                self._catalog[doc_id] = line
            chunk.counts.append(counts[start:end])
            chunk.term_ids.append(impacts.indices[lo:hi])
            chunk.impacts.append(impacts.data[lo:hi])
            if full is not None:
                flo, fhi = full.indptr[start], full.indptr[end]
                chunk.forward.append((np.diff(full.indptr[start:end + 1]), full.indices[flo:fhi], full.data[flo:fhi]))
            chunk.docs += end - start
            start = end
            if chunk.docs >= self.chunk_docs:
                self._submit()

    def _submit(self) -> None:
        if self._chunk.docs == 0:
            return
        chunk = self._chunk
        arrays = chunk.arrays()
        texts = chunk.text_arrays()
        # doc lines go to disk before Java may commit their pages: a resume truncates the file
        # to the committed doc count, never the other way round (the forward index likewise)
        self._docs.append(self._pending)
        crash_point("lucene.docs-appended")
        parts = list(zip(*chunk.forward)) if chunk.forward else (chunk.counts, chunk.term_ids, chunk.impacts)
        self._forward.append(*(np.concatenate(p) for p in parts))
        self._num_docs += len(self._pending)
        self._pending = []
        self._chunk = _Chunk()
        if texts is None:
            self._java(self._indexer.submit, *arrays)
        else:
            self._java(self._indexer.submitWithText, *arrays, TEXT_FIELD, *texts)
        crash_point("lucene.submitted")

    def _java(self, call, *args):
        try:
            return call(*args)
        except Exception as e:  # JavaException: one line naming the index (-v logs the stack)
            raise java_error(self.path, e, "lucene indexing") from e

    def _keep_rows(self, batch: SparseBatch) -> list[int]:
        # Lucene's own limit (rows are valid here: add() split them): it keeps a page's summed
        # term frequencies in an int, so at a large scale a page of huge weights would overflow
        # it (the bound adds 0.5 per non-zero for the rounding). Weights are non-negative, so a
        # plain row sum (no abs copy of the matrix) bounds every row.
        m = batch.matrix
        totals = np.asarray(m.sum(axis=1, dtype=np.float64)).ravel() * self.scale + 0.5 * np.diff(m.indptr)
        too_big = set(np.flatnonzero(totals > MAX_PAGE_IMPACT).tolist())
        keep, seen = [], set()
        for r, doc_id in enumerate(batch.ids):
            if r in too_big:
                self.summary.failures.append((doc_id, (
                    f"page {doc_id}: impacts add up to ~{totals[r]:.3g} at scale {self.scale:g}, over "
                    f"Lucene's per-page limit {MAX_PAGE_IMPACT}; index with a smaller --scale")))
                continue
            if doc_id in self._done or doc_id in seen:
                self.summary.skipped += 1
                continue
            seen.add(doc_id)
            keep.append(r)
        return keep

    # -- collection lifecycle ----------------------------------------------------------------

    supports_lifecycle = True

    def catalog(self) -> list[dict]:
        """The metadata row of every page held (committed or added since), in doc order."""
        return list(self._catalog.values())

    def set_properties(self, properties: Mapping[str, Any]) -> None:
        """Kept in vsplade-lucene.json ("collection"), written with the next commit/close."""
        self.config["collection"] = dict(properties)

    def _live_rows(self) -> list[dict]:
        """Rows of the live pages the writer holds (a near-real-time reader on it), doc order."""
        from .store import page_rows

        J = jvm.classes()
        reader = self._java(J.DirectoryReader.open, self._writer)
        try:
            return [r for r in page_rows(reader) if r is not None]
        finally:
            reader.close()

    def delete(self, ids) -> int:
        """Delete these pages (deleteDocuments on the ``id`` term) and commit at once.

        Crash safety: the config is flagged ``deletes`` (atomically, fsynced) BEFORE the Lucene
        commit that drops pages, so from then on every writer and searcher maps doc ids to pages
        through Lucene's stored rows (IndexPages.raws) and not the docs file's line order; the
        docs file is rewritten from the commit afterwards (and again at every open), so a kill
        at any step leaves the last Lucene commit (all of the pages, or none deleted) plus a
        docs file the next writer rebuilds."""
        if self._closed:
            raise EngineError("writer is closed")
        gone = list(dict.fromkeys(i for i in ids if i in self._catalog))
        if not gone:
            return 0
        self._submit()
        self._java(self._indexer.flush)
        if not self.config.get("deletes"):
            self.config["deletes"] = True
            write_config(self.path, self.config, step="delete")
        self._forward.disable()  # doc ids renumbered from here on (searchers check "deletes" too)
        capped.remove(self.path)
        names, lengths = _utf8_with_lengths(gone)
        self._java(jvm.classes().IndexPages.deleteIds, self._writer, ID_FIELD, names, lengths)
        crash_point("lucene.delete.before-commit")
        self._java(self._writer.commit)
        crash_point("lucene.delete.committed")
        for i in gone:
            del self._catalog[i]
            self._done.discard(i)
        self._num_docs -= len(gone)
        self._docs.write(self._live_rows())
        crash_point("lucene.delete.docs-written")
        return len(gone)

    def commit(self) -> None:
        """Make everything added so far durable (doc lines first, then the Lucene commit) and
        visible to searchers opened from now on; the collection properties go with it."""
        if self._closed:
            raise EngineError("writer is closed")
        self._submit()
        self._java(self._indexer.flush)
        crash_point("lucene.commit.before")
        self._java(self._writer.commit)
        crash_point("lucene.commit.after")
        if "collection" in self.config:
            write_config(self.path, self.config, step="commit")

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        try:
            self.commit()
            build_s, append_s = float(self._indexer.buildSeconds()), float(self._indexer.appendSeconds())
            self._java(self._indexer.close)
            self._indexer = None
            if self.optimize:
                # one segment (optimize.py says why and why a kill mid-merge loses nothing);
                # before the docs file is rebuilt below, as the merge drops deleted docs
                from .optimize import force_merge

                t = time.perf_counter()
                self._java(force_merge, self._writer)
                self._java(self._writer.commit)
                self.summary.extra["optimize_seconds"] = round(time.perf_counter() - t, 3)
            if self.config.get("deletes"):
                # merges may have renumbered doc ids: the docs file follows the final commit
                self._docs.write(self._live_rows())
                crash_point("lucene.close.docs-rebuilt")
            self._java(self._writer.close)
            self._writer = None
            crash_point("lucene.close.writer-closed")
            if self.pruning is not None and self.pruning.cap is not None:
                self._build_capped()
            self.config["state"] = "ready"
            self.config["num_docs"] = self._num_docs
            write_config(self.path, self.config, step="close")
        except BaseException:
            self.abort()  # committed pages stay for a resume; the locks go
            raise
        self._closed = True
        self._release(rollback=False)
        secs = time.perf_counter() - self._t0
        self.summary.extra.update(
            engine="lucene", index=str(self.path), num_docs=self._num_docs, scale=self.scale,
            seconds=round(secs, 3), java_build_thread_seconds=round(build_s, 3),
            java_append_seconds=round(append_s, 3),
        )
        return self.summary

    def _build_capped(self) -> None:
        """The inverted and capped postings of --prune cap=C (capped.py), from the forward index
        of the final commit; without a forward index (deletes) there are none and searches are
        exact again."""
        from .forward import ForwardIndex

        fw = ForwardIndex.open(self.path, self._num_docs, self.config)
        if fw is None:
            capped.remove(self.path)
            return
        found = capped.current(self.path, self._num_docs, fw.vocab_size)
        if self._num_docs == self._opened_docs and found is not None and found[0].get("cap") == self.pruning.cap:
            return  # this writer added no page: the files built for these docs stand (~90 s at 1M)
        t = time.perf_counter()
        header = capped.build(self.path, fw, self.pruning.cap)
        crash_point("lucene.close.capped-built")
        self.summary.extra["capped_postings"] = header["capped_postings"]
        self.summary.extra["capped_seconds"] = round(time.perf_counter() - t, 3)

    def abort(self) -> None:
        """Drop what was not committed; committed pages stay for a resume. Releases the locks."""
        if self._closed:
            return
        self._closed = True
        self._release(rollback=True)
