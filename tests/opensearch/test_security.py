"""A secured OpenSearch node, as production runs it (issue 25): `python -m vsplade_opensearch.
testnode --security` starts 2.19.1 with the security plugin, https signed by a CA made at
start-up and the users admin, writer (pages* only) and reader (read-only on pages*). Plain
HTTPS here, no connector: this is what the connector tests will stand on."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

# the session's secured node starts inside the first test (a JVM plus the security index on 2 cores)
pytestmark = pytest.mark.timeout(420)


def call(node, path: str, user: str | None = "admin", password: str | None = None, method: str = "GET",
         body: dict | None = None, context: ssl.SSLContext | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one request; `context` defaults to one that trusts the node's CA."""
    headers = {"Content-Type": "application/json"}
    if user:
        token = base64.b64encode(f"{user}:{password or node.passwords[user]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(node.url + path, data=None if body is None else json.dumps(body).encode(),
                                 method=method, headers=headers)
    ctx = context or ssl.create_default_context(cafile=str(node.ca))
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:  # the security plugin answers a 401 with the plain text "Unauthorized"
            return e.code, {"text": raw.decode(errors="replace")}


def test_https_search_trusts_the_nodes_ca_and_nothing_else(secured_node):
    assert secured_node.ca.is_file()
    status, body = call(secured_node, "/_search?size=0")
    assert status == 200 and "hits" in body, body
    # without the CA: the system trust store does not know this node's certificate
    with pytest.raises(urllib.error.URLError) as e:
        call(secured_node, "/_search?size=0", context=ssl.create_default_context())
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError), e.value
    # plain http on the https port is no way around it
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(secured_node.url.replace("https://", "http://") + "/_search", timeout=30)


def test_users_and_roles(secured_node):
    name = f"pages-{uuid.uuid4().hex[:8]}"
    assert call(secured_node, "/", password="wrong-password")[0] == 401
    assert call(secured_node, "/", user=None)[0] == 401
    # writer: creates and writes pages*, nothing else
    assert call(secured_node, f"/{name}", "writer", method="PUT")[0] == 200
    status, _ = call(secured_node, f"/{name}/_doc/1?refresh=true", "writer", method="PUT", body={"t": "x"})
    assert status == 201
    status, body = call(secured_node, "/other-index", "writer", method="PUT")
    assert status == 403, body
    # reader: searches pages*, writes nothing
    status, body = call(secured_node, f"/{name}/_search", "reader")
    assert status == 200 and body["hits"]["total"]["value"] == 1
    status, body = call(secured_node, f"/{name}/_doc/2", "reader", method="PUT", body={"t": "y"})
    assert status == 403, body
    assert call(secured_node, f"/{name}/_count", "admin")[1]["count"] == 1
