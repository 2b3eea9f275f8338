"""What only a real server proves (both lines; see conftest.py): the term-name contract over the
whole vocabulary, and the CLI's behaviour toward clusters that are unreachable, misaddressed or
shared by two writers at once (issue 18). Local stand-ins here are plain sockets, not engines."""

from __future__ import annotations

import http.server
import re
import os
import socket
import subprocess
import sys
import threading

import orjson
import pytest

from vsplade.engines.base import EngineError
from vsplade.sparse import SparseBatch
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.connection import Connection

from opensearch_support import INFO, AuthEcho

BATCH_TERMS = 1000  # clauses per query: under every line's bool clause limit (1024 in 2.x)


def test_every_term_name_is_queryable(engine_factory, server, vocab):
    """One document carrying all 50,368 term names; every term, in batches of named
    rank_feature clauses, is reported as matched (`matched_queries`) on that document.
    (Not on noida: a 50,368-feature document takes it past the client's 60 s timeout.)"""
    n = vocab.size
    terms = [vocab.term(i) for i in range(n)]
    assert len(set(terms)) == n == 50368
    batch = SparseBatch.from_dicts([{i: 1.0 + (i % 7) for i in range(n)}], ["all-terms"],
                                   [{"id": "all-terms", "source": "/x.pdf", "page": 1}])
    eng = engine_factory(vector_source=True)  # the stored feature names are read back from _source
    with eng.writer(INFO) as w:
        w.add(batch)
        summary = w.close()
    assert summary.indexed == 1 and not summary.failures and summary.dropped_weights == 0
    client = eng.conn.client()
    stored = client.get(index=eng.index, id="all-terms")["_source"]["vector"]
    assert set(stored) == set(terms)
    matched: set[str] = set()
    for start in range(0, n, BATCH_TERMS):
        chunk = terms[start:start + BATCH_TERMS]
        body = {
            "size": 1, "_source": False,
            "query": {"bool": {"should": [
                {"rank_feature": {"field": f"vector.{t}", "linear": {}, "_name": f"t{start + j}"}}
                for j, t in enumerate(chunk)]}},
        }
        hits = client.search(index=eng.index, body=body)["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["all-terms"], (start, chunk[:3])
        matched.update(hits[0].get("matched_queries", []))
    missing = [terms[i] for i in range(n) if f"t{i}" not in matched]
    assert not missing, f"{len(missing)} term names not found, e.g. {missing[:10]}"


# ---- the CLI toward bad or unreachable clusters (issue 18) ---------------------------------


def run_cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("VSPLADE_OPENSEARCH_URL", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "vsplade.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def error_lines(res) -> list[str]:
    """stderr without progress-bar redraws (tqdm lines end in a rate: '.../s]')."""
    return [ln for ln in res.stderr.replace("\r", "\n").splitlines() if ln.strip() and not re.search(r"/s\]\s*$", ln)]


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers (a hung or firewalled node)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_cluster_is_one_clear_line_exit_2(silent_port, pdf_dir):
    res = run_cli("index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch",
                  "--url", f"http://127.0.0.1:{silent_port}", "--index", "x")
    lines = error_lines(res)
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "unreachable" in lines[0] and "no answer within" in lines[0], lines
    assert "Traceback" not in res.stderr and "CancelledError" not in res.stderr


def test_unreachable_library_call_is_an_engine_error(silent_port):
    eng = OpenSearchEngine(index="x", url=f"http://127.0.0.1:{silent_port}", progress=False, timeout=2)
    with pytest.raises(EngineError, match="unreachable"):
        eng.writer(INFO)
    with pytest.raises(EngineError, match="unreachable"):
        eng.searcher()


@pytest.mark.parametrize("via_env", [False, True])
def test_url_without_scheme_never_shows_the_password(via_env, closed_port, pdf_dir):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthEcho)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for port in (closed_port, srv.server_address[1]):  # refused, and a 401 that echoes the credentials
            url = f"alice:pw-s3cret-9@127.0.0.1:{port}"
            args = ["index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch", "--index", "x"]
            res = run_cli(*args, env_extra={"VSPLADE_OPENSEARCH_URL": url}) if via_env else run_cli(*args, "--url", url)
            assert res.returncode == 2, res.stderr
            assert "pw-s3cret-9" not in res.stderr + res.stdout
            assert len(error_lines(res)) == 1, res.stderr
    finally:
        srv.shutdown()
    # the library accepts it as http://, with the credentials moved out of the URL
    conn = Connection.from_options({"url": "alice:pw-s3cret-9@127.0.0.1:9200"})
    assert conn.url == "http://127.0.0.1:9200" and conn.user == "alice" and conn.password == "pw-s3cret-9"
    assert "pw-s3cret-9" not in repr(conn)


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "127.0.0.1:92x0", "http://alice:pw-s3cret-8@127.0.0.1:x"])
def test_non_numeric_port_is_a_usage_error(url, pdf_dir):
    with pytest.raises(EngineError, match="port") as err:
        Connection.from_options({"url": url})
    assert "s3cret" not in str(err.value)
    res = run_cli("search", "anything", "--engine", "opensearch", "--url", url, "--index", "x")
    assert res.returncode == 2, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1 and "port" in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert "s3cret" not in res.stderr


def test_two_concurrent_writers_into_one_index(server, index_name, pdf_dir, tmp_path):
    """Two `vsplade index` processes into the same (new) index at once: both finish, the index
    holds every page exactly once."""
    if server.flavour == "cluster":
        pytest.skip("starts CLI processes against local servers only")
    args = ["index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch", "--url", server.url,
            "--index", index_name, "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "vsplade.cli", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    summaries = [orjson.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    mem = tmp_path / "mem"
    res = run_cli("index", str(pdf_dir), "--model", "lexical", "--engine", "memory", "--index", str(mem), "--json")
    assert res.returncode == 0, res.stderr
    pages = orjson.loads(res.stdout.strip().splitlines()[-1])["indexed"]
    client = Connection.from_options({"url": server.url}).client()
    client.indices.refresh(index=index_name)
    assert client.count(index=index_name)["count"] == pages
    hits = client.search(index=index_name, body={"size": 10000, "_source": ["id"], "query": {"match_all": {}}})["hits"]["hits"]
    ids = [h["_source"]["id"] for h in hits]
    assert len(ids) == len(set(ids)) == pages
    assert all(h["_id"] == h["_source"]["id"] for h in hits)
    assert all(s["indexed"] + s.get("skipped", 0) == pages for s in summaries), summaries
    settings = client.indices.get_settings(index=index_name)[index_name]["settings"]["index"]
    assert settings.get("refresh_interval") in (None, "1s")  # neither writer left refresh off
