"""`vsplade` command line. Exit codes: 0 all good; 1 some inputs failed (listed, the rest
done); 2 usage or configuration error."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help text: "[default: ...]" in option help stays visible instead of being eaten as markup
    rich_markup_mode=None,
    add_completion=False,
    help="V-SPLADE page vectors into search engines: encode PDFs/images, index, search.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A configuration problem: printed as one line, exit code 2."""


# user:password@ inside any URL-ish text, with or without a scheme
_USERINFO = re.compile(r"(?P<pre>(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?[^\s:/@'\"]+):(?P<secret>[^\s/@'\"]+)@")
_SECRET_ENV = ("VSPLADE_OPENSEARCH_PASSWORD", "VSPLADE_OPENSEARCH_API_KEY")
_secrets: set[str] = set()


def _scrub(text: str) -> str:
    """The CLI's last line of defence: no message it prints carries a credential, whatever
    the connector said (URL user-info with or without a scheme, or a known secret value)."""
    text = _USERINFO.sub(lambda m: f"{m.group('pre')}:***@", text)
    for secret in _secrets | {os.environ.get(k) for k in _SECRET_ENV}:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def fail(msg: str, code: int = EXIT_USAGE):
    """Print one scrubbed `error:` line and exit with `code` (also for connectors' commands)."""
    typer.echo(_scrub(f"error: {msg}"), err=True)
    raise typer.Exit(code)


_fail = fail


def remember_secret(value: str | None) -> None:
    """Keep this value (a password, an API key) out of every line the CLI prints."""
    if value:
        _secrets.add(value)


def _engine_options(**opts) -> dict:
    return {k: v for k, v in opts.items() if v is not None and v is not False}


# Options shared by index and search. Credentials: flags or env vars, never echoed. The
# VSPLADE_OPENSEARCH_* variables are read by the OpenSearch connector itself, so they apply
# to that engine only (exported for a cluster, they never break a Lucene or memory command).
EngineOpt = typer.Option(None, "--engine", "-e", help="lucene, memory or opensearch. [default: lucene when vsplade-lucene is installed, else memory]")
IndexOpt = typer.Option(None, "--index", "-i", help="Index dir (lucene, memory) or index name (opensearch).")
UrlOpt = typer.Option(None, "--url", help="opensearch: the URL (several: comma-separated). [env: VSPLADE_OPENSEARCH_URL]")
UserOpt = typer.Option(None, "--user", help="opensearch: basic-auth user. [env: VSPLADE_OPENSEARCH_USER]")
PasswordOpt = typer.Option(None, "--password", help="opensearch: basic-auth password (prefer the env var). [env: VSPLADE_OPENSEARCH_PASSWORD]", show_default=False)
ApiKeyOpt = typer.Option(None, "--api-key", help="opensearch: API key (prefer the env var). [env: VSPLADE_OPENSEARCH_API_KEY]", show_default=False)
CaOpt = typer.Option(None, "--ca-certs", help="CA bundle for TLS.")
InsecureOpt = typer.Option(False, "--insecure", help="Do not verify TLS certificates.")
ClientCertOpt = typer.Option(None, "--client-cert", help="opensearch: client certificate (PEM) for TLS client authentication. [env: VSPLADE_OPENSEARCH_CLIENT_CERT]")
ClientKeyOpt = typer.Option(None, "--client-key", help="opensearch: the client certificate's private key (PEM). [env: VSPLADE_OPENSEARCH_CLIENT_KEY]")
AwsRegionOpt = typer.Option(None, "--aws-region", help="opensearch: sign requests with AWS SigV4 for this region (Amazon OpenSearch Service; credentials from botocore's standard chain). [env: VSPLADE_OPENSEARCH_AWS_REGION]")
AwsServiceOpt = typer.Option(None, "--aws-service", help="opensearch: with --aws-region, es (managed domains) or aoss (Serverless). [default: es] [env: VSPLADE_OPENSEARCH_AWS_SERVICE]")


@dataclass
class Target:
    """Which index a command works on: --engine, --index and the connection flags, declared
    once (`engine_command`) instead of pasted into every command's signature."""

    engine: Optional[str] = None
    index: Optional[str] = None
    connection: dict = field(default_factory=dict)


_TARGET_PARAMS = (("engine", Optional[str], EngineOpt), ("index_", Optional[str], IndexOpt),
                  ("url", Optional[str], UrlOpt), ("user", Optional[str], UserOpt),
                  ("password", Optional[str], PasswordOpt), ("api_key", Optional[str], ApiKeyOpt),
                  ("ca_certs", Optional[str], CaOpt), ("insecure", bool, InsecureOpt),
                  ("client_cert", Optional[str], ClientCertOpt), ("client_key", Optional[str], ClientKeyOpt),
                  ("aws_region", Optional[str], AwsRegionOpt), ("aws_service", Optional[str], AwsServiceOpt))


def option_group(name: str, params, build):
    """A decorator for commands that share a group of options: typer sees `params` ((name,
    annotation, typer option) each) as the command's own options, appended to its signature, and
    the command gets one object, `build(**their values)`, as its parameter `name`. A group is
    declared once instead of pasted into every command."""

    def decorate(fn):
        sig = inspect.signature(fn)
        own = [p for n, p in sig.parameters.items() if n != name]
        extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=opt, annotation=ann)
                 for n, ann, opt in params]

        @functools.wraps(fn)
        def command(*args, **kw):
            values = {n: kw.pop(n, None) for n, _, _ in params}
            return fn(*args, **{name: build(**values)}, **kw)

        command.__signature__ = sig.replace(parameters=own + extra)
        return command

    return decorate


