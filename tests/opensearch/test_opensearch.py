"""vsplade-opensearch against real OpenSearch nodes of both lines (os3, os2; see conftest.py),
noida-db (Elasticsearch flavour) for the tests marked es_flavour, or a real cluster when
VSPLADE_OPENSEARCH_URL is set. Expected scores are computed from the inputs by the exact scorer
(vsplade.engines.memory) over FeatureField-rounded page weights, and to the last bit by
`server_arithmetic` on local servers."""

from __future__ import annotations

import base64
import http.server
import threading
import time

import numpy as np
import orjson
import pytest

from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch, feature_field_round
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.documents import DocumentBuilder
from vsplade_opensearch.query import iter_terms

from opensearch_support import INFO, AuthEcho, rounded

# ordinary tokens plus names that needed escaping ('.', '..', '.,' ...): all must be queryable
COLS = np.concatenate([np.arange(1000, 1150), [15, 449, 481, 537, 904]])


def make_batch(n: int, seed: int = 0, nnz: int = 25, start: int = 0) -> SparseBatch:
    rng = np.random.default_rng(seed)
    rows, ids, meta = [], [], []
    for i in range(start, start + n):
        cols = rng.choice(COLS, size=nnz, replace=False)
        rows.append({int(c): float(rng.lognormal(-0.5, 0.8)) for c in cols})
        ids.append(f"doc{i % 4}.pdf#p{i + 1}")
        meta.append({"id": ids[-1], "source": f"/data/doc{i % 4}.pdf", "page": i + 1, "text": f"page {i + 1} text"})
    return SparseBatch.from_dicts(rows, ids, meta)


def random_queries(vocab, n: int, seed: int = 1, size: int = 12) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [
        {vocab.term(int(c)): float(rng.lognormal(0, 0.7)) for c in rng.choice(COLS, size=size, replace=False)}
        for _ in range(n)
    ]


def server_arithmetic(flavour: str, query: dict, row: dict, vocab) -> np.float32 | None:
    """The score each local server computes, to the last bit (measured on 3.9.0 and 2.19.6:
    2000 of 2000 top-10 hits equal; see benchmarks/RESULTS.md, OpenSearch section).
    Real OpenSearch (Lucene FeatureField, `linear`): each clause scores float32 boost x the
    stored 9-bit float32 value, rounded to float32; the boolean query adds the clauses in a
    double and rounds once to float32 (a float32 running sum matched only 67% of the hits).
    noida multiplies in float32 and sums in float32 in clause order."""
    terms = [t for t in query if vocab.id_of(t) in row]
    boosts = np.asarray([query[t] for t in terms], dtype=np.float32)
    values = feature_field_round(np.asarray([row[vocab.id_of(t)] for t in terms], dtype=np.float32))
    products = (boosts * values).astype(np.float32)
    if flavour in ("os3", "os2"):
        return np.float32(products.astype(np.float64).sum())
    if flavour == "noida":
        acc = np.float32(0)
        for p in products:
            acc = np.float32(acc + p)
        return acc
    return None


def index_batches(engine, *batches, info=INFO, recreate=False):
    with engine.writer(info, recreate=recreate) as w:
        for b in batches:
            w.add(b)
        return w.close()


def count(engine) -> int:
    c = engine.conn.client()
    c.indices.refresh(index=engine.index)
    return c.count(index=engine.index)["count"]


# ---- index management ---------------------------------------------------------------------


def test_mapping_settings_and_meta(engine_factory, server):
    eng = engine_factory(shards=2, replicas=0)
    w = eng.writer(INFO)
    c = eng.conn.client()
    settings = c.indices.get_settings(index=eng.index)[eng.index]["settings"]["index"]
    assert settings["number_of_shards"] == "2" and settings["number_of_replicas"] == "0"
    assert settings["refresh_interval"] == "-1"  # no refreshes during the bulk
    w.add(make_batch(5))
    summary = w.close()
    assert summary.indexed == 5 and summary.extra["docs_in_index"] == 5
    settings = c.indices.get_settings(index=eng.index)[eng.index]["settings"]["index"]
    assert settings.get("refresh_interval") in (None, "1s")  # restored to the default
    mapping = c.indices.get_mapping(index=eng.index)[eng.index]["mappings"]
    props = mapping["properties"]
    assert props["vector"]["type"] == "rank_features"
    for f in ("id", "source", "encoder", "encoder_version"):
        assert props[f]["type"] == "keyword"
    assert props["title"]["type"] == "text" and props["text"]["type"] == "text"
    assert props["page"]["type"] == "integer"
    meta = mapping["_meta"]["vsplade"]
    assert meta["encoder"] == INFO and meta["term_naming"] == "vsplade-term-v1"
    assert meta.get("restore_refresh_interval") is None
    assert eng.searcher().index_info() == INFO
    doc = c.get(index=eng.index, id="doc0.pdf#p1")["_source"]
    assert doc["title"] == "doc0" and doc["encoder"] == "lexical" and doc["page"] == 1
    assert doc["text"] == "page 1 text" and len(doc["encoder_version"]) == 12


