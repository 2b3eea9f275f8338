"""AWS SigV4 for Amazon OpenSearch Service (issue 25 item 4), checked without AWS: the
connector's requests go to a local endpoint that records them as they arrive, and botocore's
own SigV4 code recomputes each signature from what arrived (method, path, query, host, body
bytes, the signed x-amz-* headers) with the same credentials, region and service.

Verified: every request carries a SigV4 Authorization header whose scope names the region and
the service (es or aoss), the credentials come from botocore's standard chain (here its
environment step, session token included and signed), and the signature matches the bytes
actually sent (a body, a query string, gzip compression). Not verified (no AWS here): that
AWS accepts it (clock skew, IAM or data-access policies, the domain's endpoint), other
credential sources of the chain (profiles, SSO, instance roles), and aoss-specific refusals."""

from __future__ import annotations

import datetime
import http.server
import threading

import pytest

botocore = pytest.importorskip("botocore")

KEY_ID, SECRET, TOKEN = "AKIDVSPLADETEST00001", "vsplade-test-secret-key/0123456789abcdefXYZ", "vsplade-session-token-1"


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Recorder.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        out = b'{"version": {"number": "2.19.1", "distribution": "opensearch"}, "hits": {"hits": [], "total": {"value": 0}}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Recorder.seen.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """botocore's chain with only its environment step answering (no files, no metadata service)."""
    for var in ("URL", "USER", "PASSWORD", "API_KEY", "AWS_REGION", "AWS_SERVICE"):
        monkeypatch.delenv(f"VSPLADE_OPENSEARCH_{var}", raising=False)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return monkeypatch


def verify(method: str, path: str, headers: dict, body: bytes, region: str, service: str) -> None:
    """Recompute the request's SigV4 signature with botocore from what arrived; assert it matches."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 "), auth
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    stamp = headers["x-amz-date"]
    assert fields["Credential"] == f"{KEY_ID}/{stamp[:8]}/{region}/{service}/aws4_request"
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"} <= set(signed)
    assert headers["x-amz-security-token"] == TOKEN
    # the request as it arrived, with only the headers it says it signed
    req = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                     headers={h: headers[h] for h in signed})
    req.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(KEY_ID, SECRET, TOKEN), service, region)
    assert headers["x-amz-content-sha256"] == signer.payload(req)  # the hash of the bytes received
    canonical = signer.canonical_request(req)
    assert signer.signature(signer.string_to_sign(req, canonical), req) == fields["Signature"]
    # signed just now (SigV4's own clock check on the server allows 5 minutes)
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 300


@pytest.mark.parametrize("service,compress", [("es", False), ("aoss", True)])
def test_requests_are_signed_and_verify_with_botocore(endpoint, aws_env, service, compress):
    from vsplade_opensearch import OpenSearchEngine

    eng = OpenSearchEngine(index="pages-aws", url=endpoint, aws_region="eu-west-3", aws_service=service,
                           compress=compress)
    assert f"aws-sigv4 {service} eu-west-3" in repr(eng.conn) and SECRET not in repr(eng)
    client = eng.conn.client()
    client.info()
    client.search(index="pages-aws", body={"query": {"rank_feature": {"field": "vector.debian"}}},
                  params={"size": 3, "_source_includes": "id,page"})
    assert len(Recorder.seen) == 2
    for method, path, headers, body in Recorder.seen:
        verify(method, path, headers, body, "eu-west-3", service)
    method, path, headers, body = Recorder.seen[1]
    assert "size=3" in path and body  # a query string and a body were part of what was signed
    assert (headers.get("content-encoding") == "gzip") == compress
    # a byte changed in transit no longer verifies: the check above can fail
    with pytest.raises(AssertionError):
        verify(method, path.replace("size=3", "size=4"), headers, body, "eu-west-3", service)


def test_region_from_the_environment_and_refusals(endpoint, aws_env):
    from vsplade.engines.base import EngineError
    from vsplade_opensearch import OpenSearchEngine

    aws_env.setenv("VSPLADE_OPENSEARCH_AWS_REGION", "us-east-1")
    OpenSearchEngine(index="pages-aws", url=endpoint).conn.client().info()
    verify(*Recorder.seen[-1], "us-east-1", "es")
    with pytest.raises(EngineError, match="--aws-service must be es .* or aoss"):
        OpenSearchEngine(index="pages-aws", url=endpoint, aws_service="s3")
    with pytest.raises(EngineError, match="leave out --user/--password"):
        OpenSearchEngine(index="pages-aws", url=endpoint, user="u", password="p")
    aws_env.delenv("VSPLADE_OPENSEARCH_AWS_REGION")
    with pytest.raises(EngineError, match="--aws-service applies with --aws-region"):
        OpenSearchEngine(index="pages-aws", url=endpoint, aws_service="aoss")
    # no credentials anywhere in the chain: one line, before any request
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        aws_env.delenv(var)
    Recorder.seen.clear()
    with pytest.raises(EngineError, match="no AWS credentials found"):
        OpenSearchEngine(index="pages-aws", url=endpoint, aws_region="us-east-1").conn.client()
    assert Recorder.seen == []