engine_command = option_group("target", _TARGET_PARAMS,
                              lambda engine, index_, **connection: Target(engine, index_, connection))


@dataclass
class Encoding:
    """How pages are read and encoded (encode, index): render resolution and encoder options."""

    dpi: Optional[int] = None
    batch_size: Optional[int] = None
    device: Optional[str] = None
    top_k: Optional[int] = None
    threshold: Optional[float] = None
    page_path: Optional[str] = None
    render_workers: Optional[int] = None


_ENCODING_PARAMS = (
    ("dpi", int, typer.Option(144, help="PDF render resolution.")),
    ("batch_size", Optional[int], typer.Option(None, help="Pages per encoder batch. [default: the encoder's own: lexical 64, V-SPLADE 8]")),
    ("device", Optional[str], typer.Option(None, help="cpu, cuda, cuda:1 ... (neural encoder).")),
    ("top_k", Optional[int], typer.Option(None, "--top-k", help="Keep the k largest weights per page (neural encoder).")),
    ("threshold", Optional[float], typer.Option(None, help="Drop weights below this value (neural encoder).")),
    ("page_path", Optional[str], typer.Option(None, "--page-path", help="V-SPLADE page preprocessing: fast (PDF pages rendered straight at the model's size, uint8 tiles normalised on the device) or reference (the checkpoint's Idefics3 processor). [default: fast]")),
    ("render_workers", Optional[int], typer.Option(None, "--render-workers", min=0, help="V-SPLADE fast path: PDF render processes. [default: 0 on CPU, half the cores up to 8 on CUDA]")),
)
encoding_command = option_group("encoding", _ENCODING_PARAMS, Encoding)


def _open_engine(target: Target, **opts):
    from .engines import EngineError, default_engine_name, get_engine_class

    engine, index = target.engine, target.index
    opts = {**target.connection, **opts}
    _secrets.update(v for k, v in opts.items() if k in ("password", "api_key") and isinstance(v, str))
    name = engine or default_engine_name()
    try:
        cls = get_engine_class(name)
        given = _engine_options(**opts)
        foreign = sorted(k for k in given if k not in cls.cli_options)
        if foreign:
            takes = ", ".join(_flag(k) for k in sorted(cls.cli_options)) or "none besides --index"
            _fail(f"{', '.join(_flag(k) for k in foreign)}: not an option of the {name} engine (its options: {takes})")
        return cls(index=index, **given)
    except EngineError as e:
        _fail(str(e))


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _report(report, as_json: bool, verb: str = "indexed") -> int:
    data = report.as_dict()
    if as_json:
        typer.echo(json.dumps(data))
    else:
        s = report.summary
        if report.nothing_to_do and len(report.page_failures) == 1 and not report.warnings:
            # one input that could not be read: one line that names it and says why
            typer.echo(_scrub(f"error: nothing {verb}: {report.page_failures[0]}; no index was created or changed"),
                       err=True)
            return EXIT_PARTIAL
        if report.nothing_to_do:
            typer.echo(f"nothing {verb}: none of the inputs could be read ({len(report.page_failures)} failed); "
                       "no index was created or changed", err=True)
        else:
            typer.echo(
                f"{verb} {s.indexed} pages ({s.empty} empty), skipped {s.skipped} already done, "
                f"{len(report.page_failures) + len(s.failures)} failed",
                err=True,
            )
        files = s.extra.get("files")
        if files and not report.nothing_to_do:
            extra = f", {s.extra['removed_pages']} pages removed" if "removed_pages" in s.extra else ""
            typer.echo("files: " + ", ".join(f"{v} {k}" for k, v in files.items()) + extra, err=True)
        if s.dropped_weights:
            typer.echo(f"{s.dropped_weights} weights quantized to 0 and dropped", err=True)
        for w in report.warnings:
            typer.echo(f"  warning: {w}", err=True)
        for f in report.page_failures:
            typer.echo(f"  failed: {f}", err=True)
        for doc_id, err in s.failures:
            typer.echo(f"  failed: page {doc_id}: {err}", err=True)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _load_encoder(model: str, encoding: Encoding):
    from .encoders import ModelError, load_encoder

    e = encoding
    opts = {k: v for k, v in {"device": e.device, "top_k": e.top_k, "threshold": e.threshold,
                              "page_path": e.page_path, "render_workers": e.render_workers}.items() if v is not None}
    if model in ("lexical", "lexical-noidf") and (e.page_path or e.render_workers is not None):
        _fail("--page-path and --render-workers apply to the V-SPLADE encoder, not the lexical one")
    try:
        enc = load_encoder(model, **opts)
    except (ModelError, OSError, ValueError) as err:
        _fail(str(err))
    if e.batch_size:
        enc.batch_size = e.batch_size
    return enc