def test_mismatch_is_refused_unless_recreate(engine_factory):
    eng = engine_factory()
    index_batches(eng, make_batch(3))
    with pytest.raises(IndexMismatchError, match="encoder"):
        eng.writer({**INFO, "k1": 1.2})
    with pytest.raises(IndexMismatchError, match="field"):
        engine_factory(field="other").writer(INFO)
    summary = index_batches(eng, make_batch(2, start=10), info={**INFO, "k1": 1.2}, recreate=True)
    assert summary.extra["docs_in_index"] == 2  # the old pages went with the old index
    assert eng.searcher().index_info() == {**INFO, "k1": 1.2}


def test_foreign_index_is_refused(engine_factory):
    eng = engine_factory()
    eng.conn.client().indices.create(index=eng.index, body={"mappings": {"properties": {"x": {"type": "keyword"}}}})
    with pytest.raises(IndexMismatchError, match="not created by vsplade"):
        eng.writer(INFO)


# ---- bulk -----------------------------------------------------------------------------------


@pytest.mark.es_flavour
def test_scores_equal_exact_scorer_after_feature_field_rounding(engine_factory, server, vocab):
    batch = make_batch(120, seed=3)
    eng = engine_factory(threads=2, chunk_docs=17)
    summary = index_batches(eng, batch)
    assert summary.indexed == 120 and not summary.failures
    exact = ExactScorer(rounded(batch), vocab)
    rows = {batch.ids[r]: dict(zip(*map(np.ndarray.tolist, rounded(batch).row(r)))) for r in range(len(batch))}
    searcher = eng.searcher()
    k = 10
    bit_exact = 0
    for q in random_queries(vocab, 15):
        hits = searcher.search(q, k)
        scores = exact.scores(q)
        kth = np.sort(scores)[::-1][k - 1]
        tol = len(q) * 2.0**-24  # relative: float32 products and sums over len(q) clauses
        assert len(hits) == min(k, int((scores > 0).sum()))
        for h in hits:
            want = scores[batch.ids.index(h.id)]
            assert h.score == pytest.approx(want, rel=tol)
            assert want >= kth * (1 - tol)  # a true top-k page (ties at the boundary allowed)
            emulated = server_arithmetic(server.flavour, q, rows[h.id], vocab)
            if emulated is not None:  # local servers: equal to the last bit
                assert np.float32(h.score).view(np.uint32) == emulated.view(np.uint32), (h.id, h.score, emulated)
                bit_exact += 1
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert bit_exact or server.flavour == "cluster"


def test_explain_returns_matched_terms_and_contributions(engine_factory, vocab):
    batch = make_batch(40, seed=5)
    eng = engine_factory()
    index_batches(eng, batch)
    exact = ExactScorer(rounded(batch), vocab)
    for q in random_queries(vocab, 5, seed=9):
        hits = eng.searcher().search(q, 5, explain=True)
        want = {h.id: h.explain for h in exact.search(q, 50, explain=True)}
        for h in hits:
            assert set(h.explain) == set(want[h.id])  # which terms matched
            for term, c in h.explain.items():
                assert c == pytest.approx(want[h.id][term], rel=1e-6)
            assert sum(h.explain.values()) == pytest.approx(h.score, rel=len(q) * 2.0**-24)
            assert list(h.explain.values()) == sorted(h.explain.values(), reverse=True)


def test_rerun_is_idempotent_and_resume_skips_done_pages(engine_factory, tmp_path):
    from vsplade.encoded import EncodedDirWriter
    from vsplade.pipeline import index_encoded

    batch = make_batch(30)
    enc = tmp_path / "enc"
    with EncodedDirWriter(enc, INFO) as w:
        w.add(batch)
    eng = engine_factory(chunk_docs=8)
    first = index_encoded(enc, lambda info: eng.writer(info), progress=False)
    assert first.summary.indexed == 30 and first.summary.skipped == 0
    second = index_encoded(enc, lambda info: eng.writer(info), progress=False)
    assert second.summary.indexed == 0 and second.summary.skipped == 30
    # writing the same pages again without skipping overwrites them by id: still 30
    index_batches(eng, batch)
    assert count(eng) == 30
    with eng.writer(INFO) as w:
        assert w.done_ids() == set(batch.ids)


