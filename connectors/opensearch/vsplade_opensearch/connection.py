"""Connection settings for one cluster: URL, auth (basic, API key, extra headers), TLS, and
the only place secrets live. Everything printed about a connection goes through `redact`.

Options come from keyword arguments (the CLI's flags) and fall back to the environment
(VSPLADE_OPENSEARCH_URL / _USER / _PASSWORD / _API_KEY), so library users get what CLI users get.

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
        return cls(
            url=",".join(urls),
            user=user,
            password=password,
            api_key=api_key,
            headers=headers,
            ca_certs=options.get("ca_certs"),
            insecure=bool(options.get("insecure", False)),
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
        auth = "basic" if self.user else "api-key" if self.api_key else "none"
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
        )
        if self.user:
            kwargs["http_auth"] = (self.user, self.password or "")
        if any(u.startswith("https") for u in self.urls):
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = not self.insecure
            kwargs["ssl_show_warn"] = not self.insecure
            if self.ca_certs:
                kwargs["ca_certs"] = self.ca_certs
        return OpenSearch(**kwargs)


def check_reachable(conn: "Connection", client, timeout: float = PROBE_TIMEOUT) -> None:
    """One GET / with a short timeout; a cluster that refuses the connection or does not answer
    becomes one EngineError naming the URL (redacted). Other answers (401, ...) are left to the
    caller's request, which reports them as usual."""
    from opensearchpy.exceptions import ConnectionError as OSConnectionError, ConnectionTimeout, TransportError

    try:
        client.info(request_timeout=min(timeout, conn.timeout))
    except ConnectionTimeout:
        raise EngineError(conn.redact(
            f"opensearch {conn.url} is unreachable: no answer within {min(timeout, conn.timeout):.0f} s"
        )) from None
    except OSConnectionError as e:
        reason = getattr(e, "info", None) or e
        if isinstance(reason, BaseException):
            reason = type(reason).__name__ + (f": {reason}" if str(reason) else "")
        raise EngineError(conn.redact(f"opensearch {conn.url} is unreachable: {reason}")) from None
    except TransportError:
        pass  # answered: the real request reports auth or other errors with their reasons


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
    (which may quote what we sent: always pass the result through `Connection.redact`)."""
    status = getattr(exc, "status_code", None)
    info = getattr(exc, "info", None)
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
