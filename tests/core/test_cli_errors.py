"""The CLI's error contract, through real `vsplade` processes (what a user's shell sees):
a usage or configuration problem is one line on stderr and exit 2, a partial failure lists
what failed and exits 1, never a traceback, never a credential; one writer per index."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.encoded import EncodedDir, EncodedDirWriter
from vsplade.locking import WriterLock
from vsplade.sparse import SparseBatch

V = 50368
INFO = {"name": "lexical", "model": "lexical", "k1": 0.9}


def vsplade(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsplade", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


def assert_one_line_error(p: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    # progress bars (tqdm, on stderr like every tool's) are not messages
    lines = [line for line in p.stderr.replace("\r", "\n").splitlines()
             if line.strip() and not re.search(r"(page|file|it)/s|\d+(page|file) \[", line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def official_dir(path, ids, rows=None):
    """What the official encode_sparse_documents.py writes: the npz and the id list only."""
    path.mkdir(parents=True)
    m = sp.random(len(ids), V, density=0.001, format="csr", random_state=np.random.default_rng(0), dtype=np.float32)
    if rows is not None:
        m = rows
    sp.save_npz(path / "sparse_docs.npz", m)
    (path / "doc_ids.json").write_text(json.dumps(ids))
    return path


def encoded(path, n=40):
    rng = np.random.default_rng(1)
    m = sp.random(n, V, density=0.002, format="csr", random_state=rng, dtype=np.float32)
    ids = [f"page-{i}" for i in range(n)]
    with EncodedDirWriter(path, INFO) as w:
        w.add(SparseBatch(m, ids, [{"id": i, "source": "a.pdf", "page": k + 1} for k, i in enumerate(ids)]))
    return path


@pytest.mark.slow  # writer processes racing: make test only
def test_a_second_memory_writer_is_refused_with_one_line(tmp_path):
    """Before: two concurrent runs both exited 0 and left the index with 0 rows."""
    src, ix = encoded(tmp_path / "src"), tmp_path / "ix"
    with WriterLock(ix):  # another writer holds the index
        p = vsplade("index", src, "--engine", "memory", "--index", ix)
        assert_one_line_error(p, 2, str(ix), "being written by another process", "pid")
        p = vsplade("index", src, "--engine", "memory", "--index", ix, "--recreate")
        assert_one_line_error(p, 2, "being written by another process")
        p = vsplade("encode", "tests/data/pdfs", "--model", "lexical", "--out", ix)
        assert_one_line_error(p, 2, "being written by another process")
    assert vsplade("index", src, "--engine", "memory", "--index", ix).returncode == 0
    assert EncodedDir(ix).ids() == EncodedDir(src).ids()


@pytest.mark.slow  # writer processes racing: make test only
def test_two_concurrent_memory_writers_leave_every_page_once(tmp_path):
    src, ix = encoded(tmp_path / "src", n=3000), tmp_path / "ix"
    cmd = [sys.executable, "-m", "vsplade", "index", str(src), "--engine", "memory", "--index", str(ix)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) in ([0, 0], [0, 2]), results
    for rc, err in results:
        if rc == 2:
            assert "being written by another process" in err and "Traceback" not in err
    got = EncodedDir(ix).load()
    assert got.ids == EncodedDir(src).ids()
    assert (got.matrix != EncodedDir(src).load().matrix).nnz == 0


def test_one_bad_row_is_named_and_the_rest_indexed(tmp_path):
    """Before: memory rejected the whole run for one NaN row where Lucene/OpenSearch skip it."""
    rows = sp.csr_matrix(np.array([[1.0, 0, 0], [0, np.nan, 0], [0, 0, 2.0]], dtype=np.float32))
    rows = sp.hstack([rows, sp.csr_matrix((3, V - 3), dtype=np.float32)], format="csr")
    src = official_dir(tmp_path / "src", ["good-1", "broken", "good-2"], rows)
    p = vsplade("index", src, "--engine", "memory", "--index", tmp_path / "ix")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "failed: page broken: page broken: weight is NaN" in p.stderr or "broken: weight is NaN" in p.stderr
    assert EncodedDir(tmp_path / "ix").ids() == ["good-1", "good-2"]


@pytest.mark.parametrize("ids, named", [
    (["a", "b", "a"], "'a'"), (["a", None, "c"], "None"), (["a", "", "c"], "''"),
])
@pytest.mark.parametrize("engine", ["memory", "lucene"])
def test_bad_ids_in_an_encoded_dir_exit_2_naming_them(tmp_path, ids, named, engine):
    """Before: Lucene kept the first duplicate, memory both, OpenSearch the last; null became
    'None'. The check lives in core (vsplade.sparse.check_ids), before any engine sees a row."""
    src = official_dir(tmp_path / "src", ids)
    p = vsplade("index", src, "--engine", engine, "--index", tmp_path / "ix")
    assert_one_line_error(p, 2, str(src), named)
    assert not (tmp_path / "ix" / "vsplade.json").exists()
    assert not (tmp_path / "ix" / "vsplade-lucene.json").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "sparse_docs.npz").write_bytes((d / "sparse_docs.npz").read_bytes()[:200]), "sparse_docs.npz: cannot read"),
    (lambda d: (d / "doc_ids.json").write_text('["page-0", '), "doc_ids.json: invalid JSON"),
])
def test_damaged_encoded_dirs_exit_2(tmp_path, damage, message):
    src = encoded(tmp_path / "src")
    damage(src)
    assert_one_line_error(vsplade("index", src, "--engine", "memory", "--index", tmp_path / "ix"), 2, message)
    assert_one_line_error(vsplade("search", "anything", "--engine", "memory", "--index", src), 2, message)


def test_index_that_is_a_plain_file_exits_2(tmp_path):
    f = tmp_path / "plain"
    f.write_text("not a dir")
    src = encoded(tmp_path / "src")
    assert_one_line_error(vsplade("index", src, "--engine", "memory", "--index", f), 2, str(f), "not a directory")
    assert_one_line_error(vsplade("search", "q", "--engine", "memory", "--index", f), 2, str(f), "not a directory")
    assert_one_line_error(vsplade("encode", "tests/data/pdfs", "--model", "lexical", "--out", f), 2, "not a directory")
    assert f.read_text() == "not a dir"


def test_official_dir_searched_without_model_exits_2(tmp_path):
    src = official_dir(tmp_path / "src", ["a", "b"])
    assert vsplade("index", src, "--engine", "memory", "--index", tmp_path / "ix").returncode == 0
    p = vsplade("search", "a query", "--engine", "memory", "--index", tmp_path / "ix")
    assert_one_line_error(p, 2, "pass --model")
    p = vsplade("search", "a query", "--engine", "memory", "--index", tmp_path / "ix", "--model", "lexical", "--json")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("url", ["bob:hunter2pw@127.0.0.1:notaport", "http://bob:hunter2pw@127.0.0.1:notaport"])
def test_credentials_in_a_bad_url_are_never_printed(tmp_path, url):
    src = encoded(tmp_path / "src")
    for args in (["search", "q", "--engine", "opensearch", "--index", "x", "--url", url],
                 ["index", src, "--engine", "opensearch", "--index", "x", "--url", url]):
        p = vsplade(*args, timeout=60)
        assert p.returncode == 2, p.stderr
        assert "hunter2pw" not in p.stderr + p.stdout
        assert "Traceback" not in p.stderr


def test_scrub_masks_userinfo_with_and_without_scheme():
    from vsplade.cli import _scrub

    assert _scrub("https://u:pw1@h:9200/x") == "https://u:***@h:9200/x"
    assert _scrub("bad url 'bob:hunter2@host:9x'") == "bad url 'bob:***@host:9x'"
    assert _scrub("at 10:30 on http://host:9200") == "at 10:30 on http://host:9200"


# -- one line always, and true (issue 22, item 6) ---------------------------------------------


def test_a_fifo_named_like_a_pdf_is_named_as_a_fifo(tmp_path):
    """Before: "nothing indexed ... (1 failed)" and "failed: y.pdf: no such file or directory"."""
    fifo = tmp_path / "y.pdf"
    os.mkfifo(fifo)
    p = vsplade("index", fifo, "--model", "lexical", "--engine", "memory", "--index", tmp_path / "ix")
    assert_one_line_error(p, 1, f"{fifo}: not a regular file but a FIFO (named pipe)", "give PDF or image files",
                          "no index was created")


def test_a_folder_named_like_a_pdf_is_named(tmp_path):
    """Before: "nothing indexed: none of the inputs could be read (0 failed)", naming nothing."""
    folder = tmp_path / "x.pdf"
    folder.mkdir()
    p = vsplade("index", folder, "--model", "lexical", "--engine", "memory", "--index", tmp_path / "ix")
    assert_one_line_error(p, 1, f"{folder}: a folder with no PDF or image file under it", "no index was created")


@pytest.mark.parametrize("links", [{"loop": "loop"}, {"a.pdf": "b.pdf", "b.pdf": "a.pdf"}])
def test_a_symlink_loop_is_named_not_a_runtime_error(tmp_path, links):
    """Before: "error: RuntimeError: Symlink loop from '...'", exit 2 (pathlib, choosing the
    collection's root)."""
    for name, target in links.items():
        (tmp_path / name).symlink_to(tmp_path / target)
    given = tmp_path / next(iter(links))
    p = vsplade("index", given, "--model", "lexical", "--engine", "memory", "--index", tmp_path / "ix")
    assert_one_line_error(p, 1, f"{given}: a symbolic link loop", "no index was created")
    assert "RuntimeError" not in p.stderr


def test_a_loop_beside_good_files_fails_alone(tmp_path, pdf_dir):
    (tmp_path / "loop.pdf").symlink_to(tmp_path / "loop.pdf")
    p = vsplade("index", tmp_path / "loop.pdf", pdf_dir / "debian-refcard-en-a4.pdf", "--model", "lexical",
                "--engine", "memory", "--index", tmp_path / "ix")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"failed: {tmp_path / 'loop.pdf'}: a symbolic link loop" in p.stderr
    assert len(EncodedDir(tmp_path / "ix").ids()) == 2


@pytest.fixture(scope="module")
def memory_and_lucene_index(tmp_path_factory):
    """(a memory index, a Lucene index): built once, only read by the tests below."""
    tmp = tmp_path_factory.mktemp("two-engines")
    mem, luc = encoded(tmp / "mem"), tmp / "luc"
    assert vsplade("index", mem, "--engine", "lucene", "--index", luc).returncode == 0
    return mem, luc


@pytest.mark.parametrize("command", [["info"], ["search", "apt"], ["delete", "--id", "x"]])
def test_another_engines_index_says_which_engine_opens_it(tmp_path, command, memory_and_lucene_index):
    """Before: "MEMDIR: no such index" (info, delete), "--index MEMDIR: no Lucene index there"
    (search), and for a Lucene dir under --engine memory "not an encoded dir"."""
    mem, luc = memory_and_lucene_index
    p = vsplade(*command, "--engine", "lucene", "--index", mem)
    assert_one_line_error(p, 2, f"{mem}: not a lucene index but a memory index; add --engine memory")
    p = vsplade(*command, "--engine", "memory", "--index", luc)
    assert_one_line_error(p, 2, f"{luc}: not a memory index but a lucene index; add --engine lucene")
    assert_one_line_error(vsplade(*command, "--engine", "memory", "--index", tmp_path / "none"), 2)


def vsplade_with_file_limit(limit: int, *args) -> subprocess.CompletedProcess:
    """vsplade in a process that may write no file larger than `limit` bytes (RLIMIT_FSIZE):
    past it write() fails with EFBIG, in Python and in the JVM alike, as on a full disk.
    SIGXFSZ (which would kill the process) is ignored, so the write fails instead; the JVM
    ignores it too."""
    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "vsplade", *map(str, args)], capture_output=True, text=True,
                          timeout=300, preexec_fn=limit_files, env={**os.environ, "HF_HUB_OFFLINE": "1"})


