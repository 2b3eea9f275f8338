"""Sparse ANN (vsplade_opensearch.sparse_ann) on a real OpenSearch 3.6.0 node with neural-search
(the plugin line that has sparse_vector / SEISMIC): the index builds with the ANN path on
(approximate_threshold below the corpus size), answers, and returns the exact top-1 on an easy
corpus, ids above the fold included; and the engine option end to end through the CLI
(`vsplade index ... --sparse-ann`, search with filters, info, delete, a later run without the
flag). Recall figures live in benchmarks/opensearch_sparse_ann.py."""

from __future__ import annotations

import numpy as np
import pytest
from opensearch_support import node_client, scratch_index

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
    yield from node_client(opensearch_neural3_node.url, timeout=120)


index = scratch_index("vsplade-ann")


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


# ---- the engine option: `vsplade index ... --engine opensearch --sparse-ann`

ANN_QUERIES = ["debian package management", "financial report revenue", "interface definition language",
               "apt-get install", "stub code generation"]


def _cli(runner, *args):
    from vsplade.cli import app

    return runner.invoke(app, [str(a) for a in args])


def test_cli_sparse_ann_index_search_info(opensearch_neural3_node, client, index, pdf_dir, tmp_path, monkeypatch):
    """The CLI builds a sparse ANN index (SEISMIC field, folded ids, the usual metadata and
    _meta), searches it without any flag and gets the exact scorer's top-1 (the memory engine on
    the same folder), with a PageFilter too; info works; later runs follow the index."""
    import json

    from typer.testing import CliRunner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("VSPLADE_OPENSEARCH_URL", raising=False)
    url, r = opensearch_neural3_node.url, CliRunner()
    conn = ("--engine", "opensearch", "--url", url, "--index", index)
    res = _cli(r, "index", pdf_dir, "--model", "lexical-noidf", *conn, "--sparse-ann", "--ann-threshold", 5,
               "--ann-ceiling", 8, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["indexed"] == 34, summary
    entry = client.indices.get(index=index)[index]
    assert entry["settings"]["index"]["sparse"] == "true"
    props = entry["mappings"]["properties"]
    assert props["vector"]["type"] == "sparse_vector" and props["vector"]["method"]["name"] == "seismic"
    assert props["vector"]["method"]["parameters"]["approximate_threshold"] == 5
    assert props["source"]["type"] == "keyword" and props["sha256"]["type"] == "keyword"
    meta = entry["mappings"]["_meta"]["vsplade"]
    assert meta["sparse_ann"] == {"fold": sparse_ann.FOLD, "ceiling_ingest": 8.0, "ceiling_search": 16.0,
                                  "approximate_threshold": 5}
    assert meta["encoder"]["name"] == "lexical" and meta["collection"]["root"]
    docs = client.search(index=index, body={"size": 50, "query": {"match_all": {}}})["hits"]["hits"]
    assert len(docs) == 34
    keys = [int(t) for d in docs for t in d["_source"]["vector"]]
    assert keys and max(keys) < sparse_ann.FOLD  # folded before the server saw them
    d0 = docs[0]["_source"]
    assert {"id", "source", "page", "title", "path", "sha256", "encoder", "encoder_version"} <= set(d0), d0.keys()

    mem = tmp_path / "mem"
    assert _cli(r, "index", pdf_dir, "--model", "lexical-noidf", "--engine", "memory", "--index", mem).exit_code == 0
    ann = _cli(r, "search", *ANN_QUERIES, *conn, "--json", "-k", "5")
    exact = _cli(r, "search", *ANN_QUERIES, "--engine", "memory", "--index", mem, "--json", "-k", "5")
    assert ann.exit_code == 0, ann.output
    for a, b in zip(ann.stdout.strip().splitlines(), exact.stdout.strip().splitlines(), strict=True):
        a, b = json.loads(a), json.loads(b)
        assert a["hits"] and a["hits"][0]["id"] == b["hits"][0]["id"], (a["hits"][:2], b["hits"][:2])
        assert a["hits"][0]["score"] == pytest.approx(b["hits"][0]["score"], rel=0.1)  # byte-quantized
    # a PageFilter around the neural_sparse query: only that file's pages, the exact top-1 among them
    # (unfiltered, the top-5 of this query are camlidl pages: a filter applied after the k ANN
    # candidates would leave nothing)
    src = pdf_dir / "debian-refcard-en-a4.pdf"
    fa = _cli(r, "search", "interface definition language", *conn, "--source", src, "--json", "-k", "5")
    fb = _cli(r, "search", "interface definition language", "--engine", "memory", "--index", mem, "--source", src,
              "--json", "-k", "5")
    assert fa.exit_code == 0, fa.output
    fa, fb = json.loads(fa.stdout), json.loads(fb.stdout)
    assert fa["hits"] and all(h["source"].endswith("debian-refcard-en-a4.pdf") for h in fa["hits"]), fa["hits"]
    assert [h["id"] for h in fa["hits"]] == [h["id"] for h in fb["hits"]]
    pm = json.loads(_cli(r, "search", "debian package management", *conn, "--page-max", 2, "--json").stdout)
    assert pm["hits"] and all(h["page"] <= 2 for h in pm["hits"])
    # a --source that names no indexed file is refused before any search (Collection), one line
    none = _cli(r, "search", "interface definition language", *conn, "--source", "nope.pdf", "--json")
    lines = [ln for ln in none.stderr.splitlines() if ln.strip()]
    assert none.exit_code == 2 and len(lines) == 1 and "no indexed file matches" in lines[0], none.output
    # the searcher itself (library use): no page under the key is no hits, not a failed search
    from vsplade_opensearch import OpenSearchEngine

    with OpenSearchEngine(index=index, url=url).searcher() as s:
        assert s.search({"Ġinterface": 1.0}, 5) and s.search({"Ġinterface": 1.0}, 5, sources=["nope.pdf"]) == []

    res = _cli(r, "info", *conn, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["pages"] == 34, res.output
    res = _cli(r, "delete", "--source", pdf_dir / "byaldi_financial_report.pdf", *conn, "--json")
    assert res.exit_code == 0, res.output
    deleted = json.loads(res.stdout)["deleted"]
    assert deleted > 0
    # a later run without the flag follows the index (re-adds the deleted file's pages, folded)
    res = _cli(r, "index", pdf_dir, "--model", "lexical-noidf", *conn, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["indexed"] == deleted, res.output
    assert client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["vector"]["type"] == "sparse_vector"
    again = _cli(r, "search", *ANN_QUERIES, *conn, "--json", "-k", "5")
    assert [json.loads(x)["hits"][0]["id"] for x in again.stdout.splitlines()] == \
        [json.loads(x)["hits"][0]["id"] for x in ann.stdout.splitlines()]
    res = _cli(r, "search", "x", *conn, "--explain")
    assert res.exit_code == 2 and "--explain is not available" in res.stderr, res.output
    # usage errors: one line, exit 2
    for args, needle in [
        (("index", pdf_dir, "--model", "lexical-noidf", "--engine", "lucene", "--index", tmp_path / "l",
          "--sparse-ann"), "--sparse-ann applies to --engine opensearch"),
        (("index", pdf_dir, "--model", "lexical", *conn, "--sparse-ann", "--server-side-query"), "do not combine"),
        (("index", pdf_dir, "--model", "lexical-noidf", *conn, "--ann-threshold", 5), "apply to --sparse-ann"),
    ]:
        res = _cli(r, *args)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], (args, res.stderr)


def test_sparse_ann_refuses_a_rank_features_index(opensearch_neural3_node, index, pdf_dir):
    from vsplade.engines.base import IndexMismatchError
    from vsplade_opensearch import OpenSearchEngine

    info = {"name": "lexical-noidf", "version": "t"}
    OpenSearchEngine(index=index, url=opensearch_neural3_node.url, progress=False).writer(info).close()
    with pytest.raises(IndexMismatchError, match="--sparse-ann needs a new index"):
        OpenSearchEngine(index=index, url=opensearch_neural3_node.url, progress=False, sparse_ann=True).writer(info)
