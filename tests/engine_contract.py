"""The engine contract: what every engine must do behind `vsplade.Collection`, written once and run
against memory (tests/core/test_contract_memory.py), Lucene (tests/lucene/test_contract_lucene.py)
and both OpenSearch lines (tests/opensearch/test_contract_opensearch.py), as haystack's
DocumentStoreBaseTests are for its stores.

`EngineContract` is not collected itself (its name does not start with Test); a subclass names
its `engine`, provides the class-scoped `location` fixture (a factory of fresh collection
locations: a new dir, or a new OpenSearch index name plus the node's url) and says how the engine
stores weights (`stored_weights`, `stored_query`, `rescale`), how far its scores may stray from
the float ranking (`score_tol`) and whether it orders exactly tied pages by insertion.

Every check goes through the public Collection API: create/open/index/search/search_many/
delete/info/len. The reference is the memory engine's Collection of the same folder (float
weights, exact scorer) and a brute-force scorer over the weights this engine stores
(tests/collection_support.py).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from collection_support import (FILTERS, PAGES, QUERIES, assert_hits, assert_ranked, brute_force, make_docs,
                                memory_batch, random_texts, stored_like)
from hybrid_support import MODES, check_against_pyserini, random_queries
from lifecycle_support import make_folder, make_link_folder, pdf_pages
from PIL import Image

from vsplade import Collection
from vsplade.engines import EngineError
from vsplade.engines.memory import ExactScorer
from vsplade.render import hit_image

DATA = Path(__file__).parent / "data" / "pdfs"
# for the lifecycle scenarios: an encoder without corpus statistics, so that an index that
# followed its folder and a fresh index of the folder give the same scores
NOIDF = "lexical-noidf"
LIFE_QUERIES = ["apt-get install package", "interface definition language", "camlidl stub code", "debian reference"]
FOLDER_PAGES = {"refcard.pdf": 2, "sub/manual.pdf": 4, "other.pdf": 3}  # lifecycle_support.make_folder
K = 10


def exact_tol(s: float) -> float:
    """float32 products and sums inside the engine against float64 in the reference."""
    return 1e-6 * max(1.0, abs(s))


def state(col: Collection) -> dict:
    """What a user of the index sees: {id: (source, page)} and the hits of LIFE_QUERIES."""
    rows = {r["id"]: (r["source"], r["page"]) for r in col.engine.read_catalog()}
    hits = [[(h.id, round(h.score, 4), h.source, h.page) for h in col.search(t, k=20)] for t in LIFE_QUERIES]
    return {"rows": rows, "hits": hits}


def indexed_collection(engine: str, docs, location: dict, **create) -> Collection:
    """A new Collection of `engine` at `location` holding the PAGES pages of `docs`."""
    c = Collection.create(model="lexical", engine=engine, **create, **location)
    report = c.index(docs, progress=False)
    assert report.ok and report.summary.indexed == PAGES, report.summary
    return c


def sources_of(col: Collection) -> set[str]:
    return {r["source"] for r in col.engine.read_catalog()}


class EngineContract:
    engine: str = ""
    ties_by_insertion = True  # exactly equal scores come in insertion order (memory rows, Lucene doc ids)
    rescale = 1.0  # stored score x rescale = the score the engine reports

    # -- what a subclass provides ---------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def location(cls) -> Callable[[], dict]:
        """A factory: each call gives the options of a new, unused collection location
        ({"index": ..., **engine options}) for Collection.create/open."""
        raise NotImplementedError

    @staticmethod
    def stored_weights(w: np.ndarray) -> np.ndarray:
        """The page weights as the engine stores and scores them."""
        return w

    @staticmethod
    def stored_query(q: dict) -> dict:
        """The query weights as the engine scores them."""
        return q

    @staticmethod
    def score_tol(query: dict, wmax: float) -> Callable[[float], float]:
        """How far one hit's score may be from the float (memory) score of the same page."""
        return exact_tol

    # -- shared fixtures ------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def docs(cls, tmp_path_factory) -> Path:
        return make_docs(tmp_path_factory.mktemp("contract-docs") / "docs")

    @pytest.fixture(scope="class")
    @classmethod
    def mem(cls, docs, tmp_path_factory):
        """The reference: the memory engine's Collection of the same folder."""
        c = Collection.create(tmp_path_factory.mktemp("contract-mem") / "ix", model="lexical", engine="memory")
        assert c.index(docs, progress=False).ok
        yield c
        c.close()

    @pytest.fixture(scope="class")
    @classmethod
    def col(cls, docs, location):
        """This engine's Collection of the same folder (read-only for the tests that share it)."""
        c = indexed_collection(cls.engine, docs, location())
        yield c
        c.close()

    @pytest.fixture(scope="class")
    @classmethod
    def stored(cls, mem):
        """The weights this engine stores (from memory's float weights), and their exact scorer."""
        batch = stored_like(memory_batch(mem), cls.stored_weights)
        return batch, ExactScorer(batch)

    @pytest.fixture
    def new(self, location):
        """new(model) -> a fresh, empty Collection on this engine; new.reopen(col) -> the same
        index in a new object. All closed at the end of the test."""
        made: list[Collection] = []
        locs: dict[int, dict] = {}

        def create(model: str = NOIDF) -> Collection:
            loc = location()
            c = Collection.create(model=model, engine=self.engine, **loc)
            locs[id(c)] = loc
            made.append(c)
            return c

        def reopen(c: Collection) -> Collection:
            again = Collection.open(engine=self.engine, **locs[id(c)])
            made.append(again)
            return again

        create.reopen = reopen
        create.location = lambda c: locs[id(c)]
        yield create
        for c in made:
            c.close()

    @pytest.fixture
    def folder(self, tmp_path) -> Path:
        return make_folder(tmp_path)

    def fresh(self, new, folder, model: str = NOIDF) -> dict:
        """The state of a fresh index of `folder` as it is now."""
        c = new(model)
        assert c.index(folder, progress=False).ok
        return state(c)

    def tol_for(self, col, mem, text: str) -> Callable[[float], float]:
        wmax = float(memory_batch(mem).matrix.data.max())
        return self.score_tol(col.query_encoder.encode(text), wmax)

    def reference(self, col, stored, text, k, source=None, pages=(None, None)):
        """Every page the filter admits, ranked by the exact scorer over the stored weights."""
        batch, scorer = stored
        return brute_force(scorer, batch, self.stored_query(col.query_encoder.encode(text)), None, source, pages,
                           rescale=self.rescale)

    def assert_reference(self, got, full, k, what):
        if self.ties_by_insertion:
            assert_hits(got, full[:k], exact_tol, what)
        else:
            assert_ranked(got, full, k, exact_tol, what)

    # -- index + search: equal to memory, and to the stored weights -----------------------

    def test_search_equals_memory_top10_within_quantization(self, col, mem):
        assert col.engine.name == self.engine and col.model == "lexical"
        seen = 0
        for text in QUERIES:
            got, want = col.search(text, k=K), mem.search(text, k=K)
            assert_hits(got, [(h.id, h.score) for h in want], self.tol_for(col, mem, text), text)
            assert [(h.source, h.page, h.path, h.sha256) for h in got] == [
                (h.source, h.page, h.path, h.sha256) for h in want]
            seen += len(got)
        assert seen > 3 * len(QUERIES)  # real rankings, not empty lists

    def test_search_equals_a_brute_force_scorer_over_the_stored_weights(self, col, stored):
        for text in QUERIES + random_texts(6, seed=99):
            self.assert_reference(col.search(text, k=K), self.reference(col, stored, text, K), K, text)

    def test_filters_equal_a_brute_force_filter(self, col, stored):
        for n, (source, pages) in enumerate(FILTERS):
            for text in random_texts(4, seed=n):
                got = col.search(text, k=5, source=source, pages=pages)
                self.assert_reference(got, self.reference(col, stored, text, 5, source, pages), 5,
                                      (text, source, pages))
        # a filter that leaves fewer than k pages: exactly those, not a post-filtered top-k
        got = col.search("package", k=10, source="debian-refcard-en-a4.pdf", pages=(2, 2))
        assert [(h.source, h.page) for h in got] == [("debian-refcard-en-a4.pdf", 2)]

    def test_filter_by_folder_key_and_by_path(self, new, folder):
        c = new()
        assert c.index(folder, progress=False).ok
        everything = c.search("the function type", k=50)  # every page of the folder has one of these words
        assert len(everything) == 9
        under_sub = [(h.id, h.score) for h in everything if h.source.startswith("sub/")]
        assert under_sub and len(under_sub) < len(everything)
        for source in ("sub", "sub/", str(folder / "sub"), ["sub/manual.pdf"]):
            got = c.search("the function type", k=50, source=source)
            assert_hits(got, under_sub, exact_tol, source)
        got = c.search("the function type", k=50, source="sub", pages=(2, 3))
        assert sorted(h.page for h in got) == [2, 3] and {h.source for h in got} == {"sub/manual.pdf"}

    def test_explain_contributions_sum_to_the_score(self, col):
        for text in QUERIES:
            plain = col.search(text, k=K)
            got = col.search(text, k=K, explain=True)
            assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in plain], text
            terms = set(col.query_encoder.encode(text))
            for h in got:
                assert h.explain and set(h.explain) <= terms, (text, h.id, h.explain)
                assert all(c > 0 for c in h.explain.values())
                assert abs(sum(h.explain.values()) - h.score) <= 1e-5 * max(1.0, h.score), (text, h.id)

    def test_batch_search_equals_single_searches(self, col):
        texts = QUERIES + random_texts(8, seed=7)
        batch = col.search_many(texts, k=K)
        assert len(batch) == len(texts)
        for text, hits in zip(texts, batch):
            assert [(h.id, h.score, h.source, h.page) for h in hits] == [
                (h.id, h.score, h.source, h.page) for h in col.search(text, k=K)], text
        filtered = col.search_many(texts[:4], k=5, source="camlidl-1.04.doc.pdf", pages=(3, 12))
        for text, hits in zip(texts[:4], filtered):
            assert [h.id for h in hits] == [h.id for h in col.search(text, k=5, source="camlidl-1.04.doc.pdf",
                                                                       pages=(3, 12))]
            assert all(h.source == "camlidl-1.04.doc.pdf" and 3 <= h.page <= 12 for h in hits)

    def test_group_by_file_equals_grouping_the_whole_ranking(self, col, mem):
        """group_by="file": the k best files (a file scores as its best page), each with its best
        pages, as grouping the engine's own ranking of every page gives them: grouped inside
        the engine, so no file is lost the way grouping a page top-k loses it; the same files
        as memory's within quantization."""
        checked = 0
        for text in QUERIES + random_texts(4, seed=11):
            full = col.search(text, k=PAGES)
            want: dict[str, list] = {}
            for h in full:
                want.setdefault(h.source, [])
                if len(want[h.source]) < 2:
                    want[h.source].append(h)
            got = col.search(text, k=2, group_by="file", pages_per_file=2)
            expected = list(want.items())[:2]
            assert len(got) == len(expected), text
            for f, (source, hits) in zip(got, expected):
                assert f.score == pytest.approx(hits[0].score, rel=1e-6) and f.score == f.hits[0].score
                assert [h.score for h in f.hits] == pytest.approx([h.score for h in hits], rel=1e-6), text
                assert all(h.source == f.source for h in f.hits)
                if self.ties_by_insertion:
                    assert (f.source, [h.id for h in f.hits]) == (source, [h.id for h in hits]), text
            mine = col.search(text, k=3, group_by="file", pages_per_file=1)
            ref = mem.search(text, k=3, group_by="file", pages_per_file=1)
            tol = self.tol_for(col, mem, text)
            assert [f.score for f in mine] == pytest.approx([f.score for f in ref], abs=max(
                [tol(f.score) for f in ref] or [0])), text
            checked += len(got)
        assert checked > len(QUERIES)
        # filters apply inside the grouping; explain rides along
        got = col.search("interface", k=5, group_by="file", source="camlidl-1.04.doc.pdf", pages=(3, 12),
                         explain=True)
        assert [f.source for f in got] == ["camlidl-1.04.doc.pdf"]
        assert all(3 <= h.page <= 12 and h.explain for h in got[0].hits) and len(got[0].hits) == 3
        with pytest.raises(ValueError, match="group_by"):
            col.search("interface", group_by="page")

    # -- hybrid search with the text layer (issue 26 item 4) --------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def text_col(cls, docs, location):
        """This engine's Collection of the folder built with the text field (--text-field)."""
        c = indexed_collection(cls.engine, docs, location(), text_field=True)
        yield c
        c.close()

    @pytest.fixture(scope="class")
    @classmethod
    def text_mem(cls, docs, tmp_path_factory):
        """The reference BM25: the memory engine's Collection of the folder with its text."""
        c = Collection.create(tmp_path_factory.mktemp("contract-text-mem") / "ix", model="lexical", engine="memory",
                              text_field=True)
        assert c.index(docs, progress=False).ok
        yield c
        c.close()

    def test_hybrid_equals_pyserini_fusion_of_the_engines_two_runs(self, text_col):
        assert text_col.info()["text_field"] is True
        compared = 0
        for text in QUERIES + random_queries(4, seed=5):
            for mode in MODES:
                compared += check_against_pyserini(text_col, text, K, mode)
        assert compared > 3 * len(QUERIES) * len(MODES)  # real rankings, not empty lists

    def test_hybrid_filters_apply_to_both_sides(self, text_col):
        for source, pages in FILTERS:
            for text in QUERIES[:3]:
                check_against_pyserini(text_col, text, 5, "rrf", source=source, pages=pages)
                for h in text_col.search(text, k=20, hybrid="minmax:0.5", source=source, pages=pages):
                    srcs = [source] if isinstance(source, str) else source
                    assert srcs is None or h.source in srcs, (text, source, h.source)
                    lo, hi = pages
                    assert (lo is None or h.page >= lo) and (hi is None or h.page <= hi), (text, pages, h.page)

    def test_text_search_equals_the_memory_engines_bm25(self, text_col, text_mem):
        """BM25 (k1 0.9, b 0.4, StandardAnalyzer words) over the same pages: the same ranking,
        scores within float32 (memory follows Lucene's formula and its one-byte lengths)."""
        seen = 0
        for text in QUERIES + random_queries(6, seed=11):
            with text_col._searcher() as s:
                got = s.search_text(text, 20)
            with text_mem._searcher() as s:
                want = s.search_text(text, 20)
            assert_ranked(got, [(h.id, h.score) for h in want], len(want), lambda x: 1e-5 * max(1.0, abs(x)), text)
            seen += len(got)
        assert seen > 20

    def test_hybrid_groups_the_fused_pages_and_explains_the_vector_side(self, text_col):
        text = "install package interface"
        flat = text_col.search(text, k=100, hybrid="rrf", depth=100)
        expected: dict = {}
        for h in flat:
            expected.setdefault(h.source, [])
            if len(expected[h.source]) < 2:
                expected[h.source].append(h.id)
        files = text_col.search(text, k=3, hybrid="rrf", depth=100, group_by="file", pages_per_file=2)
        assert [(f.source, [h.id for h in f.hits]) for f in files] == list(expected.items())[:3]
        hits = text_col.search(text, k=30, hybrid="rrf", explain=True)
        assert len(hits) >= 5 and all(h.hybrid["vector"] is not None for h in hits[:3])
        for h in hits:
            if h.hybrid["vector"] is None:
                assert h.explain == {}, h
            else:
                assert abs(sum(h.explain.values()) - h.hybrid["vector"]) <= 1e-3 * max(1.0, h.hybrid["vector"]), h
                assert h.reasons is not None

    def test_hybrid_on_an_index_without_the_text_field_is_one_line(self, col):
        assert col.info()["text_field"] is False
        with pytest.raises(EngineError, match="--text-field") as e:
            col.search("package", hybrid="rrf")
        assert "\n" not in str(e.value)
        with pytest.raises(ValueError, match="minmax:W"):
            col.search("package", hybrid="max")

    def test_two_phase_with_a_wide_window_is_the_exact_search(self, col):
        """search(two_phase=...) where the engine takes it (memory, Lucene): prune_ratio 0 is
        the exact search; with a window as large as the collection the result is the exact
        ranking of the pages that hold a kept (heavy) term, with exact scores; a narrow window
        returns exact scores of the pages it keeps. Elsewhere: one EngineError."""
        from vsplade.approximate import TwoPhase

        wide = TwoPhase(prune_ratio=0.6, expansion=float(PAGES))
        if not col.searcher.takes_two_phase:
            with pytest.raises(EngineError, match="two-phase|two_phase"):
                col.search("debian package", two_phase=wide)
            return
        for text in QUERIES + random_texts(4, seed=5):
            exact = col.search(text, k=K)
            assert [(h.id, h.score) for h in col.search(text, k=K, two_phase="0,1")] == [
                (h.id, h.score) for h in exact], text
            kept = set(wide.split(col.query_encoder.encode(text))[0])
            reachable = [(h.id, h.score) for h in col.search(text, k=PAGES, explain=True) if kept & set(h.explain)]
            assert [(h.id, h.score) for h in col.search(text, k=K, two_phase=wide)] == reachable[:K], text
            every = {h.id: h.score for h in col.search(text, k=PAGES)}
            for h in col.search(text, k=K, two_phase="0.8,1"):
                assert h.score == pytest.approx(every[h.id], rel=1e-6), text
        got = col.search("interface", k=5, source="camlidl-1.04.doc.pdf", pages=(3, 12), two_phase=wide)
        assert got and all(h.source == "camlidl-1.04.doc.pdf" and 3 <= h.page <= 12 for h in got)

    def test_hits_show_their_page(self, col, mem, docs):
        hit = col.search("apt-get install a package", k=1)[0]
        ref = mem.search("apt-get install a package", k=1)[0]
        im = hit.image(width=240)
        assert im.mode == "RGB" and im.width == 240 and np.asarray(im).std() > 10  # a rendered page, not blank
        assert np.array_equal(np.asarray(im), np.asarray(ref.image(width=240)))  # the same page as memory's hit
        other = col.search("camlidl stub code generation", k=1)[0]
        assert (other.source, other.page) != (hit.source, hit.page)
        assert not np.array_equal(np.asarray(other.image(width=240)), np.asarray(im))
        png = next(r for r in col.engine.read_catalog() if r["source"] == "scan.png")
        assert np.array_equal(np.asarray(hit_image(png)), np.asarray(Image.open(docs / "scan.png").convert("RGB")))

    # -- properties, open -------------------------------------------------------------------

    def test_properties(self, col, docs):
        info = col.info(sources=True)
        files = sorted(p.name for p in docs.iterdir())
        assert info["pages"] == PAGES == len(col) and info["files"] == len(files)
        assert info["root"] == str(docs.resolve())
        assert info["encoder"]["model"] == "lexical" and info["created"] and info["updated"]
        assert info["engine"] == self.engine and info["size_bytes"] > 0
        assert sorted(s["source"] for s in info["sources"]) == files
        assert sum(s["pages"] for s in info["sources"]) == PAGES
        assert "sources" not in col.info()

    def test_open_in_a_new_object_gives_the_same_hits(self, col, location):
        loc = {k: v for k, v in location().items() if k != "index"}
        again = Collection.open(col.engine.index, engine=self.engine, **loc)
        try:
            assert again.model == "lexical" and again.engine.name == self.engine
            for text in QUERIES:
                assert [(h.id, h.score, h.source, h.page) for h in again.search(text, k=K)] == [
                    (h.id, h.score, h.source, h.page) for h in col.search(text, k=K)]
            stable = lambda i: {k: v for k, v in i.items() if k not in ("size_bytes", "location")}  # noqa: E731
            assert stable(again.info(sources=True)) == stable(col.info(sources=True))
        finally:
            again.close()

    # -- the lifecycle: resume, sync, delete ----------------------------------------------

    def test_keys_under_the_root_and_a_rerun_adds_nothing(self, new, folder, tmp_path, monkeypatch):
        c = new()
        monkeypatch.chdir(tmp_path)  # a relative input, as a user types it
        report = c.index(Path("docs"), progress=False)
        assert report.ok and report.summary.indexed == 9
        rows = c.engine.read_catalog()
        assert {r["source"] for r in rows} == set(FOLDER_PAGES)
        assert all(Path(r["path"]).is_file() and Path(r["path"]).is_absolute() for r in rows)
        hit = c.search("apt-get install", k=1)[0]
        assert hit.source == "refcard.pdf" and Path(hit.path).is_file()
        before = state(c)
        # from another working directory, the same folder names the same files: nothing new
        monkeypatch.chdir(folder / "sub")
        report = c.index(folder, progress=False)
        s = report.as_dict()
        assert report.ok and s["indexed"] == 0 and s["skipped"] == 9
        assert s["files"] == {"added": 0, "unchanged": 3}
        assert state(c) == before

    def test_changed_files_then_sync_equals_a_fresh_index(self, new, folder):
        c = new()
        assert c.index(folder, progress=False).ok
        assert len(c) == 9
        # change everything at once: delete one file, replace one, copy one under a new name
        (folder / "other.pdf").unlink()
        pdf_pages(DATA / "camlidl-1.04.doc.pdf", folder / "sub" / "manual.pdf", range(4, 9))  # same name, new content
        shutil.copy(folder / "refcard.pdf", folder / "sub" / "refcard-copy.pdf")

        s = c.index(folder, progress=False).as_dict()  # plain: adds the copy, never deletes, says what changed
        assert s["files"] == {"added": 1, "unchanged": 1} and s["changed"] == 1
        assert any("sub/manual.pdf" in w and "--sync" in w for w in s["warnings"]), s["warnings"]
        rows = state(c)["rows"].values()
        assert sorted(src for src, _ in rows).count("sub/manual.pdf") == 4  # the old version only
        assert any(src == "sub/refcard-copy.pdf" for src, _ in rows)  # the copy is its own file

        s = c.index(folder, sync=True, progress=False).as_dict()
        assert s["files"] == {"added": 0, "replaced": 1, "unchanged": 2, "removed": 1}
        assert s["removed_pages"] == 4 + 3 and s["indexed"] == 5
        assert state(c) == self.fresh(new, folder)

        s = c.index(folder, sync=True, progress=False).as_dict()  # nothing to do, nothing re-encoded
        assert s["indexed"] == 0 and s["files"] == {"added": 0, "replaced": 0, "unchanged": 3, "removed": 0}

    def test_delete_by_source_folder_and_id_then_hits_follow(self, new, folder, tmp_path):
        c = new()
        ref = Collection.create(tmp_path / "ref-ix", model=NOIDF, engine="memory")  # the same deletes on memory
        try:
            assert c.index(folder, progress=False).ok and ref.index(folder, progress=False).ok
            assert c.delete(sources=[str(folder / "sub")]) == 4 == ref.delete(sources=[str(folder / "sub")])  # a folder
            assert sources_of(c) == {"refcard.pdf", "other.pdf"}
            pid = next(r["id"] for r in c.engine.read_catalog() if r["source"] == "refcard.pdf")
            assert c.delete(ids=[pid, "no-such-page"]) == 1 == ref.delete(ids=[pid])  # by id
            assert c.delete(ids=[pid]) == 0 and c.delete(sources=["nowhere.pdf"]) == 0
            assert sorted(state(c)["rows"].values()) == [("other.pdf", 1), ("other.pdf", 2), ("other.pdf", 3),
                                                         ("refcard.pdf", 2)]
            assert c.delete(sources=["other.pdf"]) == 3 == ref.delete(sources=["other.pdf"])  # by key
            info = c.info()
            assert (len(c), info["pages"], info["files"]) == (1, 1, 1), info
            rest = memory_batch(ref)  # the float weights of the page left
            wmax = float(rest.matrix.data.max())
            rest = stored_like(rest, self.stored_weights)
            for text in LIFE_QUERIES:
                got = c.search(text, k=20)
                assert {h.source for h in got} <= {"refcard.pdf"} and pid not in {h.id for h in got}
                assert_hits(got, [(h.id, h.score) for h in ref.search(text, k=20)],
                            self.score_tol(c.query_encoder.encode(text), wmax), text)
                # deleted pages take no part in the scores: exactly the stored weights of the rest
                q = self.stored_query(c.query_encoder.encode(text))
                self.assert_reference(got, brute_force(ExactScorer(rest), rest, q, None, rescale=self.rescale), 20, text)
            again = new.reopen(c)  # another object sees the deletes
            assert [h.id for h in again.search("debian reference", k=20)] == [
                h.id for h in c.search("debian reference", k=20)] and len(again) == 1
            # deleted files come back with the next plain run
            s = c.index(folder, progress=False).as_dict()
            assert s["indexed"] == 8 and len(c) == 9
            assert state(c) == self.fresh(new, folder)
        finally:
            ref.close()

    def test_a_folder_of_symlinks_names_each_file_by_its_link(self, new, folder, tmp_path, monkeypatch):
        links = make_link_folder(folder, tmp_path / "links")
        c = new()
        assert c.index(links, progress=False).ok
        assert sources_of(c) == {"refcard.pdf", "manual.pdf", "other.pdf"}
        hits = c.search("camlidl", k=20, source=str(links / "manual.pdf"))  # --source by the link's path
        assert hits and {h.source for h in hits} == {"manual.pdf"}
        assert {h.source for h in c.search("camlidl", k=20, source="other.pdf")} == {"other.pdf"}  # by its key
        monkeypatch.chdir(tmp_path)  # a name relative to the working dir, as a user types it
        assert {h.source for h in c.search("camlidl", k=20, source="links/other.pdf")} == {"other.pdf"}
        page3 = next(h for h in c.search("the", k=20, source="manual.pdf", pages=(3, 3)))
        assert np.asarray(page3.image(width=120)).std() > 10  # read through the link
        assert c.page("manual.pdf:3")["id"] == page3.id  # what `vsplade show manual.pdf:3` looks up

        (links / "other.pdf").unlink()
        s = c.index(links, sync=True, progress=False).as_dict()
        assert s["files"]["removed"] == 1 and s["removed_pages"] == 3, s
        assert state(c) == self.fresh(new, links)
        assert c.delete(sources=[str(links / "manual.pdf")]) == 4
        assert sources_of(c) == {"refcard.pdf"}

    def test_a_lexical_index_takes_new_files_with_frozen_statistics(self, new, folder, tmp_path):
        (tmp_path / "later").mkdir()
        shutil.move(folder / "other.pdf", tmp_path / "later" / "other.pdf")
        c = new("lexical")
        assert c.index(folder, progress=False).ok
        before = c.info()["encoder"]
        shutil.move(tmp_path / "later" / "other.pdf", folder / "other.pdf")
        report = c.index(folder, progress=False)
        assert report.ok and report.summary.indexed == 3
        after = c.info()
        assert after["encoder"] == before, (after["encoder"], before)  # statistics kept as created
        assert (len(c), after["pages"]) == (9, 9), after
        assert any(h.source == "other.pdf" for h in c.search("camlidl stub code", k=10))

    def test_an_encoded_dir_indexed_then_a_lexical_pdf_added(self, new, folder, tmp_path):
        """Before: encode -> index the encoded dir -> add a lexical PDF was refused ("holds pages
        from encoder {...}, not {...}"): the encoded-dir path recorded no collection properties."""
        later = tmp_path / "later.pdf"
        shutil.move(folder / "other.pdf", later)
        # what `vsplade encode` writes: the memory engine's index is an encoded dir
        enc = Collection.create(tmp_path / "enc", model="lexical", engine="memory")
        try:
            assert enc.index(folder, progress=False).ok
        finally:
            enc.close()
        c = new("lexical")
        assert c.index(tmp_path / "enc", progress=False).ok and len(c) == 6
        report = c.index(later, progress=False)
        assert report.ok and report.summary.indexed == 3
        s = c.index(folder, progress=False).as_dict()  # the encoded files keep their keys
        assert s["files"] == {"added": 0, "unchanged": 2}, s
        info = c.info()
        assert (info["pages"], info["root"], info["encoder"]["num_docs"]) == (9, str(folder), 6), info

    def test_a_run_that_reads_nothing_creates_no_index(self, new, folder):
        c = new("lexical")
        report = c.index(folder / "typo", progress=False)
        assert report.nothing_to_do and not report.ok
        with pytest.raises(EngineError):
            Collection.open(engine=self.engine, **new.location(c))
        report = c.index(folder, progress=False)  # the corrected run is accepted
        assert report.ok and report.summary.indexed == 9

    # -- errors -----------------------------------------------------------------------------

    def test_errors(self, col, location):
        missing = location()
        with pytest.raises(EngineError, match="no such index") as e:
            Collection.open(engine=self.engine, **missing)
        assert str(missing["index"]) in str(e.value) and "\n" not in str(e.value)
        for k in (0, -1):
            with pytest.raises(ValueError, match="k must be positive"):
                col.search("package", k=k)
        with pytest.raises(TypeError):
            col.search(["package", "file"])
        # a filter that names no indexed file is a mistake to report, not "no hits" (issue 23)
        with pytest.raises(EngineError, match="no-such-file.pdf") as e:
            col.search("package", k=5, source="no-such-file.pdf")
        assert "\n" not in str(e.value)
        with pytest.raises(EngineError, match="no-such-file.pdf"):
            col.search_many(["package"], k=5, source=["camlidl-1.04.doc.pdf", "no-such-file.pdf"])
        with pytest.raises(ValueError):
            col.search("package", k=5, pages=(5, 2))
        with pytest.raises(LookupError, match="no-such-file.pdf:1"):
            col.page("no-such-file.pdf:1")
        loc = {k: v for k, v in missing.items() if k != "index"}
        with pytest.raises(EngineError, match="already holds an index"):
            Collection.create(col.engine.index, model="lexical", engine=self.engine, **loc)
        assert len(col) == PAGES  # refusing did not touch it


def counter_locations(base: Path) -> Callable[[], dict]:
    """Fresh dirs under `base`, for the engines whose index is a local dir."""
    n = itertools.count()
    return lambda: {"index": base / f"ix{next(n)}"}
