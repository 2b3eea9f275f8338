"""Hybrid search with the text layer on real OpenSearch nodes (issue 26 item 4).

- plain nodes (`server`: os3 / os2, no neural-search): the `text` field is BM25 with k1=0.9,
  b=0.4 (checked against Lucene's BM25 formula over the standard analyzer's tokens, lossy norms
  included), and hybrid search fuses the two runs in the client: equal to pyserini.fusion.
- plugin nodes (`opensearch_neural_node`: 3.6.0 and 2.19.1 with neural-search): hybrid search
  through the search pipeline (hybrid_fusion="pipeline": refused rather than silently fused in
  the client), on a single-shard index: the same pages in the same order as pyserini.fusion of
  the two single runs, scores within float32 (RRF) / the 0.001 min-max floor (hybrid.py).
The pages: the real test PDFs and a synthetic corpus (many exact RRF ties)."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from vsplade.engines.base import EngineError, IndexMismatchError, PageFilter
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.connection import Connection
from vsplade_opensearch.hybrid import pipeline_body, pipeline_name

QUERIES = ["interface definition language", "apt-get install a package", "camlidl stub code generation",
           "debian reference card", "the type of a pointer", "remove a file from the system"]
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud "
         "paper engine window garden").split()
FILTERS = [None, PageFilter.of(page_min=2, page_max=9), PageFilter.of(sources=["camlidl-1.04.doc.pdf"])]
MODES = ["rrf", "minmax:0.6", "minmax:0.3"]


# ---- the pages ------------------------------------------------------------------------------

def _encoded(pages):
    from vsplade.encoders.lexical import LexicalEncoder

    enc = LexicalEncoder()
    enc.fit(pages)
    batch = enc.encode(pages)
    for meta, page in zip(batch.meta, pages):
        meta["text"] = page.text  # what the pipeline puts there for a --text-field collection
    return batch, enc.info() | {"model": "lexical"}, enc.query_encoder()


@pytest.fixture(scope="module")
def pdf_corpus(pdf_dir):
    from vsplade.pages import PageReader

    return _encoded(list(PageReader([str(pdf_dir)], render=False, text=True)))


@pytest.fixture(scope="module")
def synthetic_corpus():
    from vsplade.pages import Page

    rng = np.random.default_rng(7)
    pages = [Page(f"syn-{i:04d}", f"doc{i % 7}.pdf", 1 + i // 7, None,
                  " ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)))))
             for i in range(400)]
    return _encoded(pages)


def build(url, batch, info, text_field=True, **options) -> OpenSearchEngine:
    eng = OpenSearchEngine(index=f"vsplade-hybrid-{uuid.uuid4().hex[:10]}", url=url, progress=False, **options)
    with eng.writer(info) as w:
        if text_field:
            w.set_properties({"text_field": True})
        w.add(batch)
    return eng


@pytest.fixture
def drop(server):
    made: list[tuple[str, str]] = []
    yield made
    for url, index in made:
        Connection.from_options({"url": url}).client().indices.delete(index=index, ignore=[404])


# ---- references -----------------------------------------------------------------------------

def _int4(i: int) -> int:
    bits = i.bit_length()
    if bits < 4:
        return i
    shift = bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _from_int4(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_FREE = 255 - _int4(2**31 - 1)


def lossy_length(n: int) -> int:
    """Lucene's SmallFloat.intToByte4 then byte4ToInt: the document length BM25 scores with."""
    if n < _FREE:
        return n
    return _FREE + _from_int4(_int4(n - _FREE))


def analyzed(client, texts: list[str]) -> list[list[str]]:
    """The standard analyzer's tokens, from the cluster (the tokenizer is the cluster's; the
    scoring below is written out independently)."""
    out = []
    for t in texts:
        resp = client.indices.analyze(body={"analyzer": "standard", "text": t}) if t else {"tokens": []}
        out.append([tok["token"] for tok in resp["tokens"]])
    return out


