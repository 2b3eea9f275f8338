"""Shared by the secured-cluster tests (imported by name, never from conftest or a test
module): the CLI as a subprocess with a clean VSPLADE_OPENSEARCH_* environment, the flags for
one user of a secured test node, admin requests to check what the cluster holds, and
`vsplade serve` over the secured node."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from process_support import stop_process, wait_serving

SERVE_START_TIMEOUT_S = 120  # Python start + the first requests to the node on a busy 2-core machine


def clean_env(extra: dict | None = None) -> dict:
    """This process's environment without any VSPLADE_OPENSEARCH_* (a developer's exported
    cluster must not leak into a test), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_OPENSEARCH_")}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update(extra or {})
    return env


def vsplade(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m vsplade ARGS` as a user runs it: its own stdout, stderr and exit code. It runs
    in the temp folder, so a relative index path never lands in the working tree."""
    return subprocess.run([sys.executable, "-m", "vsplade", *map(str, args)], capture_output=True, text=True,
                          env=clean_env(env), timeout=300, stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())


def user_flags(node, user: str, password: str | None = None, ca: bool = True) -> list[str]:
    out = ["--engine", "opensearch", "--url", node.url, "--user", user, "--password", password or node.passwords[user]]
    return out + (["--ca-certs", str(node.ca)] if ca else [])


def tls_dir(node) -> Path:
    """Where the node's certificates live (the CA file's folder): writer.pem, writer-key.pem."""
    return node.ca.parent


def node_logs(node) -> str:
    """The OpenSearch node's own log (DATA/node-*/node.log; the CA is DATA/tls/root-ca.pem)."""
    return "".join(p.read_text(errors="replace") for p in node.ca.parent.parent.glob("node-*/node.log"))


def admin(node, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """(status, JSON) of one request as the node's admin user: what the cluster really holds."""
    token = base64.b64encode(f"admin:{node.passwords['admin']}".encode()).decode()
    req = urllib.request.Request(node.url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60, context=ssl.create_default_context(cafile=str(node.ca))) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"text": raw.decode(errors="replace")}


def count(node, index: str) -> int | None:
    """Documents in `index` (refreshed first), None when there is no such index."""
    if admin(node, "POST", f"/{index}/_refresh")[0] == 404:
        return None
    status, body = admin(node, "GET", f"/{index}/_count")
    assert status == 200, body
    return body["count"]


def error_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


def secret_forms(user: str, password: str) -> list[str]:
    """Every form a password could leak in: itself and inside a basic-auth header."""
    return [password, base64.b64encode(f"{user}:{password}".encode()).decode()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log

    def get(self, path: str) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            conn.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(index: str, tmp: Path, env: dict):
    """`vsplade serve --engine opensearch --index INDEX` (the cluster, credentials and CA from
    `env`, as a deployment passes them), on a free port; stopped on exit."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "vsplade", "serve", "--engine", "opensearch", "--index", index,
                                 "--host", "127.0.0.1", "--port", str(port), "--cache-dir", str(tmp / "cache")],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(env))
    served = Served(port, proc, log)
    try:
        wait_serving(proc, lambda: served.get("/health")[0] == 200, served.output, SERVE_START_TIMEOUT_S)
        yield served
    finally:
        stop_process(proc, grace_s=30)
