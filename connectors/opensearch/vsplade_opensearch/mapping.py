"""The index layout: mapping, settings and the `_meta` block that says what built the index.

One document per page::

    {"id", "source", "page", "title", "text", "encoder", "encoder_version", "<field>": {term: w}}

`<field>` (default ``vector``) holds the page vector as the index kind lays it out
(kinds/: ``rank_features`` keyed by the core vocabulary's term names by default).
``text`` holds a snippet of the page text, or its whole text layer for a collection built with
--text-field (hybrid search: BM25 k1=0.9, b=0.4 through the `bm25_vsplade` similarity every new
index defines). ``_meta.vsplade`` holds the writer `info`, the vocabulary / term-naming contract and the
kind's own entry; an index whose `_meta` differs is refused (IndexMismatchError) unless the
caller asks to recreate it.
"""

from __future__ import annotations

from typing import Any, Mapping

from vsplade.engines.base import IndexMismatchError, check_same_encoder
from vsplade.vocab import VOCAB_SIZE

from .kinds import IndexKind, default_kind, kind_of_meta, mismatch
from .settings import DEFAULT_FIELD

INDEX_FORMAT = "vsplade-opensearch"
FORMAT_VERSION = 1
META_KEY = "vsplade"
# Set while a bulk job has refresh disabled, so a crashed job's successor restores the right value.
PENDING_REFRESH_KEY = "restore_refresh_interval"
UNSET = "__unset__"

METADATA_FIELDS: dict[str, dict] = {
    "id": {"type": "keyword"},
    "source": {"type": "keyword"},
    "page": {"type": "integer"},
    "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
    # the page text: a snippet, or with --text-field the whole text layer, BM25-searchable for
    # hybrid search (search_text); scored as on every engine (hybrid contract): the standard
    # analyzer (Lucene's StandardAnalyzer: lower-cased UAX#29 words, no stop words, no stemming),
    # BM25 with k1=0.9, b=0.4 (Pyserini's defaults), index setting TEXT_SIMILARITY below
    "text": {"type": "text", "analyzer": "standard", "similarity": "bm25_vsplade"},
    "encoder": {"type": "keyword"},
    "encoder_version": {"type": "keyword"},
    # source identity (vsplade.catalog): where the page was read from and which version
    "path": {"type": "keyword", "index": False},
    "sha256": {"type": "keyword"},
}
# Fields added after FORMAT_VERSION 1 indexes were created: added to such an index's mapping
# on open (an additive mapping change), so its new pages can carry them.
LATER_FIELDS = ("path", "sha256")
COLLECTION_KEY = "collection"  # vsplade.catalog properties, inside _meta.vsplade
TEXT_FIELD = "text"
TEXT_SIMILARITY = "bm25_vsplade"
BM25_K1, BM25_B = 0.9, 0.4  # the hybrid contract's BM25 for every engine (Pyserini's defaults)


def text_similarity_settings() -> dict:
    """The index-level similarity the `text` field names (every new index has it: a similarity
    cannot be added to a field, or to an open index, later)."""
    return {TEXT_SIMILARITY: {"type": "BM25", "k1": BM25_K1, "b": BM25_B}}


def has_text_similarity(mapping: Mapping[str, Any]) -> bool:
    """Whether the index's `text` field is scored with the contract's BM25 (indexes created
    before hybrid search use the cluster default, k1=1.2, b=0.75)."""
    return ((mapping.get("properties") or {}).get(TEXT_FIELD) or {}).get("similarity") == TEXT_SIMILARITY


def text_field_on(meta: Mapping[str, Any]) -> bool:
    """Whether the collection was built with --text-field (its properties, _meta.vsplade.collection)."""
    return bool((meta.get(COLLECTION_KEY) or {}).get("text_field"))


def vsplade_meta(info: Mapping[str, Any], field: str, kind: IndexKind | None = None) -> dict:
    kind = kind or default_kind()()
    return {
        "format": INDEX_FORMAT,
        "version": FORMAT_VERSION,
        "encoder": dict(info),
        "vocab_size": VOCAB_SIZE,
        "term_naming": kind.term_naming,
        "field": field,
        **kind.meta(),
    }