def test_invalid_values_are_reported_and_the_rest_indexed(engine_factory):
    batch = make_batch(12)
    m = batch.matrix
    bad = {1: np.nan, 4: -0.5, 7: np.inf}
    for r, v in bad.items():
        m.data[m.indptr[r]] = v
    m.data[m.indptr[9] + 1] = 0.0  # a zero weight: dropped from the page, page kept
    m.data[m.indptr[10] + 2] = 1e-40  # subnormal: Lucene refuses it; dropped, page kept
    eng = engine_factory()
    summary = index_batches(eng, batch)
    failed = dict(summary.failures)
    assert set(failed) == {batch.ids[r] for r in bad}
    assert "NaN" in failed[batch.ids[1]] and "negative" in failed[batch.ids[4]] and "infinite" in failed[batch.ids[7]]
    assert summary.indexed == 9 and summary.dropped_weights == 2
    assert count(eng) == 9


def test_server_side_item_failures_are_collected(engine_factory):
    batch = make_batch(10)
    batch.meta[3]["page"] = "not-a-number"  # the server's integer field rejects this one page
    eng = engine_factory(chunk_docs=4)
    summary = index_batches(eng, batch)
    assert [i for i, _ in summary.failures] == [batch.ids[3]]
    assert "page" in summary.failures[0][1] or "parse" in summary.failures[0][1]
    assert summary.indexed == 9 and count(eng) == 9


