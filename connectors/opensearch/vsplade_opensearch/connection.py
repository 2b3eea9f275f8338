"""Connection settings for one cluster: URL, auth (basic, API key, extra headers), TLS, and
the only place secrets live. Everything printed about a connection goes through `redact`.

Options come from keyword arguments (the CLI's flags) and fall back to the environment
(VSPLADE_OPENSEARCH_URL / _USER / _PASSWORD / _API_KEY / _CA_CERTS / _CLIENT_CERT / _CLIENT_KEY),
so library users get what CLI users get.

Secured clusters (the security plugin): https with the cluster's own CA (`ca_certs`), basic
auth or a client certificate (`client_cert` / `client_key`, the certificate's CN is the user).
What such a cluster answers is turned into one line here: a certificate that is not trusted
names --ca-certs, a 401 says the credentials were refused (never echoing them), a 403 names
the user and the permission it lacks (`describe_error`).

Amazon OpenSearch Service (`aws_region`, `aws_service` "es" or "aoss"; VSPLADE_OPENSEARCH_AWS_
REGION / _AWS_SERVICE): every request is signed with AWS SigV4 by opensearch-py's own signer
(Urllib3AWSV4SignerAuth), with credentials from botocore's standard chain (environment, shared
files, SSO, container or instance role): the `aws` extra. No secret key is ever held here.

`url` may list several nodes of one cluster, comma-separated; a node without a scheme is
http://. The client spreads requests over them and moves on to the next node when one does not
answer. Before any work, `check_reachable` asks the cluster once with a short timeout, so an
unreachable cluster is one clear error within seconds, not minutes of retries.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from vsplade.engines.base import EngineError

ENV_URL = "VSPLADE_OPENSEARCH_URL"
ENV_USER = "VSPLADE_OPENSEARCH_USER"
ENV_PASSWORD = "VSPLADE_OPENSEARCH_PASSWORD"
ENV_API_KEY = "VSPLADE_OPENSEARCH_API_KEY"
ENV_CA_CERTS = "VSPLADE_OPENSEARCH_CA_CERTS"
ENV_CLIENT_CERT = "VSPLADE_OPENSEARCH_CLIENT_CERT"
ENV_CLIENT_KEY = "VSPLADE_OPENSEARCH_CLIENT_KEY"
ENV_AWS_REGION = "VSPLADE_OPENSEARCH_AWS_REGION"
ENV_AWS_SERVICE = "VSPLADE_OPENSEARCH_AWS_SERVICE"
AWS_SERVICES = ("es", "aoss")  # managed domains, OpenSearch Serverless
REDACTED = "***"
PROBE_TIMEOUT = 10.0  # seconds for the first request: a live node answers GET / in milliseconds


@dataclass(repr=False)
class Connection:
    url: str  # the node URLs, comma-separated, without user-info: safe to show
    user: str | None = None
    password: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ca_certs: str | None = None
    insecure: bool = False
    client_cert: str | None = None  # PEM certificate for TLS client authentication
    client_key: str | None = None  # its private key (PEM); None: the key is in client_cert's file
    aws_region: str | None = None  # sign requests with AWS SigV4 for this region
    aws_service: str = "es"
    timeout: float = 60.0
    pool_size: int = 4
    compress: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "Connection":
        url = options.get("url") or os.environ.get(ENV_URL)
        if not url:
            raise EngineError(f"the opensearch engine needs --url URL (or {ENV_URL})")
        user = options.get("user") or os.environ.get(ENV_USER)
        password = options.get("password") or os.environ.get(ENV_PASSWORD)
        api_key = options.get("api_key") or os.environ.get(ENV_API_KEY)
        urls = []
        for node in str(url).split(","):
            node = node.strip()
            if not node:
                continue
            if "://" not in node:
                node = "http://" + node  # host:port or user:pw@host:port, as opensearch-py takes it
            parts = urlsplit(node)
            shown = _strip_userinfo(node)
            try:
                parts.port  # noqa: B018 - urllib parses the port lazily: a non-number raises here
            except ValueError:
                raise EngineError(f"--url: the port must be a number, got {shown!r}") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise EngineError(f"--url must look like http(s)://host:port, got {shown!r}")
            if parts.username:  # credentials in the URL: move them out so the URL can be shown
                user = user or unquote(parts.username)
                password = password or unquote(parts.password or "")
            urls.append(shown)
        if not urls:
            raise EngineError(f"the opensearch engine needs --url URL (or {ENV_URL})")
        if password and not user:
            raise EngineError("--password given without --user")
        headers = dict(options.get("headers") or {})
        ca_certs = _pem_file(options.get("ca_certs") or os.environ.get(ENV_CA_CERTS), "--ca-certs", ENV_CA_CERTS)
        client_cert = _pem_file(options.get("client_cert") or os.environ.get(ENV_CLIENT_CERT), "--client-cert",
                                ENV_CLIENT_CERT)
        client_key = _pem_file(options.get("client_key") or os.environ.get(ENV_CLIENT_KEY), "--client-key",
                               ENV_CLIENT_KEY)
        if client_key and not client_cert:
            raise EngineError("--client-key given without --client-cert")
        if options.get("client_cert") and not any(u.startswith("https://") for u in urls):
            raise EngineError(f"--client-cert applies to https:// URLs (--url {urls[0]})")
        aws_region = options.get("aws_region") or os.environ.get(ENV_AWS_REGION)
        aws_service = options.get("aws_service") or os.environ.get(ENV_AWS_SERVICE)
        if aws_service and not aws_region:
            raise EngineError("--aws-service applies with --aws-region (SigV4 signing)")
        if aws_service and aws_service not in AWS_SERVICES:
            raise EngineError(f"--aws-service must be es (managed domains) or aoss (Serverless), not {aws_service!r}")
        if aws_region and (user or api_key):
            raise EngineError("--aws-region signs requests with AWS credentials: leave out --user/--password and --api-key")
        return cls(
            url=",".join(urls),
            user=user,
            password=password,
            api_key=api_key,
            headers=headers,
            ca_certs=ca_certs,
            insecure=bool(options.get("insecure", False)),
            client_cert=client_cert,
            client_key=client_key,
            aws_region=aws_region,
            aws_service=aws_service or "es",
            timeout=float(options.get("timeout", 60.0)),
            pool_size=int(options.get("threads", 2)) + 2,
            compress=bool(options.get("compress", False)),
        )

    def secrets(self) -> list[str]:
        out = [s for s in (self.password, self.api_key) if s]
        if self.api_key:
            out.append(_api_key_header(self.api_key))
        if self.user and self.password:
            out.append(base64.b64encode(f"{self.user}:{self.password}".encode()).decode())
        out += [v for k, v in self.headers.items() if _secret_header(k)]
        return sorted(set(out), key=len, reverse=True)

    def redact(self, text: str) -> str:
        text = str(text)
        for s in self.secrets():
            text = text.replace(s, REDACTED)
        return text

    @property
    def urls(self) -> list[str]:
        return self.url.split(",")

    def __repr__(self) -> str:
        auth = ("basic" if self.user else "api-key" if self.api_key else
                f"aws-sigv4 {self.aws_service} {self.aws_region}" if self.aws_region else
                "client-cert" if self.client_cert else "none")
        return f"Connection(url={self.url!r}, auth={auth}, tls_verify={not self.insecure})"

    def client(self):
        from opensearchpy import OpenSearch

        headers = dict(self.headers)
        if self.api_key:
            headers["Authorization"] = _api_key_header(self.api_key)
        kwargs: dict[str, Any] = dict(
            hosts=self.urls,
            timeout=self.timeout,
            # Retries with backoff are ours (bulk.py), and only on retryable errors. The client
            # only moves a request to the next node after a connection error (a node down).
            max_retries=len(self.urls) - 1,
            retry_on_status=(),
            retry_on_timeout=False,
            pool_maxsize=self.pool_size,
            http_compress=self.compress,
            headers=headers or None,
            serializer=orjson_serializer(),
        )
        if self.user:
            kwargs["http_auth"] = (self.user, self.password or "")
        elif self.aws_region:
            kwargs["http_auth"] = self._aws_signer()
        if any(u.startswith("https") for u in self.urls):
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = not self.insecure
            kwargs["ssl_show_warn"] = not self.insecure
            if self.ca_certs:
                kwargs["ca_certs"] = self.ca_certs
            if self.client_cert:
                kwargs["client_cert"] = self.client_cert
                if self.client_key:
                    kwargs["client_key"] = self.client_key
        return OpenSearch(**kwargs)

    def _aws_signer(self):
        """opensearch-py's SigV4 signer with botocore's credential chain (refreshable
        credentials are frozen per request by the signer itself)."""
        try:
            import botocore.session
            from opensearchpy import Urllib3AWSV4SignerAuth
        except ImportError:
            raise EngineError("--aws-region needs botocore: pip install 'vsplade-opensearch[aws]'") from None
        try:
            credentials = botocore.session.Session().get_credentials()
        except Exception as e:  # noqa: BLE001 - a broken profile or config file: botocore says which
            raise EngineError(f"--aws-region: AWS credentials could not be loaded ({type(e).__name__}: {e})") from None
        if credentials is None:
            raise EngineError("--aws-region: no AWS credentials found (botocore's chain: AWS_ACCESS_KEY_ID/"
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws files, SSO, container or instance role)")
        return Urllib3AWSV4SignerAuth(credentials, self.aws_region, self.aws_service)


def orjson_serializer():
    """opensearch-py's JSON serializer with orjson (a dependency already) in place of `json`
    both ways: a k=100 search answer (~16 KB) parses in ~0.14 ms instead of ~0.4 ms, a search
    body dumps in ~2 µs instead of ~40-70 (benchmarks/opensearch_request_cost.py); the client
    shares the machine with the node on small hosts. Types orjson does not know (dates, UUIDs,
    Decimals...) still go through the stock serializer's `default`."""
    import orjson
    from opensearchpy.exceptions import SerializationError
    from opensearchpy.serializer import JSONSerializer

    class OrjsonSerializer(JSONSerializer):
        def loads(self, s: Any) -> Any:
            try:
                return orjson.loads(s)
            except orjson.JSONDecodeError as e:
                raise SerializationError(s, e) from None

        def dumps(self, data: Any) -> Any:
            if isinstance(data, (str, bytes)):  # already serialised (bulk bodies): sent as is
                return data
            try:
                # str, as the stock serializer returns: msearch / bulk join lines with "\n"
                return orjson.dumps(data, default=self.default,
                                    option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
            except (TypeError, orjson.JSONEncodeError) as e:
                raise SerializationError(data, e) from None

    return OrjsonSerializer()


def check_reachable(conn: "Connection", client, timeout: float = PROBE_TIMEOUT) -> None:
    """One GET / with a short timeout; a cluster that refuses the connection or does not answer
    becomes one EngineError naming the URL (redacted), and so do a TLS handshake that fails (a
    certificate not trusted: names --ca-certs) and credentials the cluster refuses (401). Other
    answers (403: GET / needs a cluster permission a user may lack) are left to the caller's
    request, which reports them with the index it was about."""
    from opensearchpy.exceptions import (
        AuthenticationException,
        ConnectionError as OSConnectionError,
        ConnectionTimeout,
        SSLError,
        TransportError,
    )

    try:
        client.info(request_timeout=min(timeout, conn.timeout))
    except ConnectionTimeout:
        raise EngineError(conn.redact(
            f"opensearch {conn.url} is unreachable: no answer within {min(timeout, conn.timeout):.0f} s"
        )) from None
    except SSLError as e:
        raise EngineError(conn.redact(tls_error(conn, e))) from None
    except OSConnectionError as e:
        reason = getattr(e, "info", None) or e
        if isinstance(reason, BaseException):
            reason = type(reason).__name__ + (f": {reason}" if str(reason) else "")
        raise EngineError(conn.redact(f"opensearch {conn.url} is unreachable: {reason}")) from None
    except AuthenticationException as e:
        raise EngineError(auth_refused(conn, e)) from None
    except TransportError:
        pass  # answered: the real request reports other errors with their reasons


def auth_refused(conn: "Connection", exc: Exception | None = None) -> str:
    """The 401 line: who was refused, the server's reason (redacted: a server may echo what it
    got) and which flags to check; never the secret itself."""
    said = _reason(getattr(exc, "info", None)) if exc is not None else None
    said = f": {' '.join(conn.redact(said).split())[:200]}" if said and said != "Unauthorized" else ""
    if conn.user:
        who, fix = f"user {conn.user!r}", f"check --user/--password (or {ENV_USER}/{ENV_PASSWORD})"
    elif conn.api_key:
        who, fix = "the API key", f"check --api-key (or {ENV_API_KEY})"
    elif conn.client_cert:
        who, fix = f"the client certificate {conn.client_cert}", "check --client-cert/--client-key"
    elif any(_secret_header(k) for k in conn.headers):
        who, fix = "the request's own headers", "check the headers' credentials"
    else:
        who, fix = "a request without credentials", "give --user/--password, --api-key or --client-cert"
    return f"opensearch {conn.url}: authentication failed (HTTP 401{said}) for {who}; {fix}"


def _reason(info: Any) -> str | None:
    """The server's reason in an error body (JSON error.reason, or the plain text)."""
    if isinstance(info, dict):
        err = info.get("error")
        return str(err.get("reason") or "") if isinstance(err, dict) else (str(err) if err else None)
    return str(info) if info else None


def tls_error(conn: "Connection", exc: Exception) -> str:
    """One line for a failed TLS handshake. An unknown issuer (the usual case: a cluster signed
    by its own CA) names --ca-certs; other failures keep OpenSSL's reason."""
    text = str(getattr(exc, "info", None) or exc)
    reason = _ssl_reason(text)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if "hostname" in text or "IP address mismatch" in text:
            return (f"opensearch {conn.url}: the server's TLS certificate does not name this host ({reason}); "
                    "connect with a host name the certificate lists")
        given = f" (--ca-certs {conn.ca_certs} does not sign it)" if conn.ca_certs else ""
        return (f"opensearch {conn.url}: the server's TLS certificate is not trusted{given}: {reason}; "
                f"give the cluster's CA file with --ca-certs CA.pem (or {ENV_CA_CERTS})")
    return f"opensearch {conn.url}: TLS handshake failed: {reason}"


def _ssl_reason(text: str) -> str:
    """`certificate verify failed: unable to get local issuer certificate` out of urllib3's
    nested wrapping (SSLError(MaxRetryError(... SSLError(1, '[SSL: ...] reason (_ssl.c:1006)'))))."""
    import re

    m = re.search(r"\[SSL[^\]]*\]\s*([^(\]'\"]+)", text)
    return (m.group(1).strip().rstrip(".") if m else text.strip()[:200]) or "TLS error"


def _pem_file(path: Any, flag: str, env: str) -> str | None:
    """A certificate or key file that exists, or one line naming the flag (and the variable)."""
    if not path:
        return None
    p = os.path.expanduser(str(path))
    if not os.path.isfile(p):
        raise EngineError(f"{flag} {path}: no such file (from {flag} or {env})")
    return p


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _api_key_header(key: str) -> str:
    # "id:secret" is base64-encoded as the ApiKey scheme wants; an encoded key goes as is
    if ":" in key:
        key = base64.b64encode(key.encode()).decode()
    return f"ApiKey {key}"


def _secret_header(name: str) -> bool:
    n = name.lower()
    return n in ("authorization", "proxy-authorization", "cookie") or "token" in n or "key" in n or "secret" in n


def describe_error(exc: Exception) -> str:
    """One line about a client exception: HTTP status, error type and the server's reason
    (which may quote what we sent: always pass the result through `Connection.redact`). The
    security plugin's answers are put plainly: a 403 names the user and the permission it
    lacks, a 401 says the credentials were refused."""
    status = getattr(exc, "status_code", None)
    info = getattr(exc, "info", None)
    if status == 401:
        return "HTTP 401: authentication failed (the cluster refused the credentials)"
    if status == 403:
        denied = permission_denied(info)
        if denied:
            return f"HTTP 403: {denied}"
    if status == 400 and "unknown setting [index.sparse]" in str(info):
        # a sparse_vector index (--sparse-ann) on a cluster without neural-search 3.3+
        return ("HTTP 400: the cluster does not know the index setting index.sparse: --sparse-ann needs the "
                "neural-search plugin 3.3 or later (OpenSearch 3.3+), which this cluster does not have")
    if isinstance(status, int) and isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            cause = (err.get("root_cause") or [{}])[0] if isinstance(err.get("root_cause"), list) else {}
            reason = err.get("reason") or cause.get("reason")
            return f"HTTP {status} {err.get('type')}: {reason}"
        return f"HTTP {status}: {err or info}"
    if isinstance(status, int):
        return f"HTTP {status}: {getattr(exc, 'error', exc)}"
    return f"{type(exc).__name__}: {getattr(exc, 'info', None) or exc}"


def permission_denied(info: Any) -> str | None:
    """`user 'reader' lacks the permission indices:data/write/bulk[s]` from the security
    plugin's 403 body (its reason: "no permissions for [PERM] and User [name=NAME, ...]"),
    or None when the body is not that."""
    import re

    if isinstance(info, dict):
        err = info.get("error")
        reason = err.get("reason") if isinstance(err, dict) else err
    else:
        reason = info
    m = re.search(r"no permissions for \[([^\]]*)\](?: and User \[name=([^,\]]+))?", str(reason or ""))
    if not m:
        return None
    perms = [p.strip() for p in m.group(1).split(",") if p.strip()]
    who = f"user {m.group(2)!r}" if m.group(2) else "this user"
    what = f"the permission {perms[0]}" if len(perms) == 1 else f"the permissions {', '.join(perms)}"
    return f"{who} lacks {what}"
