"""A real 3-node OpenSearch cluster (the 3.x line; three JVMs on 127.0.0.1, their own data
paths, all cluster-manager-eligible data nodes) and indices with 3 shards and 1 replica:

- a data node SIGKILLed mid-bulk and started again: the job finishes (or a re-run resumes),
  the count is exact, every page is there once and searchable, results equal the exact scorer,
  the cluster is green again. The kill may come before the new index's replicas are in sync,
  so a shard's only in-sync copy can die with the node (red) and the bulk stalls on it until
  the node is back: the restart therefore never waits for the bulk's progress (it did, and the
  job then gave up and the resume waited for a node nobody had started);
- node 3 runs with a one-thread, one-slot write pool, so the real server answers 429: the
  writer retries, loses nothing and counts the rejections in its summary;
- a search while a node is down answers from the replicas with the same top-10, also through
  the CLI with a comma-separated --url whose first node is the dead one.
Every wait is bounded (TestCluster.wait_health); nothing asserts on time. One cluster serves
the module (about 40 s to start on 2 cores). Skipped with VSPLADE_OPENSEARCH_URL set.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.engines.base import EngineError
from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.testnode import START_TIMEOUT, TestNodeError

from opensearch_support import INFO, rounded

KILL_PAGES = 20_000  # the size: ~20 s of bulk on this cluster
RESTART_AFTER = 15.0  # s after the kill at the latest (sooner when the bulk reaches half way)
TERMS_PER_PAGE = 40
TERM_POOL = np.arange(2000, 6000)  # ordinary tokens: dense enough that queries hit many pages

pytestmark = pytest.mark.skipif(bool(os.environ.get("VSPLADE_OPENSEARCH_URL")), reason="starts its own local cluster")


def synthetic_pages(n: int, seed: int, prefix: str) -> SparseBatch:
    rng = np.random.default_rng(seed)
    cols = np.stack([rng.choice(TERM_POOL, TERMS_PER_PAGE, replace=False) for _ in range(n)])
    cols.sort(axis=1)
    data = rng.lognormal(-0.5, 0.8, size=cols.shape).astype(np.float32)
    indptr = np.arange(0, n * TERMS_PER_PAGE + 1, TERMS_PER_PAGE)
    m = sp.csr_matrix((data.ravel(), cols.ravel(), indptr), shape=(n, 50368))
    ids = [f"{prefix}-{i:06d}" for i in range(n)]
    meta = [{"id": d, "source": f"/corpus/{prefix}-{i // 50}.pdf", "page": i % 50 + 1} for i, d in enumerate(ids)]
    return SparseBatch(m, ids, meta)


def queries(vocab, n: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{vocab.term(int(c)): float(rng.lognormal(0, 0.7)) for c in rng.choice(TERM_POOL, 12, replace=False)}
            for _ in range(n)]


def assert_top_k_exact(searcher, batch: SparseBatch, vocab, qs, k: int = 10) -> list[list[tuple[str, float]]]:
    exact = ExactScorer(rounded(batch), vocab)
    row = {d: i for i, d in enumerate(batch.ids)}
    out = []
    for q in qs:
        hits = searcher.search(q, k)
        scores = exact.scores(q)
        kth = np.sort(scores)[::-1][k - 1]
        tol = len(q) * 2.0**-24
        assert len(hits) == k
        for h in hits:
            want = scores[row[h.id]]
            assert h.score == pytest.approx(want, rel=tol)
            assert want >= kth * (1 - tol)
        out.append([(h.id, h.score) for h in hits])
    return out


def all_ids(client, index: str) -> list[str]:
    client.indices.refresh(index=index)
    out, after = [], None
    for _ in range(100):  # bounded: 100 x 5000 ids
        body = {"size": 5000, "_source": False, "sort": [{"id": "asc"}], "query": {"match_all": {}}}
        if after:
            body["search_after"] = after
        hits = client.search(index=index, body=body)["hits"]["hits"]
        out += [h["_id"] for h in hits]
        if len(hits) < 5000:
            return out
        after = hits[-1]["sort"]
    raise AssertionError("more ids than expected")


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory):
    from vsplade_opensearch.testnode import TestCluster

    c = TestCluster(nodes=3, line="3", data=tmp_path_factory.mktemp("cluster3"),
                    node_settings={2: {"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"}})
    c.start()
    yield c
    c.stop()


@pytest.fixture
def healthy(cluster3):
    """The cluster with all three nodes up and green (a test may have left one down)."""
    for n in cluster3.members:
        if not n.alive():
            n.start()
    cluster3.wait_health("green")
    return cluster3


def engine(cluster, index: str, **kw) -> OpenSearchEngine:
    kw = {"shards": 3, "replicas": 1, "threads": 2, "chunk_docs": 250, "progress": False,
          "backoff_initial": 0.2, "backoff_max": 2.0, "retry_for": 120.0, **kw}
    return OpenSearchEngine(index=index, url=",".join(cluster.urls), **kw)


def test_write_queue_rejections_are_retried_and_counted(healthy):
    batch = synthetic_pages(3000, seed=11, prefix="q")
    eng = engine(healthy, "pushback", threads=4, chunk_docs=50)
    with eng.writer(INFO, recreate=True) as w:
        for start in range(0, len(batch), 500):
            w.add(batch.select(range(start, min(start + 500, len(batch)))))
        summary = w.close()
    assert not summary.failures
    assert summary.indexed == 3000 and summary.extra["docs_in_index"] == 3000
    assert summary.extra["bulk_rejected"] > 0, summary.extra  # node 3's tiny write pool said 429
    assert summary.extra["bulk_retries"] > 0
    assert sorted(all_ids(eng.conn.client(), "pushback")) == batch.ids


@pytest.mark.timeout(900)  # ~90 s on an idle 2-core machine; the bulk's own budget is 120 s per stall
def test_data_node_killed_mid_bulk_and_restarted(healthy, vocab):
    batch = synthetic_pages(KILL_PAGES, seed=5, prefix="k")
    eng = engine(healthy, "killed")
    victim = healthy.members[1]
    step = 1000
    summary = None
    half_way = threading.Event()
    rejoined: dict = {}

    def bring_back():  # back on the same ports and data while the bulk runs; waits until it has joined
        half_way.wait(RESTART_AFTER)
        try:
            rejoined["health"] = healthy.restart([victim], status=None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            rejoined["error"] = e

    restarter = threading.Thread(target=bring_back, name="restart-victim", daemon=True)
    try:
        try:
            with eng.writer(INFO, recreate=True) as w:
                for start in range(0, KILL_PAGES, step):
                    if start == KILL_PAGES // 4:
                        victim.kill()  # SIGKILL while requests are in flight
                        restarter.start()
                    if start == KILL_PAGES // 2:
                        half_way.set()
                    w.add(batch.select(range(start, start + step)))
                summary = w.close()
        except EngineError:  # the job may give up while shards move: a re-run must resume
            summary = None
    finally:
        half_way.set()
        restarter.join(RESTART_AFTER + START_TIMEOUT + 30)  # restart() is bounded by START_TIMEOUT
    assert not restarter.is_alive(), "the restart of the killed node did not return"
    if "error" in rejoined:
        raise rejoined["error"]
    if summary is None or summary.failures:
        healthy.wait_health("yellow")
        w = eng.writer(INFO)
        done = w.done_ids()
        todo = [i for i, d in enumerate(batch.ids) if d not in done]
        w.add(batch.select(todo))
        summary = w.close()
        assert not summary.failures
    healthy.wait_health("green")  # raises at once if the restarted JVM exited
    assert victim.alive()  # the restarted node is back for good, on its own port
    client = eng.conn.client()
    assert client.count(index="killed")["count"] == KILL_PAGES
    ids = all_ids(client, "killed")
    assert len(ids) == len(set(ids)) == KILL_PAGES and set(ids) == set(batch.ids)
    assert_top_k_exact(eng.searcher(), batch, vocab, queries(vocab, 20, seed=3))
    health = client.cluster.health(index="killed")
    assert health["status"] == "green" and health["active_shards"] == 6


def test_search_while_a_node_is_down(healthy, vocab, pdf_dir):
    """Also the CLI: `index --shards 3 --replicas 1 --url A,B,C`, then `search --url A,B,C`
    with A dead gives what it gave with A alive."""
    from typer.testing import CliRunner

    from vsplade.cli import app

    batch = synthetic_pages(2000, seed=7, prefix="s")
    eng = engine(healthy, "replicated")
    with eng.writer(INFO, recreate=True) as w:
        w.add(batch)
        w.close()
    urls = ",".join(healthy.urls)
    cli = CliRunner()
    res = cli.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch", "--url", urls,
                           "--index", "cli-sharded", "--shards", "3", "--replicas", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["indexed"] > 0
    client = eng.conn.client()
    for name in ("replicated", "cli-sharded"):
        s = client.indices.get_settings(index=name)[name]["settings"]["index"]
        assert s["number_of_shards"] == "3" and s["number_of_replicas"] == "1"
    healthy.wait_health("green")
    search = ["search", "debian package management", "financial report revenue", "--engine", "opensearch",
              "--url", urls, "--index", "cli-sharded", "--json", "-k", "5"]
    res = cli.invoke(app, search)
    assert res.exit_code == 0, res.output
    cli_before = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert all(r["hits"] for r in cli_before)
    qs = queries(vocab, 10, seed=8)
    before = assert_top_k_exact(eng.searcher(), batch, vocab, qs)

    healthy.members[0].kill()  # the first URL of the list
    # a killed node does not come back by itself: waiting for 3 nodes says so at once, not after a timeout
    with pytest.raises(TestNodeError, match="vsplade-1 is not running"):
        healthy.wait_health("yellow", timeout=30)
    healthy.wait_health("yellow", nodes=2)
    after = assert_top_k_exact(eng.searcher(), batch, vocab, qs)
    assert after == before
    res = cli.invoke(app, search)
    assert res.exit_code == 0, res.output
    assert [json.loads(line) for line in res.stdout.strip().splitlines()] == cli_before