def test_chunks_are_bounded_by_bytes(engine_factory):
    eng = engine_factory(chunk_docs=1000, chunk_bytes=3000)
    batch = make_batch(20)
    summary = index_batches(eng, batch)
    assert summary.indexed == 20
    sizes = [len(line) for line in DocumentBuilder(None, INFO).build(batch).lines]
    assert summary.extra["bulk_bytes"] == sum(sizes)
    assert summary.extra["max_request_bytes"] <= 3000
    assert summary.extra["bulk_requests"] >= -(-sum(sizes) // 3000)


def test_resume_after_a_crashed_writer_restores_refresh(engine_factory):
    a, b = make_batch(10), make_batch(10, start=10)
    eng = engine_factory()
    w = eng.writer(INFO)
    w.add(a)
    w.sender.flush()  # acknowledged, then the process "dies": no close, no abort
    w2 = eng.writer(INFO)
    assert w2.done_ids() == set(a.ids)
    w2.add(b)
    w2.close()
    settings = eng.conn.client().indices.get_settings(index=eng.index)[eng.index]["settings"]["index"]
    assert settings.get("refresh_interval") in (None, "1s")
    assert count(eng) == 20


def test_server_goes_away_mid_bulk_and_the_job_resumes(own_node):
    """Stop the node (SIGTERM) between bulk requests, start it again on the same port and data:
    the running job retries, the node recovers the index from disk, the job finishes."""
    first, second = make_batch(20), make_batch(20, start=20)
    eng = OpenSearchEngine(index="outage", url=own_node.url, chunk_docs=5, threads=2,
                           backoff_initial=0.2, backoff_max=2.0, max_retries=60, progress=False)
    w = eng.writer(INFO, recreate=True)
    w.add(first)
    w.sender.flush()
    own_node.members[0].stop()
    outcome: dict = {}

    def rest():
        try:
            w.add(second)
            outcome["summary"] = w.close()
        except Exception as e:  # noqa: BLE001
            outcome["error"] = e
            w.abort()

    t = threading.Thread(target=rest)
    t.start()
    own_node.start()  # blocks until the node is yellow again
    t.join(120)
    assert not t.is_alive()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.indexed == 40 and not summary.failures and summary.extra["bulk_retries"] > 0
    assert summary.extra["docs_in_index"] == 40


def test_server_down_for_good_is_a_clear_error(own_node):
    eng = OpenSearchEngine(index="gone", url=own_node.url, chunk_docs=5, backoff_initial=0.05,
                           backoff_max=0.1, max_retries=3, progress=False)
    w = eng.writer(INFO, recreate=True)
    own_node.members[0].stop()
    with pytest.raises(EngineError, match="unreachable after 3 retries"):
        w.add(make_batch(10))
        w.close()
    w.abort()


# ---- query ----------------------------------------------------------------------------------


def test_filters_k_and_source_trimming(engine_factory, vocab):
    batch = make_batch(40, seed=7)
    eng = engine_factory()
    index_batches(eng, batch)
    s = eng.searcher()
    q = random_queries(vocab, 1, seed=4, size=30)[0]
    hits = s.search(q, 5, sources=["/data/doc1.pdf"], page_min=5, page_max=30)
    assert 0 < len(hits) <= 5
    assert all(h.source == "/data/doc1.pdf" and 5 <= h.page <= 30 for h in hits)
    exact = ExactScorer(rounded(batch), vocab).scores(q)
    allowed = [r for r, m in enumerate(batch.meta) if m["source"] == "/data/doc1.pdf" and 5 <= m["page"] <= 30]
    best = max(allowed, key=lambda r: (exact[r], -r))
    assert hits[0].id == batch.ids[best]
    assert len(s.search(q, 3)) == 3
    resp = s.client.search(index=eng.index, body=s.body(q, 2))
    hit = resp["hits"]["hits"][0]
    # metadata from doc values: no stored field read (no _source, no _id), no vector shipped back
    assert "_source" not in hit and "_id" not in hit and set(hit["fields"]) == {"id", "source", "page"}
    trimmed = s.client.search(index=eng.index, body=s.body(q, 2, source_fields=["id", "title"]))
    assert set(trimmed["hits"]["hits"][0]["_source"]) == {"id", "title"}  # a text field: read from _source
    full = s.client.search(index=eng.index, body=s.body(q, 2, source_fields=None))
    assert "vector" not in full["hits"]["hits"][0]["_source"]  # new indexes leave the vector out of _source
    assert {"id", "source", "page", "title", "encoder"} <= set(full["hits"]["hits"][0]["_source"])
    kept = engine_factory(index=eng.index + "-kept", vector_source=True)
    index_batches(kept, batch)
    full = kept.conn.client().search(index=kept.index, body=kept.searcher().body(q, 2, source_fields=None))
    assert "vector" in full["hits"]["hits"][0]["_source"]  # vector_source=True keeps it
    kept.conn.client().indices.delete(index=kept.index)
    assert s.search({}, 5) == []


def test_hits_read_metadata_from_doc_values(engine_factory, vocab):
    """The default search reads each hit's id, source, page, path and sha256 from doc values
    (query.fetch_clause) and gets what was written, as a search reading `_source` does."""
    batch = make_batch(12, seed=5)
    for i, m in enumerate(batch.meta):
        m.update(path=f"/abs/data/doc{i % 4}.pdf", sha256=f"{i:064x}")
    eng = engine_factory()
    index_batches(eng, batch)
    s = eng.searcher()
    q = random_queries(vocab, 1, seed=6, size=40)[0]
    by_docvalues = s.search(q, 12)
    by_source = s.search(q, 12, source_fields=["id", "source", "page", "path", "sha256", "title"])
    assert len(by_docvalues) >= 6
    assert [vars(h) for h in by_docvalues] == [vars(h) for h in by_source]
    meta = {m["id"]: m for m in batch.meta}
    for h in by_docvalues:
        m = meta[h.id]
        assert (h.source, h.page, h.path, h.sha256) == (m["source"], m["page"], m["path"], m["sha256"])
    grouped = s.search_grouped(q, 2, per_group=2)
    assert grouped and all(p.path == meta[p.id]["path"] for f in grouped for p in f.hits)


def test_batch_search_matches_single_search(engine_factory, vocab):
    batch = make_batch(30, seed=8)
    eng = engine_factory()
    index_batches(eng, batch)
    s = eng.searcher()
    qs = random_queries(vocab, 70, seed=2)
    batched = s.batch_search(qs, 4, threads=2)
    assert len(batched) == 70
    for q, hits in zip(qs[:10], batched[:10]):
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in s.search(q, 4)]


def test_neural_sparse_mode(engine_factory, server, vocab):
    batch = make_batch(5)
    index_batches(engine_factory(), batch)
    s = engine_factory(query_mode="neural_sparse").searcher()
    q = random_queries(vocab, 1)[0]
    body = s.body(q, 3, sources=["/data/doc0.pdf"])
    assert body["query"]["bool"]["must"][0]["neural_sparse"]["vector"]["query_tokens"] == q
    assert sorted(iter_terms(body)) == sorted(q)
    if server.flavour in ("os3", "os2", "noida"):  # no neural-search plugin there: a clear error
        with pytest.raises(EngineError, match="neural_sparse"):
            s.search(q, 3)


# ---- export, CLI, credentials --------------------------------------------------------------


