"""Safe by default: ids resolve only to indexed pages (no path traversal), limits with clear
4xx, no stack traces, loopback Host only, a bearer token required when set, and no
non-loopback bind without one."""

from __future__ import annotations

import http.client
import json

import pytest
from serve_support import run_server, vsplade

TRAVERSALS = [
    "/pages/..%2F..%2F..%2Fetc%2Fpasswd/image",
    "/pages/../../../etc/passwd",
    "/pages/%2e%2e%2f%2e%2e%2fetc%2fpasswd/image?width=100",
    "/pages/%2Fetc%2Fpasswd/image",
    "/pages/~root/image",
    "/pages/..%5C..%5Cpyproject.toml/image",
    "/pages/%00/image",
    "/static/../pyproject.toml",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/app.py",
    "/static/..%2f__init__.py",
]


def _no_trace(body: bytes):
    text = body.decode(errors="replace")
    assert "Traceback" not in text and 'File "' not in text, text[:500]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(memory_server, path):
    status, _, body = memory_server.request("GET", path)
    assert status in (400, 404), (status, body[:200])
    assert b"root:" not in body and b"[build-system]" not in body and b"import " not in body
    _no_trace(body)


def test_only_indexed_ids_resolve(memory_server):
    for pid in ("nope", "4aac312127749a03-99", "x" * 512):
        for path in (f"/pages/{pid}", f"/pages/{pid}/image"):
            status, _, body = memory_server.request("GET", path)
            assert status == 404 and json.loads(body)["detail"] == "no such page in this index"
    status, _, body = memory_server.request("GET", "/pages/" + "x" * 513)
    assert status == 422


@pytest.mark.parametrize("params, needle", [
    ("q=a&k=101", "less than or equal to 100"),
    ("q=a&k=0", "greater than or equal to 1"),
    ("q=" + "a" * 1001, "at most 1000"),
    ("q=", "at least 1"),
    ("q=%20%20", "the query is empty"),
    ("k=3", "Field required"),
    ("q=a&page_min=0", "greater than or equal to 1"),
    ("q=a&k=ten", "valid integer"),
])
def test_get_limits_are_clear_4xx(memory_server, params, needle):
    status, _, body = memory_server.request("GET", "/search?" + params)
    assert status == 422, body
    assert needle in body.decode()
    _no_trace(body)


@pytest.mark.parametrize("payload, needle", [
    ({"queries": ["a"] * 33}, "at most 32"),
    ({"queries": []}, "at least 1"),
    ({"q": "a", "queries": ["b"]}, "exactly one of q"),
    ({}, "exactly one of q"),
    ({"q": "a", "k": 1000}, "less than or equal to 100"),
    ({"q": "a", "nonsense": 1}, "Extra inputs"),
    ({"queries": ["ok", "a" * 1001]}, "1001 characters"),
    ({"q": "a", "source": ["s"] * 101}, "at most 100"),
])
def test_post_limits_are_clear_4xx(memory_server, payload, needle):
    status, body = memory_server.post_json("/search", payload)
    assert status == 422, body
    assert needle in json.dumps(body)


def test_malformed_json_is_422(memory_server):
    status, _, body = memory_server.request("POST", "/search", b'{"q": ', {"Content-Type": "application/json"})
    assert status == 422
    _no_trace(body)


def test_oversized_bodies_are_413(memory_server):
    big = json.dumps({"q": "a", "pad": "x" * 100_000}).encode()
    status, _, body = memory_server.request("POST", "/search", big, {"Content-Type": "application/json"})
    assert status == 413 and b"limit" in body
    # no Content-Length (chunked): counted while it streams
    conn = http.client.HTTPConnection("127.0.0.1", memory_server.port, timeout=60)
    try:
        conn.putrequest("POST", "/search")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * 16384
        for _ in range(8):  # 128 KiB > 64 KiB
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        assert r.status == 413, r.read()[:200]
    finally:
        conn.close()


def test_foreign_host_header_is_refused(memory_server):
    status, _, body = memory_server.request("GET", "/search?q=debian", headers={"Host": "attacker.example"})
    assert status == 400
    status, _, _ = memory_server.request("GET", "/health", headers={"Host": "localhost:1234"})
    assert status == 200


