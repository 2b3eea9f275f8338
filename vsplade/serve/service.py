"""What `vsplade serve` does, without HTTP: one warm query encoder + searcher over one engine,
the page catalog that page ids resolve against, explanations, and the on-disk thumbnail cache.

Framework-free (no FastAPI here) so it is testable and reusable; `vsplade.serve.app` maps it
onto HTTP. Page ids never touch the file system: an id is looked up in the catalog the
engine lists (or, for an engine that cannot list its pages yet, among the pages its searcher
has returned), and a page is rendered only from the path the index recorded for it
(vsplade.render, which refuses a file that moved or changed). Cache file names are hashes.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..engines import Engine, EngineError, Hit

log = logging.getLogger(__name__)

# widths a thumbnail is rendered at: a request is served at the smallest of these >= the
# asked width, so the disk cache holds a bounded number of variants per page
IMAGE_WIDTHS = (160, 240, 320, 480, 640, 960, 1280, 1600, 2000)
IMAGE_FORMAT = ("JPEG", "image/jpeg", ".jpg")
RENDER_VERSION = "1"  # bump when rendering changes, so cached files are not reused


class ServiceError(Exception):
    """A request the service refuses: `status` is the HTTP status, the message is shown as is."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_k: int = 100
    max_batch: int = 32
    max_query_chars: int = 1000
    max_body_bytes: int = 64 * 1024
    max_sources: int = 100
    explain_terms: int = 10
    page_terms: int = 20
    seen_pages: int = 200_000  # bound on remembered hit metadata for engines without a catalog

    def as_dict(self) -> dict:
        return asdict(self)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vsplade" / "pages"


def _supports_filters(searcher) -> bool:
    """Does this searcher filter inside the engine: search(..., sources=[keys], page_min=,
    page_max=) (the engines' contract; memory, OpenSearch)? Named parameters say so; a
    searcher that takes **filters is asked once with an empty query (TypeError: no)."""
    try:
        params = inspect.signature(searcher.search).parameters
    except (TypeError, ValueError):
        return False
    if {"sources", "page_min", "page_max"} <= set(params):
        return True
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return False
    try:
        searcher.search({}, 1, sources=["\x00vsplade-serve-probe"], page_min=1, page_max=1)
    except TypeError:
        return False
    except Exception as e:  # noqa: BLE001 - undecided: say no rather than guess
        log.info("filter probe failed (%s); filters off", e)
        return False
    return True


