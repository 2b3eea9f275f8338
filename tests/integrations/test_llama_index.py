"""The LlamaIndex retriever, with the real llama-index-core: its nodes are Collection.search's
hits (ids, order, scores, page text), and inside a RetrieverQueryEngine driven by the library's
own MockLLM (it echoes the prompt it is given: no network) the pages' text reaches the LLM."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (pip install 'vsplade[llama-index]')")

from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import MetadataMode, TextNode  # noqa: E402

from vsplade.engines import EngineError  # noqa: E402
from integrations_support import checked_cases, reference  # noqa: E402
from vsplade.integrations import page_image  # noqa: E402
from vsplade.integrations.llama_index import VspladeRetriever  # noqa: E402

K = 4


def as_rows(nodes):
    return [(n.node.node_id, n.score, n.node.get_content()) for n in nodes]


@pytest.mark.timeout(600)
def test_retrieve_equals_collection_search(indexed):
    _, col = indexed
    for _, _, _, _, nodes in checked_cases(col, col.as_llama_index_retriever, VspladeRetriever, K,
                                           lambda r, q: r.retrieve(q), as_rows):
        assert all(isinstance(n.node, TextNode) and n.node.metadata["id"] == n.node.node_id for n in nodes)


@pytest.mark.timeout(600)
def test_query_engine_with_the_librarys_mock_llm(indexed):
    name, col = indexed
    engine = RetrieverQueryEngine.from_args(col.as_llama_index_retriever(k=2), llm=MockLLM())
    q = "interface definition language"
    response = engine.query(q)
    want = reference(col, q, 2)
    assert [(n.node.node_id, n.score) for n in response.source_nodes] == [(i, s) for i, s, _ in want]
    # MockLLM answers with the prompt: the pages' text and their source/page went in; ids,
    # paths and hashes did not (they are for readers)
    answer = str(response)
    for node_id, _, text in want:
        assert text.strip()[:200] in answer
        assert node_id not in answer
    assert "camlidl-1.04.doc.pdf" in answer and "sha256" not in answer
    aresponse = asyncio.run(engine.aquery(q))
    assert [(n.node.node_id, n.score) for n in aresponse.source_nodes] == [(i, s) for i, s, _ in want]


def test_node_metadata_reach_the_page_image(indexed):
    _, col = indexed
    node = col.as_llama_index_retriever(k=1).retrieve("debian reference card")[0].node
    hit = col.search("debian reference card", k=1)[0]
    assert {k: node.metadata[k] for k in ("id", "source", "page", "path", "sha256")} == hit._meta()
    assert node.metadata["image"].startswith(f"vsplade show {hit.id} --engine {col.engine.name} --index ")
    assert page_image(node.metadata, width=120).size == hit.image(120).size
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert f"page: {hit.page}" in shown and hit.path not in shown


@pytest.mark.timeout(600)
def test_grouped_by_file(indexed):
    name, col = indexed
    q = "the type of a pointer"
    try:
        want = col.search(q, k=3, group_by="file")
    except EngineError as e:  # an engine whose grouped search is not written yet
        if "cannot group" not in str(e):
            raise
        pytest.skip(f"{name}: {e}")
    nodes = col.as_llama_index_retriever(k=3, group_by="file").retrieve(q)
    assert [(n.node.metadata["source"], n.score, n.node.metadata["page_ids"]) for n in nodes] == \
        [(f.source, f.score, [h.id for h in f.hits]) for f in want]
    assert nodes


def test_bad_fields_are_one_line(indexed):
    name, col = indexed
    if name != "memory":
        pytest.skip("argument checks are engine-independent")
    with pytest.raises(ValueError, match="k must be positive"):
        VspladeRetriever(col, k=0)
    with pytest.raises(ValueError, match="content must be one of page, snippet"):
        VspladeRetriever(col, content="pages")
    with pytest.raises(ValueError, match="not both"):
        VspladeRetriever(col, index="x").retrieve("debian")
    r = VspladeRetriever(index=str(col.engine.index), engine="memory", k=2)
    assert as_rows(r.retrieve("debian")) == reference(col, "debian", 2)
