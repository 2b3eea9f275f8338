"""Server-side plain-text queries on real plugin nodes (opensearch_neural_node: 3.6.0 and 2.19.1
with neural-search + ml-commons; conftest.py): the model zip registered offline, pages named
for it (--server-side-query), and `neural_sparse {query_text, model_id}` sent with plain
opensearch-py, no vsplade encoder: top-10 equals vsplade's query encoder + the exact scorer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade.encoders import load_query_encoder
from vsplade.engines.base import EngineError
from vsplade.engines.memory import ExactScorer
from vsplade.sparse import SparseBatch, feature_field_round
from vsplade.vocab import VOCAB_SIZE, default_tokenizer_path
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.connection import Connection
from vsplade_opensearch.bundle_format import write_opensearch_sparse
from vsplade_opensearch.ml_model import ModelError, register_model
from vsplade_opensearch.mlcommons import ServerSideNaming

PDF_QUERIES = ["debian package management", "financial report revenue", "interface definition language",
               "apt-get install", "net income total assets", "stub code generation"]


def engine(node, index, **opts):
    return OpenSearchEngine(index=index, url=node.url, progress=False, **opts)


def plain_search(node, index, text, model_id, k=10):
    """What any OpenSearch client sends: nothing of vsplade."""
    from opensearchpy import OpenSearch

    client = OpenSearch(node.url)
    body = {"size": k, "query": {"neural_sparse": {"vector": {"query_text": text, "model_id": model_id}}}}
    return [(h["_id"], h["_score"]) for h in client.search(index=index, body=body)["hits"]["hits"]]


def assert_same_top(server, exact, rel=1e-5):
    """Equal scores rank by rank; equal ids wherever the exact score is not tied."""
    assert len(server) == len(exact), (server, exact)
    scores = [h.score for h in exact]
    for rank, ((sid, sscore), h) in enumerate(zip(server, exact)):
        assert sscore == pytest.approx(h.score, rel=rel), (rank, server, exact)
        tied = sum(1 for s in scores if s == pytest.approx(h.score, rel=rel)) > 1
        if not tied:
            assert sid == h.id, (rank, server, exact)


def rounded(m: sp.csr_matrix) -> sp.csr_matrix:
    m = m.copy()
    m.data = feature_field_round(m.data)
    return m


def index_batch(node, index, batch, info, **opts):
    with engine(node, index, server_side_query=True, **opts).writer(info) as w:
        w.add(batch)
        return w.close()


@pytest.fixture(scope="module")
def lexical_zip(tmp_path_factory):
    path, digest = write_opensearch_sparse(tmp_path_factory.mktemp("zip") / "lexical.zip", load_query_encoder("lexical"))
    return path, digest


@pytest.fixture(scope="module")
def lexical_model(opensearch_neural_node, lexical_zip):
    conn = Connection.from_options({"url": opensearch_neural_node.url})
    first = register_model(conn, lexical_zip[0])
    again = register_model(conn, lexical_zip[0])
    return first, again


@pytest.fixture(scope="module")
def pdf_batch(pdf_dir):
    from vsplade.encoders.lexical import LexicalEncoder
    from vsplade.pages import PageReader

    enc = LexicalEncoder()
    pages = list(PageReader([str(pdf_dir)], render=False, text=True))
    enc.fit(pages)
    return enc.encode(pages), enc.info() | {"model": "lexical"}


def test_register_is_idempotent_by_content_hash(lexical_model, lexical_zip):
    first, again = lexical_model
    assert first["content_hash"] == lexical_zip[1]
    assert again["model_id"] == first["model_id"] and not again["created"] and not again["deployed_now"]


def test_ml_commons_names_equal_the_python_replica(opensearch_neural_node, lexical_model):
    """The cluster's own SPARSE_TOKENIZE output (_predict) equals vsplade_opensearch.mlcommons' replica."""
    client = Connection.from_options({"url": opensearch_neural_node.url}).client()
    naming = ServerSideNaming(load_query_encoder("lexical"))
    # (runs of spaces are left out: there DJL's tokenizers 0.31 and Python's 0.23 split the
    # lexical bundle's Prepend + added space tokens differently; see connectors/opensearch/README)
    texts = PDF_QUERIES + ["Report report REPORT", "naïve café über", "x.y, (a|b) 3.14 — \"quoted\"", "日本語の検索"]
    from opensearchpy.exceptions import TransportError

    for text in texts:
        ids = naming.tokenizer.encode(text).ids
        shared = len({i for i in ids if naming.names[i] == "\ufffd"}) > 1
        predict = ("POST", f"/_plugins/_ml/models/{lexical_model[0]['model_id']}/_predict")
        if shared and opensearch_neural_node.version.startswith("2."):
            # ml-commons 2.19 collects names with Collectors.toMap, which throws on a name that
            # two distinct ids share (here two UTF-8 fragments, both '\ufffd'); 3.x keeps one
            with pytest.raises(TransportError, match="Failed to inference"):
                client.transport.perform_request(*predict, body={"text_docs": [text]})
            continue
        resp = client.transport.perform_request(*predict, body={"text_docs": [text]})
        got = resp["inference_results"][0]["output"][0]["dataAsMap"]["response"][0]
        assert got == pytest.approx(naming.encode(text)), text


def test_plain_text_equals_exact_scorer_on_the_test_pdfs(opensearch_neural_node, lexical_model, pdf_batch):
    batch, info = pdf_batch
    index = f"vsplade-ss-{uuid.uuid4().hex[:8]}"
    summary = index_batch(opensearch_neural_node, index, batch, info)
    assert summary.indexed == len(batch) and not summary.failures
    qenc = load_query_encoder("lexical")
    exact = ExactScorer(SparseBatch(rounded(batch.matrix), batch.ids, batch.meta))
    checked = 0
    for text in PDF_QUERIES:
        q = qenc.encode(text)
        assert max(q.values()) == 1.0, text  # no repeated token: ml-commons and the spec agree
        want = [h for h in exact.search(q, 10) if h.score > 0]
        got = plain_search(opensearch_neural_node, index, text, lexical_model[0]["model_id"])
        assert_same_top(got, want)
        checked += bool(want)
    assert checked >= 4
    # the vsplade searcher finds the model id in the index _meta (recorded at index time)
    s = engine(opensearch_neural_node, index, server_side_query=True).searcher()
    assert s.model_id == lexical_model[0]["model_id"]
    assert [h.id for h in s.search_text(PDF_QUERIES[0], 5)] == [i for i, _ in plain_search(
        opensearch_neural_node, index, PDF_QUERIES[0], s.model_id, 5)]
    # Collection.open with the engine's server_side_query setting searches in plain text too
    from vsplade.collection import Collection

    with Collection.open(index, engine="opensearch", url=opensearch_neural_node.url, server_side_query=True) as col:
        assert [h.id for h in col.search(PDF_QUERIES[0], 5)] == [h.id for h in s.search_text(PDF_QUERIES[0], 5)]
    with pytest.raises(EngineError, match="built with --server-side-query"):
        engine(opensearch_neural_node, index).searcher().search(q, 3)


def make_checkpoint(path, seed=0):
    """A synthetic checkpoint in the official export layout, as far as the query side reads
    it: the Li-LSR tensors in model.safetensors (T = softplus(E.w + b)), some T above 64."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    h = 8
    e = rng.normal(0, 1, (VOCAB_SIZE, h)).astype(np.float32)
    w = rng.normal(0, 1, (1, h)).astype(np.float32)
    e[rng.choice(VOCAB_SIZE, 50, replace=False)] = 100.0 * w[0] / float(w[0] @ w[0])  # T ~ 100
    path.mkdir(parents=True, exist_ok=True)
    save_file({"query_encoder.embeddings.weight": e, "query_encoder.projection.weight": w,
               "query_encoder.projection.bias": np.zeros(1, np.float32)}, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_bytes(default_tokenizer_path().read_bytes())
    return path


def word_queries(qenc, n, rng, words=4):
    """Queries of distinct ordinary word tokens (each encodes back to itself, no repeats)."""
    pool = []
    for i in rng.permutation(VOCAB_SIZE)[:6000].tolist():
        tok = qenc.vocab.tokens[i]
        if tok.startswith("Ġ") and tok[1:].isalpha() and tok[1:].isascii() and tok[1:].islower() and len(tok) > 3:
            pool.append(i)
    out = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        ids = rng.choice(pool, words, replace=False)
        text = "".join(qenc.vocab.display(int(i)) for i in ids)
        if qenc.prefix_space:  # the encoder adds the first word's space itself
            text = text[1:]
        got = qenc.encode_ids(text)
        if len(got) == words and set(got) == {int(i) for i in ids} and max(got.values()) > 0:
            out.append((text, ids))
    assert len(out) == n
    return out


def synthetic_batch(qenc, queries, n_pages, rng):
    """Pages over the query ids plus noise, fragments and BPE twins (which the fold handles)."""
    hot = np.unique(np.concatenate([ids for _, ids in queries]))
    naming_noise = [96, 97, 541, 245, 252, 1000, 2000, 3000]
    rows = []
    for _ in range(n_pages):
        cols = np.unique(np.concatenate([rng.choice(hot, 12), rng.choice(VOCAB_SIZE, 20), rng.choice(naming_noise, 3)]))
        rows.append({int(c): float(rng.lognormal(-0.5, 0.8)) for c in cols})
    ids = [f"syn{i}" for i in range(n_pages)]
    return SparseBatch.from_dicts(rows, ids, [{"id": d, "source": f"/syn/{d}.pdf", "page": 1} for d in ids])


@pytest.mark.parametrize("kind", ["lexical", "li_lsr"])
def test_plain_text_equals_exact_scorer_on_a_synthetic_corpus(opensearch_neural_node, tmp_path, kind):
    rng = np.random.default_rng(7)
    model = "lexical" if kind == "lexical" else str(make_checkpoint(tmp_path / "ckpt"))
    qenc = load_query_encoder(model)
    naming = ServerSideNaming(qenc)
    if kind == "li_lsr":
        assert naming.scale > 1  # table weights above 64: pages scaled, idf divided
    zip_path, _ = write_opensearch_sparse(tmp_path / "m.zip", qenc)
    model_id = register_model(Connection.from_options({"url": opensearch_neural_node.url}), zip_path)["model_id"]
    queries = word_queries(qenc, 25, rng)
    batch = synthetic_batch(qenc, queries, 400, rng)
    index = f"vsplade-ss-{uuid.uuid4().hex[:8]}"
    index_batch(opensearch_neural_node, index, batch, {"name": kind, "model": model})
    # exact: vsplade's encoder over the pages as stored (folded, FeatureField-rounded, unscaled)
    folded = rounded(naming.fold(batch.matrix))
    folded.data = folded.data / np.float32(naming.scale)
    exact = ExactScorer(SparseBatch(folded, batch.ids, batch.meta))
    for text, _ in queries:
        want = [h for h in exact.search(qenc.encode(text), 10) if h.score > 0]
        got = plain_search(opensearch_neural_node, index, text, model_id)
        assert_same_top(got, want, rel=1e-4)
    # and against the unfolded pages: only FeatureField's 9 bits separate the two
    raw = ExactScorer(batch)
    text = queries[0][0]
    top_raw = raw.search(qenc.encode(text), 1)[0]
    assert plain_search(opensearch_neural_node, index, text, model_id, 1)[0][1] == pytest.approx(top_raw.score, rel=0.01)


def test_errors_wrong_id_not_deployed_and_plain_index(opensearch_neural_node, lexical_model, pdf_batch, lexical_zip):
    node = opensearch_neural_node
    batch, info = pdf_batch
    index = f"vsplade-ss-{uuid.uuid4().hex[:8]}"
    index_batch(node, index, batch.select(list(range(5))), info)
    with pytest.raises(ModelError, match="no ml-commons model 'nope'"):
        engine(node, index, server_side_query=True, model_id="nope").searcher()
    plain = f"vsplade-plain-{uuid.uuid4().hex[:8]}"
    with engine(node, plain).writer(info) as w:
        w.add(batch.select([0]))
    with pytest.raises(EngineError, match="not built with --server-side-query"):
        engine(node, plain, server_side_query=True).searcher()
    with pytest.raises(EngineError, match="without --server-side-query"):
        engine(node, plain, server_side_query=True).writer(info)
    # not deployed: undeploy, the search is refused naming it; register-model deploys it again
    conn = Connection.from_options({"url": node.url})
    client = conn.client()
    model_id = lexical_model[0]["model_id"]
    client.transport.perform_request("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
    try:
        import time

        deadline = time.monotonic() + 60
        while client.transport.perform_request("GET", f"/_plugins/_ml/models/{model_id}")["model_state"] == "DEPLOYED":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        with pytest.raises(ModelError, match="not deployed"):
            engine(node, index, server_side_query=True, model_id=model_id).searcher()
    finally:
        again = register_model(conn, lexical_zip[0])
    assert again["model_id"] == model_id and again["deployed_now"]
    assert engine(node, index, server_side_query=True).searcher().search_text("debian", 3) is not None


def run_cli(*args, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("VSPLADE_OPENSEARCH_URL", None)
    return subprocess.run([sys.executable, "-m", "vsplade.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_cli_end_to_end(opensearch_neural_node, pdf_dir, tmp_path):
    url = opensearch_neural_node.url
    index = f"vsplade-ss-cli-{uuid.uuid4().hex[:8]}"
    zip_path = tmp_path / "model.zip"
    r = run_cli("bundle", "lexical", "--format", "opensearch-sparse", "--out", zip_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("index", pdf_dir, "--model", "lexical", "--engine", "opensearch", "--url", url, "--index", index,
                "--server-side-query", "--json")
    assert r.returncode == 0, r.stderr
    r = run_cli("opensearch", "register-model", zip_path, "--url", url, "--index", index)
    assert r.returncode == 0, r.stderr
    model_id = r.stdout.strip()
    meta = Connection.from_options({"url": url}).client().indices.get_mapping(index=index)[index]["mappings"]["_meta"]
    assert meta["vsplade"]["query_model"]["model_id"] == model_id
    mem = tmp_path / "mem"
    assert run_cli("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", mem).returncode == 0
    queries = PDF_QUERIES[:3]
    ss = run_cli("search", *queries, "--engine", "opensearch", "--url", url, "--index", index, "--server-side-query",
                 "--json", "-k", "5")
    local = run_cli("search", *queries, "--engine", "memory", "--index", mem, "--json", "-k", "5")
    assert ss.returncode == 0, ss.stderr
    for a, b in zip(ss.stdout.strip().splitlines(), local.stdout.strip().splitlines()):
        a, b = json.loads(a), json.loads(b)
        assert a["hits"] and [h["score"] for h in a["hits"]] == pytest.approx([h["score"] for h in b["hits"]], rel=0.01)
    # no local encoder: the same search with torch and tokenizers unimportable
    code = ("import sys; sys.modules['torch'] = None; sys.modules['tokenizers'] = None\n"
            "from vsplade.cli import main; sys.argv = ['vsplade', 'search', %r, '--engine', 'opensearch', '--url', %r, "
            "'--index', %r, '--server-side-query', '--json', '-k', '5']; main()") % (queries[0], url, index)
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert blocked.returncode == 0, blocked.stderr
    assert json.loads(blocked.stdout) == json.loads(ss.stdout.splitlines()[0])
    # the lifecycle commands follow the index's naming without the flag
    r = run_cli("info", "--engine", "opensearch", "--url", url, "--index", index, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["pages"] == 34, r.stderr
    r = run_cli("delete", "--source", pdf_dir / "byaldi_financial_report.pdf", "--engine", "opensearch", "--url", url,
                "--index", index, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["deleted"] > 0, r.stderr
    r = run_cli("index", pdf_dir, "--model", "lexical", "--engine", "opensearch", "--url", url, "--index", index, "--json")
    assert r.returncode == 0, r.stderr  # re-adds the deleted file's pages, named for the model
    again = run_cli("search", *queries, "--engine", "opensearch", "--url", url, "--index", index, "--server-side-query",
                    "--json", "-k", "5")
    assert [json.loads(x)["hits"] for x in again.stdout.splitlines()] == [json.loads(x)["hits"] for x in ss.stdout.splitlines()]
    # usage errors: one line, exit 2
    for args, needle in [
        (("search", "x", "--engine", "opensearch", "--url", url, "--index", index), "search it with --server-side-query"),
        (("search", "x", "--engine", "opensearch", "--url", url, "--index", index, "--server-side-query",
          "--model-id", "nope"), "no ml-commons model 'nope'"),
        (("opensearch", "register-model", pdf_dir / "byaldi_financial_report.pdf", "--url", url), "not a zip file"),
    ]:
        r = run_cli(*args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, r.stderr)