class Bm25Reference:
    """Lucene's BM25Similarity (k1=0.9, b=0.4) over the pages' tokens: idf log(1 + (N - df +
    0.5)/(df + 0.5)) with N the pages holding text, freq / (freq + k1 (1 - b + b dl/avgdl)) with
    dl Lucene's lossy length and avgdl the exact mean; repeated query words count each time."""

    def __init__(self, client, batch, k1=0.9, b=0.4):
        self.ids, self.meta = batch.ids, batch.meta
        self.docs = analyzed(client, [m.get("text") or "" for m in batch.meta])
        with_text = [d for d in self.docs if d]
        self.n, self.avgdl = len(with_text), sum(map(len, with_text)) / len(with_text)
        self.df: dict[str, int] = {}
        for d in with_text:
            for t in set(d):
                self.df[t] = self.df.get(t, 0) + 1
        self.client, self.k1, self.b = client, k1, b

    def search(self, text: str, k: int, flt: PageFilter | None = None) -> list[tuple[str, float]]:
        (q,) = analyzed(self.client, [text])
        scored = []
        for i, d in enumerate(self.docs):
            m = self.meta[i]
            if not d or (flt is not None and not flt.matches(m.get("source"), m.get("page"))):
                continue
            dl = lossy_length(len(d))
            s = 0.0
            for t in q:
                f = d.count(t)
                if f:
                    idf = math.log(1 + (self.n - self.df[t] + 0.5) / (self.df[t] + 0.5))
                    s += idf * f / (f + self.k1 * (1 - self.b + self.b * dl / self.avgdl))
            if s > 0:
                scored.append((self.ids[i], s))
        return sorted(scored, key=lambda x: -x[1])[:k]


def pyserini_fused(vector, text, mode: str, k: int) -> list[tuple[str, float]]:
    """pyserini.fusion of the two single runs (each already the engine's top `depth`)."""
    from pyserini.fusion import interpolation, reciprocal_rank_fusion
    from pyserini.trectools import RescoreMethod, TrecRun

    runs = [TrecRun.from_search_results([(h.id, h.score) for h in run]) for run in (vector, text)]
    if mode == "rrf":
        fused = reciprocal_rank_fusion(runs, rrf_k=60, k=k)
    else:
        w = float(mode.split(":")[1])
        fused = interpolation([r.rescore(RescoreMethod.NORMALIZE) for r in runs], alpha=w, k=k)
    return [(str(d), float(s)) for d, s in zip(fused.run_data["docid"], fused.run_data["score"])]


def assert_same_run(got, want: list[tuple[str, float]], tol: float, what=""):
    """Same length; scores within tol; the same ids in the same order except inside groups of
    reference scores closer than tol (there: the same set of ids)."""
    assert len(got) == len(want), (what, [h.id for h in got], want)
    for h, (_, s) in zip(got, want):
        assert abs(h.score - s) <= tol, (what, h.id, h.score, s)
    i = 0
    while i < len(want):
        j = i + 1
        while j < len(want) and abs(want[j][1] - want[i][1]) <= tol:
            j += 1
        if j < len(want) or i == 0 or j - i == 1:
            assert {h.id for h in got[i:j]} == {d for d, _ in want[i:j]}, (what, i, [h.id for h in got], want)
        i = j


def single_runs(searcher, query, text, depth, flt):
    keywords = flt.keywords() if flt is not None else {}
    return searcher.search(query, depth, **keywords), searcher.search_text(text, depth, flt)


# ---- plain nodes: BM25 and client fusion ------------------------------------------------------