# 3000 pages: the memory engine's shard (~2.4 MB) and Lucene's segment both pass 500 kB, the
# page lists (~140 kB) and configs do not
FILE_LIMIT = 500_000


@pytest.mark.slow  # writes until the limit, then resumes: make test only
@pytest.mark.timeout(300)
def test_a_full_disk_under_the_memory_engine_is_one_line_naming_the_file(tmp_path):
    """Before: "error: OSError: [Errno 27] File too large (run with -v for details)": no path,
    nothing to do."""
    src, ix = encoded(tmp_path / "src", n=3000), tmp_path / "ix"
    p = vsplade_with_file_limit(FILE_LIMIT, "index", src, "--engine", "memory", "--index", ix)
    assert_one_line_error(p, 2, f"{ix / 'shards'}/part-", "cannot write (File too large)", "`ulimit -f`",
                          "then re-run: what was committed is kept and the run resumes")
    assert vsplade("index", src, "--engine", "memory", "--index", ix).returncode == 0  # the advice holds
    assert EncodedDir(ix).ids() == EncodedDir(src).ids()


@pytest.mark.slow  # writes until the limit, then resumes: make test only
@pytest.mark.timeout(300)
def test_a_full_disk_under_lucene_is_one_line_and_the_java_stack_only_with_v(tmp_path):
    """Before: "error: lucene indexing into IX failed: JVM exception occurred: ..." and the 33-line
    Java stack trace, without -v."""
    src, ix = encoded(tmp_path / "src", n=3000), tmp_path / "ix"
    p = vsplade_with_file_limit(FILE_LIMIT, "index", src, "--engine", "lucene", "--index", ix)
    assert_one_line_error(p, 2, f"error: {ix}: cannot write (lucene indexing: java.io.IOException: File too large)",
                          "`ulimit -f`", "then re-run: what was committed is kept and the run resumes")
    p = vsplade_with_file_limit(FILE_LIMIT, "-v", "index", src, "--engine", "lucene", "--index", ix)
    assert p.returncode == 2 and "Java stack trace" in p.stderr and "ImpactIndexer" in p.stderr, p.stderr
    p = vsplade("index", src, "--engine", "lucene", "--index", ix, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["indexed"] == 3000


def test_write_failures_say_what_to_do():
    from vsplade.encoded import write_failure

    assert write_failure("ix/a", "No space left on device", errno.ENOSPC) == (
        "ix/a: cannot write (No space left on device); the disk is full: free space on it (or write to a dir "
        "on another disk), then re-run: what was committed is kept and the run resumes")
    assert "dir is writable" in write_failure("ix/a", "Permission denied", errno.EACCES)
    assert "the disk is full" in write_failure("ix", "java.io.IOException: No space left on device")
