"""Thread safety of the memory engine (issue 22, item 5): the same searches through
`vsplade.Collection` from 8 threads at once (explain on and off, source/page filters, k=100)
give exactly the single-threaded results. The hammered Collection is fresh, so its lazily
built searcher and query encoder are raced too (tests/concurrency_support.py)."""

from __future__ import annotations

import pytest
from collection_support import make_docs
from concurrency_support import cases, hammer, reference

from vsplade import Collection


@pytest.fixture(scope="module")
def memory_index(tmp_path_factory):
    docs = make_docs(tmp_path_factory.mktemp("docs") / "docs")
    ix = tmp_path_factory.mktemp("mem") / "ix"
    c = Collection.create(ix, model="lexical", engine="memory")
    assert c.index(docs, progress=False).ok
    c.close()
    return ix


@pytest.mark.timeout(600)
def test_eight_threads_equal_single_thread(memory_index):
    todo = cases()
    with Collection.open(memory_index, engine="memory") as ref:
        want = reference(ref, todo)
    assert sum(1 for w in want for h in w if h[4]) > 100  # explanations were really compared
    with Collection.open(memory_index, engine="memory") as col:
        r = hammer(col, todo, want, threads=8, rounds=3)
    assert not r["errors"] and not r["mismatches"], r
    assert r["calls"] == 8 * 3 * len(todo)


def test_searcher_built_once_under_contention(memory_index):
    """Eight threads asking a fresh Collection for its searcher at once get the same one."""
    import threading

    col = Collection.open(memory_index, engine="memory")
    barrier = threading.Barrier(8)
    got = []

    def grab():
        barrier.wait(timeout=60)
        got.append(col.searcher)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    col.close()
    assert len(got) == 8 and len({id(s) for s in got}) == 1
