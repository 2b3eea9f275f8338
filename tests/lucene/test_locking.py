"""One writer per Lucene index dir: vsplade's writer lock (vsplade.locking) in every Lucene
writer, Lucene's own write.lock held by another program, --recreate under the lock, and the
one-line errors (exit 2) a user gets for each; leftovers of a killed first run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from crash_harness import run_vsplade
from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.locking import LOCK_FILE, IndexLockedError
from vsplade_lucene import LuceneEngine, jvm
from vsplade_lucene.store import CONFIG_FILE, DOCS_FILE

from lucene_support import INFO, dir_snapshot, stored_ids, write_encoded_dir

# writer processes and JVMs contending for one dir: make test only
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_enc(tmp_path_factory, corpus):
    """An encoded dir of the first 40 corpus pages, and the encoder info the CLI reads from it."""
    from vsplade.encoded import EncodedDir

    path = write_encoded_dir(tmp_path_factory.mktemp("enc") / "enc", corpus.select(range(40)))
    return path, EncodedDir(path).encoder_info


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def test_second_writer_in_this_process_is_refused_and_the_first_finishes(tmp_path, corpus):
    path = tmp_path / "idx"
    eng = LuceneEngine(str(path), scale=100)
    w = eng.writer(INFO)
    w.add(corpus.select(range(50)))
    w.commit()
    with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}") as err:
        LuceneEngine(str(path), scale=100).writer(INFO)
    assert str(path) in str(err.value)
    before = dir_snapshot(path)
    with pytest.raises(IndexLockedError):
        LuceneEngine(str(path), scale=100).writer(INFO, recreate=True)
    assert dir_snapshot(path) == before, "a refused --recreate must delete nothing"
    w.add(corpus.select(range(50, 120)))
    assert w.close().indexed == 120
    assert stored_ids(path) == list(corpus.ids[:120])
    # close released the lock: the next writer opens and sees everything
    with eng.writer(INFO) as w2:
        assert w2.done_ids() == set(corpus.ids[:120])


def test_lock_is_released_on_abort_and_on_a_failed_open(tmp_path, corpus):
    path = tmp_path / "idx"
    w = LuceneEngine(str(path), scale=100).writer(INFO)
    w.add(corpus.select(range(5)))
    w.abort()
    with pytest.raises(IndexMismatchError):  # refused after the lock was taken...
        LuceneEngine(str(path), scale=100).writer({"name": "other"})
    with LuceneEngine(str(path), scale=100).writer(INFO) as w:  # ...and released again
        w.add(corpus.select(range(5)))
    assert stored_ids(path) == list(corpus.ids[:5])


def test_a_writer_that_fails_to_open_frees_lucenes_lock_too(tmp_path, corpus):
    """The docs file shorter than the index (edited outside vsplade) fails the open after
    Lucene's IndexWriter was created: it must be closed, or every later writer in this JVM
    (even --recreate) would hit Lucene's LockObtainFailedException."""
    path = tmp_path / "idx"
    with LuceneEngine(str(path), scale=100).writer(INFO) as w:
        w.add(corpus.select(range(10)))
    docs = path / DOCS_FILE
    docs.write_bytes(b"".join(docs.read_bytes().splitlines(keepends=True)[:4]))
    for _ in range(2):
        with pytest.raises(EngineError, match="--recreate") as err:
            LuceneEngine(str(path), scale=100).writer(INFO)
        assert not isinstance(err.value, IndexLockedError)
    with LuceneEngine(str(path), scale=100).writer(INFO, recreate=True) as w:
        w.add(corpus.select(range(3)))
    assert stored_ids(path) == list(corpus.ids[:3])


def test_second_writer_process_gets_one_line_and_exit_2_recreate_deletes_nothing(tmp_path, corpus, small_enc):
    enc, info = small_enc
    path = tmp_path / "idx"
    w = LuceneEngine(str(path), scale=100).writer(info)
    w.add(corpus.select(range(60, 90)))
    w.commit()
    before = dir_snapshot(path)
    with LuceneEngine(str(path)).searcher() as s:  # readers are never blocked by the lock
        assert s.num_docs == 30

    line = one_error_line(run_vsplade(["index", enc, "--index", path, "--scale", "100"]))
    assert str(path) in line and f"pid {os.getpid()}" in line
    line = one_error_line(run_vsplade(["index", enc, "--index", path, "--recreate", "--scale", "100"]))
    assert str(path) in line
    assert dir_snapshot(path) == before, "a second process touched the index while the first writes"

    w.add(corpus.select(range(90, 100)))
    assert w.close().indexed == 40
    assert stored_ids(path) == list(corpus.ids[60:100])
    with LuceneEngine(str(path)).searcher() as s:
        assert s.num_docs == 40


