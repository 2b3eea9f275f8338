"""What an engine is: a writer that takes SparseBatches and a searcher that takes {term: weight}.

Connectors (vsplade-lucene, vsplade-opensearch) subclass `Engine` and register the class
under the entry-point group ``vsplade.engines``; the CLI finds them by name without
importing them eagerly. Term names always come from `vsplade.vocab.Vocabulary.terms`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence, TypeVar

from ..sparse import SparseBatch


class EngineError(RuntimeError):
    """An engine-level problem the user must fix (bad location, mismatched index...)."""


class IndexMismatchError(EngineError):
    """The target index was built with another encoder / vocabulary / mapping."""


def check_same_encoder(where: str, stored: Mapping[str, Any] | None, info: Mapping[str, Any], hint: str) -> None:
    """The one "same encoder?" check of every writer: pages from two encoders never share an
    index (their weights are not comparable). The error names what differs, not two dicts."""
    old, new = dict(stored or {}), dict(info)
    if old == new:
        return
    diff = [f"{k}: {old.get(k)!r} in the index, {new.get(k)!r} now" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]
    shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
    raise IndexMismatchError(f"{where} holds vectors from another encoder ({shown}); {hint}")


@dataclass
class Hit:
    id: str
    score: float
    source: str | None = None
    page: int | None = None
    explain: dict[str, float] | None = None  # term -> contribution, when asked
    path: str | None = None  # absolute path the page was read from, when the index knows it
    sha256: str | None = None  # content hash of that file when it was indexed
    # with explain: per query word, its share of the score and whether the page matched it
    # whole (vsplade.reasons), the pieces of one word put back together
    reasons: list[dict] | None = None
    # a hybrid hit (vsplade.fusion): each side's own score and 1-based rank, None for a side
    # that did not find the page within its depth: {"vector": .., "vector_rank": .., "text": ..,
    # "text_rank": ..}; score is then the fused score
    hybrid: dict[str, Any] | None = None

    # the query that found this hit and the collection's query encoder, set by attach_query()
    # (not dataclass fields: hits compare and print as before)
    query = None
    _query_encoder = None

    def attach_query(self, query: str, encoder=None) -> "Hit":
        """Remember the query (and the query encoder) that found this hit, so highlights() and
        image(highlight=True) need no arguments."""
        self.query, self._query_encoder = query, encoder
        return self

    def image(self, width: int | None = None, highlight: bool = False, query: str | None = None):
        """The page as a PIL image, rendered from its source file (vsplade.render); a clear
        SourceError when the file moved or changed since it was indexed. highlight=True draws
        the words carrying the matched terms (highlights())."""
        from ..render import hit_image

        image = hit_image(self._meta(), width)
        if not highlight:
            return image
        from ..highlight import draw

        return draw(image, self.highlights(query))

    def highlights(self, query: str | None = None):
        """Where on the page the query matched (vsplade.highlight.Highlights: boxes, snippet,
        the matched terms not printed on the page). The matched terms are this hit's explain
        when it has one, else the query's terms."""
        from ..highlight import highlight_page

        q = query if query is not None else self.query
        if not q:
            raise ValueError("highlights need the query: pass query=..., or search through a Collection "
                             "(which attaches it to each hit)")
        return highlight_page(self._meta(), q, self.explain, self._query_encoder)

    def snippet(self, query: str | None = None):
        """The best line or two of the page's text around the matches (a
        vsplade.highlight.Snippet: .text, .marks, .marked(), .html), None for a page without
        a text layer."""
        return self.highlights(query).snippet

    def text(self) -> str:
        """The page's text layer ("" for a page without one), read from its source file (the
        indexed version only: SourceError when it moved or changed)."""
        from ..render import hit_text

        return hit_text(self._meta())

    def _meta(self) -> dict:
        return {"id": self.id, "source": self.source, "page": self.page, "path": self.path, "sha256": self.sha256}

    def as_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "score": self.score, "source": self.source, "page": self.page}
        if self.path:
            d["path"] = self.path
        if self.explain is not None:
            d["explain"] = self.explain
        if self.reasons is not None:
            d["reasons"] = self.reasons
        if self.hybrid is not None:
            d["hybrid"] = self.hybrid
        return d


