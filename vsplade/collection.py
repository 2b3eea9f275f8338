"""`Collection`: the one object for the common path, text in, hits out, on every engine.

    from vsplade import Collection
    col = Collection.create("ix/", model="lexical")           # a new index (engine: lucene
    col.index("docs/")                                        #  when installed, else memory)
    for hit in col.search("send signed forms", k=5, source="a.pdf", pages=(1, 10)):
        print(hit.score, hit.source, hit.page); hit.image().show()
    col = Collection.open("ix/")                              # later: the index knows its model

Built on the lower-level API it replaces nothing of: `vsplade.pipeline.index_pages` (the
same lifecycle as `vsplade index`: resume, changed files, ``sync=True``), the engines'
writers and searchers, the torch-free query encoder (loaded from what the index records).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from .engines import Engine, EngineError, Hit, default_engine_name, get_engine_class
from .pipeline import RunReport


class Collection:
    def __init__(self, engine: Engine, model: str | None):
        self.engine = engine
        self.model = model
        self._searcher = None
        self._query_encoder = None
        self._document_encoder = None
        # search() may be called from many threads: the searcher and query encoder are built
        # once, by the first of them (two Lucene searchers opened at once would leak one)
        self._open_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, index: str | Path, model: str = "lexical", engine: str | None = None,
               overwrite: bool = False, **options: Any) -> "Collection":
        """A new, empty collection at `index` (a dir, or an index name for opensearch) whose
        pages `model` encodes. Refuses an existing index unless overwrite=True."""
        eng = _engine(index, engine, options)
        if eng.read_properties() is not None and not overwrite:
            raise EngineError(f"{index} already holds an index; Collection.open() it, or create(..., overwrite=True)")
        col = cls(eng, model)
        col._recreate = overwrite
        return col

    @classmethod
    def open(cls, index: str | Path, engine: str | None = None, model: str | None = None,
             **options: Any) -> "Collection":
        """An existing collection; its model comes from the index unless given."""
        eng = _engine(index, engine, options)
        if eng.read_properties() is None:
            raise EngineError(f"{index}: no such index (Collection.create() makes one)")
        info = eng.read_encoder_info()
        found = model or info.get("model") or info.get("name")
        if not found or found == "unknown":
            raise EngineError(f"{index}: the index does not say which model built it; pass model=")
        return cls(eng, found)

    _recreate = False

    # -- writing ---------------------------------------------------------------------------

    def index(self, *inputs: str | Path, sync: bool = False, progress: bool | None = None,
              batch_size: int | None = None, **encoder_options: Any) -> RunReport:
        """Add PDFs / images / folders (resumable; unchanged files are skipped). sync=True
        also replaces changed files and removes vanished ones. Returns the run report
        (``report.ok``, ``report.summary``, ``report.page_failures``)."""
        from .encoders import load_encoder
        from .pipeline import index_pages

        if not inputs:
            raise ValueError("index() needs at least one file, folder or glob")
        if self._document_encoder is None:
            self._document_encoder = load_encoder(self.model, **encoder_options)
        self._close_searcher()
        recreate, self._recreate = self._recreate, False
        props = None if recreate else self.engine.read_properties()
        report = index_pages([str(i) for i in inputs], self._document_encoder,
                             lambda info: self.engine.writer(info, recreate=recreate), self.model,
                             batch_size=batch_size, progress=progress, properties=props, sync=sync)
        return report

    def delete(self, sources: Sequence[str] = (), ids: Sequence[str] = ()) -> int:
        """Remove pages by source (path or key; a folder removes everything under it) or id."""
        from .catalog import match_sources

        props = self.engine.read_properties() or {}
        catalog = self.engine.read_catalog()
        matched, _ = match_sources(catalog, list(sources), Path(props["root"]) if props.get("root") else None)
        known = {r["id"] for r in catalog}
        todo = sorted(set(matched) | {i for i in ids if i in known})
        if not todo:
            return 0
        self._close_searcher()
        with self.engine.writer(self.engine.read_encoder_info()) as w:
            return w.delete(todo)

    # -- reading ---------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, source: str | Sequence[str] | None = None,
               pages: tuple[int | None, int | None] | None = None, explain: bool = False) -> list[Hit]:
        """Hits for a text query, best first. source: a key / folder key (or several) the
        hits must come from; pages: an inclusive (first, last) page range, either end None."""
        if not isinstance(query, str):
            raise TypeError("search() takes the query text; for several, use search_many()")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        terms = self.query_encoder.encode(query)
        if not terms:
            return []
        lo, hi = pages if pages is not None else (None, None)
        filters = {k_: v for k_, v in {"sources": self._source_keys(source), "page_min": lo, "page_max": hi}.items()
                   if v is not None}
        searcher = self.searcher
        return searcher.search(terms, k, explain=True, **filters) if explain else searcher.search(terms, k, **filters)

    def search_many(self, queries: Iterable[str], k: int = 10, **kwargs: Any) -> list[list[Hit]]:
        return [self.search(q, k, **kwargs) for q in queries]

    def _source_keys(self, source) -> list[str] | None:
        """Keys as the index names files: a path that exists is turned into its key."""
        if source is None:
            return None
        from .catalog import source_key

        items = [source] if isinstance(source, (str, Path)) else list(source)
        root = (self.engine.read_properties() or {}).get("root")
        return [source_key(s, Path(root)) if root and Path(s).exists() else str(s) for s in items]

    @property
    def query_encoder(self):
        if self._query_encoder is None:
            from .encoders import load_query_encoder

            with self._open_lock:
                if self._query_encoder is None:
                    self._query_encoder = load_query_encoder(self.model)
        return self._query_encoder

    @property
    def searcher(self):
        searcher = self._searcher
        if searcher is None:
            with self._open_lock:
                if self._searcher is None:
                    self._searcher = self.engine.searcher()
                searcher = self._searcher
        return searcher

    def info(self, sources: bool = False) -> dict:
        """What `vsplade info` prints: pages, files, encoder, root, created/updated, size."""
        from .catalog import summarize

        props = self.engine.read_properties()
        if props is None:
            raise EngineError(f"{self.engine.index}: no such index")
        result = summarize(self.engine.read_catalog(), props, self.engine.location_info())
        if not sources:
            result.pop("sources")
        return result

    def __len__(self) -> int:
        return len(self.engine.read_catalog())

    def _close_searcher(self) -> None:
        with self._open_lock:
            searcher, self._searcher = self._searcher, None
        if searcher is not None:
            searcher.close()

    def close(self) -> None:
        self._close_searcher()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({self.engine.index!r}, engine={self.engine.name!r}, model={self.model!r})"




def _engine(index, engine: str | None, options: dict) -> Engine:
    name = engine or default_engine_name()
    return get_engine_class(name)(index=str(index), **options)
