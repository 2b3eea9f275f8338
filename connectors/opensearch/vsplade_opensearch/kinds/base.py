"""IndexKind: one way of storing page vectors in an OpenSearch index, and the registry.

A kind owns everything that differs between index layouts: the vector field's mapping and
index settings, what it records in `_meta.vsplade` (and so how it is recognised later), the
check that an existing index holds the same parameters, the document builder, the search
bodies for term weights and for plain text, its filters, and the one-line refusals for what
it cannot do. The engine, writer and searcher never test which kind they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.vocab import TERM_NAMING

from ..query import SearchOptions, filter_clauses

if TYPE_CHECKING:
    from ..connection import Connection
    from ..searcher import OpenSearchSearcher
    from ..settings import OpenSearchSettings

_KINDS: dict[str, type["IndexKind"]] = {}
DEFAULT_KIND = "rank_features"


def register(cls: type["IndexKind"]) -> type["IndexKind"]:
    """Class decorator: make `cls` known by its `name` (and by its `meta_key` in _meta)."""
    if cls.name in _KINDS:
        raise ValueError(f"index kind {cls.name!r} registered twice")
    if cls.meta_key is None and cls.name != DEFAULT_KIND:
        raise ValueError(f"index kind {cls.name!r} needs a meta_key: only the default kind is unmarked")
    _KINDS[cls.name] = cls
    return cls


def kind_names() -> list[str]:
    return sorted(_KINDS)


def kind_named(name: str) -> type["IndexKind"]:
    try:
        return _KINDS[name]
    except KeyError:
        raise EngineError(f"unknown OpenSearch index kind {name!r} (kinds: {', '.join(kind_names())})") from None


def default_kind() -> type["IndexKind"]:
    return _KINDS[DEFAULT_KIND]


def kind_of_meta(meta: Mapping[str, Any]) -> type["IndexKind"]:
    """The kind an index's `_meta.vsplade` records: the kind whose key it holds, else the default."""
    marked = [k for k in _KINDS.values() if k.meta_key is not None and meta.get(k.meta_key)]
    if len(marked) > 1:
        raise IndexMismatchError(f"index _meta names several kinds ({', '.join(k.name for k in marked)})")
    return marked[0] if marked else default_kind()


def mismatch(index: str, stored: type["IndexKind"], wanted: type["IndexKind"],
             hint: str = "use another --index or --recreate") -> IndexMismatchError:
    """The error for writing kind `wanted` into an index of kind `stored`."""
    if stored.flag:
        return IndexMismatchError(f"index {index!r} was built with {stored.flag} ({stored.layout}); "
                                  f"write to it with {stored.flag} too; {hint}")
    return IndexMismatchError(f"index {index!r} was built without {wanted.flag} ({stored.layout}); "
                              f"{wanted.flag} needs a new index; {hint}")


class IndexKind(ABC):
    name: ClassVar[str]
    flag: ClassVar[str | None] = None  # the CLI flag that asks for this kind (None: the default kind)
    meta_key: ClassVar[str | None] = None  # its entry in _meta.vsplade, which marks an index of this kind
    layout: ClassVar[str]  # a few words for messages: what the vector field holds
    vector_type: ClassVar[str] = "rank_features"
    # whether a new index keeps the page vector in `_source` (settings.vector_source overrides):
    # left out, an index is 3.7x smaller once merged and a k=100 search 6x faster (its fetch
    # phase parsed ~11 KB of weights per hit; benchmarks/RESULTS.md); given up: reindex / update_by_query from _source, and reading the
    # weights back (explain reads Lucene's explanation instead)
    vector_in_source: ClassVar[bool] = False

    # ---- choosing: from the settings for a new index, from _meta for an existing one ----
    @classmethod
    def for_new_index(cls, settings: "OpenSearchSettings", info: Mapping[str, Any], conn: "Connection") -> "IndexKind":
        return cls.from_meta({})

    @classmethod
    def for_existing(cls, meta: Mapping[str, Any], settings: "OpenSearchSettings", info: Mapping[str, Any],
                     conn: "Connection") -> "IndexKind":
        """To write into an index of this kind (its _meta.vsplade `meta`)."""
        return cls.from_meta(meta)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "IndexKind":
        """To search an index of this kind: its parameters from its _meta, nothing loaded."""
        return cls()

    # ---- the index layout ------------------------------------------------------------------
    @property
    def term_naming(self) -> str:
        return TERM_NAMING

    def meta(self) -> dict:
        """What a new index of this kind records in `_meta.vsplade` besides the common fields
        (its `meta_key` entry with the kind's parameters)."""
        return {}

    def index_settings(self) -> dict:
        return {}

    def field_mapping(self) -> dict:
        return {"type": self.vector_type}

    def check_stored(self, index: str, meta: Mapping[str, Any], hint: str) -> None:
        """Raise IndexMismatchError unless the existing index of this kind (its `meta`) has
        parameters this writer can add to."""

    def joined(self, meta: Mapping[str, Any]) -> "IndexKind":
        """This kind after joining an existing index of the same kind (another writer created
        it first): the index's stored parameters win."""
        return self

    # ---- documents -------------------------------------------------------------------------
    @abstractmethod
    def document_builder(self, index: str | None, info: Mapping[str, Any] | None, *, vocab=None,
                         field: str, snippet_chars: int = 500):
        """A documents.DocumentBuilder-like object: build(SparseBatch) -> BuiltDocs."""

    # ---- searching -------------------------------------------------------------------------
    def open_searcher(self, searcher: "OpenSearchSearcher", server_side: bool, model_id: str | None) -> None:
        """Checks (and lookups) when a searcher opens an index of this kind."""
        if server_side:
            raise EngineError(f"index {searcher.index!r} ({self.layout}) was not built with --server-side-query: "
                              "search it without --server-side-query")

    def filters(self, searcher: "OpenSearchSearcher", opts: SearchOptions) -> list[dict] | None:
        """The filter clauses of a search (PageFilter + raw clauses); None: nothing can match."""
        return filter_clauses(opts)

    @abstractmethod
    def term_body(self, searcher: "OpenSearchSearcher", query: Mapping[str, float], k: int, opts: SearchOptions,
                  explain: bool) -> dict:
        """The search body for {term: weight} (the query encoded here)."""

    def text_body(self, searcher: "OpenSearchSearcher", text: str, k: int, opts: SearchOptions) -> dict:
        raise EngineError("plain-text search needs a searcher opened with server_side=True (--server-side-query)")
