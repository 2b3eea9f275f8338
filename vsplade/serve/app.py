"""The HTTP face of `vsplade serve`: a FastAPI app over one `SearchService`.

Endpoints: GET/POST /search, GET /pages/{id}, GET /pages/{id}/image, GET /pages/{id}/highlights,
GET /health, GET /info, GET /openapi.json, and the web page (GET /, /static/...). Errors are
JSON ``{"detail": ...}`` with a 4xx status for anything a client can fix, never a stack trace;
an unexpected failure answers 500 ``{"detail": "internal error"}`` and is logged on the server.

Safety: with a token (`create_app(token=...)`), every data endpoint needs ``Authorization:
Bearer TOKEN`` (or the ``vsplade_token`` cookie the web page sets, so that <img> requests
carry it); /health, /openapi.json and the static page need none. A loopback-bound service only
answers requests whose Host is a loopback name (DNS-rebinding guard). Bodies over the limit
are refused with 413 before they are read whole.
"""

# no `from __future__ import annotations`: FastAPI resolves the endpoint annotations (models
# defined inside create_app) at runtime
import logging
import math
import secrets
from importlib import resources
from typing import Annotated, List, Literal, Optional

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .. import __version__
from ..engines import EngineError
from .service import IMAGE_FORMAT, SearchService, ServiceError

log = logging.getLogger("vsplade.serve")

TOKEN_COOKIE = "vsplade_token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
]


