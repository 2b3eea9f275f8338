"""Sparse ANN (vsplade_opensearch.sparse_ann) on a real OpenSearch 3.6.0 node with neural-search
(the plugin line that has sparse_vector / SEISMIC): the index builds with the ANN path on
(approximate_threshold below the corpus size), answers, and returns the exact top-1 on an easy
corpus, ids above the fold included. Recall figures live in benchmarks/opensearch_sparse_ann.py."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from opensearchpy import OpenSearch

from vsplade.vocab import VOCAB_SIZE
from vsplade_opensearch import sparse_ann

DOCS = 600


def test_fold_sums_colliding_ids_and_counts_them():
    v = sparse_ann.fold_vector([5, 5 + sparse_ann.FOLD, 40000, 7], [1.0, 0.5, 2.0, 0.25])
    assert v == {"5": 1.5, str(40000 - sparse_ann.FOLD): 2.0, "7": 0.25}
    # the V-SPLADE text vocabulary: ids 32768..50367 each share a slot with id - 32768
    assert sparse_ann.colliding_ids(VOCAB_SIZE) == 2 * (VOCAB_SIZE - sparse_ann.FOLD)
    assert sparse_ann.colliding_ids(sparse_ann.FOLD) == 0
    with pytest.raises(ValueError):
        sparse_ann.fold_vector([-1], [1.0])


@pytest.fixture
def client(opensearch_neural3_node):
    c = OpenSearch(opensearch_neural3_node.url, timeout=120)
    yield c
    c.close()


@pytest.fixture
def index(client):
    name = f"vsplade-ann-{uuid.uuid4().hex[:10]}"
    yield name
    client.indices.delete(index=name, ignore=[404])


def easy_corpus(seed: int = 3):
    """Each page: 40 random ids over the whole vocabulary (so about a third fold) with weights in
    [0.2, 2.9] (under the ingest ceiling); the query for page i is page i's 12 heaviest ids,
    which no other page comes close to."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(DOCS):
        ids = rng.choice(VOCAB_SIZE, 40, replace=False)
        docs.append((ids, rng.uniform(0.2, 2.9, 40)))
    return docs


def test_sparse_ann_index_answers_with_exact_top1(client, index):
    docs = easy_corpus()
    body = sparse_ann.index_body(approximate_threshold=100, ceiling_ingest=3.0)
    client.indices.create(index=index, body=body)
    lines = []
    for i, (ids, w) in enumerate(docs):
        lines += [{"index": {"_index": index, "_id": f"p{i}"}}, sparse_ann.document(ids, w)]
    assert not client.bulk(body=lines, refresh=True)["errors"]
    client.indices.forcemerge(index=index, max_num_segments=1)  # one segment over the threshold
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == DOCS
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"][sparse_ann.DEFAULT_FIELD]
    assert mapping["type"] == "sparse_vector" and mapping["method"]["name"] == "seismic"
    rng = np.random.default_rng(1)
    folded = 0
    for i in rng.choice(DOCS, 25, replace=False):
        ids, w = docs[i]
        top = np.argsort(-w)[:12]
        folded += int((ids[top] >= sparse_ann.FOLD).any())
        res = client.search(index=index, body={"size": 10, "_source": False,
                                               "query": sparse_ann.query(ids[top], w[top], k=10, top_n=12)})
        got = [h["_id"] for h in res["hits"]["hits"]]
        assert got and got[0] == f"p{i}", (i, got[:3])
        assert res["hits"]["hits"][0]["_score"] > 0
    assert folded > 0  # queries with ids above the fold were among them


def test_sparse_batch_round_trip(client, index):
    """vsplade SparseBatch pages through bulk_actions / search: each page's own vector finds it
    first, metadata stored beside it."""
    import scipy.sparse as sp

    from vsplade.sparse import SparseBatch

    docs = easy_corpus(seed=5)[:300]
    m = sp.csr_matrix((np.concatenate([w for _, w in docs]).astype(np.float32),
                       np.concatenate([i for i, _ in docs]), np.arange(0, 40 * len(docs) + 1, 40)),
                      shape=(len(docs), VOCAB_SIZE))
    ids = [f"doc-{i}" for i in range(len(docs))]
    batch = SparseBatch(m, ids, [{"id": d, "source": "/x.pdf", "page": i + 1} for i, d in enumerate(ids)])
    sparse_ann.create_index(client, index, approximate_threshold=50)
    assert not client.bulk(body=list(sparse_ann.bulk_actions(batch, index)), refresh=True)["errors"]
    client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.refresh(index=index)
    for i in (0, 17, 123, 299):
        row = m.getrow(i)
        hits = sparse_ann.search(client, index, dict(zip(row.indices.tolist(), row.data.tolist())), k=5, top_n=40)
        assert hits[0][0] == ids[i], (i, hits)
    src = client.get(index=index, id="doc-17")["_source"]
    assert src["source"] == "/x.pdf" and src["page"] == 18 and src["id"] == "doc-17"
