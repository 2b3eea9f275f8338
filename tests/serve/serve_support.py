"""Shared by the `vsplade serve` tests (imported by name, never from conftest or a test
module): the CLI as a subprocess, and real services (`python -m vsplade serve`, uvicorn) on
127.0.0.1 at a free port, with a bounded wait."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

from process_support import stop_process, wait_serving

QUERIES = ["debian package management", "financial report revenue", "camlidl interface definition", "install"]
START_TIMEOUT_S = 120  # JVM start on a busy 2-core machine


def vsplade(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    p = subprocess.run([sys.executable, "-m", "vsplade", *args], capture_output=True, text=True, env=e, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"vsplade {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def lucene_available() -> bool:
    try:
        from vsplade.engines import get_engine_class

        get_engine_class("lucene")
        return True
    except Exception:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, engine: str, index: Path, port: int, proc: subprocess.Popen, log: Path, token: str | None):
        self.engine, self.index, self.port, self.proc, self.log, self.token = engine, index, port, proc, log, token
        self.base = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                auth: bool = True) -> tuple[int, dict, bytes]:
        """One raw HTTP request (the path is sent exactly as given)."""
        h = dict(headers or {})
        if auth and self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get_json(self, path: str, **params) -> tuple[int, object]:
        q = urllib.parse.urlencode(params, doseq=True)
        status, _, body = self.request("GET", path + ("?" + q if q else ""))
        return status, json.loads(body) if body else None

    def post_json(self, path: str, obj) -> tuple[int, object]:
        status, _, body = self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
        return status, json.loads(body) if body else None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextmanager
def run_server(engine: str, index: Path, tmp: Path, env: dict | None = None, token: str | None = None):
    port = free_port()
    log = tmp / f"serve-{engine}-{port}.log"
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    e.pop("VSPLADE_SERVE_TOKEN", None)
    if token:
        e["VSPLADE_SERVE_TOKEN"] = token
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsplade", "serve", "--engine", engine, "--index", str(index),
             "--host", "127.0.0.1", "--port", str(port), "--cache-dir", str(tmp / f"cache-{engine}-{port}")],
            stdout=f, stderr=subprocess.STDOUT, env=e)
    server = Server(engine, index, port, proc, log, token)
    try:
        wait_serving(proc, lambda: server.request("GET", "/health", auth=False)[0] == 200, server.output, START_TIMEOUT_S)
        yield server
    finally:
        stop_process(proc, grace_s=30)