def test_security_headers_and_no_server_banner(memory_server):
    status, headers, _ = memory_server.request("GET", "/")
    assert status == 200
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert "server" not in headers


def test_token_is_required_when_set(indexes, tmp_path):
    token = "t0k3n-for-the-test-0123456789"
    with run_server("memory", indexes["memory"], tmp_path, token=token) as s:
        for path in ("/search?q=debian", "/info", "/pages/x", "/pages/x/image"):
            status, headers, body = s.request("GET", path, auth=False)
            assert status == 401, (path, body)
            assert headers.get("www-authenticate") == "Bearer"
            status, _, _ = s.request("GET", path, headers={"Authorization": "Bearer wrong-token-0123456789"})
            assert status == 401
        assert s.request("GET", "/search?q=debian")[0] == 200
        assert s.request("GET", "/search?q=debian", headers={"Cookie": f"vsplade_token={token}"}, auth=False)[0] == 200
        assert s.request("GET", "/health", auth=False)[0] == 200
        assert s.request("GET", "/", auth=False)[0] == 200  # the page itself holds no data


def test_non_loopback_bind_needs_a_token(indexes):
    # refused before anything binds: the check runs first
    p = vsplade("serve", "--engine", "memory", "--index", str(indexes["memory"]), "--host", "0.0.0.0",
                "--port", "9", env={"VSPLADE_SERVE_TOKEN": ""}, check=False)
    assert p.returncode == 2, p.stderr
    assert "VSPLADE_SERVE_TOKEN" in p.stderr and "Traceback" not in p.stderr
    p = vsplade("serve", "--engine", "memory", "--index", str(indexes["memory"]), "--host", "0.0.0.0",
                "--port", "9", env={"VSPLADE_SERVE_TOKEN": "short"}, check=False)
    assert p.returncode == 2 and "at least 16" in p.stderr


def test_missing_index_is_one_line_exit_2(tmp_path):
    p = vsplade("serve", "--engine", "memory", "--index", str(tmp_path / "none"), "--port", "9", check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error:") and "Traceback" not in p.stderr


# Raw bytes, as a client may send them: Python's json.dumps would refuse NaN only with
# allow_nan=False and never writes a lone surrogate escape, so these are written by hand.
# Before: each answered 500 {"detail": "internal error"} (FastAPI's 422 handler failed while
# echoing the input: UnicodeEncodeError for the surrogate, "Out of range float values are not
# JSON compliant" for NaN), except a surrogate in `source`, which reached the engine.
@pytest.mark.parametrize("raw, field, needle", [
    (rb'{"q": "\ud800"}', "q", "lone surrogate"),
    (rb'{"queries": ["ok", "\udc00x"]}', "queries", "lone surrogate"),
    (rb'{"q": "a", "source": ["\ud800"]}', "source", "lone surrogate"),
    (rb'{"q": "a", "nonsense\ud800": 1}', "body", "valid string"),
    (rb'{"q": "a", "k": NaN}', "k", "finite number"),
    (rb'{"q": "a", "k": Infinity}', "k", "finite number"),
    (rb'{"q": "a", "page_min": -Infinity}', "page_min", "finite number"),
    (rb'{"q": "a", "explain": NaN}', "explain", "valid boolean"),
    (rb'NaN', "body", "valid dictionary"),
])
def test_unencodable_input_is_a_4xx_with_a_message(memory_server, raw, field, needle):
    status, headers, body = memory_server.request("POST", "/search", raw, {"Content-Type": "application/json"})
    assert status == 422, (status, body[:300])
    assert headers["content-type"] == "application/json"
    detail = json.loads(body)["detail"]  # strict JSON: no NaN, no surrogate
    assert isinstance(detail, list) and detail, detail
    assert field in detail[0]["loc"] and needle in detail[0]["msg"], detail
    _no_trace(body)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_taken_port_is_one_line_exit_2(indexes, host):
    """Before: the "serving at" line, then uvicorn's raw "[Errno 98] ... address already in
    use" and exit 3 (no documented code), after the whole index had loaded."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = vsplade("serve", "--engine", "memory", "--index", str(indexes["memory"]), "--host", host,
                    "--port", str(port), check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [
        f"error: port {port} on {host} is already in use (another vsplade serve?); stop that server or choose "
        "another --port"], p.stderr
