"""The bulk writer's patience is a wall-clock budget (`retry_for`), on a real single node that
is SIGKILLed under it:

- the whole cluster gone: the job stops with one BulkError line (what failed, that a re-run
  resumes, exit code 1 for the CLI) once the budget is spent, not after a retry count;
- abort while workers are still retrying (the issue's hang: abort -> close ->
  shutdown(wait=True) on a worker asleep between retries) returns within seconds;
- the node back within the budget: the same job finishes with every page once.
Skipped with VSPLADE_OPENSEARCH_URL set (it kills its own node).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.engines.base import EngineError
from vsplade.sparse import SparseBatch
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.bulk import STOP_GRACE

from opensearch_support import INFO

pytestmark = pytest.mark.skipif(bool(os.environ.get("VSPLADE_OPENSEARCH_URL")), reason="kills its own local node")


def pages(n: int, start: int = 0) -> SparseBatch:
    rng = np.random.default_rng(start)
    cols = np.sort(np.stack([rng.choice(np.arange(2000, 6000), 20, replace=False) for _ in range(n)]), axis=1)
    m = sp.csr_matrix((rng.uniform(0.1, 2.0, cols.size).astype(np.float32), cols.ravel(),
                       np.arange(0, n * 20 + 1, 20)), shape=(n, 50368))
    ids = [f"b-{i:06d}" for i in range(start, start + n)]
    return SparseBatch(m, ids, [{"id": d, "source": "/b.pdf", "page": i + 1} for i, d in enumerate(ids)])


@pytest.fixture(scope="module")
def node1(tmp_path_factory):
    from vsplade_opensearch.testnode import TestCluster

    c = TestCluster(nodes=1, line="3", data=tmp_path_factory.mktemp("budget"))
    c.start()
    yield c
    c.stop()


@pytest.fixture
def node(node1):
    if node1.dead():
        node1.restart()
    return node1


def engine(node, index: str, **kw) -> OpenSearchEngine:
    return OpenSearchEngine(index=index, url=node.url, chunk_docs=50, threads=2, progress=False,
                            backoff_initial=0.2, backoff_max=1.0, **kw)


def writer_whose_node_dies(node, index: str, retry_for: float, sent: int):
    """A writer (retry budget `retry_for` s) that has sent `sent` pages when its node is killed."""
    w = engine(node, index, retry_for=retry_for).writer(INFO, recreate=True)
    w.add(pages(sent))
    w.sender.flush()
    node.members[0].kill()
    return w


@pytest.mark.timeout(300)
def test_cluster_gone_for_good_stops_with_one_line_within_the_budget(node):
    w = writer_whose_node_dies(node, "gone-budget", retry_for=8, sent=200)
    t0 = time.monotonic()
    with pytest.raises(EngineError) as err:
        w.add(pages(500, start=200))
        w.close()
    elapsed = time.monotonic() - t0
    t1 = time.monotonic()
    w.abort()
    assert time.monotonic() - t1 < STOP_GRACE + 10  # abort never waits on a dead cluster
    msg = str(err.value)
    assert "\n" not in msg and "re-run the same command to resume" in msg and "for 8 s" in msg, msg
    assert getattr(err.value, "exit_code", None) == 1  # a runtime failure a re-run resumes
    # the budget, not a count: not before it is spent, and not long after (connection refused is instant)
    assert 8 <= elapsed < 8 + 30, elapsed


@pytest.mark.timeout(300)
def test_abort_while_workers_are_retrying_returns_within_seconds(node):
    eng = engine(node, "abort-budget", retry_for=600)  # patient: only abort can end it early
    w = eng.writer(INFO, recreate=True)
    node.members[0].kill()
    failed: list[BaseException] = []

    def produce():
        try:
            w.add(pages(500))  # 10 chunks: 4 in flight, the producer waits for a slot
        except EngineError as e:
            failed.append(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    time.sleep(3)  # the workers are now asleep between retries
    assert w.sender.stats.retries > 0
    t0 = time.monotonic()
    w.abort()
    assert time.monotonic() - t0 < STOP_GRACE + 10
    t.join(30)
    assert not t.is_alive()  # the producer waiting for a slot is released too
    assert not any(th.is_alive() for th in w.sender._workers)


@pytest.mark.timeout(420)
def test_node_back_within_the_budget_and_the_job_finishes(node):
    w = writer_whose_node_dies(node, "back-budget", retry_for=240, sent=300)
    done: dict = {}

    def rest():
        try:
            w.add(pages(700, start=300))
            done["summary"] = w.close()
        except BaseException as e:  # noqa: BLE001
            done["error"] = e
            w.abort()

    t = threading.Thread(target=rest, daemon=True)
    t.start()
    time.sleep(2)
    node.restart()  # the same port and data, 20-40 s later
    t.join(300)
    assert not t.is_alive()
    assert "error" not in done, done.get("error")
    s = done["summary"]
    assert not s.failures and s.indexed == 1000 and s.extra["docs_in_index"] == 1000
    assert s.extra["bulk_retries"] > 0


@pytest.mark.timeout(300)
def test_cli_cluster_gone_mid_bulk_exits_1_with_one_line_within_retry_for(node, tmp_path):
    import json
    import subprocess
    import sys
    import urllib.request

    from vsplade.encoded import EncodedDirWriter

    enc = tmp_path / "enc"
    w = EncodedDirWriter(enc, INFO)
    for start in range(0, 40_000, 5_000):
        w.add(pages(5_000, start=start))
    w.close()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("VSPLADE_OPENSEARCH_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "vsplade", "index", str(enc), "--engine", "opensearch", "--url",
                             node.url, "--index", "gone-cli", "--recreate", "--retry-for", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # wait until the bulk is under way
            try:  # (not _count: the writer turns refresh off during the bulk)
                with urllib.request.urlopen(f"{node.url}/gone-cli/_stats/indexing", timeout=5) as r:
                    if json.loads(r.read())["_all"]["primaries"]["indexing"]["index_total"] > 0:
                        break
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        assert proc.poll() is None, "the bulk finished before the node could be killed: give it more pages"
        node.members[0].kill()
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "page/s]" not in line]
    assert proc.returncode == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "re-run the same command to resume" in lines[0], err
    assert "Traceback" not in err and "CancelledError" not in err
    assert elapsed < 6 + 30, elapsed  # the budget, not minutes