@app.command()
@encoding_command
def encode(
    inputs: List[str] = typer.Argument(..., help="PDF files, images, folders (recursive) or globs."),
    model: str = typer.Option(..., "--model", "-m", help="'lexical', or a V-SPLADE checkpoint dir / Hub id."),
    out: Path = typer.Option(..., "--out", "-o", help="Encoded dir to write (resumable)."),
    encoding: Encoding = None,
    recreate: bool = typer.Option(False, help="Delete OUT first instead of resuming."),
    text_field: bool = typer.Option(False, "--text-field", help="Also store each page's text layer, indexed for BM25 (StandardAnalyzer words, k1=0.9 b=0.4), so `vsplade search --hybrid` can fuse it with the vectors. Fixed when the index is created (an index built without it needs --recreate)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Encode pages into an encoded dir (sparse_docs.npz + doc_ids.json + pages.jsonl)."""
    from .collection import Collection
    from .encoded import EncodedDirError
    from .engines import EngineError
    from .engines.memory import MemoryEngine

    enc = _load_encoder(model, encoding)
    try:
        # an encoded dir is the memory engine's index: the same collection lifecycle
        col = Collection.for_writing(MemoryEngine(index=str(out)), model=model, recreate=recreate,
                                     text_field=text_field)
        report = col.index(*inputs, dpi=encoding.dpi, encoder=enc, label="encoding")
    except (EngineError, EncodedDirError) as e:
        _fail(str(e))
    raise typer.Exit(_report(report, as_json, verb="encoded"))


@app.command()
@engine_command
@encoding_command
def index(
    inputs: List[str] = typer.Argument(..., help="PDFs, images, folders, globs, or ONE encoded dir."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="'lexical' or a checkpoint (not needed for an encoded dir)."),
    target: Target = None,
    encoding: Encoding = None,
    recreate: bool = typer.Option(False, help="Drop the index first instead of resuming / refusing."),
    sync: bool = typer.Option(False, "--sync", help="Make the index hold exactly the files now under INPUTs: add new files, replace changed ones (new pages committed before old ones go), remove pages of vanished files, skip unchanged ones."),
    scale: Optional[float] = typer.Option(None, help="lucene: integer impact = round(w * scale), fixed when the index is created [default: the index's own; a new index: 10000, where top-10 equals float scoring for 99.7% of queries]."),
    shards: Optional[int] = typer.Option(None, "--shards", min=1, help="opensearch: primary shards of a new index [default: 1]."),
    replicas: Optional[int] = typer.Option(None, "--replicas", min=0, help="opensearch: replicas of a new index [default: the cluster's]."),
    retry_for: Optional[float] = typer.Option(None, "--retry-for", min=0.0, metavar="SECONDS", help="opensearch: how long the job rides out a node restart or an unreachable cluster (retries with backoff) before it stops with one line; a re-run resumes. [default: 120]"),
    server_side_query: bool = typer.Option(False, "--server-side-query", help="opensearch: name each page's features as the model's ml-commons SPARSE_TOKENIZE bundle emits them (see `vsplade bundle --format opensearch-sparse`), so any client can query in plain text with neural_sparse query_text + model_id. Needs the neural-search plugin to search. With an encoded dir, --model names the query model."),
    sparse_ann: bool = typer.Option(False, "--sparse-ann", help="opensearch: a new index whose vectors are a SEISMIC sparse_vector field (sparse ANN, neural-search 3.3+ plugin): faster on millions of pages, APPROXIMATE scores (token ids folded to id % 32768, weights byte-quantized). Searches and later runs follow the index without the flag."),
    ann_threshold: Optional[int] = typer.Option(None, "--ann-threshold", min=1, help="With --sparse-ann: SEISMIC's approximate_threshold, the documents a segment needs to be clustered (smaller ones are searched exactly). [default: neural-search's, 1,000,000]"),
    ann_ceiling: Optional[float] = typer.Option(None, "--ann-ceiling", min=0.0, help="With --sparse-ann: quantization_ceiling_ingest, the largest page weight kept (larger ones are clipped). [default: 3.0]"),
    prune: Optional[str] = typer.Option(None, "--prune", metavar="top=N[,floor=W][,cap=C]", help="lucene: static index pruning, fixed when the index is created; every search of such an index is approximate with exact scores for the pages it returns. cap=C (recommended past ~100k pages, C about 0.5% of the pages): Lucene keeps every posting, and each term's C heaviest postings are kept apart; a search scores those for 20 x k candidates and rescores them exactly from a forward index (1M pages, cap=5000: 7.1x faster than exact search on one segment, recall@10 0.99; cap=3000: 8.6x, 0.975; benchmarks/RESULTS.md 'Two-phase search'). top=N / floor=W: Lucene indexes each page's N heaviest terms (and/or those >= W) and a forward index keeps the whole pages to rescore with. Disk: +3.3 KB a page of forward index (cap: + ~0.6-1.3 KB of capped postings)."),
    optimize: bool = typer.Option(False, "--optimize", help="lucene: merge the index to one segment when the build ends (searches 1.3-2x faster than the bulk build's segments; the merge takes ~30 s a million pages). Worth it for an index built once and searched often."),
    text_field: bool = typer.Option(False, "--text-field", help="Also store each page's text layer, indexed for BM25 (StandardAnalyzer words, k1=0.9 b=0.4), so `vsplade search --hybrid` can fuse it with the vectors. Fixed when the index is created (an index built without it needs --recreate). An encoded dir without text: read from its source files."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Encode pages (or take an encoded dir) and write them into a search engine index."""
    from .collection import Collection
    from .encoded import EncodedDirError
    from .engines import EngineError
    from .pipeline import is_encoded_input

    if server_side_query and (target.engine or "") != "opensearch":
        _fail("--server-side-query applies to --engine opensearch")
    if sparse_ann and (target.engine or "") != "opensearch":
        _fail("--sparse-ann applies to --engine opensearch")
    if sparse_ann and server_side_query:
        _fail("--sparse-ann and --server-side-query do not combine: choose one")
    if (ann_threshold is not None or ann_ceiling is not None) and not sparse_ann:
        _fail("--ann-threshold and --ann-ceiling apply to --sparse-ann")
    encoded = is_encoded_input(inputs)
    if encoded and sync:
        _fail("--sync applies to files and folders, not to an encoded dir")
    if not encoded and not model:
        _fail("--model is required unless INPUT is an encoded dir (use --model lexical for text layers)")
    eng = _open_engine(target, scale=scale, shards=shards, replicas=replicas,
                       server_side_query=server_side_query, query_model=model if server_side_query else None,
                       sparse_ann=sparse_ann, ann_threshold=ann_threshold, ann_ceiling=ann_ceiling, retry_for=retry_for,
                       prune=prune, optimize=optimize)
    enc = None if encoded else _load_encoder(model, encoding)
    try:
        col = Collection.for_writing(eng, model=model, recreate=recreate, text_field=text_field)
        report = col.index(*inputs, sync=sync, dpi=encoding.dpi, encoder=enc)
    except (EngineError, EncodedDirError) as e:
        # a server that stayed away past --retry-for is a runtime failure a re-run resumes
        # (exit 1, as BulkError says), not a usage error
        _index_fail(eng, str(e), code=getattr(e, "exit_code", EXIT_USAGE))
    raise typer.Exit(_report(report, as_json))


@app.command()
@engine_command
def search(
    queries: List[str] = typer.Argument(None, help="Query texts (or use --topics)."),
    target: Target = None,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Query side: 'lexical', a bundle or checkpoint. [default: what the index was built with]"),
    k: int = typer.Option(10, "-k", "--hits", min=1, max=10000, help="Hits per query."),
    topics: Optional[str] = typer.Option(None, "--topics", help="Queries from a file: TSV qid<TAB>text, JSON lines {id, text}, or one per line; '-' reads stdin."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the run to this file instead of stdout."),
    fmt: Optional[str] = typer.Option(None, "--format", help="trec (trec_eval), tsv (qid, docid, rank) or json. [default: trec with --output or --topics, else text]"),
    run_tag: str = typer.Option("vsplade", "--run-tag", help="Run tag in TREC output."),
    docid: str = typer.Option("internal", "--docid", metavar="internal|file-page", help="Page ids in trec/tsv/json runs: internal (the index's ids) or file-page (FILE:PAGE, the file as `vsplade info --sources` names it, page from 1; whitespace and % in names percent-encoded), which hand-written qrels can use."),
    threads: int = typer.Option(1, "--threads", min=1, help="Queries searched in parallel (one searcher, one JVM)."),
    source: List[str] = typer.Option([], "--source", "-s", help="Only pages of this file (key or path; a folder: every file under it). Repeatable."),
    page_min: Optional[int] = typer.Option(None, "--page-min", min=1, help="Only pages numbered at least this."),
    page_max: Optional[int] = typer.Option(None, "--page-max", min=1, help="Only pages numbered at most this."),
    explain: bool = typer.Option(False, "--explain", help="Show which terms matched and what they contributed."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="file: the -k best files (documents), each with its best pages (a file scores as its best page), grouped inside the engine. Text and json output."),
    pages_per_file: int = typer.Option(3, "--pages-per-file", min=1, max=100, help="With --group-by file: pages shown per file."),
    two_phase: Optional[str] = typer.Option(None, "--two-phase", metavar="on|off|RATIO[,EXPANSION]", help="Approximate search, exact scores (memory, lucene): phase 1 with the query's heavy terms (weight >= RATIO x the largest) for k x EXPANSION candidates, phase 2 scores them with every term. 'on': the defaults (0.4,10). 'off': the exact search, also on a Lucene index built with --prune cap=C (approximate by default; not with --hybrid). Pays on the memory engine (1.2-1.5x at 100k pages, recall@10 0.99); on Lucene it is not faster than exact (its block-max pruning already skips what it prunes) except on an index built with --prune, which searches this way always (cap=C: a window of k x 20 unless given here): benchmarks/RESULTS.md."),
    hybrid: Optional[str] = typer.Option(None, "--hybrid", metavar="rrf|minmax:W", help="Fuse the vector ranking with BM25 over the pages' text (an index built with --text-field): rrf (reciprocal rank fusion, k=60) or minmax:W (min-max normalised scores, W on the vector side, e.g. minmax:0.6), as pyserini.fusion computes them."),
    depth: Optional[int] = typer.Option(None, "--depth", min=1, help="With --hybrid: hits taken from each side before fusing. [default: max(k, 100)]"),
    server_side_query: bool = typer.Option(False, "--server-side-query", help="opensearch: send the plain text (neural_sparse query_text) and let the cluster's ml-commons model encode it; no local encoder. The index must be built with --server-side-query."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="With --server-side-query: the ml-commons model id [default: the one the index _meta records, else a deployed model with its zip hash]."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json: one JSON object per query."),
):
    """Search an index with the torch-free query encoder (text, or a topics file -> a TREC run)."""
    from .encoders import ModelError
    from .engines import EngineError
    from .runs import DOCIDS, FORMATS, TopicsError, read_topics

    if as_json:
        fmt = "json"
    if fmt is not None and fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if docid not in DOCIDS:
        _fail(f"--docid must be one of {', '.join(DOCIDS)}, got {docid!r}")
    if topics and queries:
        _fail("give query texts or --topics, not both")
    if not topics and not queries:
        _fail("give one or more query texts, or --topics FILE")
    if page_min is not None and page_max is not None and page_min > page_max:
        _fail(f"--page-min {page_min} is above --page-max {page_max}")
    try:
        todo = read_topics(topics) if topics else [(str(n), q) for n, q in enumerate(queries, 1)]
    except TopicsError as e:
        _fail(str(e))
    if not todo:
        _fail(f"--topics {topics}: no queries in it")
    if fmt is None and (output or topics):
        fmt = "trec" if not group_by else "json"
    if group_by is not None:
        if group_by != "file":
            _fail(f"--group-by must be 'file', got {group_by!r}")
        if fmt in ("trec", "tsv"):
            _fail(f"--group-by file gives files, not a page run: use the text or json output, not --format {fmt}")
    if server_side_query:
        if (target.engine or "") != "opensearch":
            _fail("--server-side-query applies to --engine opensearch")
        if model or explain:
            _fail("--server-side-query uses the cluster's model: no --model, and no --explain (the query's weights stay in the cluster)")
    elif model_id:
        _fail("--model-id applies to --server-side-query")
    if hybrid is not None:
        from .fusion import Fusion

        try:
            hybrid = str(Fusion.of(hybrid))
        except ValueError as e:
            _fail(f"--hybrid: {e}")
        if two_phase:
            _fail("--hybrid and --two-phase do not combine yet: choose one")
    elif depth is not None:
        _fail("--depth applies to --hybrid")
    eng = _open_engine(target, server_side_query=server_side_query, model_id=model_id)
    texts = [text for _, text in todo]
    try:
        col = _open_collection(eng, model)
        with col:
            results = col.search_many(texts, k, source=source or None, pages=(page_min, page_max),
                                      explain=explain, threads=threads, group_by=group_by,
                                      pages_per_file=pages_per_file,
                                      two_phase=True if two_phase == "on" else two_phase,
                                      hybrid=hybrid, depth=depth)
            qenc = None if col.server_side else col.query_encoder
            notices = [col.notice(t, hits) for t, hits in zip(texts, results)]
    except (EngineError, ModelError, OSError, ValueError) as e:
        _index_fail(eng, str(e))
    _print_results(todo, results, fmt, output, run_tag, qenc, explain, notices, docid)


def _print_results(todo, results, fmt, output, run_tag, qenc, explain, notices=None, docid="internal") -> None:
    """The run as a file/stdout format, or as text; `qenc`: the query encoder when the queries
    were encoded here (None for server-side queries)."""
    import io

    from .engines import Hit
    from .runs import write_run

    if fmt is not None:
        buf = io.StringIO()
        try:
            write_run(buf, fmt, todo, results, run_tag, notices, docid=docid)
        except ValueError as e:  # a page --docid file-page cannot name
            _fail(str(e))
        if output:
            Path(output).write_text(buf.getvalue(), encoding="utf-8")
            typer.echo(f"wrote {sum(len(r) for r in results)} hits for {len(todo)} queries to {output} ({fmt})", err=True)
        else:
            sys.stdout.write(buf.getvalue())
        return
    for n, ((_, text), hits) in enumerate(zip(todo, results)):
        typer.echo(f"query: {text}  ({len(qenc.encode(text))} terms)" if qenc is not None
                   else f"query: {text}  (encoded by the cluster)")
        if notices and notices[n]:
            typer.echo(f"  note: {notices[n]}")
        if not hits:
            typer.echo("  no hits")
        if hits and not isinstance(hits[0], Hit):  # grouped by file
            for rank, f in enumerate(hits, 1):
                typer.echo(f"  {rank:>3}. {f.score:10.4f}  {f.source}")
                for h in f.hits:
                    typer.echo(f"       {h.score:10.4f}  page {h.page}  [{h.id}]")
                    _print_explain(qenc, h, explain, indent=" " * 10)
            continue
        for rank, h in enumerate(hits, 1):
            typer.echo(f"  {rank:>3}. {h.score:10.4f}  {h.source}  page {h.page}  [{h.id}]{_sides(h)}")
            _print_explain(qenc, h, explain)


def _sides(h) -> str:
    """A hybrid hit's two sides: each one's rank and score, '-' where it did not find the page."""
    if not h.hybrid:
        return ""
    part = lambda side: (f"#{h.hybrid[side + '_rank']} {h.hybrid[side]:.4f}"  # noqa: E731
                         if h.hybrid[side] is not None else "-")
    return f"  (vector {part('vector')}; text {part('text')})"


def _print_explain(qenc, h, explain: bool, indent: str = " " * 8) -> None:
    """Per query word (its pieces put back together): its share of the score, and `partly`
    when the page matched only some of its pieces."""
    if not (explain and h.explain):
        return
    if h.reasons:
        parts = []
        for r in h.reasons:
            if not r["matched_pieces"]:
                continue
            how = "" if r["whole"] else f", partly: {'+'.join(r['matched_pieces'])} of {'+'.join(r['pieces'])}"
            parts.append(f"{r['word']} {100 * r['share']:.0f}%{how}")
        typer.echo(f"{indent}matched: {'; '.join(parts)}")
        return
    parts = ", ".join(f"{qenc.vocab.display(qenc.vocab.id_of(t)).strip()}({c:.3f})" for t, c in list(h.explain.items())[:8])
    typer.echo(f"{indent}matched: {parts}")


def _open_collection(eng, model: Optional[str] = None):
    """The existing collection at the engine's index; "no such index" names the engine that
    would open the dir when it holds another engine's index."""
    from .collection import Collection
    from .encoded import EncodedDirError
    from .engines import EngineError

    try:
        if eng.read_properties() is None:
            _index_fail(eng)
        return Collection.open(None, eng, model=model)
    except (EngineError, EncodedDirError) as e:
        _index_fail(eng, str(e))


def _local_index_kind(index_: Optional[str]) -> Optional[str]:
    """Which local engine's index the dir holds, judged by its files alone (no JVM started)."""
    from .encoded import is_encoded_dir

    p = Path(index_) if index_ else None
    if p is None or not p.is_dir():
        return None
    if is_encoded_dir(p):
        return "memory"
    if (p / "vsplade-lucene.json").is_file() or any(p.glob("segments_*")):
        return "lucene"
    return None


def _index_fail(eng, msg: Optional[str] = None, code: int = EXIT_USAGE):
    """No index (or an error reading it) where the dir holds another engine's index: say which
    --engine opens it, instead of a true-but-useless "no such index"."""
    index_ = eng.index
    other = _local_index_kind(index_)
    if other and other != getattr(eng, "name", other):
        _fail(f"{index_}: not a {eng.name} index but a {other} index; add --engine {other}")
    _fail(msg or f"{index_ or 'the index'}: no such index", code)


@app.command()
@engine_command
def delete(
    source: List[str] = typer.Option([], "--source", "-s", help="A file (or folder) whose pages to delete: its path, or its key as `vsplade info --sources` lists it."),
    id_: List[str] = typer.Option([], "--id", help="A page id to delete."),
    target: Target = None,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Delete pages from an index, by source file or by page id."""
    from .encoded import EncodedDirError
    from .engines import EngineError

    if not source and not id_:
        _fail("name what to delete: --source PATH... and/or --id ID...")
    eng = _open_engine(target)
    col = _open_collection(eng)
    try:
        found = col.match(source, id_)
        removed = col.delete(ids=found.ids) if found.ids else 0
    except (EngineError, EncodedDirError) as e:
        _index_fail(eng, str(e))
    result = {"deleted": removed, "not_found": found.not_found}
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"deleted {removed} pages", err=True)
        for u in found.not_found:
            typer.echo(f"  not found: {u}", err=True)
    raise typer.Exit(EXIT_PARTIAL if found.not_found else EXIT_OK)


@app.command()
@engine_command
def info(
    target: Target = None,
    sources: bool = typer.Option(False, "--sources", help="List the indexed files with their page counts."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object ('pages' is the page count)."),
):
    """What an index holds: pages, files, encoder, when it was created and updated, its size."""
    from .encoded import EncodedDirError
    from .engines import EngineError

    eng = _open_engine(target)
    col = _open_collection(eng)
    try:
        result = col.info(sources=sources)
    except (EngineError, EncodedDirError) as e:
        _index_fail(eng, str(e))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for key in ("engine", "index", "pages", "files", "encoder", "root", "created", "updated", "size_bytes",
                "text_field", "static_pruning"):
        if result.get(key) not in (None, False):
            typer.echo(f"{key + ':':<11} {json.dumps(result[key]) if isinstance(result[key], dict) else result[key]}")
    for src in result.get("sources", []):
        typer.echo(f"  {src['pages']:>6}  {src['source']}")


@app.command()
@engine_command
def serve(
    target: Target = None,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Query side: 'lexical', a bundle or checkpoint. Default: what the index was built with."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback needs a token in VSPLADE_SERVE_TOKEN."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Rendered pages are cached here [default: ~/.cache/vsplade/pages]."),
):
    """Serve an index over HTTP: JSON search API (/search, /pages/ID/image, /openapi.json) and a web page of page thumbnails. Needs the serve extra."""
    from .encoders import ModelError
    from .engines import EngineError
    from .serve import TOKEN_ENV
    from .serve.runner import ServeConfigError, check_bind, run

    try:
        check_bind(host, os.environ.get(TOKEN_ENV) or None)
    except ServeConfigError as e:
        _fail(str(e))
    _check_port(host, port)  # before the index loads and the "serving at" line is printed
    eng = _open_engine(target)
    col = _open_collection(eng, model)
    try:
        run(col, host=host, port=port, cache_dir=cache_dir, echo=lambda m: typer.echo(m, err=True))
    except (ServeConfigError, EngineError, ModelError) as e:
        _index_fail(eng, str(e))
    except SystemExit as e:
        # uvicorn exits 3 when it cannot bind after all (the port was taken while the index
        # loaded); its own line above says why. Exit with the documented code.
        if e.code in (0, None):
            raise
        _fail(f"--host {host} --port {port}: the server could not start (see above); choose another --port")


def _check_port(host: str, port: int) -> None:
    """Bind HOST:PORT the way uvicorn will (every address HOST resolves to, SO_REUSEADDR) and let
    go at once: a taken port is one line and exit 2 before anything loads, not uvicorn's raw
    error after the "serving at" line (and its exit 3)."""
    import errno
    import socket

    try:
        addrs = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        _fail(f"--host {host}: cannot resolve it ({e.strerror or e}); give an address such as 127.0.0.1")
    bound = 0
    for family, kind, proto, _, addr in dict.fromkeys(addrs):
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(addr)
                bound += 1
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL:
                    continue  # asyncio skips an address family the machine lacks (::1 without IPv6)
                if e.errno == errno.EADDRINUSE:
                    _fail(f"port {port} on {host} is already in use (another vsplade serve?); "
                          "stop that server or choose another --port")
                if e.errno == errno.EACCES:
                    _fail(f"port {port} on {host}: permission denied (ports below 1024 need privileges); "
                          "choose another --port")
                _fail(f"--host {host} --port {port}: cannot bind ({e.strerror or e}); "
                      "check --host, or choose another --port")
    if not bound:
        _fail(f"--host {host}: not an address of this machine; bind 127.0.0.1 or one of its own addresses")


@app.command()
@engine_command
def show(
    page_ref: str = typer.Argument(..., metavar="ID|SOURCE:PAGE", help="A page id (as search prints it) or SOURCE:PAGE, e.g. reports/a.pdf:3."),
    out: Path = typer.Option(..., "--out", "-o", help="Image file to write (.png, .jpg, .webp)."),
    width: Optional[int] = typer.Option(None, "--width", min=16, max=8192, help="Width in pixels. [default: as rendered at 144 dpi]"),
    highlight: bool = typer.Option(False, "--highlight", help="Mark the words that carry the matched terms of --query (from the PDF's text layer); terms not printed on the page are listed, never drawn."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="With --highlight: the query whose matches to mark."),
    target: Target = None,
):
    """Write one indexed page as an image, rendered from its source file."""
    from .encoded import EncodedDirError
    from .engines import EngineError
    from .render import SourceError, hit_image

    if highlight != bool(query):
        _fail("--highlight and --query go together: vsplade show REF --highlight -q 'the query'")
    eng = _open_engine(target)
    col = _open_collection(eng)
    note = None
    try:
        meta = col.page(page_ref)
        if highlight:
            from .highlight import highlighted_image, matched_terms

            encoder = None if col.server_side else col.query_encoder
            image, hl = highlighted_image(meta, query, width=width, terms=matched_terms(col, meta, query),
                                          encoder=encoder)
            note = hl.note
        else:
            image = hit_image(meta, width)
        image.save(out)
    except LookupError as e:
        _fail(str(e))
    except (EngineError, EncodedDirError, SourceError) as e:
        _index_fail(eng, str(e))
    except (OSError, ValueError) as e:
        _fail(f"{out}: cannot write the image ({e})")
    typer.echo(f"{out}: {meta.get('source')} page {meta.get('page')} ({image.width} x {image.height})", err=True)
    if note:
        typer.echo(f"note: {note}", err=True)


@app.command()
def export(
    encoded_dir: Path = typer.Argument(..., help="An encoded dir."),
    to: str = typer.Option(..., "--to", help="jsonvector (Pyserini JsonVectorCollection) or opensearch-bulk (NDJSON)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dir (jsonvector) or file (opensearch-bulk)."),
    scale: float = typer.Option(100.0, help="jsonvector: integer impact = round(w * scale)."),
    index_name: str = typer.Option("vsplade", "--index-name", help="opensearch-bulk: target index name."),
):
    """Export an encoded dir for an engine's own bulk tools."""
    from .encoded import EncodedDir, EncodedDirError
    from .engines import EngineError, get_engine_class

    targets = {"jsonvector": "lucene", "opensearch-bulk": "opensearch"}
    if to not in targets:
        _fail(f"--to must be one of {', '.join(targets)}")
    try:
        src = EncodedDir(encoded_dir)
        cls = get_engine_class(targets[to])
        # the bulk export carries the encoder description into the mapping's _meta, so an
        # index created from it can be checked like one the writer made
        opts = {"scale": scale} if to == "jsonvector" else {"index_name": index_name, "info": src.encoder_info}
        result = cls.export(src.iter_batches(), out, **opts)
    except (EngineError, EncodedDirError) as e:
        _fail(str(e))
    typer.echo(json.dumps(result))


@app.command()
def bundle(
    model: str = typer.Argument(..., help="'lexical' or a V-SPLADE checkpoint dir / Hub id."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle dir to write (a .zip file for --format opensearch-sparse)."),
    fmt: str = typer.Option("vsplade", "--format", help="vsplade (a bundle dir), or a format a connector adds: opensearch-sparse (an ml-commons SPARSE_TOKENIZE model zip for `vsplade opensearch register-model`, vsplade-opensearch)."),
):
    """Write the query-side model bundle (tokenizer.json + query table + vsplade.json): no torch needed to use it."""
    from .bundle import BundleError, write_bundle
    from .encoders import ModelError, load_query_encoder

    formats = _plugins("vsplade.bundle_formats")
    if fmt != "vsplade" and fmt not in formats:
        hint = " (pip install vsplade-opensearch)" if fmt == "opensearch-sparse" else ""
        _fail(f"--format must be one of {', '.join(['vsplade', *sorted(formats)])}, got {fmt!r}{hint}")
    try:
        q = load_query_encoder(model)
    except (ModelError, OSError, ValueError) as e:
        _fail(str(e))
    if fmt != "vsplade":
        try:
            path, digest = formats[fmt].load()(out, q)
        except (BundleError, OSError, ValueError) as e:
            _fail(str(e))
        typer.echo(f"{path}  sha256={digest}")
        return
    write_bundle(
        out, q.table, q.mode, tokenizer_path=q.vocab.tokenizer_path,
        encoder={"model": model}, lowercase=q.lowercase, prefix_space=q.prefix_space,
    )
    typer.echo(str(out))


def _plugins(group: str) -> dict:
    """Entry points that connectors contribute (commands, bundle formats), by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


@app.command()
def inspect(
    image: str = typer.Argument(..., help="An image or PDF (first page, or --page)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="'lexical' or a V-SPLADE checkpoint. [default: the --index's model]"),
    query: List[str] = typer.Option([], "--query", "-q", help="Score these queries against the page."),
    engine: Optional[str] = EngineOpt,
    index_: Optional[str] = typer.Option(None, "--index", "-i", help="Score as this index does: its model and its frozen corpus statistics (lexical IDF), not the page's own."),
    url: Optional[str] = UrlOpt,
    page: int = typer.Option(1, min=1, help="PDF page (1-based)."),
    top: int = typer.Option(10, min=1, help="How many top tokens to show."),
    dpi: int = typer.Option(144, min=1, help="PDF render resolution."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (neural encoder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
):
    """Encode one page: nnz, max weight, top tokens, and per query the score and its top terms."""
    from .pages import PageReader

    props: dict = {}
    if index_:
        col = _open_collection(_open_engine(Target(engine, index_, {"url": url})), model)
        props, model = col.properties(), model or col.model
    elif engine or url:
        _fail("--engine and --url apply with --index")
    if not model:
        _fail("give --model, or --index to use the model that built it")
    enc = _load_encoder(model, Encoding(device=device))
    reader = PageReader([image], dpi=dpi, render=enc.needs_image, text=True)
    chosen = next((p for p in reader if p.page_no == page), None)
    if chosen is None:
        _fail(f"{image}: no page {page}" + (f" ({reader.failures[0]})" if reader.failures else ""))
    statistics = None
    if enc.needs_fit:
        state = props.get("encoder_state")
        if state:  # as the index scores: the statistics frozen when it was created
            enc.load_state(state)
            statistics = f"the index's ({index_}: {state.get('num_docs')} pages when it was created)"
        else:
            enc.fit([chosen])
            statistics = ("this page alone (give --index to score as an index does)" if not index_
                          else f"this page alone ({index_} records no corpus statistics)")
    batch = enc.encode([chosen])
    ids, weights = batch.row(0)
    vocab = enc.query_encoder().vocab
    order = sorted(range(len(ids)), key=lambda j: -weights[j])
    result = {
        "page": chosen.meta(),
        "nnz": int(len(ids)),
        "max": float(weights.max()) if len(ids) else 0.0,
        "top_tokens": [[vocab.display(int(ids[j])), float(weights[j])] for j in order[:top]],
        "queries": [],
    }
    if statistics:
        result["statistics"] = statistics
    doc = dict(zip(ids.tolist(), weights.tolist()))
    qenc = enc.query_encoder()
    for text in query:
        contrib = {i: w * doc[i] for i, w in qenc.encode_ids(text).items() if doc.get(i, 0) > 0}
        best = sorted(contrib.items(), key=lambda kv: -kv[1])
        result["queries"].append({
            "query": text,
            "score": float(sum(contrib.values())),
            "top_matches": [[vocab.display(i).strip(), float(c)] for i, c in best[:5]],
        })
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"{chosen.source} page {chosen.page_no}: nnz={result['nnz']} max={result['max']:.3f}")
    if statistics:
        typer.echo(f"corpus statistics: {statistics}")
    typer.echo(f"Top-{top} activated tokens:")
    for tok, w in result["top_tokens"]:
        typer.echo(f"  {w:.3f} {tok!r}")
    for q in result["queries"]:
        typer.echo(f"score={q['score']:.3f} query={q['query']!r}")
        typer.echo("  top matches: " + ", ".join(f"{t}({c:.3f})" for t, c in q["top_matches"]))


def _mount_connector_commands() -> None:
    """`vsplade NAME ...` subcommands that connectors contribute (entry-point group
    vsplade.commands, a typer app each: `vsplade opensearch register-model`); the core imports
    no connector. A connector that fails to load is skipped with a warning, never a traceback."""
    for name, ep in sorted(_plugins("vsplade.commands").items()):
        try:
            sub = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken optional connector must not break the CLI
            logging.getLogger(__name__).warning("vsplade %s: commands unavailable (%s)", name, e)
            continue
        app.add_typer(sub, name=name)


_mount_connector_commands()


def version_callback(value: bool):
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log warnings per page."),
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


def main():
    run_app(app, "vsplade")


def run_app(typer_app, prog_name: str):
    """Entry point of `vsplade` and `vsplade-train`. Whatever goes wrong, the user sees one
    line, never a traceback (-v adds it): errors from input a user can type exit 2, an
    internal error exits 1."""
    try:  # typer >= 0.29 vendors its own click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
        from typer.exceptions import Abort
    except ImportError:  # pragma: no cover - typer with click as a dependency
        from click.exceptions import Abort, ClickException, NoArgsIsHelpError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = sys.argv[1:]
    verbose = any(a in ("-v", "--verbose") for a in args)
    if verbose:  # accepted anywhere on the line, like most tools, not only before the subcommand
        args = ["-v"] + [a for a in args if a not in ("-v", "--verbose")]
    try:
        code = typer_app(args=args, prog_name=prog_name, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(EXIT_OK if not args else EXIT_USAGE)
    except ClickException as e:  # usage errors: one line, exit 2
        cmd = f" {e.ctx.info_name}" if getattr(e, "ctx", None) and e.ctx.info_name != prog_name else ""
        typer.echo(_scrub(f"error: {e.format_message()} (see '{prog_name}{cmd} --help')"), err=True)
        sys.exit(EXIT_USAGE)
    except Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted: what was acknowledged is kept; re-run to resume", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the contract is one line per failure
        if verbose:
            import traceback

            traceback.print_exc()
        internal = not isinstance(e, (OSError, ValueError, LookupError, RuntimeError))
        what = f"internal error ({type(e).__name__}), please report it" if internal else type(e).__name__
        hint = "" if verbose else " (run with -v for details)"
        typer.echo(_scrub(f"error: {what}: {e}{hint}"), err=True)
        sys.exit(EXIT_PARTIAL if internal else EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
