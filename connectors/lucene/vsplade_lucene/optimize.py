"""`--optimize`: force-merge a Lucene index to one segment (issue 24 item 3).

Why: every query pays per-term, per-segment setup, and block-max pruning works per segment, so
a bulk build's ~7 segments cost a search time that one segment does not (RESULTS.md, "Two-phase
search": latency 7 segments vs 1). Worth it for an index that is built once and searched
often; an index that keeps receiving pages re-splits as it grows.

Crash safety comes from Lucene's commit semantics, nothing of ours: a merge writes NEW segment
files and the index's commit point (segments_N) keeps naming the old ones until the merged
commit is written as segments_N+1 (written, fsynced, then made visible by an atomic rename).
A kill at any moment of the merge therefore leaves the last commit, which holds every
committed page; the next IndexWriter on the directory deletes the half-written files
(IndexFileDeleter). Doc ids: LogByteSizeMergePolicy merges adjacent segments only, so a merge
keeps the insertion order (the docs file and the forward index stay aligned); an index with
deletes is read through its stored rows anyway (config "deletes"), which the merge rewrites
with the docs.
"""

from __future__ import annotations

import time
from pathlib import Path

from vsplade.crashpoints import crash_point
from vsplade.engines.base import EngineError

from . import jvm
from .store import is_lucene_dir, java_error, open_locked, read_config


def segment_count(path: str | Path) -> int:
    """Segments in the index's last commit."""
    J = jvm.classes()
    with jvm.LOCK:
        directory = J.FSDirectory.open(J.Paths.get(str(Path(path).resolve())))
        try:
            reader = J.DirectoryReader.open(directory)
            try:
                return int(reader.leaves().size())
            finally:
                reader.close()
        finally:
            directory.close()


def force_merge(writer, max_segments: int = 1) -> None:
    """Merge an open IndexWriter down to max_segments (waits for the merge); the caller commits."""
    crash_point("lucene.optimize.merge-start")
    writer.forceMerge(int(max_segments))
    crash_point("lucene.optimize.merged")


def optimize(path: str | Path, max_segments: int = 1) -> dict:
    """Force-merge the vsplade Lucene index at path to max_segments segments and commit.

    Takes the index's writer lock (a vsplade writer or another optimize on it is refused) and
    Lucene's write.lock. Returns {"segments_before", "segments_after", "seconds"}."""
    from .direct import open_index_writer

    path = Path(path)
    if max_segments < 1:
        raise EngineError(f"optimize {path}: max_segments must be >= 1, not {max_segments}")
    if not is_lucene_dir(path) or read_config(path) is None:
        raise EngineError(f"--index {path}: no vsplade Lucene index there (build one with `vsplade index`)")
    lock, _ = open_locked(path)
    try:
        before = segment_count(path)
        t = time.perf_counter()
        writer, directory = open_index_writer(path, create=False)
        try:
            try:
                force_merge(writer, max_segments)
                writer.commit()
                crash_point("lucene.optimize.committed")
                writer.close()
            except Exception as e:  # JavaException: one line naming the index
                writer.rollback()  # the last commit stays; the merge's files go
                raise java_error(path, e, "merging the Lucene index") from e
        finally:
            directory.close()
        secs = time.perf_counter() - t
        return {"segments_before": before, "segments_after": segment_count(path), "seconds": round(secs, 3)}
    finally:
        lock.release()
