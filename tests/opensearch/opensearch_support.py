"""Shared by the OpenSearch tests (imported by name, never from conftest or a test module):
the index info the tests write, FeatureField rounding of expected weights, a hostile endpoint,
what a secured test node printed, a client and a scratch index for one test."""

from __future__ import annotations

import http.server
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opensearchpy import OpenSearch

from vsplade.sparse import SparseBatch, feature_field_round

INFO = {"name": "lexical", "model": "lexical", "k1": 0.9}


def rounded(batch: SparseBatch) -> SparseBatch:
    m = batch.matrix.copy()
    m.data = feature_field_round(m.data)
    return SparseBatch(m, batch.ids, batch.meta)


class AuthEcho(http.server.BaseHTTPRequestHandler):
    """A hostile endpoint: answers 401 and echoes the credentials it got in the error text."""

    seen: list = []

    def do_GET(self):
        self._answer()

    do_HEAD = do_PUT = do_POST = do_GET

    def _answer(self):
        auth = self.headers.get("Authorization", "")
        AuthEcho.seen.append(auth)
        body = orjson.dumps({"error": {"type": "security_exception", "reason": f"bad credentials {auth}"}, "status": 401})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@dataclass(frozen=True)
class SecuredNode:
    """What `testnode --security` printed: the https URL, the CA file, each user's password."""

    USERS = ("admin", "writer", "reader")

    url: str
    ca: Path
    passwords: dict

    @classmethod
    def parse(cls, lines: list[str]) -> "SecuredNode":
        url, ca, *users = lines
        passwords = dict(tuple(part.split("=", 1)[1] for part in line.split(" ", 1)) for line in users)
        assert url.startswith("https://127.0.0.1:") and sorted(passwords) == sorted(cls.USERS), lines
        return cls(url, Path(ca), passwords)


def node_client(url: str, timeout: float):
    """A client on a test node, closed after the test (a fixture's body: `yield from`)."""
    client = OpenSearch(url, timeout=timeout)
    yield client
    client.close()


def scratch_index(prefix: str):
    """An `index` fixture for a test module with a `client` fixture: a new index name for each
    test, its index deleted after the test."""

    @pytest.fixture
    def index(client):
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        yield name
        client.indices.delete(index=name, ignore=[404])

    return index
