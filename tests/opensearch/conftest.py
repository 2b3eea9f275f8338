"""Real OpenSearch for the connector tests, on 127.0.0.1, no mocks.

- os3 / os2: real OpenSearch nodes of both lines (server/lines.tsv: the newest 3.x that resolved
  and 2.19.x), from the jars `make opensearch-jars` fetched, started once per session each by
  `python -m vsplade_opensearch.testnode` (the command users run). Every test that takes
  `server` runs against both.
- own_node: a node per line for the tests that stop and restart a server (vsplade_opensearch.
  testnode.TestCluster, module-scoped: started again only when a test left it stopped).
- cluster3 (test_cluster.py): a real 3-node 3.x cluster for the fault tests.
- plugin_nodes / opensearch_neural_node / opensearch_neural3_node: real nodes of the plugin lines
  (server/plugins/plugins.tsv: 3.6.0 and 2.19.1) with neural-search, ml-commons, k-NN and
  job-scheduler, started by `python -m vsplade_opensearch.testnode --plugins neural` only when a
  test asks for one, once per session per line, and shared by every test that needs plugins.
- noida: `noida-db` (Elasticsearch-8 flavour) is kept for the one thing no OpenSearch node
  shows: that the connector's documents and queries also suit an Elasticsearch-style server,
  which rejects dotted feature names. Tests marked `es_flavour` run against it too.
  osmem-server (an OpenSearch emulator) is no longer used: the real nodes cover what it did.
With VSPLADE_OPENSEARCH_URL set (and optional VSPLADE_OPENSEARCH_USER / _PASSWORD /
_API_KEY), the `server` tests run against that cluster instead ("cluster"), each in its own
throw-away index; the tests that start or stop servers are skipped there.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

CLUSTER_URL = os.environ.get("VSPLADE_OPENSEARCH_URL")
REAL = ["os3", "os2"]
LINE = {"os3": "3", "os2": "2"}
NODE_START_TIMEOUT = 240.0  # both JVMs start at once on 2 cores; ~20-40 s is usual


def pytest_configure(config):
    config.addinivalue_line("markers", "es_flavour: also run against noida-db (Elasticsearch-8 flavour)")


def pytest_generate_tests(metafunc):
    if "server" not in metafunc.fixturenames:
        return
    if CLUSTER_URL:
        flavours = ["cluster"]
    else:
        flavours = REAL + (["noida"] if metafunc.definition.get_closest_marker("es_flavour") else [])
    metafunc.parametrize("server", flavours, indirect=True, scope="session")


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


class Server:
    def __init__(self, flavour: str, url: str, version: str = ""):
        self.flavour, self.url, self.version = flavour, url, version

    def __repr__(self):
        return f"Server({self.flavour} {self.version} {self.url})"


class TestnodeProcess:
    """`python -m vsplade_opensearch.testnode --nodes 1 --line L --http-port 0`, as a user runs it:
    the first stdout line is the URL; SIGTERM stops it."""

    __test__ = False

    def __init__(self, line: str, data: Path, plugins: str | None = None, extra: tuple[str, ...] = ()):
        self.line = line
        self.log = open(data.with_suffix(".testnode.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vsplade_opensearch.testnode", "--nodes", "1", "--line", line,
             "--http-port", "0", "--data", str(data), *(["--plugins", plugins] if plugins else []), *extra],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        self.url: str | None = None

    def wait_url(self, timeout: float) -> str:
        self.url = self.wait_lines(1, timeout)[0]
        return self.url

    def wait_lines(self, n: int, timeout: float) -> list[str]:
        """The first `n` lines of stdout (the URL first), within `timeout` s."""
        deadline = time.monotonic() + timeout
        buf = b""
        while buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            if self.proc.poll() is not None or left <= 0:
                self.stop()
                err = Path(self.log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"testnode --line {self.line} gave no URL (rc {self.proc.returncode}):\n{err}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                buf += chunk
        return [ln.decode().strip() for ln in buf.split(b"\n")[:n]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


class NoidaServer:
    """noida-db with only its Elasticsearch-8 service, on a fixed port."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / f"noida-{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NoidaServer":
        import noida_db

        binary = Path(noida_db.__file__).with_name("noida-db")
        os.chmod(binary, 0o755)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.with_suffix(".log"), "ab")
        self.proc = subprocess.Popen([str(binary), "start", "--data-dir", str(self.data_dir), "--only", "elasticsearch",
                                      "--elasticsearch-port", str(self.port)], stdin=subprocess.PIPE, stdout=log, stderr=log)
        wait_http(self.url)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def real_nodes(tmp_path_factory):
    """Both lines' single nodes, launched together on first use (their JVM starts overlap)."""
    if CLUSTER_URL:
        pytest.skip("VSPLADE_OPENSEARCH_URL is set: tests use that cluster")
    root = tmp_path_factory.mktemp("opensearch")
    procs = {f: TestnodeProcess(LINE[f], root / f) for f in REAL}
    nodes: dict[str, Server] = {}
    try:
        from vsplade_opensearch.testnode import lines

        versions = {f: lines()[LINE[f]].version for f in REAL}
        for f, p in procs.items():
            nodes[f] = Server(f, p.wait_url(NODE_START_TIMEOUT), versions[f])
        yield nodes
    finally:
        for p in procs.values():
            p.stop()


