"""What the RAG adapters share: opening the collection they search, one search with the
adapter's fields, and a hit turned into (text, metadata) for a framework's document/node.

The text is the page's text layer (`Hit.text()`) or, with content="snippet", its best lines
around the matches (`Hit.snippet()`); `page_content()` is the one place that chooses. The metadata carry what a reader needs to get the page
back: its id, source, page, score, path, sha256, and `image`, the `vsplade show` command that
renders it; in Python `page_image(metadata)` renders it from the same fields. Torch-free.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any, Sequence

from ..engines import Hit

log = logging.getLogger(__name__)

META_KEYS = ("id", "source", "page", "score", "path", "sha256")


def open_collection(collection=None, index=None, engine=None, model=None, settings: dict | None = None):
    """The adapter's collection: the one given, else `Collection.open(index, engine, model, **settings)`."""
    from ..collection import Collection

    if collection is not None:
        if index is not None or engine is not None or settings:
            raise ValueError("give a collection, or index (+ engine, settings), not both")
        return collection
    if index is None:
        raise ValueError("VspladeRetriever needs collection=Collection.open(...) or index=... (an index dir or name)")
    return Collection.open(index, engine=engine, model=model, **(settings or {}))


CONTENT = ("page", "snippet")


def search(collection, query: str, k: int, source: str | Sequence[str] | None = None,
           pages: tuple[int | None, int | None] | None = None, group_by: str | None = None,
           pages_per_file: int | None = None) -> list:
    """Collection.search with the adapter's fields: Hits, or FileHits with group_by="file"."""
    kw: dict[str, Any] = {"source": source, "pages": tuple(pages) if pages is not None else None}
    if group_by is not None:
        kw["group_by"] = group_by
        if pages_per_file is not None:
            kw["pages_per_file"] = pages_per_file
    return collection.search(query, k=k, **kw)


def page_content(hit: Hit, query: str, content: str = "page") -> tuple[str, str | None]:
    """(the text a framework shows for this hit, a warning or None). content="page": the page's
    whole text layer; "snippet": the best line or two around the matches (Hit.snippet). A page
    without a text layer gives ""; a moved or changed source file gives "" and a warning
    instead of failing the whole retrieval."""
    from ..render import SourceError

    try:
        if content == "snippet":
            snip = hit.snippet(query)
            return (snip.text if snip is not None else ""), None
        return hit.text(), None
    except (SourceError, OSError) as e:
        log.warning("%s: %s", hit.id, e)
        return "", str(e)


def show_command(collection) -> list[str]:
    """`vsplade show` arguments that reach this collection's pages (the page id goes before)."""
    eng = collection.engine
    args = ["--engine", eng.name, "--index", str(eng.index)]
    conn = getattr(eng, "conn", None)
    if conn is not None and getattr(conn, "url", None):
        url = conn.redact(conn.url) if hasattr(conn, "redact") else conn.url
        args += ["--url", url]
    return args


def hit_record(hit: Hit, query: str, show_args: Sequence[str], content: str = "page") -> tuple[str, dict[str, Any]]:
    """(text, metadata) of one page hit; metadata values are str, int, float or None (lists of
    them for a file), as the frameworks' metadata filters and serialisers expect."""
    text, warning = page_content(hit, query, content)
    meta: dict[str, Any] = {"id": hit.id, "source": hit.source, "page": hit.page, "score": float(hit.score),
                            "path": hit.path, "sha256": hit.sha256,
                            "image": shlex.join(["vsplade", "show", hit.id, *show_args, "--out", "page.png"])}
    if warning:
        meta["warning"] = warning
    return text, meta


def records(found: list, query: str, show_args: Sequence[str], content: str = "page") -> list[tuple[str, dict]]:
    """(text, metadata) per result. A FileHit (group_by="file") is one record for the file: its
    best pages' texts joined by blank lines, the metadata of its best page (id, page, image...)
    with the file's score, and `pages` / `page_ids`, its best pages in rank order."""
    out = []
    for r in found:
        if isinstance(r, Hit):
            out.append(hit_record(r, query, show_args, content))
            continue
        parts = [hit_record(h, query, show_args, content) for h in r.hits]
        if not parts:
            continue
        meta = dict(parts[0][1], score=float(r.score), source=r.source,
                    pages=[m["page"] for _, m in parts], page_ids=[m["id"] for _, m in parts])
        warnings = [m["warning"] for _, m in parts if m.get("warning")]
        if warnings:
            meta["warning"] = "; ".join(warnings)
        out.append(("\n\n".join(t for t, _ in parts if t), meta))
    return out


def adapter_records(adapter, query: str) -> list[tuple[str, dict]]:
    """(text, metadata) for each hit of `query` with an adapter's fields (collection or index,
    engine, model, settings; k, source, pages, group_by, pages_per_file, content). The
    collection is opened on the first search and kept in the adapter's `_col` (and the show
    command in `_show`): both frameworks build the retriever long before it is asked anything."""
    if adapter._col is None:
        adapter._col = open_collection(adapter.collection, adapter.index, adapter.engine, adapter.model,
                                       adapter.settings)
        adapter._show = show_command(adapter._col)
    found = search(adapter._col, query, adapter.k, adapter.source, adapter.pages, adapter.group_by,
                   adapter.pages_per_file)
    return records(found, query, adapter._show, adapter.content)


def page_image(metadata: dict, width: int | None = None):
    """The page of a retrieved document/node as a PIL image, rendered from its source file
    (the indexed version only; vsplade.render.SourceError when it moved or changed)."""
    hit = Hit(id=metadata["id"], score=float(metadata.get("score") or 0.0), source=metadata.get("source"),
              page=metadata.get("page"), path=metadata.get("path"), sha256=metadata.get("sha256"))
    return hit.image(width)