def test_lucene_write_lock_held_in_this_jvm_is_index_locked_error(tmp_path, corpus):
    """An IndexWriter opened by other code in this JVM (a Pyserini writer, say) on DIR."""
    path = tmp_path / "idx"
    with LuceneEngine(str(path), scale=100).writer(INFO) as w:
        w.add(corpus.select(range(10)))
    before = dir_snapshot(path)
    J = jvm.classes()
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    other = J.IndexWriter(directory, J.IndexWriterConfig())
    try:
        with pytest.raises(IndexLockedError, match="another Lucene program.*write.lock"):
            LuceneEngine(str(path), scale=100).writer(INFO)
        with pytest.raises(IndexLockedError, match="write.lock"):
            LuceneEngine(str(path), scale=100).writer(INFO, recreate=True)
        assert dir_snapshot(path).keys() == before.keys(), "--recreate deleted files another program writes"
    finally:
        other.rollback()
        directory.close()
    with LuceneEngine(str(path), scale=100).writer(INFO) as w:  # both locks were released
        w.add(corpus.select(range(10, 12)))
    assert stored_ids(path) == list(corpus.ids[:12])


def test_lucene_write_lock_held_by_another_program_is_one_line(tmp_path, corpus, small_enc):
    """Another program (Anserini's IndexCollection, ...) holds DIR/write.lock: Java's
    NativeFSLock is a POSIX record lock, taken here by a plain Python process."""
    enc, info = small_enc
    path = tmp_path / "idx"
    with LuceneEngine(str(path), scale=100).writer(info) as w:
        w.add(corpus.select(range(10)))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, sys
            f = open({str(path / 'write.lock')!r}, "r+")
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = dir_snapshot(path)
        line = one_error_line(run_vsplade(["index", enc, "--index", path, "--scale", "100"]))
        assert "write.lock" in line and str(path) in line and "Traceback" not in line
        line = one_error_line(run_vsplade(["index", enc, "--index", path, "--recreate", "--scale", "100"]))
        assert "write.lock" in line
        assert dir_snapshot(path) == before
    finally:
        holder.communicate("", timeout=60)
    assert stored_ids(path) == list(corpus.ids[:10])


def test_index_that_is_a_plain_file_is_one_line(tmp_path, small_enc):
    enc, _ = small_enc
    plain = tmp_path / "plain"
    plain.write_text("not an index")
    for target in (plain, plain / "sub"):
        line = one_error_line(run_vsplade(["index", enc, "--index", target]))
        assert str(plain) in line
    with pytest.raises(EngineError, match="not a directory"):
        LuceneEngine(str(plain)).writer(INFO)
    with pytest.raises(EngineError, match="no Lucene index"):
        LuceneEngine(str(plain)).searcher()
    assert plain.read_text() == "not an index"


def test_what_a_killed_first_run_leaves_does_not_make_the_dir_foreign(tmp_path, corpus):
    """Killed after taking the locks / while writing the first config: lock files and a config
    temp, no config. The re-run must build there, not refuse 'not a vsplade Lucene index'."""
    path = tmp_path / "idx"
    path.mkdir()
    (path / LOCK_FILE).write_text("12345\n")
    (path / "write.lock").write_bytes(b"")
    (path / (CONFIG_FILE + ".tmp")).write_text('{"format": "vsplade-lu')
    with LuceneEngine(str(path), scale=100).writer(INFO) as w:
        w.add(corpus.select(range(7)))
    assert stored_ids(path) == list(corpus.ids[:7])


def test_refusing_a_foreign_dir_leaves_no_lock_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexMismatchError, match="not a vsplade Lucene index"):
        LuceneEngine(str(tmp_path)).writer(INFO, recreate=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_jsonvector_writer_takes_the_lock(tmp_path, corpus):
    path = tmp_path / "jv"
    w = LuceneEngine(str(path), build="jsonvector").writer(INFO)
    with pytest.raises(IndexLockedError):
        LuceneEngine(str(path), build="jsonvector").writer(INFO)
    with pytest.raises(IndexLockedError):
        LuceneEngine(str(path)).writer(INFO, recreate=True)
    w.add(corpus.select(range(10, 30)))
    assert w.close().indexed == 20
    assert not (path / ".vsplade-jsonvector.tmp").exists()
    assert not any(p.name.startswith("vsplade-jsonvector-") for p in tmp_path.iterdir())
    with pytest.raises(EngineError, match="already holds"):  # released, then refused by rule
        LuceneEngine(str(path), build="jsonvector").writer(INFO)