class _TooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI middleware: refuse bodies over `max_body` (413, by Content-Length or while
    streaming) and add security headers to every response."""

    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": list(message.get("headers", [])) + _SECURITY_HEADERS}
            await send(message)

        has_length = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                has_length = True
                try:
                    n = int(value)
                except ValueError:
                    return await _send_json(send_with_headers, 400, "invalid Content-Length")
                if n > self.max_body:
                    return await _send_json(send_with_headers, 413,
                                            f"request body is {n} bytes; the limit is {self.max_body}")
        if not has_length and scope.get("method") in ("POST", "PUT", "PATCH"):
            # a streamed (chunked) body: read it here, up to the limit, and replay it, so an
            # oversized one is a 413 and not the framework's generic parse error
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                size += len(message.get("body", b""))
                if size > self.max_body:
                    return await _send_json(send_with_headers, 413, f"request body over the limit of {self.max_body} bytes")
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def replay_receive():
                return replay.pop() if replay else await receive()

            return await self.app(scope, replay_receive, send_with_headers)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not started:
                await _send_json(send_with_headers, 413, f"request body over the limit of {self.max_body} bytes")


async def _send_json(send, status: int, detail: str):
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _unicode_text(value: str) -> str:
    # JSON's \ud800 escape decodes to a lone surrogate, which no engine, log or response can
    # encode as UTF-8; pydantic refuses it in some str fields but not in list items
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (it holds a lone surrogate such as \\ud800)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]


def _json_safe(value):
    """What a 422 may echo of the request: text that encodes as UTF-8 (a lone surrogate is
    written as its escape), finite numbers (NaN as "nan"), and plain JSON types (anything else,
    e.g. an exception in an error's context, as its str). FastAPI's own handler echoes the input
    as is and answers 500 when rendering it fails."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return _json_safe(str(value))


def static_dir():
    return resources.files("vsplade.serve") / "static"


def create_app(service: SearchService, token: str | None = None, loopback_only: bool = True) -> FastAPI:
    """The app for one loaded service. `token`: required bearer token (None: no auth).
    `loopback_only`: the service is bound to a loopback address, so only loopback Host
    headers are answered."""
    L = service.limits
    app = FastAPI(
        title="vsplade serve",
        version=__version__,
        description="Search V-SPLADE / lexical page indexes and look at the pages they find.",
        docs_url=None, redoc_url=None,  # their UIs load from a CDN; the spec is at /openapi.json
    )
    app.state.service = service

    # -- models -------------------------------------------------------------------------------

    class Term(BaseModel):
        term: str = Field(description="the engine term")
        token: str = Field(description="the term as text")
        contribution: float = Field(description="query weight x page weight")

    class Reason(BaseModel):
        word: str = Field(description="a query word as typed")
        contribution: float = Field(description="what its pieces added to the score")
        share: float = Field(description="its part of the score, 0..1")
        pieces: List[str] = Field(description="the word's pieces (tokens)")
        matched_pieces: List[str] = Field(description="the pieces the page has")
        whole: bool = Field(description="the page has every piece of the word")

    class SnippetOut(BaseModel):
        text: str = Field(description="the best line or two of the page's text around the matches")
        marks: List[List[int]] = Field(description="[start, end) character ranges of text holding matched words")
        html: str = Field(description="text, HTML-escaped, the marks as <mark>")

    class SidesOut(BaseModel):
        vector: Optional[float] = Field(None, description="the vector side's score (absent: not in its depth)")
        vector_rank: Optional[int] = None
        text: Optional[float] = Field(None, description="the BM25 side's score (absent: not in its depth)")
        text_rank: Optional[int] = None

    class HitOut(BaseModel):
        id: str
        score: float
        source: Optional[str] = None
        page: Optional[int] = None
        explain: Optional[List[Term]] = Field(None, description="top matching terms, when explain=true")
        matched_terms: Optional[int] = Field(None, description="how many query terms the page matched")
        reasons: Optional[List[Reason]] = Field(None, description="per query word, when explain=true")
        snippet: Optional[SnippetOut] = Field(None, description="with snippet=true (absent: no text layer)")
        hybrid: Optional[SidesOut] = Field(None, description="with hybrid: each side's score and rank")

    class FileOut(BaseModel):
        source: Optional[str] = None
        score: float = Field(description="its best page's score")
        hits: List[HitOut] = Field(description="its best pages, best first")

    class SearchOut(BaseModel):
        query: str
        terms: int = Field(description="terms in the encoded query")
        took_ms: float = Field(description="encode + search time inside the service")
        hits: List[HitOut] = Field(description="the pages, best first (empty with group_by)")
        files: Optional[List[FileOut]] = Field(None, description="with group_by=file: the best files, best first")
        notice: Optional[str] = Field(None, description="with explain: no page matches any query word whole")

    class BatchOut(BaseModel):
        results: List[SearchOut]

    class SearchIn(BaseModel):
        # NaN and infinities are no number a client means (a JSON `NaN` literal is accepted by
        # Python's parser): refused as invalid, like any other bad value
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
        q: Optional[Text] = Field(None, min_length=1, max_length=L.max_query_chars, description="one query")
        queries: Optional[List[Text]] = Field(None, min_length=1, max_length=L.max_batch,
                                             description="a batch of queries (instead of q)")
        k: int = Field(10, ge=1, le=L.max_k)
        explain: bool = False
        source: Optional[List[Text]] = Field(None, max_length=L.max_sources, description="only pages of these sources")
        page_min: Optional[int] = Field(None, ge=1)
        page_max: Optional[int] = Field(None, ge=1)
        group_by: Optional[Literal["file"]] = Field(None, description="file: the k best files, each with its best pages")
        pages_per_file: int = Field(3, ge=1, le=L.max_k)
        hybrid: Optional[Text] = Field(None, max_length=32, description="fuse with BM25 over the pages' text (index built with --text-field): rrf, or minmax:W (W: weight on the vector side)")
        snippet: bool = Field(False, description="per hit, the best line or two of the page around the matches")

    class HighlightTerm(BaseModel):
        term: str
        token: str = Field(description="the term as text")
        words: Optional[int] = Field(None, description="how many marked words carry it")

    class HighlightBox(BaseModel):
        text: str = Field(description="the word as printed")
        rel: List[float] = Field(description="x0, y0, x1, y1 as fractions of the page picture, top-left origin")
        box: List[float] = Field(description="left, bottom, right, top in PDF points")
        terms: List[str] = Field(description="the matched terms the word carries")
        whole: bool = Field(description="the word is a query word (else it holds a matched piece)")

    class HighlightsOut(BaseModel):
        id: str
        query: str
        text_layer: bool = Field(description="false: an image or a scan, nothing can be marked")
        page_size: List[float] = Field(description="width, height in points (pixels for an image)")
        boxes: List[HighlightBox] = Field(description="best first: whole query words, then words with a matched piece")
        on_page: List[HighlightTerm]
        not_on_page: List[HighlightTerm] = Field(description="matched terms no printed word carries (never drawn)")
        unmarked: List[HighlightTerm] = Field(description="punctuation terms, which mark no word on their own")
        snippet: Optional[SnippetOut] = None
        note: str

    class PageTerm(BaseModel):
        term: str
        token: str
        weight: float

    class PageOut(BaseModel):
        id: str
        source: Optional[str] = None
        page: Optional[int] = None
        sha256: Optional[str] = None
        renderable: bool
        top_terms: Optional[List[PageTerm]] = None

    # -- auth, errors -------------------------------------------------------------------------

    async def require_token(request: Request):  # async: no thread hop per request
        if not token:
            return
        given = None
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        given = given or request.cookies.get(TOKEN_COOKIE)
        if not given or not secrets.compare_digest(given.encode(), token.encode()):
            raise ServiceError(401, "a bearer token is required (Authorization: Bearer ...)")

    auth = [Depends(require_token)]

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        # FastAPI's shape ({"detail": [{type, loc, msg, input, ctx}]}), made safe to encode
        try:
            detail = jsonable_encoder(e.errors())
        except Exception:  # an error context jsonable_encoder cannot walk: keep type, loc, msg
            detail = [{k: err.get(k) for k in ("type", "loc", "msg")} for err in e.errors()]
        return JSONResponse({"detail": _json_safe(detail)}, status_code=422)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, e: EngineError):
        log.warning("engine error: %s", e)
        return JSONResponse({"detail": f"engine error: {e}"}, status_code=503)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # -- endpoints ----------------------------------------------------------------------------
    # Endpoints are coroutines that hand the engine work to the thread pool once (a sync
    # endpoint costs FastAPI up to three thread hops per request: dependency, endpoint,
    # response validation); the JVM and numpy release the GIL while they search.

    def filters(source, page_min, page_max, group_by=None, pages_per_file=3, hybrid=None):
        return service.filter_kwargs(source, page_min, page_max, group_by, pages_per_file, hybrid)

    @app.get("/search", response_model=SearchOut, response_model_exclude_none=True, dependencies=auth,
             summary="Search with one query")
    async def search_get(
        q: str = Query(..., min_length=1, max_length=L.max_query_chars),
        k: int = Query(10, ge=1, le=L.max_k),
        explain: bool = Query(False, description="per hit, the top matching terms and their contributions"),
        source: List[str] = Query([], max_length=L.max_sources, description="only pages of these sources"),
        page_min: Optional[int] = Query(None, ge=1),
        page_max: Optional[int] = Query(None, ge=1),
        group_by: Optional[Literal["file"]] = Query(None, description="file: the k best files, each with its best pages"),
        pages_per_file: int = Query(3, ge=1, le=L.max_k),
        snippet: bool = Query(False, description="per hit, the best line or two of the page around the matches"),
        hybrid: Optional[str] = Query(None, max_length=32, description="fuse with BM25 over the pages' text (index built with --text-field): rrf, or minmax:W (W: weight on the vector side)"),
    ):
        f = filters(source, page_min, page_max, group_by, pages_per_file, hybrid)
        return await run_in_threadpool(service.search, q, k, explain, f, snippet)

    @app.post("/search", response_model=SearchOut | BatchOut, response_model_exclude_none=True,
              dependencies=auth, summary="Search with one query (q) or a batch (queries)")
    async def search_post(body: SearchIn):
        if (body.q is None) == (body.queries is None):
            raise ServiceError(422, "give exactly one of q (a query) or queries (a list of queries)")
        f = filters(body.source, body.page_min, body.page_max, body.group_by, body.pages_per_file, body.hybrid)
        if body.q is not None:
            return await run_in_threadpool(service.search, body.q, body.k, body.explain, f, body.snippet)
        return {"results": await run_in_threadpool(service.search_many, body.queries, body.k, body.explain, f,
                                                   True, body.snippet)}

    @app.get("/pages/{page_id}", response_model=PageOut, response_model_exclude_none=True, dependencies=auth,
             summary="A page's metadata (and its top terms)")
    async def page(page_id: str = Path(..., max_length=512),
             terms: int = Query(0, ge=0, le=100, description="also list the page's N largest term weights")):
        return await run_in_threadpool(service.page_info, page_id, terms)

    @app.get("/pages/{page_id}/highlights", response_model=HighlightsOut, dependencies=auth,
             summary="Where on the page a query matched: word boxes, terms not printed, a snippet")
    async def page_highlights(page_id: str = Path(..., max_length=512),
                              q: Text = Query(..., min_length=1, max_length=L.max_query_chars)):
        return await run_in_threadpool(service.highlights, page_id, q)

    @app.api_route("/pages/{page_id}/image", methods=["GET", "HEAD"], dependencies=auth, summary="The page rendered from its source file",
             responses={200: {"content": {IMAGE_FORMAT[1]: {}}}, 304: {"description": "not modified"}})
    async def page_image(request: Request, page_id: str = Path(..., max_length=512),
                   width: Optional[int] = Query(None, ge=16, le=4000,
                                                description="served at the smallest of /info's image_widths >= width")):
        data, etag, cached = await run_in_threadpool(service.image, page_id, width)
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400", "X-Vsplade-Cache": "hit" if cached else "miss"}
        inm = request.headers.get("if-none-match")
        if inm and etag in [t.strip() for t in inm.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=IMAGE_FORMAT[1], headers=headers)

    @app.api_route("/health", methods=["GET", "HEAD"], summary="Liveness")
    async def health():
        return {"status": "ok"}

    @app.get("/info", dependencies=auth, summary="What the index holds and what this service offers")
    async def info():
        return await run_in_threadpool(service.info)

    # -- the web page -------------------------------------------------------------------------

    static = static_dir()

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    if loopback_only:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.add_middleware(_Guard, max_body=L.max_body_bytes)
    return app
