"""`vsplade serve`: a search service over any engine and a web page that shows the pages it finds.

Needs the `serve` extra (fastapi, uvicorn); nothing here is imported by `import vsplade` or by
other CLI commands. `service` (no web framework) holds the warm query encoder + searcher, the
page catalog and the thumbnail cache; `app` maps it onto HTTP (FastAPI); `runner` checks the
bind and starts uvicorn; `static/` is the web page (plain HTML/JS/CSS, no build step, no CDN).
"""

from __future__ import annotations

TOKEN_ENV = "VSPLADE_SERVE_TOKEN"

__all__ = ["TOKEN_ENV", "create_app", "run"]


def create_app(*args, **kwargs):
    from .app import create_app as _create

    return _create(*args, **kwargs)


def run(*args, **kwargs):
    from .runner import run as _run

    return _run(*args, **kwargs)
