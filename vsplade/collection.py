"""`Collection`: the one object that does the work, text in, hits out, on every engine.

    from vsplade import Collection
    col = Collection.create("ix/", model="lexical")           # a new index (engine: lucene
    col.index("docs/")                                        #  when installed, else memory)
    for hit in col.search("send signed forms", k=5, source="a.pdf", pages=(1, 10)):
        print(hit.score, hit.source, hit.page); hit.image().show()
    col = Collection.open("ix/")                              # later: the index knows its model

Every front-end calls it: the `vsplade` commands (index, search, delete, info, show), `vsplade
serve` and the Python API. It owns the orchestration (pipeline runs, the query encoder, filters
turned into the engine's keywords, batch search through the engine's own batching, page
lookups) so each feature is written once; engines only write, list, delete and search.

A collection follows its index: another process that commits (`vsplade index --sync` while
`vsplade serve` runs) is seen at the next call, the way Lucene's SearcherManager refreshes:
`Engine.version()` is compared per call (a directory listing or one stat), a new searcher is
opened when it moved, and the old one is closed once the searches using it have finished.
"""

from __future__ import annotations

import difflib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .engines import Engine, EngineError, Hit, default_engine_name, get_engine_class
from .approximate import TwoPhase, wants_exact
from .grouping import DEFAULT_PAGES_PER_FILE, check_group_by
from .pipeline import RunReport


# how long a page listing is reused for an engine whose version() cannot tell (seconds)
UNVERSIONED_TTL_S = 5.0


class NoSuchSource(EngineError):
    """A --source that names no indexed file: a filter that can only give "no hits" is a
    mistake to report, not an answer."""


@dataclass
class Match:
    """What `Collection.match` found: page ids, and the requests that matched nothing."""

    ids: list[str]
    not_found: list[str]


class _Lease:
    """A searcher shared by concurrent searches; closed once it is retired and unused."""

    def __init__(self, searcher, version):
        self.searcher = searcher
        self.version = version
        self.users = 0
        self.retired = False