def _accepts(searcher, name: str) -> bool:
    try:
        params = inspect.signature(searcher.search).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class SearchService:
    """Loaded once per process. Thread-safe for searches; renders are serialized (pdfium is
    not thread-safe) and cached on disk."""

    def __init__(self, engine: Engine, model: str | None = None, cache_dir: str | os.PathLike | None = None,
                 limits: Limits | None = None):
        from ..encoders import load_query_encoder

        self.engine = engine
        self.limits = limits or Limits()
        self.searcher = engine.searcher()
        info = self.searcher.index_info() or {}
        self.encoder_info = dict(info)
        self.model = model or info.get("model") or info.get("name")
        if not self.model or self.model == "unknown":
            self.searcher.close()
            raise EngineError("the index does not say which model built it (vectors from the official encoder "
                              "carry no model name); pass --model with the checkpoint or bundle that encoded them")
        self.qenc = load_query_encoder(self.model)
        self.filters = _supports_filters(self.searcher)
        self.can_explain = _accepts(self.searcher, "explain")
        self.properties = self._try(engine.read_properties) or {}
        rows = self._try(engine.read_catalog)
        self.has_catalog = rows is not None
        self.catalog: dict[str, dict] = {r["id"]: dict(r) for r in rows or [] if r.get("id")}
        self._seen: OrderedDict[str, dict] = OrderedDict()
        self._seen_lock = threading.Lock()
        self.location = self._try(engine.location_info) or {"engine": engine.name}
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._render_lock = threading.Lock()
        self._rows: dict[str, int] | None = None
        self.started = time.time()

    @staticmethod
    def _try(fn):
        try:
            return fn()
        except EngineError as e:
            log.info("%s: %s", getattr(fn, "__name__", fn), e)
            return None

    def close(self) -> None:
        self.searcher.close()

    # -- search -----------------------------------------------------------------------------

    def check_query(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ServiceError(422, "the query is empty")
        if len(text) > self.limits.max_query_chars:
            raise ServiceError(422, f"the query is {len(text)} characters long; the limit is {self.limits.max_query_chars}")
        return text

    def filter_kwargs(self, sources: Sequence[str] | None, page_min: int | None, page_max: int | None) -> dict:
        """The engine's filter keywords; a 400 where the engine cannot filter inside its ranking
        (filtering a top-k afterwards would return fewer and wrong hits)."""
        sources = [s for s in (sources or []) if s]
        if not sources and page_min is None and page_max is None:
            return {}
        if len(sources) > self.limits.max_sources:
            raise ServiceError(422, f"{len(sources)} sources given; the limit is {self.limits.max_sources}")
        if page_min is not None and page_max is not None and page_min > page_max:
            raise ServiceError(422, f"page_min ({page_min}) is greater than page_max ({page_max})")
        if not self.filters:
            raise ServiceError(400, f"filters not supported by this engine yet ({self.engine.name}); "
                               "search without source/page_min/page_max")
        out: dict[str, Any] = {}
        if sources:
            out["sources"] = sources
        if page_min is not None:
            out["page_min"] = page_min
        if page_max is not None:
            out["page_max"] = page_max
        return out

    def search(self, text: str, k: int, explain: bool = False, filters: Mapping[str, Any] | None = None) -> dict:
        self.check_query(text)
        if not 1 <= k <= self.limits.max_k:
            raise ServiceError(422, f"k must be between 1 and {self.limits.max_k}, got {k}")
        t0 = time.perf_counter()
        q = self.qenc.encode(text)
        kw = dict(filters or {})
        if explain and self.can_explain:
            kw["explain"] = True
        hits = self.searcher.search(q, k, **kw) if q else []
        took = (time.perf_counter() - t0) * 1000
        self._remember(hits)
        return {"query": text, "terms": len(q), "took_ms": round(took, 3),
                "hits": [self.hit_dict(h, explain) for h in hits]}

    def search_many(self, texts: Sequence[str], k: int, explain: bool = False,
                    filters: Mapping[str, Any] | None = None) -> list[dict]:
        if not texts:
            raise ServiceError(422, "queries is empty")
        if len(texts) > self.limits.max_batch:
            raise ServiceError(422, f"{len(texts)} queries in one request; the limit is {self.limits.max_batch}")
        for t in texts:
            self.check_query(t)
        return [self.search(t, k, explain, filters) for t in texts]

    def term_display(self, term: str) -> str:
        try:
            return self.qenc.vocab.display(self.qenc.vocab.id_of(term)).strip() or term
        except (KeyError, ValueError):
            return term

    def hit_dict(self, h: Hit, explain: bool) -> dict:
        d: dict[str, Any] = {"id": h.id, "score": h.score, "source": h.source, "page": h.page}
        if explain:
            items = list((h.explain or {}).items())
            items.sort(key=lambda kv: -kv[1])
            d["explain"] = [{"term": t, "token": self.term_display(t), "contribution": float(c)}
                            for t, c in items[: self.limits.explain_terms]]
            d["matched_terms"] = len(items)
        return d

    def _remember(self, hits: Sequence[Hit]) -> None:
        """Engines that cannot list their pages: the ids their searcher returned are indexed
        pages, so those (and only those) resolve."""
        if self.has_catalog or not hits:
            return
        with self._seen_lock:
            for h in hits:
                self._seen[h.id] = {"id": h.id, "source": h.source, "page": h.page, "path": h.path,
                                    "sha256": h.sha256}
                self._seen.move_to_end(h.id)
            while len(self._seen) > self.limits.seen_pages:
                self._seen.popitem(last=False)

    # -- pages ------------------------------------------------------------------------------

    def page_meta(self, page_id: str) -> dict:
        meta = self.catalog.get(page_id) if self.has_catalog else self._seen.get(page_id)
        if meta is None:
            raise ServiceError(404, "no such page in this index" if self.has_catalog else
                               "no such page among the pages this service has returned (this engine cannot "
                               "list its pages yet, so only ids from earlier search results resolve)")
        return meta

    def page_info(self, page_id: str, terms: int = 0) -> dict:
        meta = self.page_meta(page_id)
        out = {"id": meta["id"], "source": meta.get("source"), "page": meta.get("page"),
               "sha256": meta.get("sha256"), "renderable": bool(meta.get("path"))}
        if terms:
            out["top_terms"] = self.page_terms(page_id, min(terms, self.limits.page_terms * 5))
        return out

    def page_terms(self, page_id: str, n: int) -> list[dict] | None:
        """The page's own largest weights (its V-SPLADE expansion, or its lexical terms), where
        the searcher can give its vector; None where it cannot."""
        get = getattr(self.searcher, "page_terms", None)
        if callable(get):
            pairs = get(page_id, n)
        else:
            batch = getattr(getattr(self.searcher, "scorer", None), "batch", None)
            if batch is None:
                return None
            if self._rows is None:
                self._rows = {i: r for r, i in enumerate(batch.ids)}
            row = self._rows.get(page_id)
            if row is None:
                return None
            ids, weights = batch.row(row)
            order = sorted(range(len(ids)), key=lambda j: -weights[j])[:n]
            pairs = [(self.qenc.vocab.term(int(ids[j])), float(weights[j])) for j in order]
        return [{"term": t, "token": self.term_display(t), "weight": float(w)} for t, w in pairs]

    @staticmethod
    def snap_width(width: int | None) -> int:
        if width is None:
            return 320
        for w in IMAGE_WIDTHS:
            if w >= width:
                return w
        return IMAGE_WIDTHS[-1]

    def image(self, page_id: str, width: int | None) -> tuple[bytes, str, bool]:
        """(encoded image, etag, was it already cached) for the page at a snapped width.
        Rendered once per (page, width) and kept under cache_dir; a cache that cannot be
        written is logged and the picture served anyway."""
        from ..render import hit_image

        meta = self.page_meta(page_id)
        if not meta.get("path") and not self.has_catalog:
            raise ServiceError(409, f"the {self.engine.name} engine does not record which file a page was read "
                               "from yet, so its pages cannot be shown; search results still work")
        w = self.snap_width(width)
        key = hashlib.sha256("\n".join([RENDER_VERSION, meta["id"], str(meta.get("sha256") or ""),
                                        str(meta.get("path") or ""), str(meta.get("page")), str(w)]).encode()
                             ).hexdigest()[:40]
        etag = f'"{key}"'
        path = self.cache_dir / key[:2] / (key + IMAGE_FORMAT[2])
        cached = self._read(path)
        if cached is not None:
            return cached, etag, True
        with self._render_lock:  # pdfium is not thread-safe; one render at a time
            cached = self._read(path)
            if cached is not None:
                return cached, etag, True
            try:
                img = hit_image(meta, w)
            except (ValueError, OSError) as e:  # SourceError (moved/changed) is a ValueError
                raise ServiceError(409, str(e)) from None
            buf = io.BytesIO()
            img.convert("RGB").save(buf, IMAGE_FORMAT[0], quality=88, optimize=True)
            data = buf.getvalue()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            except OSError as e:
                log.warning("page image cache %s not writable (%s); serving without caching", self.cache_dir, e)
        return data, etag, False

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    # -- info -------------------------------------------------------------------------------

    def info(self) -> dict:
        from ..catalog import summarize

        rows = list(self.catalog.values()) if self.has_catalog else []
        s = summarize(rows, self.properties, self.location) if self.has_catalog else {**self.location}
        sources = s.pop("sources", None)
        out = {
            **s,
            "model": self.model,
            "encoder": self.encoder_info or s.get("encoder"),
            "catalog": self.has_catalog,
            "filters": self.filters,
            "explain": self.can_explain,
            "page_terms": callable(getattr(self.searcher, "page_terms", None))
                          or getattr(getattr(self.searcher, "scorer", None), "batch", None) is not None,
            "limits": self.limits.as_dict(),
            "image_widths": list(IMAGE_WIDTHS),
        }
        if sources is not None:
            out["sources"] = sources[:1000]
            out["sources_truncated"] = len(sources) > 1000
        return out