def index_body(
    info: Mapping[str, Any],
    field: str = DEFAULT_FIELD,
    shards: int | None = 1,
    replicas: int | None = None,
    refresh_interval: str | None = None,
    kind: IndexKind | None = None,
    vector_source: bool | None = None,
) -> dict:
    """The create-index body: metadata fields, the vector field as `kind` (default:
    rank_features) maps it, and the _meta. `vector_source`: keep the vector in `_source`
    (None: the kind's default, IndexKind.vector_in_source); searches never read it there."""
    kind = kind or default_kind()()
    keep_vector = kind.vector_in_source if vector_source is None else bool(vector_source)
    settings: dict[str, Any] = {}
    if shards is not None:
        settings["number_of_shards"] = int(shards)
    if replicas is not None:
        settings["number_of_replicas"] = int(replicas)
    if refresh_interval is not None:
        settings["refresh_interval"] = refresh_interval
    settings["similarity"] = text_similarity_settings()
    settings.update(kind.index_settings())
    mappings: dict[str, Any] = {
        "_meta": {META_KEY: vsplade_meta(info, field, kind)},
        # strict: a typo'd field fails loudly instead of growing the mapping
        "dynamic": "strict",
        "properties": {**METADATA_FIELDS, field: kind.field_mapping()},
    }
    if not keep_vector:
        mappings["_source"] = {"excludes": [field]}
    return {"settings": {"index": settings}, "mappings": mappings}


def mapping_of(get_mapping_response: Mapping[str, Any]) -> dict:
    """The single index's mapping out of a GET _mapping answer (keyed by concrete index name,
    which differs from the requested name when that is an alias)."""
    if len(get_mapping_response) != 1:
        names = ", ".join(sorted(get_mapping_response))
        raise IndexMismatchError(f"the name resolves to several indices ({names}); give one index")
    (entry,) = get_mapping_response.values()
    return entry.get("mappings", {})


def is_vsplade_meta(meta: Mapping[str, Any] | None) -> bool:
    return bool(meta) and meta.get("format") == INDEX_FORMAT


def check_compatible(index: str, mapping: Mapping[str, Any], info: Mapping[str, Any], field: str,
                     kind: IndexKind | None = None) -> dict:
    """Raise IndexMismatchError unless `mapping` is a vsplade index of `kind` (default:
    rank_features) built with `info` and the kind's parameters. Returns the stored vsplade meta."""
    kind = kind or default_kind()()
    meta = (mapping.get("_meta") or {}).get(META_KEY)
    hint = "use another --index or --recreate"
    if not is_vsplade_meta(meta):
        raise IndexMismatchError(f"index {index!r} exists and was not created by vsplade (no _meta.{META_KEY}); {hint}")
    stored_field = meta.get("field", DEFAULT_FIELD)
    if stored_field != field:
        raise IndexMismatchError(f"index {index!r} keeps vectors in field {stored_field!r}, not {field!r}; {hint}")
    stored_kind = kind_of_meta(meta)
    if stored_kind is not type(kind):
        raise mismatch(index, stored_kind, type(kind), hint)
    ftype = (mapping.get("properties") or {}).get(field, {}).get("type")
    if ftype != kind.vector_type:
        raise IndexMismatchError(f"index {index!r}: field {field!r} is {ftype or 'missing'}, not {kind.vector_type}; {hint}")
    kind.check_stored(index, meta, hint)
    for key, want in (("term_naming", kind.term_naming), ("vocab_size", VOCAB_SIZE)):
        if meta.get(key) != want:
            raise IndexMismatchError(f"index {index!r} uses {key}={meta.get(key)!r}, this vsplade writes {want!r}; {hint}")
    check_same_encoder(f"index {index!r}", meta.get("encoder"), info, hint)
    return meta


def stored_meta(mapping: Mapping[str, Any]) -> dict:
    return dict((mapping.get("_meta") or {}).get(META_KEY) or {})
