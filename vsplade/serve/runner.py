"""Start the service: check the bind is safe, load the engine's searcher once, run uvicorn.

Safe by default: 127.0.0.1 unless told otherwise; any non-loopback bind needs a bearer
token from the environment (VSPLADE_SERVE_TOKEN, at least 16 characters), which every data
endpoint then requires. A token set for a loopback bind is required too.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from . import TOKEN_ENV

MIN_TOKEN_CHARS = 16


class ServeConfigError(ValueError):
    """The service cannot start as asked (printed as one line, exit 2)."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only when every address it resolves to is
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_bind(host: str, token: str | None) -> None:
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ServeConfigError(f"{TOKEN_ENV} is {len(token)} characters long; use at least {MIN_TOKEN_CHARS} "
                               "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    if not is_loopback(host) and not token:
        raise ServeConfigError(
            f"--host {host} would expose the index beyond this machine; set {TOKEN_ENV} to a secret token "
            "(clients then send Authorization: Bearer <token>), or bind 127.0.0.1")


def run(collection, host: str = "127.0.0.1", port: int = 8080, cache_dir=None,
        log_level: str = "warning", echo=print) -> None:
    """Blocking: serve the `Collection` until interrupted."""
    token = os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    try:
        import uvicorn

        from .app import create_app
        from .service import SearchService
    except ImportError as e:
        raise ServeConfigError(f"vsplade serve needs the serve extra: pip install 'vsplade[serve]' ({e})") from None
    service = SearchService(collection, cache_dir=cache_dir)
    engine = collection.engine
    app = create_app(service, token=token, loopback_only=is_loopback(host))
    shown = f"[{host}]" if ":" in host else host
    echo(f"vsplade serve: {engine.name} index {engine.index}, model {service.model}, "
         f"{len(collection)} pages; "
         f"http://{shown}:{port}/  (API: /openapi.json{', bearer token required' if token else ''})")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False,
                    timeout_graceful_shutdown=5)
    finally:
        service.close()