@dataclass
class IndexSummary:
    indexed: int = 0
    skipped: int = 0  # already in the index (resume)
    empty: int = 0  # pages whose vector is empty (still indexed)
    dropped_weights: int = 0  # weights that quantized to 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (doc id, reason)
    extra: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: "IndexSummary") -> None:
        self.indexed += other.indexed
        self.skipped += other.skipped
        self.empty += other.empty
        self.dropped_weights += other.dropped_weights
        self.failures.extend(other.failures)

    def as_dict(self) -> dict:
        return {
            "indexed": self.indexed,
            "skipped": self.skipped,
            "empty": self.empty,
            "dropped_weights": self.dropped_weights,
            "failures": [{"id": i, "error": e} for i, e in self.failures],
            **self.extra,
        }


class IndexWriter(ABC):
    """Streaming sink. `done_ids()` lets a re-run skip pages already written.

    The collection lifecycle (vsplade.catalog: add, replace, delete, sync) needs four more
    things of an engine; one that lacks them still indexes, and says so when asked to sync:
    `catalog()` lists every page held, `commit()` makes what was added durable and visible,
    `delete(ids)` removes pages, `set_properties()` keeps the collection's small JSON dict."""

    @abstractmethod
    def done_ids(self) -> set[str]: ...

    @abstractmethod
    def add(self, batch: SparseBatch) -> None: ...

    @abstractmethod
    def close(self) -> IndexSummary: ...

    supports_lifecycle = False

    def catalog(self) -> list[dict]:
        """{"id", "source", "sha256", "page", ...} of every page the index holds."""
        raise EngineError(f"{type(self).__name__} cannot list its pages (no --sync / delete on this engine yet)")

    def commit(self) -> None:
        """Make every page added so far durable and visible to searches."""

    def delete(self, ids: Sequence[str]) -> int:
        """Remove these pages (unknown ids are ignored); returns how many were removed.
        Takes effect at the next commit/close."""
        raise EngineError(f"{type(self).__name__} cannot delete pages yet")

    def set_properties(self, properties: Mapping[str, Any]) -> None:
        """Replace the collection properties (root, encoder state, ...), kept with the index."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Release resources after an error; what was committed stays for a resume."""


@dataclass
class PageFilter:
    """Which pages a search may return: source keys (a key, or a folder key matching every
    file under it) and an inclusive page range. Engines apply it inside the search (a
    Lucene filter query, an OpenSearch bool.filter, a mask in memory), never to a top-k."""

    sources: Sequence[str] | None = None
    page_min: int | None = None
    page_max: int | None = None

    @classmethod
    def of(cls, sources=None, page_min=None, page_max=None) -> "PageFilter | None":
        if isinstance(sources, str):
            sources = [sources]
        f = cls(list(sources) if sources else None, page_min, page_max)
        return None if f.sources is None and page_min is None and page_max is None else f

    def keywords(self) -> dict[str, Any]:
        """The filter as Searcher.search() keywords (sources, page_min, page_max; unset ones left out)."""
        out: dict[str, Any] = {}
        if self.sources is not None:
            out["sources"] = list(self.sources)
        if self.page_min is not None:
            out["page_min"] = self.page_min
        if self.page_max is not None:
            out["page_max"] = self.page_max
        return out

    def matches(self, source: str | None, page: int | None) -> bool:
        if self.sources is not None:
            src = source or ""
            if not any(src == s or src.startswith(s.rstrip("/") + "/") for s in self.sources):
                return False
        if self.page_min is not None and (page is None or page < self.page_min):
            return False
        if self.page_max is not None and (page is None or page > self.page_max):
            return False
        return True


