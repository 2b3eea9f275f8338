"""Shared by the OpenSearch tests (imported by name, never from conftest or a test module):
the index info the tests write, FeatureField rounding of expected weights, a hostile endpoint."""

from __future__ import annotations

import http.server

import orjson

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
