"""`vsplade serve` over a secured cluster (issue 25 item 3): the URL, user, password and CA come
from the environment as a deployment passes them; the service searches as that user and never
shows the credentials: not in /info, not in the errors it answers once the cluster stops
accepting them, not in its log."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
from security_support import admin, count, secret_forms, serve, user_flags, vsplade

pytestmark = pytest.mark.timeout(600)

QUERIES = ["debian package management", "camlidl interface definition"]


def test_serve_passes_the_credentials_and_never_shows_them(secured_node, pdf_dir, tmp_path):
    name = f"pages-{uuid.uuid4().hex[:8]}"
    p = vsplade("index", pdf_dir, "--model", "lexical", "--index", name, *user_flags(secured_node, "writer"))
    assert p.returncode == 0, p.stderr
    # a user of this test alone (read-only on pages*), so revoking it touches no other test
    user, password = f"serve-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(18) + "-Aa1"
    status, body = admin(secured_node, "PUT", f"/_plugins/_security/api/internalusers/{user}",
                         {"password": password, "opendistro_security_roles": ["vsplade_reader"]})
    assert status in (200, 201), body
    secrets_ = secret_forms(user, password)
    env = {"VSPLADE_OPENSEARCH_URL": secured_node.url, "VSPLADE_OPENSEARCH_USER": user,
           "VSPLADE_OPENSEARCH_PASSWORD": password, "VSPLADE_OPENSEARCH_CA_CERTS": str(secured_node.ca)}
    expected = {}
    for line in vsplade("search", *QUERIES, "--engine", "opensearch", "--index", name, "--json", "-k", "5",
                        env=env).stdout.splitlines():
        o = json.loads(line)
        expected[o["query"]] = [h["id"] for h in o["hits"]]
    assert all(expected.values()), expected
    with serve(name, tmp_path, env) as s:
        status, info = s.get("/info")
        assert status == 200 and info["pages"] == count(secured_node, name)
        assert info["url"] == secured_node.url
        shown = json.dumps(info)
        assert all(x not in shown for x in secrets_) and user not in shown
        for q in QUERIES:
            status, body = s.get(f"/search?q={q.replace(' ', '+')}&k=5")
            assert status == 200, body
            assert [h["id"] for h in body["hits"]] == expected[q]
        # the cluster stops accepting the user: the service answers one line, no secret
        assert admin(secured_node, "DELETE", f"/_plugins/_security/api/internalusers/{user}")[0] == 200
        status, body = s.get("/search?q=debian&k=5")
        assert status == 503 and "HTTP 401" in body["detail"], body
        status, info_err = s.get("/info")
        assert status == 503 and "authentication failed" in info_err["detail"], info_err
        answered = json.dumps([body, info_err])
        assert "\n" not in body["detail"] and all(x not in answered for x in secrets_)
    log = s.output()
    assert "serving" in log or "vsplade serve:" in log, log
    assert all(x not in log for x in secrets_), log