def test_text_field_mapping_holds_the_whole_text_scored_with_bm25_09_04(server, pdf_corpus, drop):
    batch, info, _ = pdf_corpus
    eng = build(server.url, batch, info)
    bare = build(server.url, batch, info, text_field=False)
    drop += [(server.url, eng.index), (server.url, bare.index)]
    client = Connection.from_options({"url": server.url}).client()
    settings = client.indices.get_settings(index=eng.index)[eng.index]["settings"]["index"]
    assert settings["similarity"]["bm25_vsplade"] == {"type": "BM25", "k1": "0.9", "b": "0.4"}
    mapping = client.indices.get_mapping(index=eng.index)[eng.index]["mappings"]["properties"]["text"]
    assert mapping == {"type": "text", "analyzer": "standard", "similarity": "bm25_vsplade"}
    longest = max(range(len(batch)), key=lambda i: len(batch.meta[i]["text"]))
    assert len(batch.meta[longest]["text"]) > 1000
    doc = client.get(index=eng.index, id=batch.ids[longest])["_source"]
    assert doc["text"] == batch.meta[longest]["text"]  # whole, with --text-field
    assert client.get(index=bare.index, id=batch.ids[longest])["_source"]["text"] == batch.meta[longest]["text"][:500]
    s = eng.searcher()
    hits = s.search_text("interface definition language", 5)
    assert hits and all(h.source and h.page for h in hits)
    body = s.bm25_body("interface", 5)
    assert body["_source"] is False and "text" not in body["docvalue_fields"]  # hits never fetch the page text
    with pytest.raises(EngineError, match=r"built without --text-field; rebuild it with `vsplade index --text-field"):
        bare.searcher().search_text("interface", 5)
    with pytest.raises(EngineError, match="built without --text-field"):
        bare.searcher().search_hybrid({"interface": 1.0}, "interface", 5)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("corpus", ["pdf_corpus", "synthetic_corpus"])
def test_search_text_equals_lucene_bm25(server, corpus, request, drop):
    batch, info, _ = request.getfixturevalue(corpus)
    eng = build(server.url, batch, info)
    drop.append((server.url, eng.index))
    s = eng.searcher()
    ref = Bm25Reference(s.client, batch)
    texts = QUERIES if corpus == "pdf_corpus" else ["alpha river", "stone stone cloud", "omega garden window paper"]
    for text in texts:
        for flt in FILTERS if corpus == "pdf_corpus" else [None, PageFilter.of(sources=["doc3.pdf"], page_min=10)]:
            want = ref.search(text, 10, flt)
            assert_same_run(s.search_text(text, 10, flt), want, 2e-5 * max(1.0, want[0][1] if want else 1), (text, flt))


@pytest.mark.parametrize("corpus", ["pdf_corpus", "synthetic_corpus"])
def test_client_fusion_without_neural_search_equals_pyserini(server, corpus, request, drop):
    batch, info, qenc = request.getfixturevalue(corpus)
    eng = build(server.url, batch, info)
    drop.append((server.url, eng.index))
    s = eng.searcher()
    texts = QUERIES[:3] if corpus == "pdf_corpus" else ["alpha river", "stone cloud garden"]
    for text in texts:
        q = qenc.encode(text)
        for mode in MODES:
            vec, lex = single_runs(s, q, text, 30, None)
            got = s.search_hybrid(q, text, 10, mode, depth=30)
            want = pyserini_fused(vec, lex, mode, 10)
            assert [h.id for h in got] == [d for d, _ in want], (text, mode)
            assert_same_run(got, want, 1e-9, (text, mode))
            assert all(h.hybrid and h.hybrid["vector_rank"] or h.hybrid["text_rank"] for h in got)
    with pytest.raises(EngineError, match=r"hybrid_fusion='pipeline' needs neural-search 2\.19\+") as e:
        OpenSearchEngine(index=eng.index, url=server.url, hybrid_fusion="pipeline").searcher().search_hybrid(
            qenc.encode("alpha"), "alpha", 5)
    assert "\n" not in str(e.value)


def test_text_field_refused_on_an_index_mapped_before_it(server, pdf_corpus, drop):
    """An index whose text field has the cluster's default BM25 cannot take --text-field."""
    from vsplade_opensearch.mapping import index_body

    batch, info, _ = pdf_corpus
    name = f"vsplade-hybrid-{uuid.uuid4().hex[:10]}"
    drop.append((server.url, name))
    body = index_body(info)
    del body["settings"]["index"]["similarity"]
    body["mappings"]["properties"]["text"] = {"type": "text"}
    Connection.from_options({"url": server.url}).client().indices.create(index=name, body=body)
    w = OpenSearchEngine(index=name, url=server.url, progress=False).writer(info)
    try:
        with pytest.raises(IndexMismatchError, match=r"created before --text-field.*--recreate"):
            w.set_properties({"text_field": True})
    finally:
        w.close()


