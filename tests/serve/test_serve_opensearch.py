"""`vsplade serve --engine opensearch` against a real OpenSearch node (3.x, started here with
`python -m vsplade_opensearch.testnode`, as tests/opensearch does), or the user's cluster when
VSPLADE_OPENSEARCH_URL is set: results and filtered results equal `vsplade search`.
Skipped when the connector or the node's jars (`make opensearch-jars`) are missing."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from process_support import stop_process
from serve_support import QUERIES, run_server, vsplade

pytest.importorskip("vsplade_opensearch")
pytestmark = pytest.mark.cluster  # real OpenSearch nodes
JARS = Path(__file__).resolve().parents[2] / "connectors" / "opensearch" / "server" / "jars"
NODE_START_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def opensearch_url(tmp_path_factory):
    url = os.environ.get("VSPLADE_OPENSEARCH_URL")
    if url:
        yield url
        return
    if not any(JARS.glob("3.*")):
        pytest.skip(f"no OpenSearch 3.x jars under {JARS} (make opensearch-jars)")
    data = tmp_path_factory.mktemp("serve-opensearch") / "node"
    log = open(data.with_suffix(".log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "vsplade_opensearch.testnode", "--nodes", "1", "--line", "3",
                             "--http-port", "0", "--data", str(data)], stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL)
    try:
        deadline, buf = time.monotonic() + NODE_START_TIMEOUT, b""
        while b"\n" not in buf:  # the first stdout line is the URL; bounded by the deadline
            left = deadline - time.monotonic()
            if proc.poll() is not None or left <= 0:
                raise AssertionError(f"testnode gave no URL: {Path(log.name).read_text(errors='replace')[-2000:]}")
            if select.select([proc.stdout], [], [], min(left, 1.0))[0]:
                buf += os.read(proc.stdout.fileno(), 4096)
        yield buf.split(b"\n", 1)[0].decode().strip()
    finally:
        stop_process(proc, grace_s=90)
        log.close()


@pytest.fixture(scope="module")
def os_server(opensearch_url, pdf_dir, tmp_path_factory):
    name = f"vsplade-serve-{uuid.uuid4().hex[:8]}"
    vsplade("index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch", "--url", opensearch_url,
            "--index", name)
    tmp = tmp_path_factory.mktemp("serve-os-run")
    env = {"VSPLADE_OPENSEARCH_URL": opensearch_url}
    try:
        with run_server("opensearch", Path(name), tmp, env=env) as s:
            s.opensearch_url = opensearch_url
            yield s
    finally:
        try:  # leave a user's cluster as it was
            from vsplade_opensearch.connection import Connection

            Connection.from_options({"url": opensearch_url}).client().indices.delete(index=name, ignore=[404])
        except Exception:
            pass


def _rows(hits):
    return [(h["id"], h["score"], h["source"], h["page"]) for h in hits]


def _cli(s, *args):
    p = vsplade("search", *args, "--engine", "opensearch", "--url", s.opensearch_url, "--index", str(s.index),
                "--json", "-k", "10")
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_opensearch_results_equal_cli(os_server):
    expected = {o["query"]: o["hits"] for o in _cli(os_server, *QUERIES)}
    assert any(expected.values())
    for q in QUERIES:
        status, body = os_server.get_json("/search", q=q, k=10)
        assert status == 200, body
        assert _rows(body["hits"]) == _rows(expected[q]), q
    status, body = os_server.post_json("/search", {"queries": QUERIES, "k": 10})
    assert status == 200 and [_rows(r["hits"]) for r in body["results"]] == [_rows(expected[q]) for q in QUERIES]


def test_opensearch_filters_run_inside_the_engine(os_server):
    _, info = os_server.get_json("/info")
    assert info["filters"] is True
    status, body = os_server.get_json("/search", q="interface definition", k=10, source="camlidl-1.04.doc.pdf",
                                      page_min=2, page_max=9)
    assert status == 200 and body["hits"], body
    expected = _cli(os_server, "interface definition", "--source", "camlidl-1.04.doc.pdf", "--page-min", "2",
                    "--page-max", "9")[0]["hits"]
    assert _rows(body["hits"]) == _rows(expected)
    assert all(h["source"] == "camlidl-1.04.doc.pdf" and 2 <= h["page"] <= 9 for h in body["hits"])


def test_opensearch_explain_and_page_ids(os_server):
    status, body = os_server.get_json("/search", q="debian package", k=3, explain="true")
    assert status == 200 and body["hits"]
    h = body["hits"][0]
    assert {"debian", "package"} <= {t["token"] for t in h["explain"]}
    # the engine cannot list its pages: ids it returned resolve, others do not
    status, page = os_server.get_json(f"/pages/{h['id']}")
    assert status == 200 and (page["source"], page["page"]) == (h["source"], h["page"])
    assert os_server.get_json("/pages/not-returned-yet")[0] == 404