def test_export_bulk_file_loads_into_the_server(server, index_name, tmp_path, vocab):
    import urllib.request

    batch = make_batch(15)
    batch.matrix.data[batch.matrix.indptr[2]] = np.nan
    out = tmp_path / "bulk.ndjson"
    res = OpenSearchEngine.export([batch.select(range(8)), batch.select(range(8, 15))], out, index_name=index_name)
    assert res["docs"] == 14 and [f["id"] for f in res["failures"]] == [batch.ids[2]]
    lines = out.read_bytes().splitlines()
    assert len(lines) == 28
    assert orjson.loads(lines[0]) == {"index": {"_index": index_name, "_id": batch.ids[0]}}
    if server.flavour == "cluster":
        return
    def call(method, path, body, ctype="application/json"):
        req = urllib.request.Request(server.url + path, data=body, method=method, headers={"Content-Type": ctype})
        return orjson.loads(urllib.request.urlopen(req).read())
    call("PUT", f"/{index_name}", (tmp_path / "bulk.ndjson.mapping.json").read_bytes())
    assert not call("POST", "/_bulk?refresh=true", out.read_bytes(), "application/x-ndjson")["errors"]
    eng = OpenSearchEngine(index=index_name, url=server.url)
    q = random_queries(vocab, 1)[0]
    keep = [r for r in range(15) if r != 2]
    exact = ExactScorer(rounded(batch.select(keep)), vocab).search(q, 3)
    assert [h.id for h in eng.searcher().search(q, 3)] == [h.id for h in exact]


@pytest.mark.es_flavour
def test_cli_index_and_search_equal_memory_engine(server, index_name, pdf_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from vsplade.cli import app

    r = CliRunner()
    res = r.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch",
                         "--url", server.url, "--index", index_name, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["indexed"] > 0
    mem = tmp_path / "mem"
    assert r.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--engine", "memory", "--index", str(mem)]).exit_code == 0
    queries = ["debian package management", "financial report revenue"]
    os_res = r.invoke(app, ["search", *queries, "--engine", "opensearch", "--url", server.url, "--index", index_name, "--json", "-k", "3"])
    mem_res = r.invoke(app, ["search", *queries, "--engine", "memory", "--index", str(mem), "--json", "-k", "3"])
    assert os_res.exit_code == 0, os_res.output
    for a, b in zip(os_res.stdout.strip().splitlines(), mem_res.stdout.strip().splitlines()):
        a, b = json.loads(a), json.loads(b)
        assert a["hits"], a
        assert [h["id"] for h in a["hits"]] == [h["id"] for h in b["hits"]]
        for ha, hb in zip(a["hits"], b["hits"]):
            assert ha["score"] == pytest.approx(hb["score"], rel=0.01)  # 9-bit document weights
    res = r.invoke(app, ["search", queries[0], "--engine", "opensearch", "--url", server.url, "--index", index_name, "--explain", "-k", "1"])
    assert res.exit_code == 0 and "matched:" in res.stdout


@pytest.mark.parametrize("creds", [
    {"user": "alice", "password": "pw-s3cret-1"},
    {"url_auth": "alice:pw-s3cret-2"},
    {"api_key": "keyid:key-s3cret-3"},
    {"headers": {"Authorization": "Bearer tok-s3cret-4"}},
])
def test_credentials_are_sent_but_never_shown(creds):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthEcho)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{srv.server_address[1]}"
        opts = dict(creds)
        url = f"http://{opts.pop('url_auth')}@{host}" if "url_auth" in creds else f"http://{host}"
        AuthEcho.seen.clear()
        eng = OpenSearchEngine(index="x", url=url, **opts)
        with pytest.raises(EngineError) as err:
            eng.writer(INFO)
        text = str(err.value) + repr(eng) + repr(eng.conn)
        secret = next(v for v in [*creds.values(), *creds.get("headers", {}).values()] if isinstance(v, str) and "s3cret" in v)
        secret = secret.split(":")[-1]
        assert AuthEcho.seen, "the request reached the server"
        sent = AuthEcho.seen[0]
        if sent.startswith("Basic "):
            assert secret in base64.b64decode(sent[6:]).decode()
        else:
            assert secret in sent or secret in base64.b64decode(sent.split()[-1]).decode()
        assert secret not in text and base64.b64encode(secret.encode()).decode() not in text
        assert "***" in str(err.value)  # the echoed credential was redacted, the rest kept
    finally:
        srv.shutdown()


def test_missing_url_and_bad_index_name_are_usage_errors(monkeypatch):
    monkeypatch.delenv("VSPLADE_OPENSEARCH_URL", raising=False)
    with pytest.raises(EngineError, match="--url"):
        OpenSearchEngine(index="x")
    with pytest.raises(EngineError, match="index name"):
        OpenSearchEngine(index="Bad Name", url="http://127.0.0.1:9")
    with pytest.raises(EngineError, match="--index"):
        OpenSearchEngine(url="http://127.0.0.1:9")
