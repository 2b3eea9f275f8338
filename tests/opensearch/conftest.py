"""Real OpenSearch-API servers for the connector tests, started on 127.0.0.1 (no mocks).

- osmem: `osmem-server` (OpenSearch 3.x API, in memory: a restart loses the data);
- noida: `noida-db` with only its Elasticsearch-8 service (data kept in --data-dir across
  restarts; rejects dotted feature names like Elasticsearch).
With VSPLADE_OPENSEARCH_URL set (and optional VSPLADE_OPENSEARCH_USER / _PASSWORD /
_API_KEY), the same tests run against that cluster instead ("cluster"), each in its own
throw-away index; the stop/restart tests need a local server and are skipped there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

CLUSTER_URL = os.environ.get("VSPLADE_OPENSEARCH_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.1)


class LocalServer:
    """One server process on a fixed port, so a test can stop it and start it again."""

    def __init__(self, flavour: str, workdir: Path):
        self.flavour = flavour
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / f"{flavour}-{self.port}"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.flavour == "osmem":
            from osmem_server import resolve_binary

            return [resolve_binary(), "--addr", f"127.0.0.1:{self.port}", "--no-ja", "--parent-pid", str(os.getpid())]
        import noida_db

        binary = Path(noida_db.__file__).with_name("noida-db")
        os.chmod(binary, 0o755)
        return [str(binary), "start", "--data-dir", str(self.data_dir), "--only", "elasticsearch",
                "--elasticsearch-port", str(self.port)]

    def start(self) -> "LocalServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.with_suffix(".log"), "ab")
        # stdin stays open (a pipe): osmem exits when its stdin closes
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=log, stderr=log)
        wait_http(self.url)
        return self

    def stop(self) -> None:
        """SIGTERM, as a node shutdown does. noida saves its data then (a SIGKILL right after
        writes loses them: it saves periodically); osmem keeps nothing either way."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


FLAVOURS = ["cluster"] if CLUSTER_URL else ["osmem", "noida"]


@pytest.fixture(scope="session")
def _servers(tmp_path_factory):
    started: dict[str, LocalServer] = {}
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture(scope="session", params=FLAVOURS)
def server(request, _servers, tmp_path_factory):
    """A shared server of each flavour (tests use their own index names)."""
    flavour = request.param
    if flavour == "cluster":
        return type("Cluster", (), {"flavour": "cluster", "url": CLUSTER_URL})()
    if flavour not in _servers:
        _servers[flavour] = LocalServer(flavour, tmp_path_factory.mktemp("servers")).start()
    return _servers[flavour]


@pytest.fixture(params=[f for f in FLAVOURS if f != "cluster"] or [pytest.param("none", marks=pytest.mark.skip("needs a local server"))])
def own_server(request, tmp_path):
    """A server for this test alone, which the test may stop and restart (same port)."""
    s = LocalServer(request.param, tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def index_name(server):
    name = f"vsplade-test-{uuid.uuid4().hex[:10]}"
    yield name
    try:  # leave a real cluster as it was
        from opensearchpy import OpenSearch

        from vsplade_opensearch.connection import Connection

        Connection.from_options({"url": server.url}).client().indices.delete(index=name, ignore=[404])
    except Exception:
        pass


@pytest.fixture
def engine_factory(server, index_name):
    from vsplade_opensearch import OpenSearchEngine

    def make(**options):
        options.setdefault("progress", False)
        options.setdefault("url", server.url)
        return OpenSearchEngine(index=options.pop("index", index_name), **options)

    return make