PLUGIN_REAL = ["neural3", "neural2"]
PLUGIN_LINE = {"neural3": "3", "neural2": "2"}


class PluginNodes:
    """The plugin-line nodes of the session, each started on first use and kept until the end."""

    def __init__(self, root: Path):
        self.root, self.procs, self.nodes = root, {}, {}

    def get(self, flavour: str) -> Server:
        if flavour not in self.nodes:
            from vsplade_opensearch.testnode import plugin_lines

            line = PLUGIN_LINE[flavour]
            p = self.procs[flavour] = TestnodeProcess(line, self.root / flavour, plugins="neural")
            self.nodes[flavour] = Server(flavour, p.wait_url(NODE_START_TIMEOUT), plugin_lines()[line].version)
        return self.nodes[flavour]

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()


@pytest.fixture(scope="session")
def plugin_nodes(tmp_path_factory):
    if CLUSTER_URL:
        pytest.skip("VSPLADE_OPENSEARCH_URL is set: tests use that cluster")
    nodes = PluginNodes(tmp_path_factory.mktemp("opensearch-plugins"))
    yield nodes
    nodes.stop()


@pytest.fixture(scope="session", params=PLUGIN_REAL)
def opensearch_neural_node(request, plugin_nodes) -> Server:
    """A real node with neural-search, ml-commons, k-NN and job-scheduler, each plugin line in turn."""
    return plugin_nodes.get(request.param)


@pytest.fixture(scope="session")
def opensearch_neural3_node(plugin_nodes) -> Server:
    """The 3.6.0 plugin node only (what needs neural-search 3.3+: sparse ANN); the same node as
    opensearch_neural_node's 3.x one."""
    return plugin_nodes.get("neural3")


@pytest.fixture(scope="session")
def secured_node(tmp_path_factory):
    """`python -m vsplade_opensearch.testnode --security`, once per session: OpenSearch 2.19.1
    with the security plugin, https with its own CA, users admin, writer and reader."""
    if CLUSTER_URL:
        pytest.skip("VSPLADE_OPENSEARCH_URL is set: tests use that cluster")
    from opensearch_support import SecuredNode

    p = TestnodeProcess("2", tmp_path_factory.mktemp("opensearch-secured") / "node", extra=("--security",))
    try:
        yield SecuredNode.parse(p.wait_lines(2 + len(SecuredNode.USERS), NODE_START_TIMEOUT))
    finally:
        p.stop()


@pytest.fixture(scope="session")
def _noida(tmp_path_factory):
    holder: dict = {}
    yield holder
    if "s" in holder:
        holder["s"].stop()


@pytest.fixture(scope="session")
def server(request, tmp_path_factory, _noida):
    """A shared server of each flavour (tests use their own index names)."""
    flavour = request.param
    if flavour == "cluster":
        return Server("cluster", CLUSTER_URL)
    if flavour == "noida":
        if "s" not in _noida:
            _noida["s"] = NoidaServer(tmp_path_factory.mktemp("noida")).start()
        return Server("noida", _noida["s"].url)
    return request.getfixturevalue("real_nodes")[flavour]


@pytest.fixture(scope="module", params=REAL)
def _own_cluster(request, tmp_path_factory):
    if CLUSTER_URL:
        pytest.skip("needs a local server (VSPLADE_OPENSEARCH_URL is set)")
    from vsplade_opensearch.testnode import TestCluster

    c = TestCluster(nodes=1, line=LINE[request.param], data=tmp_path_factory.mktemp(f"own-{request.param}"))
    c.flavour = request.param
    yield c
    c.stop()


@pytest.fixture
def own_node(_own_cluster):
    """A node that the test may stop and start again (same port, same data)."""
    node = _own_cluster.members[0]
    if not node.alive():
        _own_cluster.start()
    return _own_cluster


@pytest.fixture
def index_name(server):
    name = f"vsplade-test-{uuid.uuid4().hex[:10]}"
    yield name
    try:  # leave a real cluster as it was
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
