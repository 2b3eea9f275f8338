"""The LangChain retriever, with the real langchain-core: inside an LCEL chain its documents are
Collection.search's hits (ids, order, scores, page text), filters included, sync and async."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install 'vsplade[langchain]')")

from langchain_core.runnables import RunnableLambda  # noqa: E402

from vsplade.engines import EngineError  # noqa: E402
from integrations_support import QUERIES, checked_cases, reference  # noqa: E402
from vsplade.integrations import page_image  # noqa: E402
from vsplade.integrations.langchain import VspladeRetriever  # noqa: E402

K = 5


def format_docs(docs) -> str:
    return "\n\n".join(f"[{d.metadata['source']} p.{d.metadata['page']}]\n{d.page_content}" for d in docs)


def as_rows(docs):
    return [(d.metadata["id"], d.metadata["score"], d.page_content) for d in docs]


@pytest.mark.timeout(600)
def test_lcel_chain_returns_collection_search(indexed):
    _, col = indexed
    for retriever, q, source, pages, docs in checked_cases(col, col.as_langchain_retriever, VspladeRetriever, K,
                                                           lambda r, q: r.invoke(q), as_rows):
        assert (retriever | RunnableLambda(format_docs)).invoke(q) == format_docs(docs)
        for d in docs:
            assert d.id == d.metadata["id"]
            assert (source is None or d.metadata["source"] == source)
            lo, hi = pages or (None, None)
            assert (lo is None or d.metadata["page"] >= lo) and (hi is None or d.metadata["page"] <= hi)


@pytest.mark.timeout(600)
def test_async_batch_equals_sync(indexed):
    _, col = indexed
    retriever = col.as_langchain_retriever(k=3)
    got = asyncio.run(retriever.abatch(QUERIES))
    assert [as_rows(d) for d in got] == [reference(col, q, 3) for q in QUERIES]
    assert any(got)


@pytest.mark.timeout(600)
def test_grouped_by_file_is_one_document_per_file(indexed):
    name, col = indexed
    for q in QUERIES[:4]:
        try:
            want = col.search(q, k=3, group_by="file", pages_per_file=2)
        except EngineError as e:  # an engine whose grouped search is not written yet
            if "cannot group" not in str(e):
                raise
            pytest.skip(f"{name}: {e}")
        docs = col.as_langchain_retriever(k=3, group_by="file", pages_per_file=2).invoke(q)
        assert [(d.metadata["source"], d.metadata["score"]) for d in docs] == [(f.source, f.score) for f in want]
        for d, f in zip(docs, want):
            assert d.metadata["page_ids"] == [h.id for h in f.hits] and d.metadata["id"] == f.hits[0].id
            assert d.metadata["pages"] == [h.page for h in f.hits]
            assert d.page_content == "\n\n".join(t for t in (h.text() for h in f.hits) if t)
    assert len({d.metadata["source"] for d in docs}) == len(docs)


def test_snippet_content_is_the_hits_snippet(indexed):
    pytest.importorskip("vsplade.highlight", reason="snippets (vsplade.highlight) are not in this checkout")
    _, col = indexed
    q = "camlidl stub code generation"
    docs = col.as_langchain_retriever(k=3, content="snippet").invoke(q)
    hits = col.search(q, k=3)
    want = [(s.text if s is not None else "") for s in (h.snippet(q) for h in hits)]
    assert [d.page_content for d in docs] == want and any(want)
    assert all(len(d.page_content) < len(h.text()) for d, h in zip(docs, hits) if d.page_content)


def test_metadata_reach_the_page_image(indexed, tmp_path):
    name, col = indexed
    doc = col.as_langchain_retriever(k=1).invoke("camlidl stub code generation")[0]
    hit = col.search("camlidl stub code generation", k=1)[0]
    assert {k: doc.metadata[k] for k in ("id", "source", "page", "path", "sha256")} == hit._meta()
    image = page_image(doc.metadata, width=200)
    assert image.size == hit.image(200).size and image.width == 200
    if name == "memory":  # the documented command renders the same page (CLI start-up is slow: once)
        cmd = doc.metadata["image"].split()
        assert cmd[:3] == ["vsplade", "show", doc.metadata["id"]]
        out = tmp_path / "p.png"
        cmd[cmd.index("--out") + 1] = str(out)
        r = subprocess.run([sys.executable, "-m", "vsplade", *cmd[1:]], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        from PIL import Image

        assert Image.open(out).size == hit.image().size


def test_opened_from_index_and_errors(indexed):
    name, col = indexed
    if name != "memory":
        pytest.skip("opening by index is engine-independent; memory keeps it cheap")
    r = VspladeRetriever(index=str(col.engine.index), engine="memory", k=2)
    assert as_rows(r.invoke("debian")) == reference(col, "debian", 2)
    with pytest.raises(ValueError, match="collection=Collection.open"):
        VspladeRetriever(k=2).invoke("debian")
    with pytest.raises(ValueError, match="group_by must be one of file"):
        col.as_langchain_retriever(group_by="source").invoke("debian")
    with pytest.raises(ValueError):  # pydantic refuses what is not a content kind
        col.as_langchain_retriever(content="pages")
    from vsplade.collection import NoSuchSource

    with pytest.raises(NoSuchSource, match="nosuch.pdf"):
        col.as_langchain_retriever(source="nosuch.pdf").invoke("debian")


def test_no_torch_on_the_query_side(indexed):
    name, col = indexed
    if name != "memory":
        pytest.skip("one engine is enough: this is about imports")
    code = ("import sys; from vsplade import Collection; "
            f"r = Collection.open({str(col.engine.index)!r}, engine='memory').as_langchain_retriever(k=2); "
            "assert r.invoke('debian package'); assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