class Searcher(ABC):
    """search(query, k, explain=False, sources=None, page_min=None, page_max=None,
    two_phase=None): the filter keywords are part of the contract (PageFilter); an engine that
    cannot filter yet raises EngineError when given one.

    two_phase (a vsplade.approximate.TwoPhase, or None for the exact search): fast approximate
    search whose returned scores are exact. A searcher that implements it sets
    ``takes_two_phase = True``; for any other, search() and batch_search() given a two_phase
    raise EngineError naming the engine (two_phase=None is accepted and ignored), so an
    engine written before the keyword existed needs no change (__init_subclass__)."""

    takes_two_phase = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("takes_two_phase", cls.takes_two_phase):
            return
        for name in ("search", "batch_search"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_refuses_two_phase", False):
                setattr(cls, name, _refusing_two_phase(fn))

    @classmethod
    def engine_label(cls) -> str:
        """The engine's name for messages: the connector package's ("vsplade_opensearch" ->
        "opensearch"), else the class name."""
        top = cls.__module__.split(".")[0]
        return top[len("vsplade_"):] if top.startswith("vsplade_") else cls.__name__

    @abstractmethod
    def search(self, query: Mapping[str, float], k: int = 10) -> list[Hit]: ...

    def batch_search(
        self, queries: Sequence[Mapping[str, float]], k: int = 10, threads: int = 1, **options: Any
    ) -> list[list[Hit]]:
        """search() for each query; options (explain, filters) as search() takes them. An
        engine with its own batching (OpenSearch _msearch) overrides this."""
        if threads <= 1 or len(queries) < 2:
            return [self.search(q, k, **options) for q in queries]
        with ThreadPoolExecutor(min(threads, len(queries))) as pool:
            return list(pool.map(lambda q: self.search(q, k, **options), queries))

    def search_grouped(self, query: Mapping[str, float], k: int = 10, per_group: int = 3, explain: bool = False,
                       **filters: Any) -> list:
        """The k best files (vsplade.grouping.FileHit), each with its per_group best pages,
        grouped inside the engine (never from an over-fetched page top-k)."""
        raise EngineError(f"{type(self).__name__} cannot group results by file yet")

    # -- hybrid search with the text layer (issue 26 item 4; vsplade.fusion) -----------------
    # An index built with text_field=True (`vsplade index --text-field`) holds each page's
    # text (SparseBatch.meta[i]["text"]) in a field analysed like Lucene's StandardAnalyzer
    # (lower-cased Unicode words, no stop words, no stemming) and scored with BM25, k1=0.9,
    # b=0.4 (Pyserini's defaults) on every engine. Collection checks the index properties'
    # "text_field" before calling these, so an engine only ever sees text searches on an
    # index that has the field.

    def search_text(self, text: str, k: int = 10, filter: PageFilter | None = None) -> list[Hit]:
        """BM25 over the pages' text field: the k best pages, score desc then indexing order
        (ties as search() breaks them), Hit.score the BM25 score. The filter applies inside
        the search, as for search(). Hits carry source/page/path/sha256 as search()'s do."""
        raise EngineError(f"the {self.engine_label()} engine has no text search yet (hybrid needs it)")

    def search_hybrid(self, query: Mapping[str, float], text: str, k: int = 10, mode: Any = "rrf",
                      depth: int | None = None, filter: PageFilter | None = None,
                      explain: bool = False) -> list[Hit]:
        """The k best pages of the vector run (search(query, depth)) fused with the text run
        (search_text(text, depth)) by vsplade.fusion.fuse: mode "rrf" (1/(60 + rank) summed)
        or "minmax:W" (each run min-max normalised over its depth hits, W x vector + (1 - W) x
        text), pyserini.fusion's formulas, ties by page id. depth: hits taken from each run
        (default vsplade.fusion.depth_for(k): max(k, 100)). Each hit's `hybrid` holds the two
        sides' scores and ranks; with explain, a page the vector side found keeps its explain
        (the vector side's reasons), a text-only page has explain {}.

        This default runs both searches and fuses in the client; an engine that fuses inside
        (OpenSearch's search pipeline) overrides it and must return the same pages in the same
        order as this default on the same index (the contract test checks it)."""
        from ..fusion import Fusion, depth_for, fuse

        fusion = Fusion.of(mode)
        depth = depth_for(k, depth)
        keywords = filter.keywords() if filter is not None else {}
        vector = self.search(query, depth, explain=explain, **keywords) if query else []
        lexical = self.search_text(text, depth, filter) if text.strip() else []
        hits = fuse(vector, lexical, fusion, k)
        if explain:
            for h in hits:
                if h.explain is None:
                    h.explain = {}
        return hits

    def index_info(self) -> dict:
        """What the index was built with (the `info` given to Engine.writer); {} if unknown."""
        return {}

    def page_terms(self, page_id: str, n: int) -> list[tuple[str, float]] | None:
        """The page's n largest (term, weight) pairs, where the searcher holds the vectors;
        None where it cannot give them (or does not know the page)."""
        return None

    can_give_page_terms = False

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _refusing_two_phase(fn):
    """fn without the two_phase keyword: None dropped, anything else an EngineError."""
    import functools

    @functools.wraps(fn)
    def method(self, *args: Any, **kw: Any):
        if kw.pop("two_phase", None) is not None:
            raise EngineError(f"the {self.engine_label()} engine has no two-phase search: search exactly "
                              "(no two_phase), or use the memory or lucene engine")
        return fn(self, *args, **kw)

    method._refuses_two_phase = True
    return method


# -- typed engine settings -------------------------------------------------------------------
# Each engine declares its settings as a frozen dataclass (Lucene: index, scale, ...; OpenSearch:
# urls, auth, TLS, shards, kind, ...). A field made with `cli_field` is one the command line may
# set (its flag: --name-with-dashes); the CLI builds only the chosen engine's settings and
# refuses any other flag with one line naming the engine and its flags (Engine.cli_options).

S = TypeVar("S")


def cli_field(default: Any = None, **kw: Any) -> Any:
    """A settings field the command line may set."""
    return field(default=default, metadata={"cli": True}, **kw)


def cli_names(settings_class: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(settings_class) if f.metadata.get("cli"))


def settings_from(settings_class: type[S], engine: str, options: Mapping[str, Any]) -> S:
    """The settings from keyword options; a name the engine does not know is an EngineError
    naming it (a typo never passes silently). None means "not given": the field's default."""
    known = {f.name for f in fields(settings_class)}
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        raise EngineError(f"the {engine} engine does not know option(s) {', '.join(unknown)} "
                          f"(it takes: {', '.join(sorted(known))})")
    return settings_class(**{k: v for k, v in options.items() if v is not None})


class Engine(ABC):
    """One engine at one location. Options come from CLI flags / keyword arguments:
    ``index`` (a dir or an index name), ``url``, credentials..., each engine takes what it
    knows and rejects what it needs but lacks (EngineError naming the flag)."""

    name: str = ""
    # the command-line options (keyword names) this engine takes besides --index: the CLI
    # refuses any other with one line naming the engine and these, instead of passing it on
    # to be ignored or misread. An engine with a settings dataclass gets them from its
    # `cli_field`s (__init_subclass__), so the list and the settings cannot drift apart.
    cli_options: frozenset[str] = frozenset()
    settings_class: type | None = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("settings_class") is not None:
            cls.cli_options = cli_names(cls.settings_class)

    def __init__(self, index: str | None = None, **options: Any):
        self.index = index
        self.options = options

    @abstractmethod
    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> IndexWriter:
        """info: encoder / vocabulary description stored with the index and checked on
        re-open (IndexMismatchError when it differs, unless recreate)."""

    @abstractmethod
    def searcher(self) -> Searcher: ...

    def read_properties(self) -> dict | None:
        """The collection properties of the existing index, None when there is no index
        yet ({} for an index without any). Never blocks on, or blocks, a writer."""
        return None

    def read_encoder_info(self) -> dict:
        """The encoder `info` the index was built with ({} if unknown)."""
        with self.searcher() as s:
            return s.index_info()

    def read_catalog(self) -> list[dict]:
        """Every page the index holds, as IndexWriter.catalog(); read side, no lock."""
        raise EngineError(f"the {self.name} engine cannot list its pages yet")

    def location_info(self) -> dict:
        """What `vsplade info` shows beyond pages and sources: location, size, ..."""
        return {"engine": self.name, "index": self.index}

    def version(self) -> Any:
        """A cheap token that changes whenever a commit changes what a reader sees (pages or
        properties): `Collection` reopens its searcher and re-reads the catalog when it moves
        (Lucene's SearcherManager.maybeRefresh). None: the engine cannot tell cheaply, and its
        searcher is opened once (an engine whose searcher always sees the latest commit)."""
        return None