# ---- plugin nodes: the search pipeline ----------------------------------------------------------

@pytest.fixture
def neural_drop(opensearch_neural_node):
    made: list[str] = []
    yield made
    client = Connection.from_options({"url": opensearch_neural_node.url}).client()
    for index in made:
        client.indices.delete(index=index, ignore=[404])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("corpus", ["pdf_corpus", "synthetic_corpus"])
def test_pipeline_fusion_equals_pyserini_on_one_shard(opensearch_neural_node, corpus, request, neural_drop):
    node = opensearch_neural_node
    batch, info, qenc = request.getfixturevalue(corpus)
    eng = build(node.url, batch, info, hybrid_fusion="pipeline")
    neural_drop.append(eng.index)
    s = eng.searcher()
    client = s.client
    texts = QUERIES if corpus == "pdf_corpus" else ["alpha river", "stone stone cloud", "omega garden window paper"]
    filters = FILTERS if corpus == "pdf_corpus" else [None, PageFilter.of(sources=["doc3.pdf"])]
    compared = 0
    for text in texts:
        q = qenc.encode(text)
        for flt in filters:
            for mode in MODES:
                for k, depth in ((10, 30), (5, 5)):
                    vec, lex = single_runs(s, q, text, depth, flt)
                    if not vec or not lex:
                        continue
                    got = s.search_hybrid(q, text, k, mode, depth=depth, filter=flt)
                    want = pyserini_fused(vec, lex, mode, k)
                    # the same pages in the same order (ties by page id, as pyserini); scores: float32
                    # sums of BigDecimal-rounded 1/(60 + rank) for RRF, the 0.001 floor for min-max
                    assert [h.id for h in got] == [d for d, _ in want], (text, flt, mode, k, depth)
                    tol = 1e-6 if mode == "rrf" else 1.001e-3
                    assert_same_run(got, want, tol, (text, flt, mode, k, depth))
                    compared += 1
    counts = s.hybrid_counts
    assert compared >= 10 and counts["pipeline"] + counts["near_tie_fallback"] == compared
    # most fusions ran in the pipeline; near ties (which the 0.001 floor could reorder) in the client
    assert counts["pipeline"] >= compared // 2, counts
    print(corpus, counts)
    for mode in MODES:  # the pipelines the searches went through, as hybrid.py defines them
        from vsplade.fusion import Fusion

        name = pipeline_name(Fusion.of(mode))
        assert client.transport.perform_request("GET", f"/_search/pipeline/{name}")[name] == pipeline_body(Fusion.of(mode))


def test_pipeline_recreated_when_deleted_and_hybrid_scores_named(opensearch_neural_node, pdf_corpus, neural_drop):
    batch, info, qenc = pdf_corpus
    eng = build(opensearch_neural_node.url, batch, info, hybrid_fusion="pipeline")
    neural_drop.append(eng.index)
    s = eng.searcher()
    text = "interface definition language"
    q = qenc.encode(text)
    first = s.search_hybrid(q, text, 10, "rrf")
    s.client.transport.perform_request("DELETE", "/_search/pipeline/vsplade-hybrid-rrf-60")
    again = s.search_hybrid(q, text, 10, "rrf")
    assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in first]
    vec, lex = {h.id: h.score for h in s.search(q, 100)}, {h.id: h.score for h in s.search_text(text, 100)}
    for h in first:  # what each side scored the page (named queries), None where it does not match
        assert h.hybrid["vector"] == pytest.approx(vec.get(h.id), rel=1e-6) if h.id in vec else h.hybrid["vector"] is None
        assert h.hybrid["text"] == pytest.approx(lex.get(h.id), rel=1e-6) if h.id in lex else h.hybrid["text"] is None


