"""What `vsplade serve` does, without HTTP: request limits, hits as JSON, explanations, page
lookups and the on-disk thumbnail cache, over one `Collection` (which does the searching and
follows its index as other processes commit).

Framework-free (no FastAPI here) so it is testable and reusable; `vsplade.serve.app` maps it
onto HTTP. Page ids never touch the file system: an id is looked up in the catalog the index
holds now, and a page is rendered only from the path the index recorded for it
(vsplade.render, which refuses a file that moved or changed). Cache file names are hashes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..engines import Engine, Hit

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

    def as_dict(self) -> dict:
        return asdict(self)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vsplade" / "pages"


def _round_scores(row: dict) -> None:
    """Scores as `vsplade search --json` and TREC runs write them (vsplade.runs.score_texts:
    Pyserini's 6 decimals, more only where a near-tie needs them to keep its order)."""
    from ..runs import score_texts

    def fix(items: list) -> None:
        for d, text in zip(items, score_texts([d["score"] for d in items])):
            d["score"] = float(text)

    fix(row["hits"])
    for f in row.get("files") or []:
        fix(f["hits"])
    if row.get("files"):
        fix(row["files"])


class SearchService:
    """Loaded once per process over one `Collection` (which follows its index: another
    process's commits are seen at the next request). Thread-safe for searches; renders are
    serialized (pdfium is not thread-safe) and cached on disk."""

    def __init__(self, collection, cache_dir: str | os.PathLike | None = None, limits: Limits | None = None):
        self.collection = collection
        self.engine: Engine = collection.engine
        self.limits = limits or Limits()
        self.encoder_info = dict(self.engine.read_encoder_info() or {})
        self.model = collection.model
        self.qenc = collection.query_encoder  # loaded before the first request (and its errors said at start)
        self.location = self.engine.location_info()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._render_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._start: tuple[Any, dict] | None = None  # (catalog version, start view)
        self.started = time.time()

    def close(self) -> None:
        self.collection.close()

    # -- search -----------------------------------------------------------------------------

    def check_query(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ServiceError(422, "the query is empty")
        if len(text) > self.limits.max_query_chars:
            raise ServiceError(422, f"the query is {len(text)} characters long; the limit is {self.limits.max_query_chars}")
        return text

    def filter_kwargs(self, sources: Sequence[str] | None, page_min: int | None, page_max: int | None,
                      group_by: str | None = None, pages_per_file: int = 3, hybrid: str | None = None) -> dict:
        """The request's filters, checked against the limits (the collection turns them into
        the engine's keywords: every engine filters inside its ranking)."""
        sources = [s for s in (sources or []) if s]
        if len(sources) > self.limits.max_sources:
            raise ServiceError(422, f"{len(sources)} sources given; the limit is {self.limits.max_sources}")
        if page_min is not None and page_max is not None and page_min > page_max:
            raise ServiceError(422, f"page_min ({page_min}) is greater than page_max ({page_max})")
        out: dict[str, Any] = {}
        if sources:
            out["source"] = sources
        if page_min is not None or page_max is not None:
            out["pages"] = (page_min, page_max)
        if group_by is not None:
            out.update(group_by=group_by, pages_per_file=pages_per_file)
        if hybrid:
            from ..fusion import Fusion

            try:
                out["hybrid"] = str(Fusion.of(hybrid))  # vector + BM25 over the text layer (vsplade.fusion)
            except ValueError as e:
                raise ServiceError(422, str(e)) from None
        return out

    def search(self, text: str, k: int, explain: bool = False, filters: Mapping[str, Any] | None = None,
               snippet: bool = False) -> dict:
        return self.search_many([text], k, explain, filters, batch=False, snippet=snippet)[0]

    def search_many(self, texts: Sequence[str], k: int, explain: bool = False,
                    filters: Mapping[str, Any] | None = None, batch: bool = True, snippet: bool = False) -> list[dict]:
        from ..collection import NoSuchSource

        if not texts:
            raise ServiceError(422, "queries is empty")
        if batch and len(texts) > self.limits.max_batch:
            raise ServiceError(422, f"{len(texts)} queries in one request; the limit is {self.limits.max_batch}")
        for t in texts:
            self.check_query(t)
        if not 1 <= k <= self.limits.max_k:
            raise ServiceError(422, f"k must be between 1 and {self.limits.max_k}, got {k}")
        t0 = time.perf_counter()
        try:
            results = self.collection.search_many(texts, k, explain=explain, **dict(filters or {}))
        except NoSuchSource as e:
            raise ServiceError(404, str(e)) from None
        took = round((time.perf_counter() - t0) * 1000 / len(texts), 3)
        out = []
        for t, hits in zip(texts, results):
            row = {"query": t, "terms": len(self.qenc.encode(t)), "took_ms": took}
            if (filters or {}).get("group_by"):
                row["hits"] = []
                row["files"] = [{"source": f.source, "score": f.score,
                                 "hits": [self.hit_dict(h, explain) for h in f.hits]} for f in hits]
            else:
                row["hits"] = [self.hit_dict(h, explain) for h in hits]
            _round_scores(row)
            notice = self.collection.notice(t, hits)
            if notice:
                row["notice"] = notice  # no page matches a query word whole (vsplade.reasons)
            out.append(row)
        if snippet:
            self._add_snippets(out, results)
        return out

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
            d["explain"] = [{"term": t, "token": self.term_display(t), "contribution": round(float(c), 6)}
                            for t, c in items[: self.limits.explain_terms]]
            d["matched_terms"] = len(items)
            if h.reasons is not None:
                d["reasons"] = h.reasons
        if h.hybrid is not None:
            d["hybrid"] = h.hybrid
        return d

    # -- where on the page (vsplade.highlight) -------------------------------------------------

    def _add_snippets(self, rows: list[dict], results: list) -> None:
        """Each hit dict gets "snippet": the best line or two of its page around the matches
        ({text, marks, html}; null for a page without a text layer or whose file moved)."""
        for row, found in zip(rows, results):
            if row.get("files") is not None:
                pairs = [(d, h) for f_row, f in zip(row["files"], found) for d, h in zip(f_row["hits"], f.hits)]
            else:
                pairs = list(zip(row["hits"], found))
            for d, h in pairs:
                d["snippet"] = self.snippet(h, row["query"])

    def _words(self, meta: Mapping[str, Any]):
        from ..render import hit_words

        with self._render_lock:  # pdfium is not thread-safe; words are cached per page after the first read
            return hit_words(dict(meta))

    def snippet(self, h: Hit, query: str) -> dict | None:
        from ..highlight import highlight

        try:
            meta = h._meta() if h.path else self.page_meta(h.id)
            words = self._words(meta)
        except (ServiceError, ValueError, OSError):  # moved / changed / unrecorded file: no snippet
            return None
        sn = highlight(words, query, h.explain, self.qenc).snippet
        return sn.as_dict() if sn else None

    def highlights(self, page_id: str, query: str) -> dict:
        """Where on page `page_id` the query matched: the words carrying the matched terms (the
        engine's explain for that page) as boxes, the matched terms not printed on it, a snippet."""
        from ..highlight import highlight, matched_terms

        self.check_query(query)
        meta = self.page_meta(page_id)
        terms = None if self.collection.server_side else matched_terms(self.collection, meta, query)
        try:
            words = self._words(meta)
        except (ValueError, OSError) as e:  # SourceError (moved/changed) is a ValueError
            raise ServiceError(409, str(e)) from None
        return {"id": meta["id"], **highlight(words, query, terms, self.qenc).as_dict()}

    # -- pages ------------------------------------------------------------------------------

    def page_meta(self, page_id: str) -> dict:
        """The page's record as the index holds it NOW: a page deleted by another process's
        sync is a 404 (and its cached thumbnail is never served)."""
        try:
            return self.collection.page_by_id(page_id)
        except LookupError:
            raise ServiceError(404, "no such page in this index") from None

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
        pairs = self.collection.page_terms(page_id, n)
        if pairs is None:
            return None
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
        s = self.collection.info(sources=True)
        sources = s.pop("sources", None)
        out = {
            **s,
            "model": self.model,
            "encoder": self.encoder_info or s.get("encoder"),
            "catalog": True,
            "filters": True,
            "explain": True,
            "page_terms": self.collection.can_list_page_terms(),
            "limits": self.limits.as_dict(),
            "image_widths": list(IMAGE_WIDTHS),
        }
        if sources is not None:
            out["sources"] = sources[:1000]
            out["sources_truncated"] = len(sources) > 1000
        out["start"] = self.start_view()
        return out

    # -- the web page's start view -----------------------------------------------------------

    START_SAMPLE = 80  # pages read for the examples: a bounded cost (~1 s) at any collection size
    START_EXAMPLES = 5

    def start_view(self) -> dict:
        """What the web page shows before a query: the collection's size and a few example
        queries from the words its pages hold (vsplade.serve.examples). Computed once per
        index version (the first /info after a change pays for reading the sample)."""
        catalog = self.collection.catalog()
        version = (self.engine.version(), len(catalog))
        with self._start_lock:
            if self._start is None or self._start[0] != version:
                self._start = (version, self._compute_start(catalog))
            return self._start[1]

    def _compute_start(self, catalog: Sequence[Mapping[str, Any]]) -> dict:
        from .examples import example_queries, example_terms

        rows = sorted((r for r in catalog if r.get("id")), key=lambda r: (str(r.get("source")), r.get("page") or 0))
        step = max(1, len(rows) / self.START_SAMPLE)
        sample = [rows[int(i * step)] for i in range(min(len(rows), self.START_SAMPLE))]
        texts = []
        for r in sample:
            try:
                with self._render_lock:  # pdfium is not thread-safe
                    texts.append((str(r.get("source")), self._page_text(r)))
            except (ValueError, OSError):  # moved / changed / unrecorded file: not an example source
                continue
        examples, source = example_queries(texts, self.START_EXAMPLES), "page text"
        if not examples and self.collection.can_list_page_terms():  # image pages: their largest terms
            lists = [[self.term_display(t) for t, _ in (self.collection.page_terms(r["id"], 20) or [])] for r in sample]
            examples, source = example_terms(lists, self.START_EXAMPLES), "page terms"
        files = {r.get("source") for r in catalog}
        return {"pages": len(catalog), "files": len(files), "examples": examples,
                "examples_from": source if examples else None, "sampled_pages": len(sample)}

    @staticmethod
    def _page_text(meta: Mapping[str, Any]) -> str:
        from ..render import hit_text

        return hit_text(dict(meta))
