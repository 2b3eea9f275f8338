"""The plugin nodes (`python -m vsplade_opensearch.testnode --plugins neural`, both plugin lines:
3.6.0 and 2.19.1): the four plugins load, a rank_features index works, and neural-search's
`neural_sparse` query with raw `query_tokens` on a rank_features field ranks and scores like the
equivalent bool/should of linear `rank_feature` queries and like the exact dot product over the
values FeatureField stores."""

from __future__ import annotations

import numpy as np
import pytest
from opensearch_support import node_client, scratch_index

from vsplade.sparse import feature_field_round

PLUGINS = {"opensearch-neural-search", "opensearch-ml", "opensearch-knn", "opensearch-job-scheduler"}
DOCS, VOCAB, K = 400, 3000, 10


@pytest.fixture
def client(opensearch_neural_node):
    yield from node_client(opensearch_neural_node.url, timeout=60)


index = scratch_index("vsplade-plugin")


def corpus(seed: int = 7) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """V-SPLADE-like sparse rows: 20-150 terms a page, skewed term use, lognormal weights; term
    names carry no '.' (rank_feature splits a field at the last dot)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, VOCAB + 1) ** 0.8
    pop /= pop.sum()

    def row(lo: int, hi: int, scale: float) -> dict[str, float]:
        ids = rng.choice(VOCAB, size=int(rng.integers(lo, hi)), replace=False, p=pop)
        return {f"w{i}": float(v) for i, v in zip(ids, np.clip(rng.lognormal(-0.5, 0.7, len(ids)) * scale, 0.01, 60))}

    docs = [row(20, 150, 1.0) for _ in range(DOCS)]
    queries = [row(5, 30, 2.0) for _ in range(12)]
    return docs, queries


def exact_top(docs, query) -> list[tuple[str, float]]:
    """Dot product over the float32 values FeatureField stores (9 significant bits)."""
    scores = []
    for i, d in enumerate(docs):
        s = sum(np.float32(w) * feature_field_round(np.float32(d[t])).item() for t, w in query.items() if t in d)
        if s > 0:
            scores.append((f"d{i}", float(s)))
    return sorted(scores, key=lambda x: (-x[1], x[0]))[:K]


def hits(res) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in res["hits"]["hits"]]


def test_the_four_plugins_are_loaded(client, opensearch_neural_node):
    rows = client.cat.plugins(format="json")
    assert {r["component"] for r in rows} >= PLUGINS, rows
    versions = {r["component"]: r["version"] for r in rows}
    assert all(versions[p] == opensearch_neural_node.version + ".0" for p in PLUGINS), versions
    assert client.info()["version"]["number"] == opensearch_neural_node.version


def test_rank_features_index_answers(client, index):
    client.indices.create(index=index, body={"mappings": {"properties": {"v": {"type": "rank_features"}}}})
    client.index(index=index, id="a", body={"v": {"w1": 1.5, "w2": 2.25}})
    client.index(index=index, id="b", body={"v": {"w2": 4.0}}, refresh=True)
    res = client.search(index=index, body={"query": {"bool": {"should": [
        {"rank_feature": {"field": "v.w1", "linear": {}, "boost": 2.0}},
        {"rank_feature": {"field": "v.w2", "linear": {}, "boost": 1.0}}]}}})
    assert hits(res) == [("a", 5.25), ("b", 4.0)]


def test_neural_sparse_query_tokens_equals_rank_feature(client, index):
    docs, queries = corpus()
    client.indices.create(index=index, body={"settings": {"number_of_shards": 1},
                                             "mappings": {"properties": {"v": {"type": "rank_features"}}}})
    body = []
    for i, d in enumerate(docs):
        body += [{"index": {"_index": index, "_id": f"d{i}"}}, {"v": d}]
    assert not client.bulk(body=body, refresh=True)["errors"]
    for q in queries:
        exact = exact_top(docs, q)
        assert len(exact) == K
        rf = client.search(index=index, body={"size": K, "_source": False, "query": {"bool": {"should": [
            {"rank_feature": {"field": f"v.{t}", "linear": {}, "boost": w}} for t, w in q.items()]}}})
        ns = client.search(index=index, body={"size": K, "_source": False,
                                              "query": {"neural_sparse": {"v": {"query_tokens": q}}}})
        for got in (hits(rf), hits(ns)):
            assert [i for i, _ in got] == [i for i, _ in exact]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in exact], rtol=1e-5)
        np.testing.assert_allclose([s for _, s in hits(ns)], [s for _, s in hits(rf)], rtol=1e-6)


def test_plugins_without_layout_names_the_make_target(tmp_path):
    """No JVM: a checkout whose plugin layout was never built refuses with one line."""
    import os
    import shutil
    import subprocess
    import sys

    from vsplade_opensearch import testnode

    d = tmp_path / "server"
    shutil.copytree(testnode.SERVER_DIR, d, ignore=shutil.ignore_patterns("jars"))
    res = subprocess.run([sys.executable, "-m", "vsplade_opensearch.testnode", "--plugins", "neural", "--http-port", "0"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         env={**os.environ, "VSPLADE_OPENSEARCH_SERVER_DIR": str(d)})
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugins not fetched" in lines[0] and "make opensearch-jars" in lines[0], res.stderr