def test_sparse_ann_index_fuses_in_the_pipeline_too(opensearch_neural3_node, pdf_corpus, neural_drop):
    """A --sparse-ann index (neural-search 3.3+): its neural_sparse query is the vector sub-query
    (exact below the ANN threshold), fused in the pipeline as the client fuses its own two runs."""
    from vsplade.fusion import fuse

    batch, info, qenc = pdf_corpus
    eng = build(opensearch_neural3_node.url, batch, info, sparse_ann=True, hybrid_fusion="pipeline")
    neural_drop.append(eng.index)
    s = eng.searcher()
    for text in QUERIES[:4]:
        q = qenc.encode(text)
        for mode in ("rrf", "minmax:0.6"):
            vec, lex = single_runs(s, q, text, 30, None)
            got = s.search_hybrid(q, text, 10, mode, depth=30)
            assert [h.id for h in got] == [h.id for h in fuse(vec, lex, mode, 10)], (text, mode)
    assert s.hybrid_counts["pipeline"] >= 4, s.hybrid_counts


def test_cli_index_with_text_field_and_search_hybrid(server, pdf_dir, drop):
    """`vsplade index --text-field` then `vsplade search --hybrid` on OpenSearch: the JSON hits are
    Collection.search's, and an index without the text field is one error line."""
    import json

    from typer.testing import CliRunner

    from vsplade import Collection
    from vsplade.cli import app

    name = f"vsplade-hybrid-{uuid.uuid4().hex[:10]}"
    bare = f"vsplade-hybrid-{uuid.uuid4().hex[:10]}"
    drop += [(server.url, name), (server.url, bare)]
    r = CliRunner()
    for index, extra in ((name, ["--text-field"]), (bare, [])):
        res = r.invoke(app, ["index", str(pdf_dir), "--model", "lexical", "--engine", "opensearch", "--url", server.url,
                             "--index", index, "--json", *extra])
        assert res.exit_code == 0, res.output
    col = Collection.open(engine="opensearch", index=name, url=server.url)
    for mode in ("rrf", "minmax:0.6"):
        res = r.invoke(app, ["search", "interface definition language", "--engine", "opensearch", "--url", server.url,
                             "--index", name, "--hybrid", mode, "--json", "-k", "5"])
        assert res.exit_code == 0, res.output
        got = json.loads(res.output)
        hits = got["hits"] if isinstance(got, dict) else got
        want = col.search("interface definition language", k=5, hybrid=mode)
        assert [h["id"] for h in hits] == [h.id for h in want] and len(want) == 5, (mode, res.output)
    res = r.invoke(app, ["search", "interface", "--engine", "opensearch", "--url", server.url, "--index", bare,
                         "--hybrid", "rrf"])
    assert res.exit_code != 0 and "--text-field" in res.output and "Traceback" not in res.output, res.output


def test_several_shards_fuse_in_the_client(opensearch_neural_node, synthetic_corpus, neural_drop):
    """On 3 shards the pipeline's windows are per shard (hybrid.py): "auto" fuses in the client
    there, equal to pyserini.fusion of the two runs; the pipeline is never asked."""
    batch, info, qenc = synthetic_corpus
    eng = build(opensearch_neural_node.url, batch, info, shards=3)
    neural_drop.append(eng.index)
    s = eng.searcher()
    for text in ["alpha river", "stone stone cloud"]:
        q = qenc.encode(text)
        for mode in MODES:
            vec, lex = single_runs(s, q, text, 30, None)
            got = s.search_hybrid(q, text, 10, mode, depth=30)
            assert [h.id for h in got] == [d for d, _ in pyserini_fused(vec, lex, mode, 10)], (text, mode)
            assert all(h.hybrid["vector_rank"] or h.hybrid["text_rank"] for h in got)
    assert s.hybrid_counts == {"pipeline": 0, "near_tie_fallback": 0}