class Collection:
    def __init__(self, engine: Engine, model: str | None, server_side: bool = False):
        self.engine = engine
        self.model = model
        # OpenSearch --server-side-query: the cluster's ml-commons model encodes the text
        self.server_side = server_side
        self._lease: _Lease | None = None
        self._query_encoder = None
        self._document_encoder = None
        self._listing: tuple[Any, list[dict], dict] | None = None  # (version, catalog, properties)
        self._by_id: dict[str, dict] | None = None  # page id -> its catalog row, per listing
        # search() may be called from many threads: the searcher and query encoder are built
        # once, by the first of them (two Lucene searchers opened at once would leak one)
        self._lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, index: str | Path, model: str = "lexical", engine: str | Engine | None = None,
               overwrite: bool = False, text_field: bool = False, **options: Any) -> "Collection":
        """A new, empty collection at `index` (a dir, or an index name for opensearch) whose
        pages `model` encodes. Refuses an existing index unless overwrite=True. text_field=True
        also stores each page's text layer for BM25, which hybrid search needs
        (search(..., hybrid="rrf"))."""
        eng = _engine(index, engine, options)
        if eng.read_properties() is not None and not overwrite:
            raise EngineError(f"{index} already holds an index; Collection.open() it, or create(..., overwrite=True)")
        col = cls(eng, model)
        col._recreate = overwrite
        col.text_field = text_field
        return col

    @classmethod
    def open(cls, index: str | Path | None, engine: str | Engine | None = None, model: str | None = None,
             **options: Any) -> "Collection":
        """An existing collection; its model comes from the index unless given. `engine` may
        be an engine name (options are its settings) or an opened Engine."""
        eng = _engine(index, engine, options)
        if eng.read_properties() is None:
            raise EngineError(f"{eng.index or index}: no such index (Collection.create() makes one)")
        if getattr(eng, "server_side_query", False):
            return cls(eng, None, server_side=True)
        return cls(eng, model or model_of(eng))

    @classmethod
    def for_writing(cls, engine: str | Engine | None, index: str | Path | None = None, model: str | None = None,
                    recreate: bool = False, text_field: bool = False, **options: Any) -> "Collection":
        """What `vsplade index` opens: the index whether or not it exists yet (a run that finds
        nothing to read creates none); recreate drops it at the first write. text_field: store
        the pages' text for hybrid search (`--text-field`)."""
        eng = _engine(index, engine, options)
        col = cls(eng, model)
        col._recreate = recreate
        col.text_field = text_field
        return col

    _recreate = False
    # index() stores each page's text layer for BM25 (hybrid search); an index that has the
    # field keeps it whatever this says (vsplade.pipeline.check_text_field)
    text_field = False

    # -- writing ---------------------------------------------------------------------------

    def index(self, *inputs: str | Path, sync: bool = False, progress: bool | None = None,
              batch_size: int | None = None, dpi: int | None = None, encoder=None, label: str | None = None,
              **encoder_options: Any) -> RunReport:
        """Add PDFs / images / folders / globs (resumable; unchanged files are skipped), or the
        vectors of ONE encoded dir. sync=True also replaces changed files and removes vanished
        ones. Returns the run report (``report.ok``, ``report.summary``, ``report.page_failures``).
        encoder: an already loaded DocumentEncoder (else `self.model` is loaded)."""
        if not inputs:
            raise ValueError("index() needs at least one file, folder or glob")
        items = [str(i) for i in inputs]
        recreate, self._recreate = self._recreate, False
        open_writer = lambda info: self.engine.writer(info, recreate=recreate)  # noqa: E731
        try:
            return self._index(items, open_writer, recreate, sync, progress, batch_size, dpi, encoder, label,
                               encoder_options)
        finally:
            self._forget_listing()  # this object's own writes are seen at once, whatever version() says

    def _index(self, items, open_writer, recreate, sync, progress, batch_size, dpi, encoder, label,
               encoder_options) -> RunReport:
        from .pages import DEFAULT_DPI
        from .pipeline import index_encoded, index_pages, is_encoded_input

        props = None if recreate else self.engine.read_properties()
        if is_encoded_input(items):
            if sync:
                raise EngineError("sync applies to files and folders, not to an encoded dir")
            return index_encoded(items[0], open_writer, progress=progress, text_field=self.text_field,
                                 properties=props)
        if encoder is None and self._document_encoder is None:
            if not self.model:
                raise EngineError("indexing files needs a model (model='lexical' for text layers)")
            from .encoders import load_encoder

            self._document_encoder = load_encoder(self.model, **encoder_options)
        enc = encoder or self._document_encoder
        if batch_size:
            enc.batch_size = batch_size
        return index_pages(items, enc, open_writer, self.model or "unknown", dpi=dpi or DEFAULT_DPI,
                           batch_size=batch_size, progress=progress, properties=props, sync=sync,
                           label=label or "encoding + indexing", text_field=self.text_field)

    def match(self, sources: Sequence[str] = (), ids: Sequence[str] = ()) -> Match:
        """The pages named by source (path or key; a folder names everything under it) or id,
        and what named nothing."""
        from .catalog import match_sources

        catalog, props = self._listed()
        matched, unmatched = match_sources(catalog, list(sources), _root(props))
        known = {r["id"] for r in catalog}
        found = set(matched) | {i for i in ids if i in known}
        return Match(sorted(found), unmatched + [f"--id {i}" for i in ids if i not in known])

    def delete(self, sources: Sequence[str] = (), ids: Sequence[str] = ()) -> int:
        """Remove pages by source (path or key; a folder removes everything under it) or id;
        returns how many were removed (`match()` says what named nothing)."""
        todo = self.match(sources, ids).ids
        if not todo:
            return 0
        try:
            with self.engine.writer(self.engine.read_encoder_info()) as w:
                return w.delete(todo)
        finally:
            self._forget_listing()

    def _forget_listing(self) -> None:
        self._listing, self._by_id = None, None

    # -- reading ---------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, source: str | Sequence[str] | None = None,
               pages: tuple[int | None, int | None] | None = None, explain: bool = False,
               group_by: str | None = None, pages_per_file: int = DEFAULT_PAGES_PER_FILE,
               two_phase: Any = None, hybrid: Any = None, depth: int | None = None) -> list:
        """Hits for a text query, best first. source: a key / folder key (or several) the
        hits must come from; pages: an inclusive (first, last) page range, either end None.
        group_by="file": the k best files instead (vsplade.grouping.FileHit: source, score = its
        best page's, hits = its `pages_per_file` best pages), grouped inside the engine.
        two_phase: fast approximate search with exact scores (vsplade.approximate.TwoPhase, True
        for its defaults, or "PRUNE_RATIO,EXPANSION"); memory and Lucene. False / "off": the
        exact search, also on a Lucene index built with --prune cap=C (approximate by default).
        hybrid: "rrf" or "minmax:W" (W: weight on the vector side) fuses the vector ranking with
        BM25 over the pages' text (an index built with text_field=True), pyserini.fusion's
        formulas (vsplade.fusion); depth: hits taken from each side (default max(k, 100));
        each hit's `hybrid` holds both sides' scores and ranks, explain the vector side's."""
        if not isinstance(query, str):
            raise TypeError("search() takes the query text; for several, use search_many()")
        return self.search_many([query], k, source=source, pages=pages, explain=explain, group_by=group_by,
                                pages_per_file=pages_per_file, two_phase=two_phase, hybrid=hybrid, depth=depth)[0]

    def search_many(self, queries: Iterable[str], k: int = 10, source: str | Sequence[str] | None = None,
                    pages: tuple[int | None, int | None] | None = None, explain: bool = False,
                    threads: int = 1, group_by: str | None = None,
                    pages_per_file: int = DEFAULT_PAGES_PER_FILE, two_phase: Any = None,
                    hybrid: Any = None, depth: int | None = None) -> list[list]:
        """Hits for each query, through the engine's own batching (OpenSearch _msearch, the
        Lucene searcher's threads); `threads` splits the batch where the engine can."""
        texts = list(queries)
        if isinstance(queries, str) or any(not isinstance(q, str) for q in texts):
            raise TypeError("search_many() takes a list of query texts")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        check_group_by(group_by, pages_per_file)
        filters = self.filters(source, pages)
        approximate = TwoPhase.of(two_phase)
        if approximate is not None:
            if group_by is not None:
                raise EngineError("two-phase search and grouping by file do not combine yet: choose one")
            filters["two_phase"] = approximate
        elif wants_exact(two_phase) and self.searcher.takes_two_phase and group_by is None and hybrid is None:
            # the exact search also on an index that is approximate by default (--prune cap=C);
            # other engines search the way their index was built (grouping is exact already;
            # hybrid's vector side keeps the index's default)
            filters["two_phase"] = False
        if self.server_side and (group_by or explain):
            raise EngineError("a server-side query keeps its terms in the cluster: no explain or grouping by file")
        if hybrid is not None:
            if approximate is not None:
                raise EngineError("two-phase search and hybrid search do not combine yet: choose one")
            return self._search_hybrid(texts, k, filters, explain, group_by, pages_per_file, hybrid, depth)
        if self.server_side:
            with self._searcher() as s:
                return self._annotate(texts, s.batch_search_text(texts, k, **filters), False)
        encoded = [self.query_encoder.encode(t) for t in texts]
        live = [i for i, q in enumerate(encoded) if q]
        out: list[list] = [[] for _ in texts]
        if live:
            with self._searcher() as s:
                if group_by is not None:
                    found = [s.search_grouped(encoded[i], k, pages_per_file, explain=explain, **filters) for i in live]
                else:
                    found = s.batch_search([encoded[i] for i in live], k, threads=threads, explain=explain, **filters)
            for i, hits in zip(live, found):
                out[i] = hits
        return self._annotate(texts, out, explain)

    def _search_hybrid(self, texts: list[str], k: int, filters: dict, explain: bool, group_by: str | None,
                       pages_per_file: int, hybrid: Any, depth: int | None) -> list[list]:
        """Each query through the searcher's search_hybrid (vsplade.engines.base.Searcher): the
        vector run and the BM25 run fused. Grouped by file, the fused pages (at least
        k x pages_per_file) are grouped in the client (vsplade.fusion.group_fused)."""
        from .engines.base import PageFilter
        from .fusion import Fusion, depth_for, group_fused

        fusion = Fusion.of(hybrid)
        if self.server_side:
            raise EngineError("a server-side query keeps its terms in the cluster: no hybrid search with it yet")
        if not self.properties().get("text_field"):
            raise EngineError(f"{self.engine.index}: this index was built without --text-field, so it has no page "
                              "text for hybrid search; rebuild it with `vsplade index --text-field --recreate ...`")
        page_filter = PageFilter.of(filters.get("sources"), filters.get("page_min"), filters.get("page_max"))
        pages_wanted = k * pages_per_file if group_by is not None else k
        side_depth = depth_for(pages_wanted, depth)
        out: list[list] = []
        with self._searcher() as s:
            for text in texts:
                query = self.query_encoder.encode(text)
                hits = s.search_hybrid(query, text, pages_wanted if group_by is None else side_depth, fusion,
                                       side_depth, page_filter, explain=explain)
                out.append(group_fused(hits, k, pages_per_file) if group_by is not None else hits)
        return self._annotate(texts, out, explain)

    def _annotate(self, texts: Sequence[str], results: list[list], explain: bool) -> list[list]:
        """Each hit (a FileHit's pages) learns the query that found it (Hit.highlights() and
        image(highlight=True) need no arguments) and, with explain, its per-word reasons."""
        encoder = None if self.server_side else self.query_encoder
        for text, found in zip(texts, results):
            pages = [p for h in found for p in (getattr(h, "hits", None) or [h])]
            for p in pages:
                p.attach_query(text, encoder)
            if explain:
                self._add_reasons(text, pages)
        return results

    def _add_reasons(self, text: str, hits: Sequence[Hit]) -> None:
        from .reasons import word_reasons

        qenc = self.query_encoder
        words = qenc.words(text)
        display = lambda t: qenc.vocab.display(qenc.vocab.id_of(t)).strip() or t  # noqa: E731
        for h in hits:
            if h.explain is not None:
                # a hybrid hit's reasons are the vector side's: shares of that side's score
                score = (h.hybrid.get("vector") or 0.0) if h.hybrid else h.score
                h.reasons = word_reasons(words, h.explain, score, display)

    def notice(self, text: str, hits: Sequence) -> str | None:
        """A warning for results that only look like answers: with explain, when no page
        matches any query word whole (they share word pieces only). None otherwise."""
        from .reasons import weak_match_notice

        pages = [p for h in hits for p in (getattr(h, "hits", None) or [h])]
        if self.server_side or not pages or any(p.reasons is None for p in pages):
            return None
        if any(p.hybrid and p.hybrid.get("text") is not None for p in pages):
            return None  # the BM25 side matched whole words of the query: not a word-piece-only result
        return weak_match_notice(self.query_encoder.words(text), [p.reasons for p in pages])

    def filters(self, source: str | Sequence[str] | None = None,
                pages: tuple[int | None, int | None] | None = None) -> dict:
        """The engine's filter keywords (vsplade.engines.base.PageFilter): sources as the index
        names them (a path that exists becomes its key); a source that names no indexed file is
        a NoSuchSource error listing the closest names."""
        out: dict = {}
        if source is not None:
            items = [source] if isinstance(source, (str, Path)) else list(source)
            if items:
                out["sources"] = self._source_keys(items)
        lo, hi = pages if pages is not None else (None, None)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"page range {lo}-{hi}: the first page is after the last")
        if lo is not None:
            out["page_min"] = lo
        if hi is not None:
            out["page_max"] = hi
        return out

    def _source_keys(self, items: Sequence[str | Path]) -> list[str]:
        from .catalog import source_key

        catalog, props = self._listed()
        root = _root(props)
        keys = [source_key(s, root) if root and Path(s).exists() else str(s).rstrip("/") for s in items]
        indexed = {r.get("source") or "" for r in catalog}
        for given, key in zip(items, keys):
            if not any(s == key or s.startswith(key + "/") for s in indexed):
                close = difflib.get_close_matches(key, sorted(indexed), n=3, cutoff=0.5)
                hint = f"; closest: {', '.join(close)}" if close else "; `vsplade info --sources` lists them"
                raise NoSuchSource(f"source {given}: no indexed file matches it{hint}")
        return keys

    def page(self, ref: str) -> dict:
        """One indexed page's record (id, source, page, path, sha256) by its id or SOURCE:PAGE."""
        from .catalog import source_key

        catalog, props = self._listed()
        for row in catalog:
            if row.get("id") == ref:
                return row
        source, sep, number = ref.rpartition(":")
        if sep and number.isdigit():
            root = _root(props)
            keys = {source, source_key(source, root)} if root else {source}
            for row in catalog:
                if row.get("source") in keys and row.get("page") == int(number):
                    return row
        raise LookupError(f"{ref}: no such page in the index (give a page id, or SOURCE:PAGE as "
                          "`vsplade info --sources` names the file)")

    def page_by_id(self, page_id: str) -> dict:
        """The record of the page with this id, as the index holds it now (LookupError if none)."""
        self._listed()
        by_id = self._by_id
        if by_id is None:
            by_id = self._by_id = {r["id"]: r for r in self._listing[1] if r.get("id")}
        try:
            return by_id[page_id]
        except KeyError:
            raise LookupError(f"{page_id}: no such page in the index") from None

    def page_terms(self, page_id: str, n: int = 20) -> list[tuple[str, float]] | None:
        """The page's own largest weights (its V-SPLADE expansion or its lexical terms) where
        the engine's searcher holds the vectors (memory); None elsewhere."""
        with self._searcher() as s:
            return s.page_terms(page_id, n)

    def can_list_page_terms(self) -> bool:
        with self._searcher() as s:
            return bool(s.can_give_page_terms)

    def catalog(self) -> list[dict]:
        """Every page the index holds ({"id", "source", "page", "path", "sha256"}), as of now."""
        return self._listed()[0]

    def properties(self) -> dict:
        return self._listed()[1]

    def info(self, sources: bool = False) -> dict:
        """What `vsplade info` prints: pages, files, encoder, root, created/updated, size."""
        from .catalog import summarize

        catalog, props = self._listed()
        result = summarize(catalog, props, self.engine.location_info())
        result["text_field"] = bool(props.get("text_field"))  # hybrid search possible (--text-field)
        version = self.engine.version()
        if version is not None:
            result["version"] = str(version)
        if not sources:
            result.pop("sources")
        return result

    def __len__(self) -> int:
        return len(self.catalog())

    # -- frameworks (optional extras; vsplade.integrations) -----------------------------------

    def as_langchain_retriever(self, **kw: Any):
        """A LangChain BaseRetriever over this collection (k, source, pages, group_by)."""
        from .integrations.langchain import VspladeRetriever

        return VspladeRetriever(collection=self, **kw)

    def as_llama_index_retriever(self, **kw: Any):
        """A LlamaIndex BaseRetriever over this collection (k, source, pages, group_by)."""
        from .integrations.llama_index import VspladeRetriever

        return VspladeRetriever(collection=self, **kw)

    # -- the warm parts ---------------------------------------------------------------------

    @property
    def query_encoder(self):
        if self._query_encoder is None:
            from .encoders import load_query_encoder

            with self._lock:
                if self._query_encoder is None:
                    if not self.model:
                        raise EngineError("the index does not say which model built it (vectors from the official "
                                          "encoder carry no model name); pass --model (model= in Python) with the "
                                          "checkpoint or bundle that encoded them")
                    self._query_encoder = load_query_encoder(self.model)
        return self._query_encoder

    @property
    def searcher(self):
        """The current searcher (reopened when the index changed). For one search at a time;
        concurrent callers use `with col._searcher() as s`, which keeps it open while in use."""
        with self._searcher() as s:
            return s

    @contextmanager
    def _searcher(self) -> Iterator[Any]:
        lease = self._acquire()
        try:
            yield lease.searcher
        finally:
            self._release(lease)

    def _acquire(self) -> _Lease:
        version = self.engine.version()
        stale = None
        with self._lock:
            lease = self._lease
            if lease is not None and version is not None and lease.version != version:
                lease.retired = True  # closed by its last user's release, or now if it has none
                stale = lease if lease.users == 0 else None
                self._lease = lease = None
            if lease is None:
                lease = self._lease = _Lease(self.engine.searcher(), version)
            lease.users += 1
        if stale is not None:
            stale.searcher.close()
        return lease

    def _release(self, lease: _Lease) -> None:
        with self._lock:
            lease.users -= 1
            close = lease.retired and lease.users == 0
        if close:
            lease.searcher.close()

    def _listed(self) -> tuple[list[dict], dict]:
        """(catalog, properties), read again only when the index version moved."""
        version = self.engine.version()
        cached = self._listing
        if version is None:  # the engine cannot say: a listing is trusted for a few seconds
            version = ("unversioned", int(time.monotonic() // UNVERSIONED_TTL_S))
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        props = self.engine.read_properties()
        if props is None:
            raise EngineError(f"{self.engine.index}: no such index")
        catalog = self.engine.read_catalog()
        self._listing, self._by_id = (version, catalog, props), None
        return catalog, props

    def close(self) -> None:
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            lease.retired = True
            if lease.users == 0:
                lease.searcher.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({self.engine.index!r}, engine={self.engine.name!r}, model={self.model!r})"


def model_of(engine: Engine) -> str | None:
    """The model that built the index, as the index records it (None when it does not say:
    vectors from the official encoder carry no model name)."""
    info = engine.read_encoder_info()
    found = info.get("model") or info.get("name")
    return None if not found or found == "unknown" else found


def _root(props: dict) -> Path | None:
    return Path(props["root"]) if props.get("root") else None


def _engine(index, engine: str | Engine | None, options: dict) -> Engine:
    if isinstance(engine, Engine):
        if options:
            raise TypeError("give an opened Engine or an engine name with its options, not both")
        return engine
    name = engine or default_engine_name()
    return get_engine_class(name)(index=None if index is None else str(index), **options)
