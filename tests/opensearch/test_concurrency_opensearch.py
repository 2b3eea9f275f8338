"""Thread safety of the OpenSearch engine (issue 22, item 5): the same searches through
`vsplade.Collection` from 8 threads at once (explain on and off, source/page filters, k=100)
give exactly the single-threaded results, on a real 3.x node (one line is enough: the client
and searcher code are the same for both). The hammered Collection is fresh, so its lazily
built searcher and query encoder are raced too (tests/concurrency_support.py)."""

from __future__ import annotations

import uuid

import pytest
from collection_support import PAGES, make_docs
from concurrency_support import cases, hammer, reference

from vsplade import Collection


@pytest.fixture(scope="module")
def os_index(real_nodes, tmp_path_factory):
    url = real_nodes["os3"].url
    docs = make_docs(tmp_path_factory.mktemp("docs") / "docs")
    name = f"vsplade-conc-{uuid.uuid4().hex[:10]}"
    c = Collection.create(name, model="lexical", engine="opensearch", url=url, progress=False)
    report = c.index(docs, progress=False)
    assert report.ok and report.summary.indexed == PAGES, report.summary
    c.close()
    yield name, url
    from vsplade_opensearch.connection import Connection

    Connection.from_options({"url": url}).client().indices.delete(index=name, ignore=[404])


@pytest.mark.timeout(900)
def test_eight_threads_equal_single_thread(os_index):
    name, url = os_index
    todo = cases()
    with Collection.open(name, engine="opensearch", url=url) as ref:
        want = reference(ref, todo)
    assert sum(1 for w in want for h in w if h[4]) > 100  # explanations were really compared
    with Collection.open(name, engine="opensearch", url=url) as col:
        r = hammer(col, todo, want, threads=8, rounds=3)
    assert not r["errors"] and not r["mismatches"], r
    assert r["calls"] == 8 * 3 * len(todo)
