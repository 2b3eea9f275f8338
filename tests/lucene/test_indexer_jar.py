"""The Java side of the direct path (vsplade.lucene.ImpactIndexer): jar freshness, doc-id order
across chunks and threads, durable background commits, malformed chunks refused up front."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vsplade_lucene import LuceneEngine, jvm

from lucene_support import INFO, QuantizedReference, assert_same_hits, random_queries

JAVA_SRC = Path(__file__).resolve().parents[2] / "connectors" / "lucene" / "java"


def test_jar_is_built_from_the_current_source():
    sources = sorted(JAVA_SRC.rglob("*.java"), key=lambda p: p.relative_to(JAVA_SRC).as_posix())
    assert sources, f"no Java sources under {JAVA_SRC}"
    want = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    with zipfile.ZipFile(jvm.indexer_jar()) as jar:
        manifest = jar.read("META-INF/MANIFEST.MF").decode()
    unfolded = manifest.replace("\r\n", "\n").replace("\n ", "")  # manifests wrap at 72 bytes
    got = dict(line.split(": ", 1) for line in unfolded.splitlines() if ": " in line).get("Source-SHA256")
    assert got == want, "the jar is stale: run connectors/lucene/java/build.sh and commit the jar"


def stored_ids(path: Path) -> list[str]:
    J = jvm.classes()
    reader = J.DirectoryReader.open(J.FSDirectory.open(J.Paths.get(str(path.resolve()))))
    try:
        fields = reader.storedFields()
        return [fields.document(i).get("id") for i in range(reader.maxDoc())]
    finally:
        reader.close()


def test_doc_ids_follow_insertion_order_across_chunks_and_threads(direct_index, corpus):
    # the fixture builds with 50-page chunks on 3 threads and commits every 100 pages
    assert stored_ids(direct_index) == list(corpus.ids)


def test_background_commits_survive_a_crash_as_a_prefix(tmp_path, corpus, vocab):
    path = tmp_path / "idx"
    eng = LuceneEngine(str(path), scale=100, chunk_docs=20, threads=2, commit_every=40)
    w = eng.writer(INFO)
    for s in range(0, 150, 30):
        w.add(corpus.select(range(s, s + 30)))
    w._java(w._indexer.flush)  # every chunk handed over is in the writer: Java committed >= 120
    w.abort()  # no final commit: only what the Java appender committed survives
    done = eng.writer(INFO)
    kept = done.done_ids()
    n = len(kept)
    assert 120 <= n < 150 and kept == set(corpus.ids[:n]), "a resume must see a prefix of the input"
    done.add(corpus)
    s = done.close()
    assert (s.indexed, s.skipped) == (len(corpus) - n, n)
    assert stored_ids(path) == list(corpus.ids)
    ref = QuantizedReference(corpus)
    with eng.searcher() as searcher:
        for q in random_queries(corpus, vocab, n=10, seed=5):
            assert_same_hits(searcher.search(q, 10), ref.search(q, 10))


def test_malformed_chunks_are_refused_on_submit(tmp_path):
    from jnius import JavaException

    with LuceneEngine(str(tmp_path / "i")).writer(INFO) as w:
        meta = b"p1" + b"{}"
        lens = np.array([2, 2], "<i4").tobytes()
        one = np.array([1], "<i4").tobytes()
        with pytest.raises(JavaException, match="outside the vocabulary"):
            w._indexer.submit(meta, lens, one, np.array([10**6], "<i4").tobytes(), one)
        with pytest.raises(JavaException, match="impact 0 < 1"):
            w._indexer.submit(meta, lens, one, one, np.array([0], "<i4").tobytes())
        with pytest.raises(JavaException, match="counts add up to 1 non-zeros"):
            w._indexer.submit(meta, lens, one, b"", b"")
        with pytest.raises(JavaException, match="meta lengths add up to 4, got 3"):
            w._indexer.submit(b"p1{", lens, one, one, one)
    assert w.close().indexed == 0


def test_lucene_checkindex_finds_no_problem(direct_index):
    # Lucene's own verifier, slow mode: postings, freqs, norms, stored fields and doc values of
    # the segments written from ChunkReader through addIndexes
    J = jvm.classes()
    CheckIndex = jvm.jclass("org.apache.lucene.index.CheckIndex")
    directory = J.FSDirectory.open(J.Paths.get(str(direct_index.resolve())))
    checker = CheckIndex(directory)
    try:
        checker.setDoSlowChecks(True)
        status = checker.checkIndex()
        assert status.clean
        assert status.numSegments >= 2  # 50-page chunks: several segments joined in order
    finally:
        checker.close()
        directory.close()


def test_a_failure_in_a_worker_thread_is_raised_not_lost(tmp_path):
    from vsplade.engines.base import EngineError

    # two impacts summing past Java's int: passes the submit-time checks, fails in the worker
    # (the Python writer refuses such pages before they get here; this is the last line)
    w = LuceneEngine(str(tmp_path / "i"), scale=100).writer(INFO)
    big = np.array([2**30, 2**30], "<i4").tobytes()
    w._indexer.submit(b"p1{}", np.array([2, 2], "<i4").tobytes(), np.array([2], "<i4").tobytes(),
                      np.array([1, 2], "<i4").tobytes(), big)
    with pytest.raises(EngineError, match="overflow"):
        w.commit()
    w.abort()
    assert LuceneEngine(str(tmp_path / "i")).writer(INFO).done_ids() == set()
